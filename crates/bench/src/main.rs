//! `courier-bench`: parses flags, raises the open-file limit, runs one
//! scenario (or the relay) and prints its report (a table, or one JSON
//! object). The generator runs on one thread unless `--gen-threads` says
//! otherwise; the relay on one per core, as a server would.

use clap::Parser;
use courier_bench::{Cli, Command, run_scenario, target::raise_fd_limit};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_fd_limit();
    let mut builder = match (&cli.command, cli.gen_threads) {
        (Command::Relay(_), _) => tokio::runtime::Builder::new_multi_thread(),
        (_, 0 | 1) => tokio::runtime::Builder::new_current_thread(),
        (_, n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("courier-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run_scenario(&cli.target, &cli.command)) {
        Ok(Some(report)) => {
            if cli.json {
                let mut json = report.to_json();
                if let Some(label) = &cli.label {
                    json["label"] = label.as_str().into();
                }
                println!("{json}");
            } else {
                print!("{}", report.to_table());
            }
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("courier-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
