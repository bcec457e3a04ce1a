//! The app process's own memory, sized for a desktop (issue 16; measured in
//! docs/benchmarks.md, "Desktop app memory and start-up"):
//!
//! - [`runtime`]: the async runtime that Tauri, the client core and the
//!   embedded server share runs on [`WORKERS`] worker threads, not one per
//!   CPU (a chat client and a one-user server never keep more than two busy,
//!   and every worker costs a stack and, with glibc, a malloc arena);
//! - [`tune_allocator`]: glibc's malloc keeps at most [`ARENA_MAX`] arenas
//!   (it makes up to eight per CPU, each holding freed memory of its own);
//! - [`trim`]: once start-up has settled, the heap's free pages go back to
//!   the OS (start-up allocates and frees far more than the idle app keeps).
//!
//! Elsewhere (macOS, Windows, musl) the allocator calls do nothing.

use std::time::Duration;

/// Worker threads of the shared async runtime.
pub const WORKERS: usize = 2;

/// The most malloc arenas glibc may make (the main one included).
pub const ARENA_MAX: i32 = 2;

/// How long after the first conversation list the heap is trimmed: the page
/// has loaded its first screen, the client its first sync.
pub const TRIM_AFTER: Duration = Duration::from_secs(5);

/// Builds the async runtime and hands it to Tauri. Call before anything uses
/// `tauri::async_runtime` (Tauri would build its own, with a worker per CPU).
///
/// # Panics
/// When the runtime cannot be built (no threads), as Tauri's own would.
pub fn runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("cannot build the async runtime");
    tauri::async_runtime::set(rt.handle().clone());
    // The runtime lives as long as the process.
    std::mem::forget(rt);
}

/// Caps glibc's malloc arenas at [`ARENA_MAX`]. Call first thing in `main`.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc parameter; any value is valid.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}

/// Gives the heap's free pages back to the OS; true when some were.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes the allocator's locks itself.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Trims the heap [`TRIM_AFTER`] from now, off the async workers.
pub fn trim_later() {
    tauri::async_runtime::spawn(async {
        tokio::time::sleep(TRIM_AFTER).await;
        let trimmed = tauri::async_runtime::spawn_blocking(trim).await.unwrap_or(false);
        tracing::debug!("heap trimmed after start-up: {trimmed}");
    });
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::trim;

    #[test]
    fn trim_gives_free_heap_pages_back() {
        // Every other 64 KiB block freed: holes inside the heap that free()
        // alone never returns (only the heap's top is given back).
        let mut blocks: Vec<Vec<u8>> = (0..512).map(|i| vec![i as u8; 64 << 10]).collect();
        let mut i = 0;
        blocks.retain(|_| {
            i += 1;
            i % 2 == 0
        });
        assert!(trim(), "free pages were given back");
        assert_eq!(blocks.len(), 256);
    }
}
