//! The write batches of a started Courier server in a measured window: how
//! many committed, how many took longer than a message's latency budget,
//! and the longest, read from the histograms its `/metrics` keeps
//! (`courier_store_batch_seconds`: a batch's statements, commit and fsync;
//! `courier_store_commit_seconds`: the `COMMIT` alone). A latency spike
//! with a long commit in the same window is the disk's; one without is the
//! server's own (or the processor's: its run-queue wait is beside it).

use crate::stats::Metrics;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The bound a "slow" batch is counted over: a message's p99 budget.
const SLOW_S: f64 = 0.010;

/// Cumulative bucket counts of one histogram: `(upper bound in s, count)`,
/// the last bound `+Inf`.
pub type Buckets = Vec<(f64, u64)>;

/// Both histograms at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// `courier_store_batch_seconds`.
    pub batch: Buckets,
    /// `courier_store_commit_seconds`.
    pub commit: Buckets,
    /// `courier_frames_out_total` and `courier_frames_direct_total`: frames
    /// sent, and of those, events written into a member's socket by their
    /// publisher (the rest went through the members' queues).
    pub frames: (u64, u64),
}

/// What one histogram saw between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Observations (committed batches).
    pub count: u64,
    /// Of those, longer than [`SLOW_S`].
    pub slow: u64,
    /// The upper bound of the longest one's bucket, in ms (`inf` when it was
    /// past the last bound; 0 with no observation).
    pub longest_ms: f64,
}

impl Snapshot {
    /// Parses the Prometheus text exposition; `None` when the server keeps no
    /// batch histograms (not the embedded store).
    pub fn parse(text: &str) -> Option<Snapshot> {
        let counter = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
                .map_or(0, |v| v as u64)
        };
        let s = Snapshot {
            batch: buckets(text, "courier_store_batch_seconds"),
            commit: buckets(text, "courier_store_commit_seconds"),
            frames: (counter("courier_frames_out_total"), counter("courier_frames_direct_total")),
        };
        (!s.batch.is_empty() && !s.commit.is_empty()).then_some(s)
    }

    /// Reads a server's `/metrics` (plain HTTP on its metrics address).
    pub async fn scrape(metrics: SocketAddr) -> Option<Snapshot> {
        let read = async {
            let mut s = tokio::net::TcpStream::connect(metrics).await?;
            let req = format!("GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await?;
            let mut text = String::new();
            s.read_to_string(&mut text).await?;
            std::io::Result::Ok(text)
        };
        let text = tokio::time::timeout(std::time::Duration::from_secs(5), read).await.ok()?.ok()?;
        Snapshot::parse(&text)
    }

    /// Both histograms' windows from `before` to this snapshot.
    pub fn since(&self, before: &Snapshot) -> (Window, Window) {
        (window(&before.batch, &self.batch), window(&before.commit, &self.commit))
    }
}

/// Adds a window's batches to a step's metrics (nothing without snapshots).
pub fn record(m: &mut Metrics, before: Option<&Snapshot>, after: Option<&Snapshot>) {
    let (Some(before), Some(after)) = (before, after) else { return };
    let (batch, commit) = after.since(before);
    m.put("store_batches", batch.count, "")
        .put("store_batches_over_10ms", batch.slow, "")
        .put("store_batch_longest_ms", longest(batch, &after.batch), "ms (bucket bound)")
        .put("store_commits_over_10ms", commit.slow, "")
        .put("store_commit_longest_ms", longest(commit, &after.commit), "ms (bucket bound)")
        .put("frames_out", after.frames.0.saturating_sub(before.frames.0), "")
        .put("frames_direct", after.frames.1.saturating_sub(before.frames.1), "");
    // How the commits' fsync tail moves below the 10 ms budget.
    for (key, bound) in [("store_commits_over_2ms", 0.002), ("store_commits_over_5ms", 0.005)] {
        if let Some(n) = over(&before.commit, &after.commit, bound) {
            m.put(key, n, "");
        }
    }
}

/// The longest as a number of ms, or "> N" past the last finite bound.
fn longest(w: Window, buckets: &Buckets) -> serde_json::Value {
    if w.longest_ms.is_finite() {
        return serde_json::json!(w.longest_ms);
    }
    let last = buckets.iter().rev().map(|b| b.0).find(|le| le.is_finite()).unwrap_or(0.0);
    format!("> {}", last * 1e3).into()
}

