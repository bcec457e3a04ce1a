//! `courier-bench`: a load generator that speaks Courier protocol v1 (and,
//! for comparison, Socket.IO) and measures what users and operators care
//! about: sessions held, messages per second acknowledged and delivered,
//! latency quantiles, and the server's CPU time and memory per unit of work.
//!
//! Layout:
//! - [`wire`]: one client connection (Courier, Socket.IO or the raw relay)
//!   behind one interface; [`conn`]: its socket (frames written by the
//!   sender, every frame of a read handled in place) over [`ws`], the
//!   client side of WebSocket; [`frames`]: its hot path (send frames written
//!   directly, replies and messages scanned, not parsed); [`socketio`]: the
//!   Engine.IO / Socket.IO packets it needs.
//! - [`target`]: starting or attaching to the server under test and
//!   sampling its `/proc` counters; [`batches`]: a started Courier server's
//!   write batches in a window (from its `/metrics`).
//! - [`stats`]: latency histograms, message timestamps, the report format.
//! - [`scenarios`]: `connect`, `p2p`, `fanout`, `reconnect-storm`, `mixed`,
//!   `pipeline`.
//! - The floors this machine sets: [`relay`] (a WebSocket relay that parses
//!   and stores nothing), [`append`] (rows appended to SQLite with one
//!   fsync per batch) and [`sockfloor`] (a frame written to and read from a
//!   loopback socket, nothing else). Linux only, as the whole generator is
//!   (`/proc`, `epoll`, `io_uring`).
//! - [`markdown`]: turns a file of JSON results into `docs/benchmarks.md`;
//!   [`floors`]: its section on the floors and the issue-17 targets.
//!
//! The server runs as a separate process so that its CPU time and memory
//! are measured alone; the generator shares the machine with it, so every
//! report also gives the generator's own CPU use.

pub mod append;
pub mod batches;
pub mod conn;
pub mod floors;
pub mod frames;
pub mod markdown;
pub mod relay;
pub mod scenarios;
pub mod socketio;
pub mod sockfloor;
pub mod stats;
pub mod target;
pub mod wire;
pub mod ws;

use clap::{Parser, Subcommand};
use stats::Report;
use std::path::PathBuf;
use target::TargetOpts;

/// Load generator and benchmark for Courier (and a Socket.IO peer).
#[derive(Debug, Parser)]
#[command(name = "courier-bench", version, about)]
pub struct Cli {
    /// Print one JSON object instead of the table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Threads of the generator's runtime (1: every connection on one
    /// thread, no cross-thread wake-ups; the relay always uses one per core).
    #[arg(long, global = true, default_value_t = 1)]
    pub gen_threads: usize,
    /// A label put in the JSON result (`bench/run.sh` tags each run of the
    /// issue-17 set with it).
    #[arg(long, global = true)]
    pub label: Option<String>,
    #[command(flatten)]
    pub target: TargetOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// The scenarios, and the report writer.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// N authenticated idle sessions: connect rate, server memory and CPU per session.
    Connect(scenarios::connect::Args),
    /// Durable one-to-one messages at a target rate (or a ramp).
    P2p(scenarios::p2p::Args),
    /// One channel, M members: deliveries per second, latency to the last member.
    Fanout(scenarios::fanout::Args),
    /// N sessions dropped at once, reconnecting with back-off: time to all synced.
    ReconnectStorm(scenarios::storm::Args),
    /// A chat-like mix at a target rate: did it hold?
    Mixed(scenarios::mixed::Args),
    /// One session pipelining its sends: rate reached, oks and seqs in send order.
    Pipeline(scenarios::pipeline::Args),
    /// The append floor: message-sized rows into SQLite, one fsync per batch.
    AppendFloor(append::Args),
    /// The socket floor: a frame to each of M loopback sockets per round, by `send` and by `io_uring`.
    SocketFloor(sockfloor::Args),
    /// Runs the raw relay (the relay floor) until killed.
    Relay(relay::Args),
    /// Writes the Markdown report from a file of `--json` results (one per line).
    Report(markdown::Args),
    /// Writes the floors-and-targets section (issue 17) from a file of `--json` results.
    Floors(markdown::Args),
}

/// Runs one scenario against the target.
///
/// # Errors
/// When the server cannot be started or the scenario cannot set itself up.
pub async fn run_scenario(opts: &TargetOpts, command: &Command) -> anyhow::Result<Option<Report>> {
    Ok(Some(match command {
        Command::Connect(a) => scenarios::connect::run(opts, a).await?,
        Command::P2p(a) => scenarios::p2p::run(opts, a).await?,
        Command::Fanout(a) => scenarios::fanout::run(opts, a).await?,
        Command::ReconnectStorm(a) => scenarios::storm::run(opts, a).await?,
        Command::Mixed(a) => scenarios::mixed::run(opts, a).await?,
        Command::Pipeline(a) => scenarios::pipeline::run(opts, a).await?,
        Command::AppendFloor(a) => {
            let a = a.clone();
            tokio::task::spawn_blocking(move || append::run(&a)).await??
        }
        Command::SocketFloor(a) => {
            let a = a.clone();
            tokio::task::spawn_blocking(move || sockfloor::run(&a)).await??
        }
        Command::Relay(a) => {
            relay::run(a).await?;
            return Ok(None);
        }
        Command::Report(a) => {
            markdown::write(a)?;
            return Ok(None);
        }
        Command::Floors(a) => {
            floors::write(a)?;
            return Ok(None);
        }
    }))
}

/// Where the default results and report go, relative to the repository.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
