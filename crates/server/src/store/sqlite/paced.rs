//! A SQLite VFS for the checkpointer's connection (Linux): the checkpoint's
//! writes to the database file start going to the disk a chunk at a time,
//! as they are made, instead of all together at its closing fsync.
//!
//! A checkpoint copies the pages committed since the previous one (hundreds,
//! scattered over the database) into the database file, then fsyncs it.
//! Left to that fsync, every one of those writes reaches the disk at once,
//! and a commit's WAL fsync issued meanwhile waits behind them: on this
//! project's test machine a WAL fsync's p99 was 0.5 ms alone, 3.9 ms beside
//! a checkpoint of 1.6 MB every 200 ms, and 1.5 ms once the checkpoint
//! started the writeback of each 80 KiB it wrote (docs/benchmarks.md). The
//! writer's commits are what every ok waits for, so their fsync tail is the
//! tail of send → deliver.
//!
//! Every [`CHUNK`] bytes written to the database file, this VFS calls
//! `sync_file_range(SYNC_FILE_RANGE_WRITE)` on it, which asks the kernel to
//! start writing its dirty pages back and returns without waiting for them.
//! Durability does not depend on it: the checkpoint still fsyncs the
//! database before SQLite may reuse the WAL, exactly as without this VFS.
//!
//! The wrapping is thin: the default VFS opens the file, and the file's
//! method table is swapped for a copy whose `xWrite` and `xClose` are ours;
//! this file's state lives after the default VFS's file object in the same
//! allocation. Files of any other kind, and any open that fails, are left
//! exactly as the default VFS made them.

use rusqlite::ffi;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The VFS name to open the checkpointer's connection with.
pub const NAME: &str = "courier-paced";
const NAME_C: &CStr = c"courier-paced";

/// Bytes written to the database file between two starts of writeback:
/// twenty 4 KiB pages, the chunk measured (docs/benchmarks.md, twentieth
/// round: a pause after each chunk as well gained little more).
pub const CHUNK: usize = 20 * 4096;

/// Writebacks started so far by every paced file of this process (tests).
static STARTED: AtomicU64 = AtomicU64::new(0);

/// Writebacks started so far (see [`STARTED`]).
#[cfg(test)]
pub fn writebacks_started() -> u64 {
    STARTED.load(Ordering::Relaxed)
}

/// What this VFS keeps per paced file, after the default VFS's file object.
#[repr(C)]
struct Pacing {
    /// The default VFS's methods for this file, called for everything.
    real: *const ffi::sqlite3_io_methods,
    /// A descriptor of our own on the same file, for `sync_file_range`.
    fd: c_int,
    /// Bytes written since writeback was last started.
    since: usize,
}

/// The default VFS's file object size (set once, at registration).
static BASE_FILE_SIZE: OnceLock<usize> = OnceLock::new();

/// The default VFS's method table of the first database file opened, with
/// the address it had, and our copy of it.
static METHODS: OnceLock<(usize, ffi::sqlite3_io_methods)> = OnceLock::new();

static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

fn state_offset() -> usize {
    BASE_FILE_SIZE.get().copied().unwrap_or(0).next_multiple_of(16)
}

/// Registers the VFS (once per process; not as the default).
///
/// # Errors
/// When SQLite has no default VFS or refuses the registration.
pub fn register() -> Result<(), String> {
    REGISTERED
        .get_or_init(|| {
            let file_size = |base: usize| {
                let _ = BASE_FILE_SIZE.set(base);
                state_offset() + std::mem::size_of::<Pacing>()
            };
            super::walbuf::register_over_default(NAME_C, file_size, x_open)
        })
        .clone()
}

/// Our state of a paced file.
unsafe fn pacing<'a>(f: *mut ffi::sqlite3_file) -> &'a mut Pacing {
    // SAFETY: only files opened by `x_open` with our methods reach here, and
    // their allocation holds a `Pacing` at `state_offset()`.
    unsafe { &mut *state_at(f) }
}

/// Where a file's `Pacing` lives (only computes the address).
fn state_at(file: *mut ffi::sqlite3_file) -> *mut Pacing {
    file.cast::<u8>().wrapping_add(state_offset()).cast::<Pacing>()
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes our VFS and `szOsFile` bytes at `file`: the
    // default VFS's file object, then room for a `Pacing` at
    // `state_offset()`.
    unsafe {
        let Some((base, open)) = super::walbuf::default_behind(vfs) else { return ffi::SQLITE_CANTOPEN };
        let rc = open(base, name, file, flags, out_flags);
        if rc != ffi::SQLITE_OK || flags & ffi::SQLITE_OPEN_MAIN_DB == 0 || name.is_null() {
            return rc;
        }
        let real = (*file).pMethods;
        let Some(real_methods) = real.as_ref() else { return rc };
        let (address, ours) = METHODS.get_or_init(|| {
            let mut copy = *real_methods;
            copy.xWrite = Some(x_write);
            copy.xClose = Some(x_close);
            (real as usize, copy)
        });
        if *address != real as usize {
            // A file of another kind (another locking style): not paced. (The
            // unix VFS gives a WAL or journal other methods than the
            // database's, so this check alone would keep them out too.)
            return rc;
        }
        let fd = libc::open(name, libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            // Still a working file, only not paced.
            return rc;
        }
        ptr::write(state_at(file), Pacing { real, fd, since: 0 });
        (*file).pMethods = ours;
        rc
    }
}