fn buckets(text: &str, name: &str) -> Buckets {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, value) = rest.split_once("\"}")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// Observations in the window longer than `bound`; `None` unless `bound` is
/// one of the histogram's bucket bounds (in s).
fn over(before: &Buckets, after: &Buckets, bound: f64) -> Option<u64> {
    let at = |b: &Buckets, le: f64| b.iter().find(|c| c.0 == le).map(|c| c.1);
    let in_window = |le: f64| Some(at(after, le)?.saturating_sub(at(before, le).unwrap_or(0)));
    Some(in_window(f64::INFINITY)?.saturating_sub(in_window(bound)?))
}

fn window(before: &Buckets, after: &Buckets) -> Window {
    // The count at or below each bound, in the window.
    let counts: Vec<(f64, u64)> = after
        .iter()
        .map(|&(le, n)| {
            let was = before.iter().find(|b| b.0 == le).map_or(0, |b| b.1);
            (le, n.saturating_sub(was))
        })
        .collect();
    let count = counts.last().map_or(0, |c| c.1);
    let fast = counts.iter().filter(|c| c.0 <= SLOW_S).map(|c| c.1).max().unwrap_or(0);
    // The longest is in the first bucket that holds every observation.
    let longest = counts.iter().find(|c| c.1 == count).map_or(0.0, |c| c.0);
    Window { count, slow: count - fast, longest_ms: if count == 0 { 0.0 } else { longest * 1e3 } }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(batch: [u64; 4], commit: [u64; 4]) -> String {
        let direct = batch[3] * 10;
        let mut t = format!(
            "# HELP courier_frames_in_total x\ncourier_frames_in_total 5\ncourier_frames_out_total {}\n\
             courier_frames_direct_total {direct}\n",
            batch[3] * 20
        );
        for (name, counts) in
            [("courier_store_batch_seconds", batch), ("courier_store_commit_seconds", commit)]
        {
            for (le, n) in ["0.005", "0.01", "0.05", "+Inf"].iter().zip(counts) {
                t.push_str(&format!("{name}_bucket{{le=\"{le}\"}} {n}\n"));
            }
            t.push_str(&format!("{name}_sum 0.5\n{name}_count {}\n", counts[3]));
        }
        t
    }

    #[test]
    fn a_window_counts_its_batches_the_slow_ones_and_the_longest() {
        let before = Snapshot::parse(&exposition([10, 12, 12, 12], [11, 12, 12, 12])).unwrap();
        // 8 more batches: 3 under 5 ms, 2 more under 10, 2 under 50, 1 beyond.
        let after = Snapshot::parse(&exposition([13, 17, 19, 20], [15, 20, 20, 20])).unwrap();
        let (batch, commit) = after.since(&before);
        assert_eq!(batch, Window { count: 8, slow: 3, longest_ms: f64::INFINITY });
        assert_eq!(commit, Window { count: 8, slow: 0, longest_ms: 10.0 });
        let (idle, _) = before.since(&before);
        assert_eq!(idle, Window { count: 0, slow: 0, longest_ms: 0.0 });
        let mut m = Metrics::default();
        record(&mut m, Some(&before), Some(&after));
        assert_eq!(m.get("store_batches_over_10ms"), Some(&serde_json::json!(3)));
        assert_eq!(m.get("store_batch_longest_ms"), Some(&serde_json::json!("> 50")));
        assert_eq!(m.get("store_commit_longest_ms"), Some(&serde_json::json!(10.0)));
        // Commits: 4 of the 8 took over 5 ms; the exposition has no 2 ms bound.
        assert_eq!(m.get("store_commits_over_5ms"), Some(&serde_json::json!(4)));
        assert_eq!(m.get("store_commits_over_2ms"), None);
        // 12 → 20 batches in the made-up exposition: 160 more frames, 80 direct.
        assert_eq!(m.get("frames_out"), Some(&serde_json::json!(160)));
        assert_eq!(m.get("frames_direct"), Some(&serde_json::json!(80)));
    }

    #[test]
    fn a_server_without_batch_histograms_has_no_snapshot() {
        assert_eq!(Snapshot::parse("courier_frames_in_total 5\n"), None);
    }
}
