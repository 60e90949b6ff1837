//! One long read in pieces kept in flight together, each piece's memory
//! made ready while the pieces before it are read.
//!
//! A direct read into memory that was never touched first commits it: the
//! kernel allocates and zeroes every page while it pins them, before the
//! device sees the request. For a 2 MiB read that is about a third of the
//! read's time on this machine (`BENCHMARKS.md`, "Fresh memory": 122–134
//! ms for 128 MiB in 2 MiB reads into fresh pages, 85–90 into pages
//! touched before). [`read_in_pieces`] hides most of it: it submits the
//! first piece, then commits the next (the caller's `prepare`) while the
//! first is being read, submits that, and so on; the device always has a
//! piece to work on, and only the first piece's commit is in the read's
//! time. (Submitting every piece at once does not do it: a piece whose
//! pages are not present is handed to a kernel worker that commits it on
//! its own, measured no faster than one read.)
//!
//! The ring is the calling thread's own (made at its first call), so
//! threads never wait for each other's pieces. Where the kernel gives no
//! ring, or [`IoEngine::Threads`] is asked for, each piece is prepared and
//! read in turn with `pread` (the portable path: the same bytes, no
//! overlap).

use crate::engine::IoEngine;
use crate::file::{IORING_ENTER_GETEVENTS, SigSet, retryable};
use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Pieces in flight at once at most (a 2 MiB read of 256 KiB pieces has
/// eight).
const IN_FLIGHT: u32 = 8;

thread_local! {
    /// This thread's ring: `None` until its first use, then the ring, or
    /// `None` inside if the kernel refused one (never asked again).
    static RING: RefCell<Option<Option<io_uring::IoUring>>> = const { RefCell::new(None) };
}

/// Reads `buf.len()` bytes of `file` from `offset` in pieces of `piece`
/// bytes (the last may be shorter), several in flight at once, calling
/// `prepare` on each piece's memory before it is submitted — while the
/// pieces before it are being read (see the module doc). Returns the bytes
/// read from the start up to the first piece that came back short (taken
/// for the file's end, as one `pread` of the whole would stop there): the
/// bytes after that are unspecified. A piece that fails is read again
/// plainly; if that fails too, the call fails, saying where. No piece is
/// in flight when this returns, either way.
///
/// `engine`: [`IoEngine::Threads`] forces the portable path; the others
/// take this thread's ring where the kernel gives one (a `prepare` that
/// reads in pieces itself goes the portable way: the ring is in use). A
/// panic in `prepare` waits for the pieces in flight before it unwinds on.
pub fn read_in_pieces(
    file: &File,
    offset: u64,
    buf: &mut [u8],
    piece: usize,
    engine: IoEngine,
    prepare: &mut dyn FnMut(&mut [u8]),
) -> Result<usize, PieceError> {
    assert!(piece > 0, "pieces of no bytes");
    if engine != IoEngine::Threads {
        // The ring is taken only where it is free: not while this thread's
        // `prepare` reads in pieces itself, nor while the thread's locals
        // are being torn down (a fault served from a destructor).
        let ringed = RING.try_with(|cell| {
            let Ok(mut cell) = cell.try_borrow_mut() else {
                return None;
            };
            let ring = cell.get_or_insert_with(|| io_uring::IoUring::new(IN_FLIGHT).ok());
            let outcome = ring
                .as_mut()
                .map(|ring| through_ring(ring, file, offset, buf, piece, prepare));
            match outcome {
                // The ring itself failed: retired, and this read done the
                // portable way (every piece it took has completed).
                Some(Err(Retire)) => {
                    *cell = Some(None);
                    None
                }
                Some(Ok(result)) => Some(result),
                None => None,
            }
        });
        if let Ok(Some(result)) = ringed {
            return result;
        }
    }
    portable(file, offset, buf, piece, prepare)
}

/// The ring failed (not a piece's read): retire it.
struct Retire;

/// A read of [`read_in_pieces`] that failed: where, and why.
#[derive(Debug, thiserror::Error)]
#[error("reading at byte {offset}: {source}")]
pub struct PieceError {
    /// The byte of the file the failed read started at (its piece's, or
    /// where a plain read of the piece stopped).
    pub offset: u64,
    /// The error.
    #[source]
    pub source: io::Error,
}

/// Each piece prepared, then read with `pread`, in turn.
fn portable(
    file: &File,
    offset: u64,
    buf: &mut [u8],
    piece: usize,
    prepare: &mut dyn FnMut(&mut [u8]),
) -> Result<usize, PieceError> {
    let mut done = 0;
    for part in buf.chunks_mut(piece) {
        prepare(part);
        let len = part.len();
        let mut got = 0;
        while got < len {
            let at = offset + (done + got) as u64;
            match file.read_at(&mut part[got..], at) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(PieceError { offset: at, source }),
            }
        }
        done += got;
        if got < len {
            break;
        }
    }
    Ok(done)
}