unsafe extern "C" fn x_write(f: *mut ffi::sqlite3_file, data: *const c_void, amt: c_int, off: i64) -> c_int {
    // SAFETY: `f` is a paced file (our methods); `real` are its own methods,
    // called with the arguments SQLite gave us.
    unsafe {
        let p = pacing(f);
        let Some(write) = (*p.real).xWrite else { return ffi::SQLITE_IOERR_WRITE };
        let rc = write(f, data, amt, off);
        if rc == ffi::SQLITE_OK {
            p.since += usize::try_from(amt).unwrap_or(0);
            if p.since >= CHUNK {
                p.since = 0;
                // Starts writeback of the file's dirty pages not yet
                // submitted and returns; a failure only loses the head
                // start (the checkpoint's fsync still writes them).
                if libc::sync_file_range(p.fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE) == 0 {
                    STARTED.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        rc
    }
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `f` is a paced file; after its real xClose SQLite frees it.
    unsafe {
        let p = pacing(f);
        let real = p.real;
        libc::close(p.fd);
        (*f).pMethods = real;
        match (*real).xClose {
            Some(close) => close(f),
            None => ffi::SQLITE_IOERR_CLOSE,
        }
    }
}

/// Whether a connection's (database file, WAL) are paced (tests).
#[cfg(test)]
pub(super) fn paced_files(c: &rusqlite::Connection) -> (bool, bool) {
    let ours = METHODS.get().map(|m| &raw const m.1);
    // SAFETY: the handle is open; these file controls only hand out the
    // file objects' pointers, which are read while the connection lives.
    unsafe {
        let db = c.handle();
        let mut files = [ptr::null_mut::<ffi::sqlite3_file>(); 2];
        for (op, out) in
            [ffi::SQLITE_FCNTL_FILE_POINTER, ffi::SQLITE_FCNTL_JOURNAL_POINTER].into_iter().zip(&mut files)
        {
            let rc = ffi::sqlite3_file_control(db, c"main".as_ptr(), op, (&raw mut *out).cast());
            assert_eq!(rc, ffi::SQLITE_OK);
        }
        let paced = |f: *mut ffi::sqlite3_file| !f.is_null() && ours.is_some_and(|m| (*f).pMethods == m);
        (paced(files[0]), paced(files[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};
    use tempfile::TempDir;

    /// A checkpoint through the paced VFS starts writeback as it writes
    /// (the counter moves) and leaves a database identical to the one
    /// written: every row back, integrity intact.
    #[test]
    fn a_checkpoint_starts_writeback_as_it_writes_and_loses_nothing() {
        register().unwrap();
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("t.db");
        let w = Connection::open(&path).unwrap();
        w.pragma_update(None, "journal_mode", "WAL").unwrap();
        w.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        w.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)").unwrap();
        let c = Connection::open_with_flags_and_vfs(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            NAME,
        )
        .unwrap();
        // Several chunks' worth of pages: 400 rows of 1 KiB each round.
        let mut n = 0;
        for round in 0..3 {
            let tx = w.unchecked_transaction().unwrap();
            for i in 0..400 {
                tx.execute("INSERT INTO t (k, v) VALUES (?1, zeroblob(1024))", [round * 400 + i]).unwrap();
                n += 1;
            }
            tx.commit().unwrap();
            let before = writebacks_started();
            let (busy, log, copied): (i64, i64, i64) = c
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap();
            assert_eq!((busy, copied), (0, log), "round {round}: the whole WAL copied");
            let pages = usize::try_from(copied).unwrap();
            assert!(pages * 4096 >= 2 * CHUNK, "round {round}: {pages} pages, enough for two chunks");
            // Other tests of this process may start writebacks too: at least
            // this checkpoint's own.
            assert!(writebacks_started() >= before + 2, "round {round}: writeback started while copying");
        }
        drop(c);
        drop(w);
        let r = Connection::open(&path).unwrap();
        let (rows, check): (i64, String) = r
            .query_row(
                "SELECT count(*), (SELECT integrity_check FROM pragma_integrity_check) FROM t",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((rows, check.as_str()), (n, "ok"));
    }

    /// Files other than the main database (its WAL here) keep the default
    /// VFS's own methods.
    #[test]
    fn only_the_database_file_is_paced() {
        register().unwrap();
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("t.db");
        let c = Connection::open_with_flags_and_vfs(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            NAME,
        )
        .unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)").unwrap();
        assert_eq!(paced_files(&c), (true, false), "(database, WAL) paced");
        let plain = Connection::open(&path).unwrap();
        plain.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(paced_files(&plain), (false, false), "the default VFS is left alone");
    }
}
