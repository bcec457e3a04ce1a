//! Prometheus metrics, served as text at `GET /metrics`.

use courier_proto::ErrorCode;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The server's counters, gauges and histograms, on a registry of its own
/// (several servers in one test process do not collide).
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections (authenticated or not).
    pub connections: IntGauge,
    /// Authenticated sessions.
    pub sessions: IntGauge,
    /// TCP connections refused by the connection cap.
    pub rejected_connections: IntCounter,
    /// Text frames received.
    pub frames_in: IntCounter,
    /// Frames sent (replies and events).
    pub frames_out: IntCounter,
    /// Of those, events written into an idle session's socket by their
    /// publisher (no session task woken).
    pub frames_direct: IntCounter,
    /// New messages stored (duplicates excluded).
    pub messages_stored: IntCounter,
    /// Message events handed to sessions.
    pub deliveries: IntCounter,
    /// Error replies, by code.
    pub errors: IntCounterVec,
    /// Sessions closed for overflowing their outbound queue.
    pub slow_consumers: IntCounter,
    /// Time from a `send` frame's arrival to its ok.
    pub send_latency: Histogram,
    /// Cluster mode only (see [`Metrics::register_cluster`]): round trips
    /// to the engines, by engine (`postgres`, `redis`).
    pub engine_latency: HistogramVec,
    /// Whether each cluster engine answered its last check (1) or not (0).
    pub engine_up: IntGaugeVec,
    /// Time from publishing a bus message on one node to its arrival here.
    pub pubsub_lag: Histogram,
    /// Bus messages published to other nodes.
    pub bus_published: IntCounter,
    /// Bus messages received from other nodes.
    pub bus_received: IntCounter,
    /// Bus messages dropped (queue full or engine unreachable).
    pub bus_dropped: IntCounter,
    /// Pub/sub reconnects (each followed by a resubscribe).
    pub bus_reconnects: IntCounter,
    /// Embedded store only (see [`Metrics::register_store_batches`]): one
    /// write batch, from its first statement to its commit returning.
    pub store_batch: Histogram,
    /// Of that, the `COMMIT` alone (the WAL write and its fsync).
    pub store_commit: Histogram,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let g = |n: &str, h: &str| IntGauge::new(n, h).expect("valid metric");
        let c = |n: &str, h: &str| IntCounter::new(n, h).expect("valid metric");
        let m = Metrics {
            connections: g("courier_connections", "Open WebSocket connections"),
            sessions: g("courier_sessions", "Authenticated sessions"),
            rejected_connections: c("courier_rejected_connections_total", "Connections refused by the cap"),
            frames_in: c("courier_frames_in_total", "Text frames received"),
            frames_out: c("courier_frames_out_total", "Frames sent"),
            frames_direct: c(
                "courier_frames_direct_total",
                "Events written into an idle session's socket by their publisher",
            ),
            messages_stored: c("courier_messages_stored_total", "Messages stored"),
            deliveries: c("courier_deliveries_total", "Message events delivered to sessions"),
            errors: IntCounterVec::new(Opts::new("courier_errors_total", "Error replies by code"), &["code"])
                .expect("valid metric"),
            slow_consumers: c("courier_slow_consumers_total", "Sessions closed as slow consumers"),
            send_latency: Histogram::with_opts(
                HistogramOpts::new("courier_send_latency_seconds", "Send frame to durable ok").buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ]),
            )
            .expect("valid metric"),
            engine_latency: HistogramVec::new(
                HistogramOpts::new("courier_engine_latency_seconds", "Round trips to the cluster engines")
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                        1.0, 2.5,
                    ]),
                &["engine"],
            )
            .expect("valid metric"),
            engine_up: IntGaugeVec::new(
                Opts::new("courier_engine_up", "Cluster engine answered its last check"),
                &["engine"],
            )
            .expect("valid metric"),
            pubsub_lag: Histogram::with_opts(
                HistogramOpts::new("courier_pubsub_lag_seconds", "Publish on one node to arrival on another")
                    .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
            )
            .expect("valid metric"),
            bus_published: c("courier_bus_published_total", "Bus messages published to other nodes"),
            bus_received: c("courier_bus_received_total", "Bus messages received from other nodes"),
            bus_dropped: c("courier_bus_dropped_total", "Bus messages dropped"),
            bus_reconnects: c("courier_bus_reconnects_total", "Pub/sub reconnects"),
            store_batch: batch_histogram(
                "courier_store_batch_seconds",
                "One write batch of the embedded store: its statements, commit and fsync",
            ),
            store_commit: batch_histogram(
                "courier_store_commit_seconds",
                "The COMMIT of a write batch of the embedded store: WAL write and fsync",
            ),
            registry,
        };
        let r = &m.registry;
        for metric in [
            Box::new(m.connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.sessions.clone()),
            Box::new(m.rejected_connections.clone()),
            Box::new(m.frames_in.clone()),
            Box::new(m.frames_out.clone()),
            Box::new(m.frames_direct.clone()),
            Box::new(m.messages_stored.clone()),
            Box::new(m.deliveries.clone()),
            Box::new(m.errors.clone()),
            Box::new(m.slow_consumers.clone()),
            Box::new(m.send_latency.clone()),
        ] {
            r.register(metric).expect("unique metric");
        }
        for code in ErrorCode::ALL {
            m.errors.with_label_values(&[code.as_str()]);
        }
        m
    }

    /// Adds the cluster metrics (engines and bus) to `/metrics`; a single
    /// node does not show them.
    pub fn register_cluster(&self) {
        for metric in [
            Box::new(self.engine_latency.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.engine_up.clone()),
            Box::new(self.pubsub_lag.clone()),
            Box::new(self.bus_published.clone()),
            Box::new(self.bus_received.clone()),
            Box::new(self.bus_dropped.clone()),
            Box::new(self.bus_reconnects.clone()),
        ] {
            // Registering twice (a second bus) keeps the first registration.
            let _ = self.registry.register(metric);
        }
    }

    /// Adds the write batches' histograms to `/metrics`: for an engine that
    /// groups writes into batches (the embedded one), fed by
    /// [`Metrics::store_batch_hook`].
    pub fn register_store_batches(&self) {
        for metric in [self.store_batch.clone(), self.store_commit.clone()] {
            // Registering twice keeps the first registration.
            let _ = self.registry.register(Box::new(metric));
        }
    }

    /// The hook that feeds the write batches' histograms.
    pub fn store_batch_hook(&self) -> crate::store::BatchHook {
        let (batch, commit) = (self.store_batch.clone(), self.store_commit.clone());
        Box::new(move |t| {
            batch.observe(t.batch.as_secs_f64());
            commit.observe(t.commit.as_secs_f64());
        })
    }

    /// Counts an error reply.
    pub fn error(&self, code: ErrorCode) {
        self.errors.with_label_values(&[code.as_str()]).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding");
        String::from_utf8(buf).expect("utf-8 metrics")
    }
}

/// A histogram of write batch times: from a quick commit (well under a
/// millisecond on a fast disk) to a stalled one (seconds), fine enough near
/// the 10 ms that a message's latency budget allows.
fn batch_histogram(name: &str, help: &str) -> Histogram {
    let buckets = vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
