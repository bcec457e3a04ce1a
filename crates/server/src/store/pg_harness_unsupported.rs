//! The PostgreSQL test harness where it cannot run: off Linux (it needs
//! `prctl(PR_SET_PDEATHSIG)`, uid switching and `/usr/lib/postgresql`), so
//! the workspace still compiles on Windows and macOS. Every PostgreSQL test
//! skips there, as on a Linux machine without PostgreSQL.

/// Always `None`: PostgreSQL-backed tests are skipped off Linux.
pub async fn fresh_database() -> Option<String> {
    eprintln!("skipped: the PostgreSQL test harness runs on Linux only");
    None
}
