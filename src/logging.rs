//! Log levels, through `tracing`: `--log-level`, `--log-file`, and
//! `set log-level` at run time.
//!
//! What logs: at `debug`, each view a node adopts, each partition it starts
//! or stops leading, each resync stream it starts and each that finishes;
//! at `trace`, every internal message a node takes in. `warn` (the default)
//! and `error` are for what goes wrong outside a command's own answer.
//!
//! Where the lines go: to `--log-file` if given. Otherwise, in the
//! interactive shell, above the prompt as the live notices print (the
//! shell installs a [`set_sink`]), so a log line never lands in the middle
//! of what is being typed; in script mode and node processes, to stderr.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{reload, Registry};

/// Where a finished log line goes.
type Sink = Box<dyn Fn(String) + Send + Sync>;

/// The installed logger: the level's reload handle and the output.
struct Logger {
    level: reload::Handle<LevelFilter, Registry>,
    file: Option<Mutex<std::fs::File>>,
    sink: Mutex<Option<Sink>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Parses a level name: error, warn, info, debug, trace (or off).
pub fn parse_level(s: &str) -> Result<LevelFilter> {
    match s.to_ascii_lowercase().as_str() {
        "off" => Ok(LevelFilter::OFF),
        "error" => Ok(LevelFilter::ERROR),
        "warn" => Ok(LevelFilter::WARN),
        "info" => Ok(LevelFilter::INFO),
        "debug" => Ok(LevelFilter::DEBUG),
        "trace" => Ok(LevelFilter::TRACE),
        _ => Err(Error::BadInput(format!(
            "no log level {s:?}; use error, warn, info, debug, trace or off"
        ))),
    }
}

/// Installs the process's logger at `level`, writing to `file` (appended
/// to) if given. Call once, before the cluster starts; a second call fails.
pub fn init(level: LevelFilter, file: Option<&Path>) -> Result<()> {
    let file = match file {
        Some(p) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| Error::Io(format!("--log-file {}: {e}", p.display())))?,
        )),
        None => None,
    };
    let ansi = file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (filter, handle) = reload::Layer::new(level);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(Lines)
        .with_ansi(ansi)
        .with_thread_names(true)
        .with_target(false);
    LOGGER
        .set(Logger {
            level: handle,
            file,
            sink: Mutex::new(None),
        })
        .map_err(|_| Error::Internal("the logger is installed twice".into()))?;
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .map_err(|e| Error::Internal(format!("cannot install the logger: {e}")))
}

/// Changes the level while running (`set log-level`).
pub fn set_level(level: LevelFilter) -> Result<()> {
    let logger = LOGGER
        .get()
        .ok_or_else(|| Error::BadInput("logging is not set up in this process".into()))?;
    logger
        .level
        .modify(|l| *l = level)
        .map_err(|e| Error::Internal(format!("cannot change the log level: {e}")))
}

/// The level in force, if a logger is installed.
pub fn level() -> Option<LevelFilter> {
    LOGGER.get().and_then(|l| l.level.with_current(|l| *l).ok())
}

/// Sends log lines to `sink` (the shell's notice printer) unless they go
/// to a file.
pub fn set_sink(sink: Sink) {
    if let Some(l) = LOGGER.get() {
        *l.sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }
}

/// Makes a [`Line`] per event.
struct Lines;

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

/// One event's text, sent where it belongs when dropped, whole.
struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let Some(logger) = LOGGER.get() else { return };
        if let Some(f) = &logger.file {
            let _ = f
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_all(&self.0);
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let line = text.trim_end_matches('\n');
        match &*logger.sink.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(sink) => sink(line.to_string()),
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        }
    }
}

/// At most `max` characters of `s`, for trace lines of large messages.
pub fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_bad_ones_say_which_exist() {
        assert_eq!(parse_level("debug").unwrap(), LevelFilter::DEBUG);
        assert_eq!(parse_level("WARN").unwrap(), LevelFilter::WARN);
        let e = parse_level("verbose").unwrap_err().to_string();
        assert!(e.contains("error, warn, info, debug, trace"), "{e}");
    }

    #[test]
    fn clipping_keeps_whole_characters() {
        assert_eq!(clip("héllo", 2), "hé");
        assert_eq!(clip("hi", 10), "hi");
    }
}
