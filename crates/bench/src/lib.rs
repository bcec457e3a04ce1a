//! `courier-bench`: a load generator that speaks Courier protocol v1 (and,
//! for comparison, Socket.IO) and measures what users and operators care
//! about: sessions held, messages per second acknowledged and delivered,
//! latency quantiles, and the server's CPU time and memory per unit of work.
//!
//! Layout:
//! - [`wire`]: one client connection (Courier or Socket.IO) behind one
//!   interface; [`socketio`]: the Engine.IO / Socket.IO packets it needs.
//! - [`target`]: starting or attaching to the server under test and
//!   sampling its `/proc` counters.
//! - [`stats`]: latency histograms, message timestamps, the report format.
//! - [`scenarios`]: `connect`, `p2p`, `fanout`, `reconnect-storm`, `mixed`.
//! - [`markdown`]: turns a file of JSON results into `docs/benchmarks.md`.
//!
//! The server runs as a separate process so that its CPU time and memory
//! are measured alone; the generator shares the machine with it, so every
//! report also gives the generator's own CPU use.

pub mod markdown;
pub mod scenarios;
pub mod socketio;
pub mod stats;
pub mod target;
pub mod wire;

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
    /// Writes the Markdown report from a file of `--json` results (one per line).
    Report(markdown::Args),
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
        Command::Report(a) => {
            markdown::write(a)?;
            return Ok(None);
        }
    }))
}

/// Where the default results and report go, relative to the repository.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
