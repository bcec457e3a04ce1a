//! A SQLite VFS for the writer connection that hands each transaction's WAL
//! frames to the kernel in one write instead of two per page.
//!
//! SQLite writes every WAL frame with two `pwrite`s (the 24-byte frame
//! header, then the page), so a commit of n dirty pages costs 2n system
//! calls and about 3n page-cache folio updates. Under the p2p benchmark that
//! was ~100 `pwrite`s per commit and the largest single cost of the writer
//! thread (docs/benchmarks.md).
//!
//! This VFS passes everything to the default VFS. Only files SQLite opens as
//! a WAL (`SQLITE_OPEN_WAL`) are wrapped: a write that continues the previous
//! one is appended to a buffer, and the buffer is written out (one `pwrite`)
//! before anything else can depend on it:
//!
//! - as soon as the last frame of a transaction is complete. A frame header
//!   whose "database size after commit" field is non-zero marks it (the WAL
//!   file format, <https://sqlite.org/fileformat2.html#walformat>). SQLite
//!   publishes a commit in the wal-index (shared memory, where every other
//!   connection finds frames) only after writing that frame, so no reader can
//!   look for a frame that is still in the buffer, whatever `synchronous` is;
//! - before a sync, truncate, size query, file control, memory map or close,
//!   before a read of any byte in the buffered range, and before a write that
//!   does not continue the buffer (an overwrite) or would grow it past
//!   [`LIMIT`].
//!
//! A crash can only lose buffered frames of a transaction that had not
//! committed, which SQLite would ignore anyway (its commit frame is what
//! makes a transaction count on recovery).

use rusqlite::ffi;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

/// The VFS name to open the writer's connection with.
pub const NAME: &str = "courier-walbuf";
const NAME_C: &CStr = c"courier-walbuf";

/// Most bytes held before they are written regardless: the default unix
/// VFS writes at most 128 KiB − 1 bytes per call. A larger transaction (a
/// media blob, a busy batch) goes out in pieces of about this size.
pub const LIMIT: usize = 0x1ffff;

/// A WAL frame header: page number, then the database size in pages after
/// the commit (non-zero only in a transaction's last frame), salts, checksums.
const FRAME_HEADER: usize = 24;

/// What SQLite allocates for a wrapped WAL file (`szOsFile` bytes): this
/// header, then the default VFS's own file object at [`real_offset`].
#[repr(C)]
struct WalFile {
    /// Must come first: SQLite only knows `pMethods`.
    base: ffi::sqlite3_file,
    /// The default VFS's file object, in the same allocation.
    real: *mut ffi::sqlite3_file,
    /// Bytes written but not yet passed on, for file offset `start` onwards.
    buf: Vec<u8>,
    start: i64,
    /// The commit frame's header is buffered; its page comes next.
    commit_next: bool,
}

fn real_offset() -> usize {
    std::mem::size_of::<WalFile>().next_multiple_of(16)
}

static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the VFS (once per process; not as the default).
///
/// # Errors
/// When SQLite has no default VFS or refuses the registration.
pub fn register() -> Result<(), String> {
    REGISTERED.get_or_init(|| register_over_default(NAME_C, |base| real_offset() + base, x_open)).clone()
}

/// A VFS's `xOpen`.
pub(super) type OpenFn = unsafe extern "C" fn(
    *mut ffi::sqlite3_vfs,
    *const c_char,
    *mut ffi::sqlite3_file,
    c_int,
    *mut c_int,
) -> c_int;

/// Registers, not as the default, a VFS named `name` that is the default
/// VFS but for its `xOpen` (`open`, which finds the default VFS in
/// `pAppData`) and the size of its file objects (`file_size` of the default
/// VFS's).
pub(super) fn register_over_default(
    name: &'static CStr,
    file_size: impl FnOnce(usize) -> usize,
    open: OpenFn,
) -> Result<(), String> {
    // SAFETY: `sqlite3_vfs_find` initializes SQLite and returns a VFS that
    // lives for the whole process; the registered copy is leaked so it
    // lives as long.
    unsafe {
        let base = ffi::sqlite3_vfs_find(ptr::null());
        if base.is_null() {
            return Err("SQLite has no default VFS".to_owned());
        }
        let mut ours = *base;
        let size =
            usize::try_from((*base).szOsFile).map(file_size).ok().and_then(|n| c_int::try_from(n).ok());
        ours.szOsFile = size.ok_or_else(|| format!("bad file object size for the {name:?} VFS"))?;
        ours.zName = name.as_ptr();
        ours.pAppData = base.cast::<c_void>();
        ours.pNext = ptr::null_mut();
        ours.xOpen = Some(open);
        let rc = ffi::sqlite3_vfs_register(Box::leak(Box::new(ours)), 0);
        if rc == ffi::SQLITE_OK { Ok(()) } else { Err(format!("sqlite3_vfs_register failed ({rc})")) }
    }
}

