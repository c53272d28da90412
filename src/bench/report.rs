//! What a bench run measured: [`BenchReport`] (text for people, JSON for
//! scripts, from the same fields) and [`LatencySummary`].

use crate::bench::config::BenchKind;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

/// Percentiles of a latency histogram, in microseconds.
///
/// Latencies are recorded in nanoseconds (3 significant digits), so a 25 µs
/// round trip is not rounded to whole microseconds, and shown in
/// microseconds with one decimal.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub samples: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl LatencySummary {
    /// Summarizes a histogram of nanoseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| round1(ns as f64 / 1000.0);
        LatencySummary {
            samples: h.len(),
            mean_us: round1(h.mean() / 1000.0),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }

    /// One line: `p50 41.2  p90 55.0  p99 80.1  p99.9 120.3  max 950.0 µs`.
    pub fn text(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {} µs",
            micros(self.p50_us),
            micros(self.p90_us),
            micros(self.p99_us),
            micros(self.p999_us),
            micros(self.max_us)
        )
    }
}

/// A histogram for latencies in nanoseconds, from 1 ns to 10 minutes.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("invariant: static bounds are valid")
}

/// The outcome of one bench run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchReport {
    /// `put`, `get` or `mixed`.
    pub kind: BenchKind,
    /// Requests answered in the timed run, error replies included.
    pub ops: u64,
    /// `ops` per second of the timed run.
    pub ops_per_sec: f64,
    /// Length of the timed run, from the first request to the last reply.
    pub duration_ms: u64,
    /// Latency of every answered request of the timed run.
    #[serde(flatten)]
    pub latency: LatencySummary,
    /// Requests of the timed run that failed: error replies, sends to an
    /// unconnected node, replies that never came.
    pub errors: u64,
    /// Failures by code (`unavailable`, `timeout`, `not_connected`, ...).
    pub error_codes: BTreeMap<String, u64>,
    /// The first failure's message, if any.
    pub first_error: Option<String>,
    /// Reads that found no value (there should be none: the keys are loaded).
    pub misses: u64,
    /// Clients (each a connection to every node).
    pub clients: usize,
    /// Event-loop threads that drove them; 0: a thread per client.
    pub threads: usize,
    /// Requests in flight per client.
    pub pipeline: usize,
    /// Most requests per frame.
    pub batch: usize,
    /// Each client sent only to one node (`--pinned`).
    pub pinned: bool,
    /// Bytes per value.
    pub value_size: usize,
    /// Keys the run chose from.
    pub keys: usize,
    /// The run's key namespace: its keys are `{key_prefix}0` onwards.
    pub key_prefix: String,
    /// Keys written before the timed run (`get`, `mixed`).
    pub loaded: u64,
    /// Failed writes while loading.
    pub load_errors: u64,
    /// Keys deleted afterwards (0 with `--keep`).
    pub cleaned: u64,
    /// Failed deletes while cleaning up.
    pub cleanup_errors: u64,
    /// New views (epochs) the leader published during the timed run: a
    /// failover or a rebalance, which explain failures.
    pub view_changes: u64,
    /// True if Ctrl-C stopped the run early; the figures cover what ran.
    pub cancelled: bool,
}

