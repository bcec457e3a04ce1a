//! Measuring: latency histograms (`hdrhistogram`, microseconds), the
//! timestamps the generator embeds in message texts, and the report every
//! scenario returns (printed as a table, or as one JSON object).

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the generator's epoch (a monotonic clock shared by
/// every connection in this process, so sender and receiver agree).
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A message text: the send time, a message number, and padding up to
/// `len` bytes. Receivers recover both with [`parse_text`].
pub fn stamp_text(msg_no: u64, len: usize) -> String {
    let mut s = format!("{:020} {:010} ", now_ns(), msg_no);
    while s.len() < len {
        s.push('x');
    }
    s
}

/// The send time and message number of a text made by [`stamp_text`].
pub fn parse_text(text: &str) -> Option<(u64, u64)> {
    let t = text.get(0..20)?.parse().ok()?;
    let n = text.get(21..31)?.parse().ok()?;
    Some((t, n))
}

/// A latency histogram shared by many connections: sharded so that reader
/// tasks on different threads rarely contend. Each thread records into
/// its own shard: one histogram (a few hundred KiB of counts) stays in the
/// cache, where taking the shards in turn missed it on every record.
pub struct Latency {
    shards: Vec<Mutex<Histogram<u64>>>,
}

/// Threads numbered in the order they first record (their shard).
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_NO: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

fn new_hist() -> Histogram<u64> {
    // 1 µs .. 10 min at 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

impl Default for Latency {
    fn default() -> Self {
        Latency { shards: (0..16).map(|_| Mutex::new(new_hist())).collect() }
    }
}

impl Latency {
    /// Records one latency given in nanoseconds.
    pub fn record_ns(&self, ns: u64) {
        let i = THREAD_NO.with(|n| *n) % self.shards.len();
        let us = (ns / 1000).clamp(1, 600_000_000);
        self.shards[i].lock().expect("histogram lock").record(us).expect("in bounds");
    }

    /// Records one latency.
    pub fn record(&self, d: Duration) {
        self.record_ns(d.as_nanos() as u64);
    }

    /// Records the time from a [`now_ns`] stamp until now.
    pub fn record_since(&self, stamp_ns: u64) {
        self.record_ns(now_ns().saturating_sub(stamp_ns));
    }

    /// Clears every shard (between ramp steps).
    pub fn reset(&self) {
        for s in &self.shards {
            s.lock().expect("histogram lock").reset();
        }
    }

    /// p50, p99, p999 and max in milliseconds, and the count.
    pub fn summary(&self) -> LatencySummary {
        let mut all = new_hist();
        for s in &self.shards {
            all.add(&*s.lock().expect("histogram lock")).expect("same bounds");
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: all.len(),
            p50: ms(all.value_at_quantile(0.50)),
            p99: ms(all.value_at_quantile(0.99)),
            p999: ms(all.value_at_quantile(0.999)),
            max: ms(all.max()),
        }
    }
}

/// Quantiles of a [`Latency`], in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Metric {
    /// Stable key (JSON field name).
    pub key: String,
    /// The value (a number, or null when not measurable here).
    pub value: Value,
    /// Unit for the human table.
    pub unit: &'static str,
}

/// A list of metrics in insertion order.
#[derive(Debug, Clone, Default)]
pub struct Metrics(pub Vec<Metric>);

impl Metrics {
    /// Adds a figure.
    pub fn put(&mut self, key: &str, value: impl Into<Value>, unit: &'static str) -> &mut Self {
        self.0.push(Metric { key: key.to_owned(), value: value.into(), unit });
        self
    }

    /// Adds a rounded float (NaN and infinities become null).
    pub fn num(&mut self, key: &str, value: f64, unit: &'static str) -> &mut Self {
        let v = if value.is_finite() { json!((value * 1000.0).round() / 1000.0) } else { Value::Null };
        self.put(key, v, unit)
    }

    /// Adds `prefix_p50`, `_p99`, `_p999`, `_max` in ms.
    pub fn latency(&mut self, prefix: &str, l: &LatencySummary) -> &mut Self {
        if l.count == 0 {
            for q in ["p50", "p99", "p999", "max"] {
                self.put(&format!("{prefix}_{q}_ms"), Value::Null, "ms");
            }
            return self;
        }
        self.num(&format!("{prefix}_p50_ms"), l.p50, "ms")
            .num(&format!("{prefix}_p99_ms"), l.p99, "ms")
            .num(&format!("{prefix}_p999_ms"), l.p999, "ms")
            .num(&format!("{prefix}_max_ms"), l.max, "ms")
    }

    /// A figure by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|m| m.key == key).map(|m| &m.value)
    }

    fn to_json(&self) -> Map<String, Value> {
        self.0.iter().map(|m| (m.key.clone(), m.value.clone())).collect()
    }
}

/// What a scenario returns.
#[derive(Debug, Clone)]
pub struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// `courier` or `socketio`.
    pub target: &'static str,
    /// The parameters it ran with.
    pub params: Value,
    /// Headline figures.
    pub summary: Metrics,
    /// Per-step figures (ramp steps), each with a label.
    pub steps: Vec<(String, Metrics)>,
    /// Notes for the reader (what was skipped, what could not be measured).
    pub notes: Vec<String>,
}

impl Report {
    /// One JSON object.
    pub fn to_json(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|(label, m)| {
                let mut o = m.to_json();
                o.insert("step".into(), label.clone().into());
                Value::Object(o)
            })
            .collect();
        json!({
            "scenario": self.scenario,
            "target": self.target,
            "params": self.params,
            "summary": self.summary.to_json(),
            "steps": steps,
            "notes": self.notes,
        })
    }

    /// The human table.
    pub fn to_table(&self) -> String {
        let mut out = format!("== {} against {}  {}\n", self.scenario, self.target, self.params);
        let w = self.summary.0.iter().map(|m| m.key.len()).max().unwrap_or(0);
        for m in &self.summary.0 {
            out.push_str(&format!("  {:<w$}  {:>14}  {}\n", m.key, fmt_value(&m.value), m.unit));
        }
        if let Some((_, first)) = self.steps.first() {
            out.push_str("  steps:\n  ");
            let cols: Vec<&str> = first.0.iter().map(|m| m.key.as_str()).collect();
            out.push_str(&format!("{:>10}", "step"));
            for c in &cols {
                out.push_str(&format!(" {:>w$}", c, w = c.len().max(9)));
            }
            out.push('\n');
            for (label, m) in &self.steps {
                out.push_str(&format!("  {label:>10}"));
                for (c, v) in cols.iter().zip(&m.0) {
                    out.push_str(&format!(" {:>w$}", fmt_value(&v.value), w = c.len().max(9)));
                }
                out.push('\n');
            }
        }
        for n in &self.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        out
    }
}

fn fmt_value(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                if f.abs() >= 100.0 {
                    format!("{f:.0}")
                } else {
                    format!("{f:.3}")
                }
            }
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_texts_round_trip() {
        let t = stamp_text(42, 100);
        assert_eq!(t.len(), 100);
        let (ns, n) = parse_text(&t).unwrap();
        assert_eq!(n, 42);
        assert!(ns <= now_ns());
        assert_eq!(parse_text("hello"), None);
    }

    #[test]
    fn latency_summary_orders_quantiles() {
        let l = Latency::default();
        for ms in 1..=1000u64 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 500.0).abs() < 2.0, "{s:?}");
        assert!(s.p50 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max);
        l.reset();
        assert_eq!(l.summary().count, 0);
    }
}
