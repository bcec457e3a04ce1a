//! Prometheus metrics, served as text at `GET /metrics`.

use courier_proto::ErrorCode;
use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

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
            registry,
        };
        let r = &m.registry;
        for metric in [
            Box::new(m.connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.sessions.clone()),
            Box::new(m.rejected_connections.clone()),
            Box::new(m.frames_in.clone()),
            Box::new(m.frames_out.clone()),
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

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
