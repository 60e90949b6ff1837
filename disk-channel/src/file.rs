//! `FileDrive`: a drive on a file or a block device.
//!
//! Transfers are positioned reads and writes (`pread`/`pwrite`), so the drive
//! keeps no file offset. A seek-ahead hint becomes
//! `posix_fadvise(WILLNEED)` on the hinted page: the kernel starts reading it
//! while the caller does something else. The file is sparse unless
//! preallocation is asked for; reading a hole, or past the end of a file
//! shorter than its page count, gives zeros.
//!
//! # The page cache ([`CachePolicy`])
//!
//! By default a file drive keeps its file out of the kernel's page cache,
//! so that the VM's real-memory budget is what the process really holds
//! (buffered, a backing file read through the cache sits in memory beside
//! the VM's frames, uncounted). [`CachePolicy::Direct`] opens the file
//! `O_DIRECT` and transfers straight between the device and the caller's
//! buffer — a VM frame is page-aligned, so no copy — through a page-aligned
//! bounce buffer only when the caller's buffer is not aligned. Where the
//! file system refuses `O_DIRECT` the drive falls back to
//! [`CachePolicy::DropBehind`]: buffered transfers followed by
//! `posix_fadvise(DONTNEED)` of the pages moved (pages just written stay
//! cached until the kernel has written them back). [`CachePolicy::Buffered`]
//! is the old behaviour, for measurements against the page cache.
//! [`FileDrive::cache_policy`] says which one a drive really uses.
//!
//! Seek-ahead under `Direct` issues no `posix_fadvise(WILLNEED)`: that
//! would read the hinted page into the page cache, which a direct read
//! never uses (measured in an external sort: 250–750 MiB of wasted reads).

use crate::cache::CachePolicy;
use crate::drive::ParallelIo;
use crate::engine::{IoEngine, RING_ENTRIES, THREADS, Transfer};
use crate::{DiskPage, Drive, DriveError, DriveStats};
use parking_lot::Mutex;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// Alignment of direct-I/O buffers and offsets.
const DIRECT_IO_ALIGN: usize = 4096;

/// How to open or create a file drive.
#[derive(Clone, Debug)]
pub struct FileDriveOptions {
    /// Bytes per page; a power of two of at least 512.
    pub page_size: usize,
    /// Pages on the drive; `None` takes the file's (or device's) size.
    pub page_count: Option<u64>,
    /// Create the file if it does not exist, and size it to `page_count`.
    pub create: bool,
    /// Allocate every block now (`fallocate`) instead of leaving the file
    /// sparse.
    pub preallocate: bool,
    /// How the drive uses the kernel's page cache (default
    /// [`CachePolicy::Direct`]).
    pub cache: CachePolicy,
    /// Time every transfer with the wall clock for `DriveStats::busy_ns`.
    /// Off by default: two clock reads cost about 10% of a 4 KiB read from
    /// the page cache (measured by the `file_drive` bench).
    pub measure_busy_time: bool,
    /// Which engine runs batches of transfers (default
    /// [`IoEngine::Auto`]).
    pub engine: IoEngine,
    /// Open the file for reading only: writes fail, and the drive's lock
    /// ([`Drive::lock_exclusive`]) is a shared one — readers exclude
    /// writers, not each other. For tools that only look (`info`, a
    /// scavenge that does not repair), on a read-only file or file system.
    pub read_only: bool,
}

impl FileDriveOptions {
    /// Open an existing drive file with pages of `page_size` bytes.
    pub fn open(page_size: usize) -> FileDriveOptions {
        FileDriveOptions {
            page_size,
            page_count: None,
            create: false,
            preallocate: false,
            cache: CachePolicy::default(),
            measure_busy_time: false,
            engine: IoEngine::default(),
            read_only: false,
        }
    }

    /// Open an existing drive file for reading only (see
    /// [`FileDriveOptions::read_only`]).
    pub fn open_read_only(page_size: usize) -> FileDriveOptions {
        FileDriveOptions {
            read_only: true,
            ..FileDriveOptions::open(page_size)
        }
    }

    /// Create (or resize) a sparse drive file of `page_count` pages.
    pub fn create(page_size: usize, page_count: u64) -> FileDriveOptions {
        FileDriveOptions {
            page_size,
            page_count: Some(page_count),
            create: true,
            preallocate: false,
            cache: CachePolicy::default(),
            measure_busy_time: false,
            engine: IoEngine::default(),
            read_only: false,
        }
    }

