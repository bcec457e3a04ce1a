//! Soak and fault tests of the client core (`courier-client`) against the
//! reference server, kept apart from the wire-only conformance suite
//! (`courier-conformance`, which reads server truth for them through its
//! [`Harness`](courier_conformance::Harness)).
//!
//! Layout:
//! - [`proxy`]: a scriptable fault-injecting TCP proxy (latency, loss,
//!   resets, blackholes, half-open links, split frames).
//! - [`scenario`]: the server as a killable process, client cores tuned for
//!   fast reconnects, and [`scenario::check_invariants`], the one checker
//!   every scenario ends with.
//!
//! The tests (`tests/`): `faults` (the proxy and the client core through
//! it), `soak` (many clients under faults, CI size or `scripts/soak.sh`
//! size) and `cluster_faults` (node kill -9 and a PostgreSQL outage).

pub mod proxy;
pub mod scenario;