/// The default VFS behind one registered by [`register_over_default`], and
/// its `xOpen`.
///
/// # Safety
/// `vfs` is a VFS registered by [`register_over_default`].
pub(super) unsafe fn default_behind(vfs: *mut ffi::sqlite3_vfs) -> Option<(*mut ffi::sqlite3_vfs, OpenFn)> {
    // SAFETY: such a VFS's pAppData is the default VFS, which lives as long
    // as the process.
    unsafe {
        let base = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
        Some((base, (*base).xOpen?))
    }
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes our VFS and `szOsFile` bytes at `file`, enough
    // for a WalFile followed by a file of the default VFS, or for a file of
    // the default VFS alone.
    unsafe {
        let Some((base, open)) = default_behind(vfs) else { return ffi::SQLITE_CANTOPEN };
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return open(base, name, file, flags, out_flags);
        }
        let real = file.cast::<u8>().add(real_offset()).cast::<ffi::sqlite3_file>();
        (*real).pMethods = ptr::null();
        let rc = open(base, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            if let Some(close) = methods(real).and_then(|m| m.xClose) {
                close(real);
            }
            (*file).pMethods = ptr::null();
            return rc;
        }
        ptr::write(
            file.cast::<WalFile>(),
            WalFile {
                base: ffi::sqlite3_file { pMethods: &WAL_METHODS },
                real,
                buf: Vec::new(),
                start: 0,
                commit_next: false,
            },
        );
        ffi::SQLITE_OK
    }
}

/// The methods of an open file of the default VFS.
unsafe fn methods<'a>(f: *mut ffi::sqlite3_file) -> Option<&'a ffi::sqlite3_io_methods> {
    // SAFETY: `f` is a file object of the default VFS.
    unsafe { (*f).pMethods.as_ref() }
}

/// The wrapped file behind a pointer SQLite hands back to our methods.
unsafe fn wal<'a>(f: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    // SAFETY: only files opened by `x_open` with WAL_METHODS reach them.
    unsafe { &mut *f.cast::<WalFile>() }
}

/// Writes the buffer out. The buffer is emptied even on failure: SQLite
/// fails the transaction and writes its frames again if it retries.
fn flush(w: &mut WalFile) -> c_int {
    if w.buf.is_empty() {
        return ffi::SQLITE_OK;
    }
    // SAFETY: `real` is the open default-VFS file; the buffer outlives the call.
    let rc = unsafe {
        match methods(w.real).and_then(|m| m.xWrite) {
            Some(write) => write(w.real, w.buf.as_ptr().cast(), len_c(w.buf.len()), w.start),
            None => ffi::SQLITE_IOERR_WRITE,
        }
    };
    w.buf.clear();
    w.commit_next = false;
    if w.buf.capacity() > LIMIT {
        w.buf.shrink_to(LIMIT);
    }
    rc
}

fn len_c(n: usize) -> c_int {
    c_int::try_from(n).expect("the buffer is capped far below c_int::MAX")
}

/// Flushes, then calls one of the default VFS's methods.
macro_rules! after_flush {
    ($f:expr, $method:ident, |$m:ident, $r:ident| $call:expr) => {{
        let w = unsafe { wal($f) };
        let rc = flush(w);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        pass!(w, $method, |$m, $r| $call)
    }};
}

/// Calls one of the default VFS's methods on the wrapped file.
macro_rules! pass {
    ($w:expr, $method:ident, |$m:ident, $r:ident| $call:expr) => {{
        let $r = $w.real;
        // SAFETY: `real` is the open default-VFS file behind the wrapper,
        // called with the arguments SQLite gave the wrapper.
        match unsafe { methods($r) }.and_then(|x| x.$method) {
            Some($m) => unsafe { $call },
            None => ffi::SQLITE_IOERR,
        }
    }};
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    let w = unsafe { wal(f) };
    let flushed = flush(w);
    let closed = pass!(w, xClose, |close, r| close(r));
    // SAFETY: the file is not used again after xClose; SQLite frees the memory.
    unsafe { ptr::drop_in_place(&raw mut w.buf) };
    if flushed != ffi::SQLITE_OK { flushed } else { closed }
}