    /// The same with `engine` running batches.
    pub fn with_engine(mut self, engine: IoEngine) -> FileDriveOptions {
        self.engine = engine;
        self
    }

    /// The same with `cache` as the page-cache policy.
    pub fn with_cache(mut self, cache: CachePolicy) -> FileDriveOptions {
        self.cache = cache;
        self
    }
}

/// A drive backed by a file or block device.
///
/// The transfers themselves live in a shared part ([`FileDrive::parallel`]):
/// positioned reads and writes need no file offset and no lock, so several
/// threads can have transfers in flight on one file drive at once (the
/// device's queue depth is what a file drive offers that a 1980s disk did
/// not). The counters are atomics for the same reason.
#[derive(Debug)]
pub struct FileDrive {
    path: PathBuf,
    io: Arc<FileIo>,
    read_only: bool,
}

/// The part of a [`FileDrive`] that transfers: shared by every thread that
/// has a transfer in flight on the drive.
#[derive(Debug)]
struct FileIo {
    name: String,
    file: File,
    /// More descriptors of `file` for reading, one per thread in turn
    /// ([`readers_of`]).
    readers: Vec<File>,
    page_size: usize,
    page_count: u64,
    /// The policy in force (`Direct` asked for may have become
    /// `DropBehind`).
    cache: CachePolicy,
    measure_busy_time: bool,
    /// The ring batches go through; `None` with the threads engine, or
    /// once a ring failed and was retired.
    ring: Mutex<Option<Ring>>,
    /// The last hint given, plus one (0: none).
    last_hint: AtomicU64,
    reads: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
    pages_read: AtomicU64,
    pages_written: AtomicU64,
    busy_ns: AtomicU64,
    seek_aheads_issued: AtomicU64,
    seek_aheads_used: AtomicU64,
}

impl FileDrive {
    /// Opens (or creates) the drive at `path`.
    pub fn open(
        path: impl AsRef<Path>,
        options: &FileDriveOptions,
    ) -> Result<FileDrive, DriveError> {
        let path = path.as_ref().to_path_buf();
        let name = path.display().to_string();
        let file_error = |action: &'static str, source: io::Error| DriveError::File {
            path: path.clone(),
            action,
            source,
        };
        if !options.page_size.is_power_of_two() || options.page_size < 512 {
            return Err(DriveError::Config {
                drive: name,
                reason: format!(
                    "page size {} is not a power of two ≥ 512",
                    options.page_size
                ),
            });
        }
        // A FIFO would block the open forever, a character device (such as
        // /dev/null) swallows pages: drives are regular files or block
        // devices, checked before opening.
        if let Ok(meta) = std::fs::metadata(&path) {
            use std::os::unix::fs::FileTypeExt;
            let kind = meta.file_type();
            if !kind.is_file() && !kind.is_block_device() {
                return Err(DriveError::Config {
                    drive: name,
                    reason: "not a regular file or a block device".into(),
                });
            }
        }
        let mut open = OpenOptions::new();
        open.read(true)
            .write(!options.read_only)
            .create(options.create && !options.read_only);
        let mut cache = options.cache;
        let mut file = if cache == CachePolicy::Direct {
            let mut direct = open.clone();
            direct.custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32);
            match direct.open(&path) {
                Ok(file) => file,
                // The file system refuses O_DIRECT: keep the page cache
                // out by dropping behind instead.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    cache = CachePolicy::DropBehind;
                    open.open(&path).map_err(|e| file_error("open", e))?
                }
                Err(e) => return Err(file_error("open", e)),
            }
        } else {
            open.open(&path).map_err(|e| file_error("open", e))?
        };
        let bytes = file
            .seek(SeekFrom::End(0))
            .map_err(|e| file_error("measure", e))?;
        let page_count = match options.page_count {
            Some(count) => {
                let want = count.checked_mul(options.page_size as u64).ok_or_else(|| {
                    DriveError::Config {
                        drive: name.clone(),
                        reason: format!("{count} pages overflow a file size"),
                    }
                })?;
                if options.create && bytes != want && file.metadata().is_ok_and(|m| m.is_file()) {
                    // Not a byte changes in a drive another process holds
                    // (a volume in use, cut to size under it): the lock
                    // first, kept from here on.
                    lock_drive_file(&file, &path, false)?;
                    file.set_len(want)
                        .map_err(|e| file_error("set length", e))?;
                }
                count
            }
            None => bytes / options.page_size as u64,
        };
        if page_count == 0 {
            return Err(DriveError::Config {
                drive: name,
                reason: format!(
                    "the file holds {bytes} bytes, not one whole page of {}: not a drive",
                    options.page_size
                ),
            });
        }
        if options.preallocate {
            // (As for the length, above.)
            lock_drive_file(&file, &path, false)?;
            let len = page_count * options.page_size as u64;
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len)
                .map_err(|e| file_error("preallocate", e.into()))?;
        }
        let ring = match options.engine {
            IoEngine::Threads => None,
            IoEngine::Auto => io_uring::IoUring::new(RING_ENTRIES).ok().map(Ring),
            IoEngine::Uring => Some(Ring(io_uring::IoUring::new(RING_ENTRIES).map_err(|e| {
                DriveError::Config {
                    drive: name.clone(),
                    reason: format!("io_uring refused: {e}"),
                }
            })?)),
        };
        Ok(FileDrive {
            path,
            read_only: options.read_only,
            io: Arc::new(FileIo {
                ring: Mutex::new(ring),
                name,
                readers: readers_of(&file, cache),
                file,
                page_size: options.page_size,
                page_count,
                cache,
                measure_busy_time: options.measure_busy_time,
                last_hint: AtomicU64::new(0),
                reads: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                syncs: AtomicU64::new(0),
                pages_read: AtomicU64::new(0),
                pages_written: AtomicU64::new(0),
                busy_ns: AtomicU64::new(0),
                seek_aheads_issued: AtomicU64::new(0),
                seek_aheads_used: AtomicU64::new(0),
            }),
        })
    }

    /// The page-cache policy in force (see the module doc).
    pub fn cache_policy(&self) -> CachePolicy {
        self.io.cache
    }

    /// The engine running batches now: [`IoEngine::Uring`] or
    /// [`IoEngine::Threads`].
    pub fn io_engine(&self) -> IoEngine {
        self.io.engine()
    }

    /// The drive's file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file itself (for baselines that must use the very same
    /// file description).
    pub fn file(&self) -> &File {
        &self.io.file
    }
}

