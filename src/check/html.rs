//! `history html`: a checked history drawn as one self-contained HTML page,
//! in the spirit of Porcupine's visualiser and Jepsen's `timeline.html`,
//! plus what neither shows: the faults the nemesis injected and the view
//! changes the leader made, on the same time axis as the operations.
//!
//! The page is static: inline CSS and inline SVG, no script and nothing
//! fetched, so it opens offline, from a mail attachment or a CI artifact,
//! and shows the same thing everywhere. Hover text comes from SVG
//! `<title>`s, and the one interaction, jumping to a violation, is a plain
//! `#anchor` link; `:target` highlights where it lands.
//!
//! Layout: a header with the counts and a legend; the list of violations,
//! each linking to its key and naming its operations (each a link too);
//! a lane of faults (shaded spans) and view changes (ticks, one per epoch,
//! the epoch's events in its hover text); then one block per key, one row
//! per client, each operation a bar from invocation to completion coloured
//! by outcome (and for reads, what they returned), faults shaded behind
//! and view changes as thin lines through every block. A violation's
//! operations have a thick outline.
//!
//! Times: operations are in microseconds since the workload started,
//! faults in milliseconds since the same moment, events on the cluster
//! clock; [`Timeline::origin_ms`] is the cluster clock's reading at the
//! start, which lines the three up.

use crate::check::history::{History, OpKind, Operation, Outcome};
use crate::check::linearizability::Violation;
use crate::check::nemesis::FaultRecord;
use crate::cluster::event::Event;
use crate::view::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Everything one picture shows.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// What the page is of (the check's settings).
    pub title: String,
    /// The operations.
    pub history: History,
    /// Faults, in ms since the start.
    pub faults: Vec<FaultRecord>,
    /// View changes, on the cluster clock.
    pub events: Vec<Event>,
    /// The cluster clock at the start, ms.
    pub origin_ms: Time,
    /// Keys that are not linearizable, with their witnesses.
    pub violations: Vec<Violation>,
}

/// Pixels per row of operations.
const ROW: u32 = 16;
/// Pixels left of the time axis, for row labels.
const LABEL: u32 = 90;