unsafe extern "C" fn x_read(f: *mut ffi::sqlite3_file, out: *mut c_void, amt: c_int, off: i64) -> c_int {
    let w = unsafe { wal(f) };
    let end = w.start + w.buf.len() as i64;
    if !w.buf.is_empty() && off < end && off + i64::from(amt) > w.start {
        let rc = flush(w);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    pass!(w, xRead, |read, r| read(r, out, amt, off))
}

unsafe extern "C" fn x_write(f: *mut ffi::sqlite3_file, data: *const c_void, amt: c_int, off: i64) -> c_int {
    let w = unsafe { wal(f) };
    let Ok(n) = usize::try_from(amt) else { return ffi::SQLITE_IOERR_WRITE };
    let continues = off == w.start + w.buf.len() as i64;
    if !w.buf.is_empty() && (!continues || w.buf.len() + n > LIMIT) {
        let rc = flush(w);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    if n > LIMIT {
        return pass!(w, xWrite, |write, r| write(r, data, amt, off));
    }
    if w.buf.is_empty() {
        w.start = off;
    }
    // SAFETY: SQLite passes `amt` readable bytes at `data`.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), n) };
    w.buf.extend_from_slice(bytes);
    if w.commit_next {
        // The commit frame's page: the transaction is complete.
        return flush(w);
    }
    if n == FRAME_HEADER && bytes[4..8] != [0; 4] {
        w.commit_next = true;
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_truncate(f: *mut ffi::sqlite3_file, size: i64) -> c_int {
    after_flush!(f, xTruncate, |truncate, r| truncate(r, size))
}

unsafe extern "C" fn x_sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    after_flush!(f, xSync, |sync, r| sync(r, flags))
}

unsafe extern "C" fn x_file_size(f: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    after_flush!(f, xFileSize, |file_size, r| file_size(r, size))
}

unsafe extern "C" fn x_lock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    pass!(unsafe { wal(f) }, xLock, |lock, r| lock(r, level))
}

unsafe extern "C" fn x_unlock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    pass!(unsafe { wal(f) }, xUnlock, |unlock, r| unlock(r, level))
}

unsafe extern "C" fn x_check_reserved_lock(f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    pass!(unsafe { wal(f) }, xCheckReservedLock, |check, r| check(r, out))
}

unsafe extern "C" fn x_file_control(f: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    after_flush!(f, xFileControl, |control, r| control(r, op, arg))
}

unsafe extern "C" fn x_sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    let w = unsafe { wal(f) };
    match unsafe { methods(w.real) }.and_then(|m| m.xSectorSize) {
        Some(size) => unsafe { size(w.real) },
        None => 4096,
    }
}

unsafe extern "C" fn x_device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    let w = unsafe { wal(f) };
    match unsafe { methods(w.real) }.and_then(|m| m.xDeviceCharacteristics) {
        Some(chars) => unsafe { chars(w.real) },
        None => 0,
    }
}

unsafe extern "C" fn x_shm_map(
    f: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    pass!(unsafe { wal(f) }, xShmMap, |map, r| map(r, region, size, extend, out))
}

unsafe extern "C" fn x_shm_lock(f: *mut ffi::sqlite3_file, offset: c_int, n: c_int, flags: c_int) -> c_int {
    pass!(unsafe { wal(f) }, xShmLock, |lock, r| lock(r, offset, n, flags))
}

unsafe extern "C" fn x_shm_barrier(f: *mut ffi::sqlite3_file) {
    let w = unsafe { wal(f) };
    if let Some(barrier) = unsafe { methods(w.real) }.and_then(|m| m.xShmBarrier) {
        unsafe { barrier(w.real) }
    }
}

unsafe extern "C" fn x_shm_unmap(f: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    pass!(unsafe { wal(f) }, xShmUnmap, |unmap, r| unmap(r, delete))
}