impl BenchReport {
    /// The report for people: a few lines.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}: {} in {:.2} s = {} ops/s ({} x {} in flight{}, {}-byte values, {} {}*){}\n",
            self.kind,
            count(self.ops, "op"),
            self.duration_ms as f64 / 1000.0,
            group(self.ops_per_sec.round() as u64),
            count(self.clients, "client"),
            self.pipeline,
            if self.batch > 1 {
                format!(", up to {} per frame", self.batch)
            } else {
                String::new()
            } + if self.pinned { ", pinned" } else { "" }
                + &match self.threads {
                    0 => ", a thread per client".to_string(),
                    1 => ", 1 thread".to_string(),
                    t => format!(", {t} threads"),
                },
            self.value_size,
            count(self.keys as u64, "key"),
            self.key_prefix,
            if self.cancelled { ", cancelled" } else { "" },
        );
        out.push_str(&format!("latency: {}\n", self.latency.text()));
        if self.errors == 0 {
            out.push_str("errors: 0\n");
        } else {
            let codes: Vec<String> = self
                .error_codes
                .iter()
                .map(|(c, n)| format!("{c} {}", group(*n)))
                .collect();
            out.push_str(&format!(
                "errors: {} ({}); first: {}\n",
                group(self.errors),
                codes.join(", "),
                self.first_error.as_deref().unwrap_or("?")
            ));
        }
        if self.view_changes > 0 {
            out.push_str(&format!(
                "the view changed {} times during the run (see `events`)\n",
                self.view_changes
            ));
        }
        if self.misses > 0 {
            out.push_str(&format!(
                "misses: {} reads found no value\n",
                group(self.misses)
            ));
        }
        if self.loaded > 0 || self.load_errors > 0 {
            out.push_str(&format!("loaded {} first", count(self.loaded, "key")));
            if self.load_errors > 0 {
                out.push_str(&format!(" ({} failed)", group(self.load_errors)));
            }
            out.push('\n');
        }
        if self.cleaned > 0 || self.cleanup_errors > 0 {
            out.push_str(&format!("deleted {}", count(self.cleaned, "key")));
            if self.cleanup_errors > 0 {
                out.push_str(&format!(" ({} failed)", group(self.cleanup_errors)));
            }
            out.push('\n');
        }
        out.trim_end().to_string()
    }

    /// The report for scripts: one object with `ops`, `ops_per_sec`,
    /// `p50_us`, `p90_us`, `p99_us`, `p999_us`, `max_us`, `errors` and the
    /// run's settings.
    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("invariant: reports always serialize")
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A microsecond figure: one decimal under 100 µs, whole numbers above.
fn micros(us: f64) -> String {
    if us < 100.0 {
        format!("{us:.1}")
    } else {
        group(us.round() as u64)
    }
}

use crate::units::count;
pub use crate::units::group;

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> BenchReport {
        let mut h = latency_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        BenchReport {
            kind: BenchKind::Get,
            ops: 1000,
            ops_per_sec: 2000.4,
            duration_ms: 500,
            latency: LatencySummary::from_histogram(&h),
            errors: 2,
            error_codes: [("unavailable".to_string(), 2)].into(),
            first_error: Some("unavailable: partition 7 has no live replica".into()),
            misses: 0,
            clients: 4,
            threads: 1,
            pipeline: 2,
            batch: 1,
            pinned: false,
            value_size: 100,
            keys: 100_000,
            key_prefix: "bench:1:".into(),
            loaded: 100_000,
            load_errors: 0,
            cleaned: 100_000,
            cleanup_errors: 0,
            view_changes: 0,
            cancelled: false,
        }
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let l = report().latency;
        assert_eq!(l.samples, 1000);
        assert!((l.p50_us - 500.0).abs() <= 1.0, "{l:?}");
        assert!((l.p90_us - 900.0).abs() <= 1.0, "{l:?}");
        assert!((l.p99_us - 990.0).abs() <= 1.0, "{l:?}");
        assert!((l.p999_us - 999.0).abs() <= 1.0, "{l:?}");
        assert!((l.max_us - 1000.0).abs() <= 1.0, "{l:?}");
        assert_eq!(
            LatencySummary::from_histogram(&latency_histogram()),
            LatencySummary::default()
        );
    }

    #[test]
    fn json_has_the_promised_fields() {
        let j = report().json();
        for field in [
            "ops",
            "ops_per_sec",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "max_us",
            "errors",
            "clients",
            "threads",
            "pipeline",
            "batch",
            "pinned",
            "value_size",
            "keys",
            "duration_ms",
            "kind",
        ] {
            assert!(j.get(field).is_some(), "missing {field} in {j}");
        }
        assert_eq!(j["kind"], "get");
        assert_eq!(j["ops"], 1000);
    }

    #[test]
    fn text_reads_as_a_summary() {
        let text = report().text();
        assert!(
            text.starts_with("get: 1,000 ops in 0.50 s = 2,000 ops/s (4 clients x 2 in flight, 1 thread, 100-byte values, 100,000 keys bench:1:*)"),
            "{text}"
        );
        assert!(text.contains("latency: p50 500  p90 "), "{text}");
        assert!(text.contains("errors: 2 (unavailable 2); first: unavailable: "));
        assert!(text.contains("loaded 100,000 keys first"));
        assert!(text.contains("deleted 100,000 keys"));
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(micros(41.23), "41.2");
        assert_eq!(micros(1234.6), "1,235");
    }
}