/// Renders the page.
pub fn render(t: &Timeline) -> String {
    let end_us = t
        .history
        .iter()
        .map(|op| op.complete)
        .chain(t.faults.iter().map(|f| (f.at_ms + f.held_ms) * 1000))
        .max()
        .unwrap_or(0)
        .max(1);
    // Wide enough that a 5 ms operation is a visible bar on a 10 s run;
    // the page scrolls sideways.
    let width = ((end_us as f64 / 1000.0) * 0.4).clamp(1200.0, 20000.0);
    let x = |us: u64| LABEL as f64 + us as f64 / end_us as f64 * width;
    let marked: BTreeSet<u64> = t
        .violations
        .iter()
        .flat_map(|v| v.ops.iter().map(|op| op.id))
        .collect();
    let epochs = epochs(t);
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in t.history.iter() {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let key_ids: BTreeMap<&str, usize> = by_key.keys().enumerate().map(|(i, k)| (*k, i)).collect();

    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>kvsh history: {}</title>\n<style>{CSS}</style></head><body>\n",
        esc(&t.title)
    );
    let count = |o: Outcome| t.history.iter().filter(|op| op.outcome == o).count();
    let _ = write!(
        h,
        "<h1>kvsh history</h1><p class=\"sub\">{}</p>\n<p>{} operations on {} keys: \
         <span class=\"sw ok\"></span>ok {} &nbsp; <span class=\"sw failed\"></span>failed {} \
         &nbsp; <span class=\"sw unknown\"></span>unknown {} &nbsp; \
         <span class=\"sw fault\"></span>fault held &nbsp; <span class=\"sw view\"></span>view \
         change (hover for what changed) &nbsp; <span class=\"sw viol\"></span>in a violation. \
         Reads show the value returned; hover any bar for its details.</p>\n",
        esc(&t.title),
        t.history.len(),
        by_key.len(),
        count(Outcome::Ok),
        count(Outcome::Failed),
        count(Outcome::Unknown),
    );

    // Violations, each one click from its operations.
    h.push_str("<section id=\"violations\">");
    if t.violations.is_empty() {
        h.push_str(
            "<h2>Violations: 0</h2><p>Every key's history is linearizable; no acknowledged \
             write was lost.</p>",
        );
    } else {
        let _ = write!(h, "<h2>Violations: {}</h2><ol>", t.violations.len());
        for (i, v) in t.violations.iter().enumerate() {
            let kid = key_ids.get(v.key.as_str()).copied().unwrap_or(0);
            let _ = write!(
                h,
                "<li id=\"violation-{i}\" class=\"violation\"><a href=\"#key-{kid}\">key {}</a>: \
                 {} &mdash; operations ",
                esc(&v.key),
                esc(&v.reason)
            );
            for (j, op) in v.ops.iter().enumerate() {
                let _ = write!(
                    h,
                    "{}<a href=\"#op-{}\">{}</a>",
                    if j > 0 { ", " } else { "" },
                    op.id,
                    op.id
                );
            }
            h.push_str("</li>");
        }
        h.push_str("</ol>");
    }
    h.push_str("</section>\n");

    // The fault and view-change lane, with the time axis.
    let lane_h = 3 * ROW + 14;
    let _ = write!(
        h,
        "<h2>Faults and view changes</h2><div class=\"scroll\"><svg class=\"lane\" \
         width=\"{:.0}\" height=\"{lane_h}\" xmlns=\"http://www.w3.org/2000/svg\">",
        width + LABEL as f64 + 20.0
    );
    let _ = write!(
        h,
        "<text x=\"4\" y=\"{}\">faults</text><text x=\"4\" y=\"{}\">view</text>",
        ROW - 4,
        2 * ROW - 4
    );
    for (i, f) in t.faults.iter().enumerate() {
        let (x0, x1) = (x(f.at_ms * 1000), x((f.at_ms + f.held_ms) * 1000));
        let _ = write!(
            h,
            "<g id=\"fault-{i}\"><rect class=\"fault\" x=\"{x0:.1}\" y=\"1\" width=\"{:.1}\" \
             height=\"{}\"><title>{} at {:.3} s, held {} ms</title></rect><text x=\"{:.1}\" \
             y=\"{}\">{}</text></g>",
            (x1 - x0).max(1.0),
            ROW - 2,
            esc(&f.what),
            f.at_ms as f64 / 1000.0,
            f.held_ms,
            x0 + 2.0,
            ROW - 4,
            esc(&f.what)
        );
    }
    for (at_us, epoch, texts) in &epochs {
        let _ = write!(
            h,
            "<line class=\"view\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{2}\"><title>epoch \
             {epoch} at {3:.3} s: {4}</title></line>",
            x(*at_us),
            ROW,
            2 * ROW,
            *at_us as f64 / 1e6,
            esc(&texts.join("; "))
        );
    }
    axis(&mut h, end_us, width, 3 * ROW);
    h.push_str("</svg></div>\n");

    // One block per key.
    h.push_str("<h2>Operations by key</h2>\n");
    for (key, ops) in &by_key {
        let kid = key_ids[key];
        let processes: BTreeSet<u64> = ops.iter().map(|op| op.process).collect();
        let rows: BTreeMap<u64, u32> = processes
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, i as u32))
            .collect();
        let height = rows.len() as u32 * ROW + 4;
        let bad = ops.iter().any(|op| marked.contains(&op.id));
        let _ = write!(
            h,
            "<div class=\"key{}\" id=\"key-{kid}\"><h3>{}{}</h3><div class=\"scroll\"><svg \
             width=\"{:.0}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">",
            if bad { " bad" } else { "" },
            esc(key),
            if bad { " &mdash; violation" } else { "" },
            width + LABEL as f64 + 20.0
        );
        for f in &t.faults {
            let (x0, x1) = (x(f.at_ms * 1000), x((f.at_ms + f.held_ms) * 1000));
            let _ = write!(
                h,
                "<rect class=\"fault\" x=\"{x0:.1}\" y=\"0\" width=\"{:.1}\" height=\"{height}\"/>",
                (x1 - x0).max(1.0)
            );
        }
        for (at_us, _, _) in &epochs {
            let _ = write!(
                h,
                "<line class=\"view\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"0\" y2=\"{height}\"/>",
                x(*at_us)
            );
        }
        for (p, row) in &rows {
            let _ = write!(
                h,
                "<text x=\"4\" y=\"{}\">client {p}</text>",
                row * ROW + ROW - 4
            );
        }
        for op in ops {
            let (x0, x1) = (x(op.invoke), x(op.complete));
            let y = rows[&op.process] * ROW + 2;
            let class = match op.outcome {
                Outcome::Ok => "ok",
                Outcome::Failed => "failed",
                Outcome::Unknown => "unknown",
            };
            let viol = if marked.contains(&op.id) { " viol" } else { "" };
            let label = describe(op);
            let _ = write!(
                h,
                "<g id=\"op-{}\" class=\"op{viol}\"><rect class=\"{class}\" x=\"{x0:.1}\" \
                 y=\"{y}\" width=\"{:.1}\" height=\"{}\"><title>op {}, client {}: {} &rarr; {} \
                 ({:.3} s to {:.3} s)</title></rect>",
                op.id,
                (x1 - x0).max(1.0),
                ROW - 4,
                op.id,
                op.process,
                esc(&label),
                class,
                op.invoke as f64 / 1e6,
                op.complete as f64 / 1e6,
            );
            // A label where the bar has room for it.
            if x1 - x0 > 7.0 * label.chars().count() as f64 {
                let _ = write!(
                    h,
                    "<text class=\"in\" x=\"{:.1}\" y=\"{}\">{}</text>",
                    x0 + 2.0,
                    y + ROW - 6,
                    esc(&label)
                );
            }
            h.push_str("</g>");
        }
        h.push_str("</svg></div></div>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// What an operation did, in a few characters: `w c1-5`, `r c1-5`, `r nil`,
/// `del`.
fn describe(op: &Operation) -> String {
    match &op.kind {
        OpKind::Write { value } => format!("w {value}"),
        OpKind::Read { value: Some(v) } if op.outcome == Outcome::Ok => format!("r {v}"),
        OpKind::Read { .. } if op.outcome == Outcome::Ok => "r nil".into(),
        OpKind::Read { .. } => "r ?".into(),
        OpKind::Delete => "del".into(),
        OpKind::Cas {
            expected, value, ..
        } if op.outcome != Outcome::Ok => {
            format!("cas {}→{value} ?", expected.as_deref().unwrap_or("nil"))
        }
        OpKind::Cas {
            expected,
            value,
            swapped: true,
            ..
        } => format!("cas {}→{value}", expected.as_deref().unwrap_or("nil")),
        OpKind::Cas { current, .. } => {
            format!("cas ✗ {}", current.as_deref().unwrap_or("nil"))
        }
    }
}

/// View changes grouped by epoch: time (µs since the start), epoch, and
/// what happened (the first few texts, then a count). Events before the
/// start are left out.
fn epochs(t: &Timeline) -> Vec<(u64, u64, Vec<String>)> {
    let mut out: Vec<(u64, u64, Vec<String>)> = Vec::new();
    for e in t.events.iter().filter(|e| e.at >= t.origin_ms) {
        let at = (e.at - t.origin_ms) * 1000;
        match out.last_mut() {
            Some((_, epoch, texts)) if *epoch == e.epoch => {
                if texts.len() < 6 {
                    texts.push(e.kind.to_string());
                } else if texts.len() == 6 {
                    texts.push("and more".into());
                }
            }
            _ => out.push((at, e.epoch, vec![e.kind.to_string()])),
        }
    }
    out
}

/// A time axis at `y`: a tick and a label every second (or tenth of one on
/// short runs).
fn axis(h: &mut String, end_us: u64, width: f64, y: u32) {
    let step_us: u64 = if end_us > 5_000_000 {
        1_000_000
    } else {
        100_000
    };
    let mut t = 0;
    while t <= end_us {
        let x = LABEL as f64 + t as f64 / end_us as f64 * width;
        let _ = write!(
            h,
            "<line class=\"tick\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\"/><text \
             x=\"{:.1}\" y=\"{}\">{:.1}s</text>",
            y,
            y + 4,
            x + 2.0,
            y + 12,
            t as f64 / 1e6
        );
        t += step_us;
    }
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font:13px system-ui,sans-serif;margin:16px;color:#222}\
h1{font-size:20px;margin:0}h2{font-size:16px;margin:18px 0 6px}h3{font-size:13px;margin:10px 0 2px;font-family:monospace}\
.sub{color:#666;margin:2px 0 8px}\
.scroll{overflow-x:auto}svg text{font:10px monospace;fill:#333}svg text.in{fill:#fff;pointer-events:none}\
.sw{display:inline-block;width:12px;height:10px;margin-right:3px;vertical-align:middle}\
.ok{fill:#2e7d32;background:#2e7d32}.failed{fill:#9e9e9e;background:#9e9e9e}.unknown{fill:#ef8f00;background:#ef8f00}\
rect.fault{fill:#d32f2f;fill-opacity:.12}.sw.fault{background:#d32f2f;opacity:.3}\
line.view{stroke:#1565c0;stroke-width:1;stroke-opacity:.6}.sw.view{background:#1565c0;width:2px}\
line.tick{stroke:#999}\
.op.viol rect{stroke:#b00020;stroke-width:3}.sw.viol{background:#fff;outline:3px solid #b00020}\
.key.bad h3{color:#b00020}.key:target{background:#fff3c4}.violation:target{background:#fff3c4}\
g:target rect{stroke:#000;stroke-width:4}\
.violation{margin:4px 0}a{color:#1565c0}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::nemesis::FaultKind;
    use crate::cluster::event::EventKind;

    fn op(
        id: u64,
        process: u64,
        key: &str,
        kind: OpKind,
        span: (u64, u64),
        o: Outcome,
    ) -> Operation {
        Operation {
            id,
            process,
            key: key.into(),
            kind,
            invoke: span.0,
            complete: span.1,
            outcome: o,
            txn: None,
        }
    }

    fn timeline() -> Timeline {
        let ops = vec![
            op(
                0,
                1,
                "k<1>",
                OpKind::write("a"),
                (1_000, 5_000),
                Outcome::Ok,
            ),
            op(
                1,
                2,
                "k<1>",
                OpKind::Read {
                    value: Some("b".into()),
                },
                (6_000, 9_000),
                Outcome::Ok,
            ),
            op(
                2,
                1,
                "other",
                OpKind::Delete,
                (2_000, 900_000),
                Outcome::Unknown,
            ),
            op(
                3,
                2,
                "other",
                OpKind::read(),
                (3_000, 4_000),
                Outcome::Failed,
            ),
        ];
        Timeline {
            title: "check --seed 7".into(),
            violations: vec![Violation {
                key: "k<1>".into(),
                reason: "read b, which was never written".into(),
                ops: ops[..2].to_vec(),
            }],
            history: History::new(ops),
            faults: vec![FaultRecord {
                at_ms: 100,
                held_ms: 600,
                kind: FaultKind::Kill,
                what: "kill n2".into(),
            }],
            events: vec![
                Event {
                    at: 40,
                    epoch: 2,
                    kind: EventKind::Balanced,
                },
                Event {
                    at: 1_800,
                    epoch: 3,
                    kind: EventKind::Dead {
                        node: 2,
                        silent_ms: 600,
                    },
                },
            ],
            origin_ms: 1_000,
        }
    }

    /// The page needs nothing from outside, shows every operation, and a
    /// violation's operations are marked and linked from the top.
    #[test]
    fn the_page_is_self_contained_and_shows_every_operation() {
        let t = timeline();
        let html = render(&t);
        assert!(!html.contains("<script"), "no scripts");
        assert!(!html.contains("<link"), "no stylesheets from elsewhere");
        for bad in [
            "src=",
            "url(",
            "@import",
            "https:",
            "http://www.w3.org/1999",
        ] {
            assert!(!html.contains(bad), "nothing fetched: {bad}");
        }
        // The only URL is the SVG namespace, which is a name, not a fetch.
        let urls = html.matches("http").count();
        assert_eq!(
            urls,
            html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
        for op in t.history.iter() {
            assert!(
                html.contains(&format!("id=\"op-{}\"", op.id)),
                "op {} drawn",
                op.id
            );
        }
        assert_eq!(
            html.matches("class=\"op viol\"").count(),
            2,
            "both witness ops marked"
        );
        assert!(
            html.contains("<a href=\"#op-0\">0</a>") && html.contains("<a href=\"#op-1\">1</a>")
        );
        // The violation links to its key's block, which exists.
        let kid = html
            .split("<a href=\"#key-")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(html.contains(&format!("id=\"key-{kid}\"")));
        assert!(
            html.contains("k&lt;1&gt;") && !html.contains("k<1>"),
            "keys are escaped"
        );
        assert!(html.contains("kill n2"), "the fault is drawn");
        assert!(
            html.contains("n2 declared dead"),
            "the view change is drawn"
        );
        assert!(
            !html.contains("Balanced"),
            "an event before the run is left out"
        );
        assert!(
            html.contains("class=\"ok\"")
                && html.contains("class=\"unknown\"")
                && html.contains("class=\"failed\"")
        );
    }

    #[test]
    fn a_clean_history_says_so() {
        let mut t = timeline();
        t.violations.clear();
        let html = render(&t);
        assert!(html.contains("Violations: 0"));
        assert!(!html.contains("class=\"op viol\""), "nothing marked");
    }
}
