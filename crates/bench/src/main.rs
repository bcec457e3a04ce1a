//! `courier-bench`: parses flags, raises the open-file limit, runs one
//! scenario and prints its report (a table, or one JSON object).

use clap::Parser;
use courier_bench::{Cli, run_scenario, target::raise_fd_limit};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_fd_limit();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("courier-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run_scenario(&cli.target, &cli.command)) {
        Ok(Some(report)) => {
            if cli.json {
                println!("{}", report.to_json());
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