unsafe extern "C" fn x_fetch(
    f: *mut ffi::sqlite3_file,
    off: i64,
    amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    after_flush!(f, xFetch, |fetch, r| fetch(r, off, amt, out))
}

unsafe extern "C" fn x_unfetch(f: *mut ffi::sqlite3_file, off: i64, p: *mut c_void) -> c_int {
    pass!(unsafe { wal(f) }, xUnfetch, |unfetch, r| unfetch(r, off, p))
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags, params};
    use tempfile::TempDir;

    fn open_buffered(path: &std::path::Path, synchronous: &str) -> Connection {
        register().unwrap();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let c = Connection::open_with_flags_and_vfs(path, flags, NAME).unwrap();
        let mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        c.pragma_update(None, "synchronous", synchronous).unwrap();
        c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        c
    }

    /// Another connection (default VFS) sees every commit at once, with its
    /// content, whether or not SQLite syncs at commit: with
    /// `synchronous=NORMAL` only the commit-frame rule writes the buffer out
    /// before the commit is published.
    #[test]
    fn every_commit_is_visible_to_other_connections_at_once() {
        for synchronous in ["FULL", "NORMAL", "OFF"] {
            let dir = TempDir::new().unwrap();
            let path = dir.path().join("t.db");
            let w = open_buffered(&path, synchronous);
            w.execute_batch(
                "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL); CREATE INDEX t_v ON t (v);",
            )
            .unwrap();
            let r = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
            for round in 0..200_i64 {
                let tx = w.unchecked_transaction().unwrap();
                // Scattered index pages: several frames per commit.
                for i in 0..5 {
                    let k = round * 5 + i;
                    tx.execute("INSERT INTO t VALUES (?1, ?2)", params![k, format!("{:x}", k * 7919 % 1013)])
                        .unwrap();
                }
                tx.commit().unwrap();
                let (n, sum): (i64, i64) = r
                    .query_row("SELECT count(*), coalesce(sum(k), 0) FROM t", [], |x| {
                        Ok((x.get(0)?, x.get(1)?))
                    })
                    .unwrap();
                let last = round * 5 + 4;
                assert_eq!((n, sum), (last + 1, last * (last + 1) / 2), "{synchronous}, round {round}");
                let ok: String = r.query_row("PRAGMA quick_check", [], |x| x.get(0)).unwrap();
                assert_eq!(ok, "ok");
            }
        }
    }

    /// Transactions larger than the buffer, rolled back ones, checkpoints
    /// that restart the WAL, and reopening all keep the data intact.
    #[test]
    fn large_transactions_rollbacks_and_restarts_keep_data_intact() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("t.db");
        let blob = |seed: u8| {
            (0..3 * (1 << 20) + 123)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect::<Vec<u8>>()
        };
        {
            let w = open_buffered(&path, "FULL");
            w.execute_batch("CREATE TABLE b (k INTEGER PRIMARY KEY, v BLOB NOT NULL);").unwrap();
            let r = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
            for k in 0..4_u8 {
                w.execute("INSERT INTO b VALUES (?1, ?2)", params![k, blob(k)]).unwrap();
                let tx = w.unchecked_transaction().unwrap();
                tx.execute("INSERT INTO b VALUES (?1, ?2)", params![100 + k, blob(99)]).unwrap();
                tx.rollback().unwrap();
                let v: Vec<u8> = r.query_row("SELECT v FROM b WHERE k = ?1", [k], |x| x.get(0)).unwrap();
                assert!(v == blob(k), "blob {k} read back differs");
                // Copy the WAL back and start it over: the next commit
                // overwrites frames from the start of the file.
                let busy: i64 = w.query_row("PRAGMA wal_checkpoint(RESTART)", [], |x| x.get(0)).unwrap();
                assert_eq!(busy, 0);
            }
            let n: i64 = r.query_row("SELECT count(*) FROM b", [], |x| x.get(0)).unwrap();
            assert_eq!(n, 4);
        }
        let c = Connection::open(&path).unwrap();
        for k in 0..4_u8 {
            let v: Vec<u8> = c.query_row("SELECT v FROM b WHERE k = ?1", [k], |x| x.get(0)).unwrap();
            assert!(v == blob(k), "blob {k} differs after reopening");
        }
        let ok: String = c.query_row("PRAGMA integrity_check", [], |x| x.get(0)).unwrap();
        assert_eq!(ok, "ok");
    }
}