/// The pieces through `ring`: `Err(Retire)` (with nothing in flight) if
/// the ring failed before the read was done; the read's outcome otherwise.
fn through_ring(
    ring: &mut io_uring::IoUring,
    file: &File,
    offset: u64,
    buf: &mut [u8],
    piece: usize,
    prepare: &mut dyn FnMut(&mut [u8]),
) -> Result<Result<usize, PieceError>, Retire> {
    let fd = io_uring::types::Fd(file.as_raw_fd());
    let pieces = buf.len().div_ceil(piece);
    // Each piece's result: bytes read, or a negated errno.
    let mut results: Vec<Option<i32>> = vec![None; pieces];
    let mut in_flight = 0u32;
    let mut retire = false;
    for (k, part) in buf.chunks_mut(piece).enumerate() {
        // Room in the ring first: one completion collected per one over.
        while in_flight >= IN_FLIGHT {
            in_flight -= collect(ring, &mut results, true);
        }
        // A panic here must not leave the kernel writing into `buf` once it
        // is the caller's again: the pieces in flight are waited for first.
        if let Err(panic) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| prepare(&mut *part)))
        {
            while in_flight > 0 {
                in_flight -= collect(ring, &mut results, true);
            }
            std::panic::resume_unwind(panic);
        }
        let len = part.len();
        let entry = io_uring::opcode::Read::new(fd, part.as_mut_ptr(), len as u32)
            .offset(offset + (k * piece) as u64)
            .build()
            .user_data(k as u64);
        // SAFETY: the entry points into `buf`, borrowed mutably for this
        // whole call, and this call does not return before the kernel has
        // completed every entry it took: below, an entry the kernel did not
        // take is never submitted again (the ring is retired, its queue
        // with it), and every one taken is waited for before returning.
        if unsafe { ring.submission().push(&entry) }.is_err() {
            // No room (cannot happen: `in_flight` counts every entry the
            // kernel has not completed, and the queue is empty here).
            retire = true;
            break;
        }
        loop {
            match ring.submit() {
                Ok(_) => break,
                Err(e) if retryable(&e) => {}
                Err(_) => break,
            }
        }
        if !ring.submission().is_empty() {
            // The kernel did not take it: the ring is broken.
            retire = true;
            break;
        }
        in_flight += 1;
        // Whatever has completed meanwhile, without waiting.
        in_flight -= collect(ring, &mut results, false);
    }
    while in_flight > 0 {
        in_flight -= collect(ring, &mut results, true);
    }
    if retire {
        return Err(Retire);
    }
    let mut done = 0usize;
    for (k, result) in results.into_iter().enumerate() {
        let at = k * piece;
        let len = piece.min(buf.len() - at);
        let got = match result.expect("every piece submitted has completed") {
            r if r >= 0 => r as usize,
            // A piece that failed is read again plainly (an interrupted
            // read is retried there), and its error, if it fails again, is
            // said at its own offset.
            _ => match portable(
                file,
                offset + at as u64,
                &mut buf[at..at + len],
                len,
                &mut |_| {},
            ) {
                Ok(got) => got,
                Err(e) => return Ok(Err(e)),
            },
        };
        done += got;
        if got < len {
            // Short: the file's end, as for one `pread` of the whole. (Not
            // read on from there: on a file open `O_DIRECT` the rest would
            // start at an offset and an address direct I/O refuses.)
            break;
        }
    }
    Ok(Ok(done))
}