/// Further descriptors of `file` for reading (open file descriptions of
/// their own, through `/proc/self/fd`; none where that is refused), with
/// the same page-cache policy.
///
/// Why: every `pread` takes a reference on its descriptor's open file
/// description, an atomic count that two threads reading through one
/// descriptor pass between their cores at every call. Measured (a scratch
/// program, page-cache reads of 4 KiB by two threads): 2.70M reads/s
/// through one descriptor, 3.19M with one each; through the VM, two
/// threads faulting from the page cache: 556–569k faults/s with one
/// descriptor, 583–593k with these.
///
/// None while the process already has more than a quarter of its limit
/// of descriptors open: a tool opening many drives must not run out of
/// them for a drive's own (and then name the wrong drive).
fn readers_of(file: &File, cache: CachePolicy) -> Vec<File> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let open = std::fs::read_dir("/proc/self/fd").map_or(u64::MAX, |d| d.count() as u64);
    if open.saturating_add(READERS as u64) > limit / 4 {
        return Vec::new();
    }
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(file));
    (0..READERS)
        .map_while(|_| {
            let mut open = OpenOptions::new();
            open.read(true);
            if cache == CachePolicy::Direct {
                open.custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32);
            }
            open.open(&path).ok()
        })
        .collect()
}

/// Descriptors for reading a drive beside its own (see [`readers_of`]).
const READERS: usize = 3;

impl FileIo {
    /// The descriptor this thread reads through: threads take the drive's
    /// descriptors in turn (the process's threads in the order they first
    /// read), so two threads seldom share one.
    fn reader(&self) -> &File {
        thread_local!(static TURN: usize = {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            NEXT.fetch_add(1, Ordering::Relaxed)
        });
        let turn = TURN.with(|t| *t) % (self.readers.len() + 1);
        match turn {
            0 => &self.file,
            k => &self.readers[k - 1],
        }
    }