/// Takes the completions there are (at least one if `wait`) into
/// `results`; returns how many.
fn collect(ring: &mut io_uring::IoUring, results: &mut [Option<i32>], wait: bool) -> u32 {
    if wait {
        loop {
            // SAFETY: `enter` with no submission only waits for
            // completions; no argument is passed.
            let waited = unsafe {
                ring.submitter()
                    .enter::<SigSet>(0, 1, IORING_ENTER_GETEVENTS, None)
            };
            match waited {
                Ok(_) => break,
                Err(e) if retryable(&e) => {}
                Err(e) => {
                    // Completions still owed by the kernel cannot be waited
                    // for, and the kernel may still write into the caller's
                    // buffer: neither returning nor unwinding is safe.
                    eprintln!("io_uring: cannot wait for reads in flight: {e}");
                    std::process::abort();
                }
            }
        }
    }
    let mut taken = 0;
    for cqe in ring.completion() {
        results[cqe.user_data() as usize] = Some(cqe.result());
        taken += 1;
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(len: usize) -> (File, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        io::Write::write_all(&mut file, &bytes).unwrap();
        (file, bytes)
    }

    /// Both paths read what the file holds, stop at its end, and prepare
    /// every piece, in order, before its bytes arrive.
    #[test]
    fn pieces_read_the_file_and_are_prepared_in_order() {
        let (file, bytes) = file_of(40 * 4096 + 100);
        for engine in [IoEngine::Auto, IoEngine::Threads] {
            for (offset, len, piece) in [
                (0usize, 32 * 4096, 4 * 4096),
                (4096, 16 * 4096, 3 * 4096),
                (8 * 4096, 40 * 4096, 8 * 4096), // past the end: short
                (0, 4096, 64 * 4096),            // one piece
            ] {
                let mut buf = vec![0xEEu8; len];
                let mut prepared = Vec::new();
                let got = read_in_pieces(&file, offset as u64, &mut buf, piece, engine, &mut |p| {
                    // The piece's bytes are not read yet when prepared.
                    assert!(
                        p.iter().all(|&b| b == 0xEE),
                        "{engine:?}: read before prepared"
                    );
                    prepared.push(p.len());
                })
                .unwrap();
                let want = len.min(bytes.len() - offset);
                assert_eq!(got, want, "{engine:?} {offset} {len} {piece}");
                assert_eq!(&buf[..got], &bytes[offset..offset + got], "{engine:?}");
                let total: usize = prepared.iter().sum();
                assert!(total >= want, "{engine:?}: {prepared:?}");
                assert!(prepared.iter().all(|&p| p <= piece));
            }
            if engine == IoEngine::Auto {
                // The ring path was the one tested, where the kernel has it.
                let ringed = RING.with(|c| matches!(*c.borrow(), Some(Some(_))));
                if !ringed {
                    eprintln!("skipped: the kernel gives no io_uring; only the portable path ran");
                }
                let probe = io_uring::IoUring::new(2).is_ok();
                assert_eq!(ringed, probe, "a ring the kernel gives was not used");
            }
        }
    }

    /// A `prepare` that panics with pieces in flight: they are waited for
    /// before the panic goes on, so the thread's next read finds its ring
    /// with nothing of the first one left in it (review: it found stale
    /// completions, and returned with its own reads in flight). Direct
    /// reads, so that pieces are still at the device when it panics.
    #[test]
    fn a_panic_in_prepare_leaves_nothing_in_flight() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("direct");
        let bytes: Vec<u8> = (0..256 * 4096).map(|i| (i * 7 + i / 4096) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(&path)
        else {
            eprintln!("skipped: no O_DIRECT here");
            return;
        };
        // Page-aligned buffers, as direct I/O wants them.
        let mut storage = vec![0u8; 257 * 4096];
        let skip = storage.as_ptr().align_offset(4096);
        let buf = &mut storage[skip..skip + 256 * 4096];
        for _ in 0..20 {
            let mut calls = 0;
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                read_in_pieces(&file, 0, buf, 16 * 4096, IoEngine::Auto, &mut |_| {
                    calls += 1;
                    if calls == 6 {
                        panic!("prepare failed");
                    }
                })
            }));
            assert!(panicked.is_err());
            let got = read_in_pieces(
                &file,
                0,
                &mut buf[..48 * 4096],
                16 * 4096,
                IoEngine::Auto,
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(got, 48 * 4096);
            assert!(buf[..48 * 4096] == bytes[..48 * 4096]);
        }
    }

    /// A `prepare` that reads in pieces itself (the ring is in use) reads
    /// the portable way, and both reads hold the file's bytes.
    #[test]
    fn a_read_inside_prepare_goes_the_portable_way() {
        let (file, bytes) = file_of(16 * 4096);
        let mut outer = vec![0u8; 8 * 4096];
        let mut inner = vec![0u8; 4 * 4096];
        let mut inner_got = 0;
        let got = read_in_pieces(&file, 0, &mut outer, 4096, IoEngine::Auto, &mut |_| {
            if inner_got == 0 {
                inner_got = read_in_pieces(
                    &file,
                    8 * 4096,
                    &mut inner,
                    4096,
                    IoEngine::Auto,
                    &mut |_| {},
                )
                .unwrap();
            }
        })
        .unwrap();
        assert_eq!((got, inner_got), (8 * 4096, 4 * 4096));
        assert_eq!(&outer[..], &bytes[..8 * 4096]);
        assert_eq!(&inner[..], &bytes[8 * 4096..12 * 4096]);
    }

    #[test]
    fn an_error_of_a_piece_is_the_calls_error() {
        // A file open for writing only: every read fails.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        std::fs::write(&path, vec![1u8; 8192]).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        for engine in [IoEngine::Auto, IoEngine::Threads] {
            let mut buf = vec![0u8; 8192];
            let err = read_in_pieces(&file, 0, &mut buf, 4096, engine, &mut |_| {}).unwrap_err();
            assert_eq!(err.offset, 0);
            assert_eq!(
                err.source.raw_os_error(),
                Some(rustix::io::Errno::BADF.raw_os_error())
            );
        }
    }
}