    /// With [`CachePolicy::DropBehind`], tells the kernel it may drop the
    /// cached pages of a transfer that just ended.
    fn drop_behind(&self, offset: u64, len: usize) {
        if self.cache == CachePolicy::DropBehind {
            // Advice: if the kernel declines it, the pages stay cached.
            let _ = rustix::fs::fadvise(
                &self.file,
                offset,
                std::num::NonZeroU64::new(len as u64),
                rustix::fs::Advice::DontNeed,
            );
        }
    }

    fn io_error(&self, page: DiskPage, source: io::Error) -> DriveError {
        if source.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
            return DriveError::NoSpace {
                drive: self.name.clone(),
                page,
            };
        }
        DriveError::Io {
            drive: self.name.clone(),
            page,
            source,
        }
    }

    /// Notes whether this request used the previous hint, and issues this
    /// request's hint to the kernel. (With transfers from several threads
    /// at once, "the previous hint" is whichever was given last.)
    fn account_hints(&self, page: DiskPage, seek_ahead: Option<DiskPage>) {
        if self.last_hint.swap(0, Ordering::Relaxed) == page.0 + 1 {
            self.seek_aheads_used.fetch_add(1, Ordering::Relaxed);
        }
        // Under O_DIRECT a WILLNEED hint would fill the page cache with a
        // page no direct read uses: no hint.
        if self.cache == CachePolicy::Direct {
            return;
        }
        if let Some(hint) = seek_ahead.filter(|h| h.0 < self.page_count) {
            self.seek_aheads_issued.fetch_add(1, Ordering::Relaxed);
            self.last_hint.store(hint.0 + 1, Ordering::Relaxed);
            // A hint is advice: if the kernel declines it, nothing is lost.
            let _ = rustix::fs::fadvise(
                &self.file,
                hint.byte_offset(self.page_size),
                std::num::NonZeroU64::new(self.page_size as u64),
                rustix::fs::Advice::WillNeed,
            );
        }
    }

    /// Reads at `offset` until `buf` is full; past the end of file is zeros.
    fn read_fully(&self, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
        let file = self.reader();
        while !buf.is_empty() {
            match file.read_at(buf, offset) {
                Ok(0) => {
                    buf.fill(0);
                    return Ok(());
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `data` at `offset`; returns the bytes written if the
    /// kernel stops accepting them.
    fn write_fully(&self, mut offset: u64, mut data: &[u8]) -> io::Result<Result<(), usize>> {
        let wanted = data.len();
        while !data.is_empty() {
            match self.file.write_at(data, offset) {
                Ok(0) => return Ok(Err(wanted - data.len())),
                Ok(n) => {
                    data = &data[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Ok(()))
    }

    fn needs_bounce(&self, buf: &[u8]) -> bool {
        self.cache == CachePolicy::Direct
            && !(buf.as_ptr() as usize).is_multiple_of(DIRECT_IO_ALIGN)
    }

    fn check(&self, page: DiskPage, len: usize) -> Result<u64, DriveError> {
        crate::drive::check_shape(&self.name, self.page_size, self.page_count, page, len)
    }

    fn add_busy(&self, started: Option<Instant>) {
        if let Some(started) = started {
            self.busy_ns
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }

    fn stats(&self) -> DriveStats {
        DriveStats {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            pages_read: self.pages_read.load(Ordering::Relaxed),
            pages_written: self.pages_written.load(Ordering::Relaxed),
            busy_ns: self.busy_ns.load(Ordering::Relaxed),
            seek_aheads_issued: self.seek_aheads_issued.load(Ordering::Relaxed),
            seek_aheads_used: self.seek_aheads_used.load(Ordering::Relaxed),
            ..DriveStats::default()
        }
    }
}

impl ParallelIo for FileIo {
    fn direct_target(&self, page: DiskPage) -> Option<(std::os::fd::RawFd, u64)> {
        (self.cache == CachePolicy::Direct && page.0 < self.page_count).then(|| {
            (
                std::os::fd::AsRawFd::as_raw_fd(&self.file),
                page.byte_offset(self.page_size),
            )
        })
    }

    fn count_direct_read(&self, pages: u64) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.pages_read.fetch_add(pages, Ordering::Relaxed);
    }

    fn transfer_all(&self, batch: &mut [Transfer<'_>]) -> Vec<Result<(), DriveError>> {
        if batch.len() < 2 {
            return batch.iter_mut().map(|t| self.transfer_one(t)).collect();
        }
        let mut ring = self.ring.lock();
        if let Some(uring) = ring.as_mut() {
            match self.through_ring(&mut uring.0, batch) {
                Ok(results) => return results,
                Err(retired) => {
                    // The ring failed in a way it should not: retire it
                    // (leaked, so that nothing it still holds is ever
                    // submitted) and go on with threads. `through_ring`
                    // waited for everything the kernel took.
                    std::mem::forget(ring.take());
                    drop(ring);
                    return retired;
                }
            }
        }
        drop(ring);
        self.through_threads(batch)
    }

    fn read_at(
        &self,
        page: DiskPage,
        buf: &mut [u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        let count = self.check(page, buf.len())?;
        let started = self.measure_busy_time.then(Instant::now);
        let offset = page.byte_offset(self.page_size);
        let result = if self.needs_bounce(buf) {
            let mut bounce = AlignedBuffer::new(buf.len());
            let r = self.read_fully(offset, bounce.bytes());
            buf.copy_from_slice(bounce.bytes());
            r
        } else {
            self.read_fully(offset, buf)
        };
        result.map_err(|e| self.io_error(page, e))?;
        self.drop_behind(offset, buf.len());
        self.account_hints(page, seek_ahead);
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.pages_read.fetch_add(count, Ordering::Relaxed);
        self.add_busy(started);
        Ok(())
    }

    fn write_at(
        &self,
        page: DiskPage,
        data: &[u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        let count = self.check(page, data.len())?;
        let started = self.measure_busy_time.then(Instant::now);
        let offset = page.byte_offset(self.page_size);
        let result = if self.needs_bounce(data) {
            let mut bounce = AlignedBuffer::new(data.len());
            bounce.bytes().copy_from_slice(data);
            self.write_fully(offset, bounce.bytes())
        } else {
            self.write_fully(offset, data)
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(written)) => {
                return Err(DriveError::ShortWrite {
                    drive: self.name.clone(),
                    page,
                    written,
                    wanted: data.len(),
                });
            }
            Err(e) => return Err(self.io_error(page, e)),
        }
        self.drop_behind(offset, data.len());
        self.account_hints(page, seek_ahead);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.pages_written.fetch_add(count, Ordering::Relaxed);
        self.add_busy(started);
        Ok(())
    }
}

impl FileIo {
    fn engine(&self) -> IoEngine {
        if self.ring.lock().is_some() {
            IoEngine::Uring
        } else {
            IoEngine::Threads
        }
    }

    fn transfer_one(&self, t: &mut Transfer<'_>) -> Result<(), DriveError> {
        t.run_through(self)
    }

    /// The portable engine: the batch split among a few threads, each
    /// doing its transfers one after another.
    fn through_threads(&self, batch: &mut [Transfer<'_>]) -> Vec<Result<(), DriveError>> {
        let threads = THREADS.min(batch.len());
        let share = batch.len().div_ceil(threads);
        std::thread::scope(|s| {
            let workers: Vec<_> = batch
                .chunks_mut(share)
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter_mut()
                            .map(|t| self.transfer_one(t))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a transfer thread panicked"))
                .collect()
        })
    }

    /// The `io_uring` engine: up to `RING_ENTRIES` transfers in flight at
    /// once. A transfer whose buffer needs a bounce (not aligned for direct
    /// I/O), or that the ring completes short, is finished with a
    /// positioned call. `Err` (with every outcome) if the ring itself
    /// failed: the caller retires it.
    fn through_ring(
        &self,
        ring: &mut io_uring::IoUring,
        batch: &mut [Transfer<'_>],
    ) -> Result<Outcomes, Outcomes> {
        use std::os::fd::AsRawFd;
        let mut results: Vec<Option<Result<(), DriveError>>> =
            (0..batch.len()).map(|_| None).collect();
        // What goes through the ring: checked, aligned transfers.
        let mut ringed = Vec::with_capacity(batch.len());
        for (i, t) in batch.iter_mut().enumerate() {
            let len = t.len();
            match self.check(t.page(), len) {
                Err(e) => results[i] = Some(Err(e)),
                Ok(_) => {
                    let unaligned = match t {
                        Transfer::Read { buf, .. } => self.needs_bounce(buf),
                        Transfer::Write { data, .. } => self.needs_bounce(data),
                    };
                    if unaligned {
                        results[i] = Some(self.transfer_one(t));
                    } else {
                        ringed.push(i);
                    }
                }
            }
        }
        let fd = io_uring::types::Fd(self.file.as_raw_fd());
        let started = self.measure_busy_time.then(Instant::now);
        let mut failed = false;
        for chunk in ringed.chunks(RING_ENTRIES as usize) {
            let entries: Vec<io_uring::squeue::Entry> = chunk
                .iter()
                .map(|&i| {
                    let offset = batch[i].page().byte_offset(self.page_size);
                    match &mut batch[i] {
                        Transfer::Read { buf, .. } => {
                            io_uring::opcode::Read::new(fd, buf.as_mut_ptr(), buf.len() as u32)
                                .offset(offset)
                                .build()
                        }
                        Transfer::Write { data, .. } => {
                            io_uring::opcode::Write::new(fd, data.as_ptr(), data.len() as u32)
                                .offset(offset)
                                .build()
                        }
                    }
                    .user_data(i as u64)
                })
                .collect();
            // SAFETY: every entry points into a buffer of `batch`, which is
            // borrowed for this whole call, and this call does not return
            // before the kernel has completed every entry it took: the loop
            // below counts what the kernel took from the queue's head after
            // every submit (a later submit in this loop may take more, and
            // those are waited for too), and what it never took is never
            // submitted afterwards (the ring is retired, leaked unused). The ring is empty here (each
            // chunk is drained before the next) and holds `RING_ENTRIES`.
            let pushed = unsafe { ring.submission().push_multiple(&entries) };
            if pushed.is_err() {
                failed = true;
                break;
            }
            let mut taken = 0usize;
            let mut done = 0usize;
            while done < chunk.len() {
                if taken < chunk.len() {
                    match ring.submit() {
                        Ok(_) => taken = chunk.len() - ring.submission().len(),
                        Err(e) if retryable(&e) => {}
                        Err(_) => {
                            failed = true;
                            taken = chunk.len() - ring.submission().len();
                            if done >= taken {
                                break;
                            }
                        }
                    }
                }
                for cqe in ring.completion() {
                    let i = cqe.user_data() as usize;
                    results[i] = Some(self.finish_ringed(&mut batch[i], cqe.result()));
                    done += 1;
                }
                if done < taken {
                    // Wait for one more without submitting anything.
                    // SAFETY: `enter` with no submission only waits for
                    // completions; no argument is passed.
                    let waited = unsafe {
                        ring.submitter()
                            .enter::<SigSet>(0, 1, IORING_ENTER_GETEVENTS, None)
                    };
                    if let Err(e) = waited
                        && !retryable(&e)
                    {
                        // Completions still owed by the kernel cannot be
                        // waited for, and the kernel may still write into
                        // the caller's buffers: neither returning nor
                        // unwinding is safe. (Waiting with valid arguments
                        // fails only with the retryable errors.)
                        eprintln!("io_uring: cannot wait for transfers in flight: {e}");
                        std::process::abort();
                    }
                }
                if failed && done >= taken {
                    break;
                }
            }
            if failed {
                break;
            }
        }
        self.add_busy(started);
        if failed {
            // Whatever the ring did not finish, done the portable way.
            let outcomes = results
                .into_iter()
                .zip(batch.iter_mut())
                .map(|(r, t)| r.unwrap_or_else(|| self.transfer_one(t)))
                .collect();
            return Err(outcomes);
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every ringed transfer completed"))
            .collect())
    }

    /// The outcome of one ringed transfer that completed with `result`
    /// (bytes moved, or a negated errno); a short one is finished with a
    /// positioned call.
    fn finish_ringed(&self, t: &mut Transfer<'_>, result: i32) -> Result<(), DriveError> {
        let page = t.page();
        let offset = page.byte_offset(self.page_size);
        let len = t.len();
        if result < 0 {
            return Err(self.io_error(page, io::Error::from_raw_os_error(-result)));
        }
        let moved = result as usize;
        let count = (len / self.page_size) as u64;
        match t {
            Transfer::Read { buf, .. } => {
                if moved < len {
                    self.read_fully(offset + moved as u64, &mut buf[moved..])
                        .map_err(|e| self.io_error(page, e))?;
                }
                self.drop_behind(offset, len);
                self.reads.fetch_add(1, Ordering::Relaxed);
                self.pages_read.fetch_add(count, Ordering::Relaxed);
            }
            Transfer::Write { data, .. } => {
                if moved < len {
                    match self.write_fully(offset + moved as u64, &data[moved..]) {
                        Ok(Ok(())) => {}
                        Ok(Err(written)) => {
                            return Err(DriveError::ShortWrite {
                                drive: self.name.clone(),
                                page,
                                written: moved + written,
                                wanted: len,
                            });
                        }
                        Err(e) => return Err(self.io_error(page, e)),
                    }
                }
                self.drop_behind(offset, len);
                self.writes.fetch_add(1, Ordering::Relaxed);
                self.pages_written.fetch_add(count, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// Each transfer's outcome, in batch order.
type Outcomes = Vec<Result<(), DriveError>>;

/// The signal-mask argument type `enter` is called with (none is passed).
pub(crate) type SigSet = [u64; 16];

/// `IORING_ENTER_GETEVENTS` of `<linux/io_uring.h>`: wait for completions.
pub(crate) const IORING_ENTER_GETEVENTS: u32 = 1;

/// An `io_uring` instance (its own type, to be `Debug`).
struct Ring(io_uring::IoUring);

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ring")
    }
}

/// Errors of `io_uring_enter` that only ask to try again.
pub(crate) fn retryable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::INTR.raw_os_error()
            || code == rustix::io::Errno::AGAIN.raw_os_error()
            || code == rustix::io::Errno::BUSY.raw_os_error()
    )
}

/// A heap buffer of `len` bytes whose start is aligned for direct I/O.
struct AlignedBuffer {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuffer {
    fn new(len: usize) -> AlignedBuffer {
        let storage = vec![0u8; len + DIRECT_IO_ALIGN];
        let start = storage.as_ptr().align_offset(DIRECT_IO_ALIGN);
        AlignedBuffer {
            storage,
            start,
            len,
        }
    }
    fn bytes(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

impl Drive for FileDrive {
    fn name(&self) -> &str {
        &self.io.name
    }

    fn page_size(&self) -> usize {
        self.io.page_size
    }

    fn cache_policy(&self) -> Option<CachePolicy> {
        Some(self.io.cache)
    }

    fn page_count(&self) -> u64 {
        self.io.page_count
    }

    fn read(
        &mut self,
        page: DiskPage,
        buf: &mut [u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        self.io.read_at(page, buf, seek_ahead)
    }

    fn write(
        &mut self,
        page: DiskPage,
        data: &[u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        self.io.write_at(page, data, seek_ahead)
    }

    fn sync(&mut self) -> Result<(), DriveError> {
        self.io
            .file
            .sync_data()
            .map_err(|source| DriveError::File {
                path: self.path.clone(),
                action: "sync",
                source,
            })?;
        self.io.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn stats(&self) -> DriveStats {
        self.io.stats()
    }

    fn parallel(&self) -> Option<Arc<dyn ParallelIo>> {
        Some(Arc::clone(&self.io) as Arc<dyn ParallelIo>)
    }

    /// `flock`-style: the lock belongs to the open file, which a child
    /// process shares from `fork` until it `exec`s. So a lock still held for
    /// a moment after its owner closed the file — another thread of this
    /// process was spawning a command — is retried for up to 100 ms before
    /// the drive is reported in use.
    fn lock_exclusive(&self) -> Result<(), DriveError> {
        lock_drive_file(&self.io.file, &self.path, self.read_only)
    }
}

/// Locks the drive file `file` (at `path`), shared if `shared`, as a
/// [`FileDrive`] locks its own: a lock still held for a moment by a process
/// that closed the file is retried for up to 100 ms (see
/// [`Drive::lock_exclusive`]), then the drive is in use
/// ([`DriveError::InUse`]). For tools that check a drive before they open
/// it.
pub fn lock_drive_file(file: &File, path: &Path, shared: bool) -> Result<(), DriveError> {
    let mut waited_ms = 0;
    loop {
        let locked = if shared {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        match locked {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if waited_ms < 100 => {
                std::thread::sleep(std::time::Duration::from_millis(5));
                waited_ms += 5;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(DriveError::InUse {
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(DriveError::File {
                    path: path.to_path_buf(),
                    action: "lock",
                    source,
                });
            }
        }
    }
}
