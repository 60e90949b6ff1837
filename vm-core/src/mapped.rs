//! File mappings: where a mapped interval's pages come from and go to (the
//! map entries of [`AddressSpace::map_file`](crate::AddressSpace::map_file)),
//! and the maximum protections of intervals.
//!
//! A page of the address space has one of three sources, which the fault
//! path and the write-back ask this table for ([`FileMaps::source_of`]):
//!
//! | the page is in | a fault reads | a dirty page goes to |
//! |---|---|---|
//! | an anonymous interval | the volume if it has a copy there, else zeros | the volume |
//! | a **shared** file mapping | the file | the file |
//! | a **private** file mapping | the volume if it has a copy there (it was written and written back: Mach's shadow object), else the file | the volume |
//!
//! So a private mapping's page leaves its file at its first write-back and
//! never comes from the file again; nothing reaches the file.
//!
//! Pages past the file's end when it was mapped read as zeros. A shared
//! mapping writes a page back only up to that end, unless the mapping
//! allows the file to grow ([`MapFile::allow_grow`]); without that, its
//! pages wholly past the end are read-only, with maximum protection read,
//! so that a write there is refused rather than lost. A page that was
//! within the file when it was mapped and is past its end now (the file
//! truncated by another process) is an error ([`VmError::FileTruncated`]) on the access that faults it —
//! never a signal, as the kernel's `SIGBUS` would be.
//!
//! **The swap cache** ([`MapFile::swap_cache`], the 4.4BSD proposal's
//! "keep track of the contents of the swap space to avoid multiple
//! fetches"): a clean page of a shared mapping evicted with no copy in the
//! volume is written to its slot there, and its next fault reads the slot,
//! not the file. What makes a copy stale, and so never served:
//! - a write through the mapping: the page's write-back to the file drops
//!   its copy (the page reads the file again after its next eviction);
//! - the file changed by anyone else: its modification time, change time
//!   or size differ from when it was mapped (or from just after this VM's
//!   own last write to it) — checked at every fault that would read a
//!   copy; the first difference turns the cache off for the mapping for
//!   good;
//! - a new mapping: the copies belong to the mapping's interval and go
//!   with it.
//!
//! A change by another writer that keeps the size and lands within the
//! file system's timestamp granularity of the mapping or of this VM's last
//! write, or between that write and the look at the times that follows
//! it, is not seen (as with NFS's attribute cache); map without the swap
//! cache where another writer matters.
//!
//! **Runs and read-around.** Under `Sequential` advice a fault reads a run
//! of the mapping's pages with one `pread` (and the read-ahead thread plans
//! the next); eviction and `clean` write runs of a shared mapping's
//! changed pages with one `pwrite`. Under `Normal` advice (copying API) a
//! fault reads around it while that pays: the absent pages of the
//! mapping within a window of 511 to 1,023 pages by the budget (at most a
//! quarter of real memory), half of them before it, with one read from the
//! first to the last — resident pages between are read too and what was
//! read for them dropped, one read instead of one per hole
//! (`fault::around`); on a file open `O_DIRECT`, into memory not committed
//! yet, that read goes in pieces kept in flight, each committed while the
//! ones before it are read. The pages read
//! around come in unreferenced, and the clock tells their file whether
//! they were used before it came to them; when fewer than one in five
//! were, read-around stops but for every 256th fault; new advice starts
//! it afresh. The read-around is decided under the monitor and read
//! without it: faults of other threads go on meanwhile, and wait only for
//! the pages being read. Transparent mode has no read-around (plain loads
//! set no reference bit to learn from); its stream detection applies.
//!
//! Known limits: the VM is not coherent with writes made to the file
//! outside it — a page already resident (or, in transparent mode, on the
//! reclaim list) keeps what it read, as a private copy would; another
//! process sees this VM's changes once they are written back (`clean`,
//! `flush`, eviction, `free`, dropping the VM). A page past the end of the
//! file when it was mapped reads what the file holds there when it is
//! faulted (zeros if still past the end). In transparent mode a truncated
//! file's page cannot be an error value for a plain load: the process
//! aborts with the error's message. A shared mapping of a file open
//! `O_DIRECT` needs a size of whole pages (or `allow_grow`). A persistent
//! space does not map files (its map would not know them).

use crate::error::VmError;
use runtable::Interval;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What says a file changed: its modification and change times (seconds,
/// nanoseconds) and its size.
type Stamp = (i64, i64, i64, i64, u64);

fn stamp_of(metadata: &std::fs::Metadata) -> Stamp {
    (
        metadata.mtime(),
        metadata.mtime_nsec(),
        metadata.ctime(),
        metadata.ctime_nsec(),
        metadata.len(),
    )
}

/// Whether a mapping's changes reach its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Changes go back to the file (`MAP_SHARED`): on eviction, `clean`,
    /// `flush` (which also syncs the file: the `msync` of this VM) and
    /// `free`.
    Shared,
    /// Copy-on-write (`MAP_PRIVATE`): the file is only read; a changed page
    /// lives in the volume from its first write-back on.
    Private,
}

/// A protection: what an access may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protection {
    /// Loads only.
    Read,
    /// Loads and stores.
    ReadWrite,
}

/// How to map a file ([`AddressSpace::map_file`](crate::AddressSpace::map_file)).
#[derive(Clone, Debug)]
pub struct MapFile {
    /// The file's name, for errors (the file itself is passed open).
    pub name: PathBuf,
    /// Where the mapping starts in the file, in bytes: a multiple of the
    /// page size.
    pub offset: u64,
    /// Pages to map (the interval's size).
    pub pages: u64,
    /// Shared or private.
    pub sharing: Sharing,
    /// The current protection.
    pub protection: Protection,
    /// The maximum protection: the current one may never exceed it. A
    /// shared mapping of a file not open for writing may only have `Read`.
    pub max_protection: Protection,
    /// A shared mapping may write pages past the file's end (growing it).
    /// Without it, a shared mapping's pages wholly past the end when it is
    /// mapped are read-only, with maximum protection read: they read as
    /// zeros, and a write there is refused ([`VmError::WriteProtect`];
    /// `make_read_write` says why; in transparent mode a plain store there
    /// aborts the process, saying why) instead of being lost. Decided when
    /// mapping: they stay read-only if the file grows later. (The bytes
    /// past the end in the file's last page are writable and never
    /// written.)
    pub allow_grow: bool,
    /// The swap cache, for slow or remote files (shared mappings): a
    /// clean page evicted keeps a copy in its slot of the volume, and its
    /// next fault reads that, not the file. See the module doc for what
    /// invalidates the copies.
    pub swap_cache: bool,
}

impl MapFile {
    /// `pages` pages from the start of the file `name`, `sharing`,
    /// read-write (maximum read-write), the file not grown.
    pub fn new(name: impl Into<PathBuf>, pages: u64, sharing: Sharing) -> MapFile {
        MapFile {
            name: name.into(),
            offset: 0,
            pages,
            sharing,
            protection: Protection::ReadWrite,
            max_protection: Protection::ReadWrite,
            allow_grow: false,
            swap_cache: false,
        }
    }
}

/// The pieces a long direct read of a mapped file goes in
/// ([`MappedFile::read_pages_in_pieces`]): 64 pages of 4 KiB. Measured
/// (`bench out-of-core --sides vm-mapped,kernel --workloads uniform-fit`,
/// one thread, alternating): 512 KiB pieces took 91–106 ms at 128 MiB
/// where one read took 111–129, and 128–256 KiB did better still (the
/// first piece's commit, which nothing hides, is smaller; reads of two
/// pieces or more go in pieces); 64 KiB was no better than 512.
const PIECE_BYTES: usize = 256 * 1024;

/// A mapped file: the file, how it is mapped, and its counters. Shared by
/// the entries of its mapping (an entry splits when part of it is freed).
#[derive(Debug)]
pub(crate) struct MappedFile {
    file: File,
    pub(crate) name: PathBuf,
    pub(crate) sharing: Sharing,
    /// Bytes of the file when it was mapped.
    pub(crate) len_at_map: u64,
    allow_grow: bool,
    page_size: usize,
    /// The file is open `O_DIRECT`: a long read goes in pieces
    /// ([`MappedFile::read_pages_in_pieces`]).
    direct: bool,
    /// The swap cache is on (a shared mapping only), and still valid: the
    /// file's stamp has not changed since it was mapped.
    swap_cache: AtomicBool,
    /// The file's modification and change times and size when it was
    /// mapped, or after this VM's last write to it: the swap cache's
    /// copies are the file's as long as they hold.
    stamp: parking_lot::Mutex<Stamp>,
    /// The file's device and inode: what says two mappings are of one
    /// file (virtual copy's places are keyed by it).
    pub(crate) identity: (u64, u64),
    /// Pages read from the file, written to it.
    pub(crate) page_ins: AtomicU64,
    pub(crate) page_outs: AtomicU64,
    /// Reads made by [`MappedFile::read_pages_in_pieces`] in pieces.
    pub(crate) reads_in_pieces: AtomicU64,
    /// Read-around (see [`MappedFile::read_around`]): pages it brought in
    /// that were used before the clock first came to them, and pages that
    /// were not (both halved now and then, so that a change of pattern
    /// shows); faults while it is off (every 256th probes).
    around_used: AtomicU64,
    around_wasted: AtomicU64,
    around_off_faults: AtomicU64,
    /// A read-around's read failed (the file shrank, or an I/O error):
    /// read-around is off, probing every 256th fault, until new advice.
    around_failed: AtomicBool,
}

impl MappedFile {
    /// `file` as `how` maps it, with pages of `page_size` bytes; `Err` if
    /// `how` asks for more than the file's open mode allows.
    pub(crate) fn new(file: File, how: &MapFile, page_size: usize) -> Result<MappedFile, VmError> {
        let config = |reason: String| VmError::BadArgument {
            call: "map_file",
            reason: format!("{}: {reason}", how.name.display()),
        };
        if !how.offset.is_multiple_of(page_size as u64) {
            return Err(config(format!(
                "offset {} is not a multiple of the page size {page_size}",
                how.offset
            )));
        }
        if how.protection > how.max_protection {
            return Err(config(
                "the protection asked for is above the maximum asked for".into(),
            ));
        }
        let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| VmError::File {
            what: "inspecting",
            path: how.name.clone(),
            offset: 0,
            source: e.into(),
        })?;
        let mode = flags & rustix::fs::OFlags::RWMODE;
        let readable = mode != rustix::fs::OFlags::WRONLY;
        let writable = mode != rustix::fs::OFlags::RDONLY;
        let writes_back =
            how.sharing == Sharing::Shared && how.max_protection == Protection::ReadWrite;
        if !readable {
            return Err(config("the file is open for writing only".into()));
        }
        if writes_back && !writable {
            return Err(config(
                "a file open read-only can only be mapped shared with maximum protection read"
                    .into(),
            ));
        }
        if writes_back && flags.contains(rustix::fs::OFlags::APPEND) {
            // `pwrite` on it would append, whatever the offset (the kernel's
            // `mmap` refuses it too).
            return Err(config(
                "a file open for appending cannot be mapped shared and writable".into(),
            ));
        }
        let metadata = file.metadata().map_err(|e| VmError::File {
            what: "inspecting",
            path: how.name.clone(),
            offset: 0,
            source: e,
        })?;
        let len_at_map = metadata.len();
        if writes_back
            && flags.contains(rustix::fs::OFlags::DIRECT)
            && !how.allow_grow
            && !len_at_map.is_multiple_of(page_size as u64)
        {
            // Its last page could only be written back in part, which
            // direct I/O refuses.
            return Err(config(format!(
                "the file is open O_DIRECT and its size ({len_at_map} bytes) is not a whole \
                 number of pages: map it with allow_grow, or open it without O_DIRECT"
            )));
        }
        Ok(MappedFile {
            file,
            name: how.name.clone(),
            sharing: how.sharing,
            len_at_map,
            allow_grow: how.allow_grow,
            direct: flags.contains(rustix::fs::OFlags::DIRECT),
            page_size,
            swap_cache: AtomicBool::new(how.swap_cache && how.sharing == Sharing::Shared),
            stamp: parking_lot::Mutex::new(stamp_of(&metadata)),
            identity: (metadata.dev(), metadata.ino()),
            page_ins: AtomicU64::new(0),
            page_outs: AtomicU64::new(0),
            reads_in_pieces: AtomicU64::new(0),
            around_used: AtomicU64::new(0),
            around_wasted: AtomicU64::new(0),
            around_off_faults: AtomicU64::new(0),
            around_failed: AtomicBool::new(false),
        })
    }

    /// Whether a page of this mapping that has a copy in the volume may be
    /// read from there: always for a private mapping (the copy is the
    /// page's own, made at its first write-back); for a shared one, while
    /// its swap cache is valid — the file's stamp (checked here, once per
    /// such fault) unchanged since it was mapped. Once the stamp changes,
    /// the cache is off for good and every page comes from the file.
    pub(crate) fn volume_copy_valid(&self) -> bool {
        if self.sharing == Sharing::Private {
            return true;
        }
        if !self.swap_cache.load(Ordering::Acquire) {
            return false;
        }
        let same = self
            .file
            .metadata()
            .is_ok_and(|m| stamp_of(&m) == *self.stamp.lock());
        if !same {
            self.swap_cache.store(false, Ordering::Release);
        }
        same
    }

    /// Whether a clean page of this mapping evicted without a copy in the
    /// volume gets one there (the swap cache is on and valid).
    pub(crate) fn caches(&self) -> bool {
        self.sharing == Sharing::Shared && self.volume_copy_valid()
    }

    /// Whether a fault on one of this mapping's pages under `Normal`
    /// advice reads around it (the pages around it, in one `pread`), as the
    /// kernel's page cache does for a mapped file: on while the pages it
    /// brings in get used — at least one in five of those the clock has
    /// come to (learning: on for the first 64) — and off otherwise but for
    /// every 256th fault, which probes whether the pattern changed.
    pub(crate) fn read_around(&self) -> bool {
        let used = self.around_used.load(Ordering::Relaxed);
        let wasted = self.around_wasted.load(Ordering::Relaxed);
        if !self.around_failed.load(Ordering::Relaxed) && (used + wasted < 64 || wasted <= 4 * used)
        {
            return true;
        }
        self.around_off_faults
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(256)
    }

    /// Read-around learns afresh whether it pays (new advice on the
    /// mapping: a new phase).
    pub(crate) fn new_phase(&self) {
        self.around_used.store(0, Ordering::Relaxed);
        self.around_wasted.store(0, Ordering::Relaxed);
        self.around_failed.store(false, Ordering::Relaxed);
    }

    /// A read-around's read failed: each one would evict for its window
    /// and fail again (a file truncated under the mapping), so read-around
    /// stops but for every 256th fault, until new advice.
    pub(crate) fn around_failed(&self) {
        self.around_failed.store(true, Ordering::Relaxed);
        // The next probe 256 faults from now, not at the next fault.
        self.around_off_faults.store(1, Ordering::Relaxed);
    }

    /// The clock came to a page read around: `used` if it was referenced
    /// since it came in.
    pub(crate) fn around_outcome(&self, used: bool) {
        let counter = if used {
            &self.around_used
        } else {
            &self.around_wasted
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let (u, w) = (
            self.around_used.load(Ordering::Relaxed),
            self.around_wasted.load(Ordering::Relaxed),
        );
        if u + w > 4096 {
            self.around_used.store(u / 2, Ordering::Relaxed);
            self.around_wasted.store(w / 2, Ordering::Relaxed);
        }
    }

    /// The file's length now.
    fn len_now(&self, offset: u64) -> Result<u64, VmError> {
        Ok(self
            .file
            .metadata()
            .map_err(|source| self.error("inspecting", offset, source))?
            .len())
    }

    fn error(&self, what: &'static str, offset: u64, source: std::io::Error) -> VmError {
        VmError::File {
            what,
            path: self.name.clone(),
            offset,
            source,
        }
    }

    /// Reads the file's pages from `file_page` into `buf` (whole pages):
    /// zeros past the file's end as mapped; an error if the file ends
    /// before that now.
    pub(crate) fn read_pages(&self, file_page: u64, buf: &mut [u8]) -> Result<(), VmError> {
        self.read(file_page, buf, false)
    }

    /// [`MappedFile::read_pages`] into memory that may not be committed
    /// yet (a read-around into its pages' own addresses): where the file is
    /// open `O_DIRECT` and the read is two pieces or more, in pieces of
    /// [`PIECE_BYTES`] kept in flight, each committed while the ones before
    /// it are read (`disk_channel::read_in_pieces`: the commit is a third
    /// of such a read's time here). The same bytes and errors either way.
    pub(crate) fn read_pages_in_pieces(
        &self,
        file_page: u64,
        buf: &mut [u8],
    ) -> Result<(), VmError> {
        self.read(file_page, buf, true)
    }

    /// Both reads: in pieces where `uncommitted` memory and the file say
    /// so, else as one plain read (a short read is the file's end: another
    /// read there would be at an offset direct I/O may refuse).
    fn read(&self, file_page: u64, buf: &mut [u8], uncommitted: bool) -> Result<(), VmError> {
        let offset = file_page * self.page_size as u64;
        let piece = (PIECE_BYTES / self.page_size).max(1) * self.page_size;
        let in_pieces = uncommitted && self.direct && buf.len() >= 2 * piece;
        let done = if in_pieces {
            disk_channel::read_in_pieces(
                &self.file,
                offset,
                buf,
                piece,
                disk_channel::IoEngine::Auto,
                &mut |part| crate::sys::region::populate(part),
            )
        } else {
            let whole = buf.len().max(1);
            disk_channel::read_in_pieces(
                &self.file,
                offset,
                buf,
                whole,
                disk_channel::IoEngine::Threads,
                &mut |_| {},
            )
        }
        .map_err(|e| self.error("reading", e.offset, e.source))?;
        if in_pieces {
            self.reads_in_pieces.fetch_add(1, Ordering::Relaxed);
        }
        buf[done..].fill(0);
        // What the pages held of the file when it was mapped must be there.
        let expected = self.len_at_map.saturating_sub(offset).min(buf.len() as u64);
        if (done as u64) < expected {
            return Err(VmError::FileTruncated {
                path: self.name.clone(),
                offset: offset + done as u64 / self.page_size as u64 * self.page_size as u64,
                len: self.len_now(offset)?,
            });
        }
        self.page_ins
            .fetch_add((buf.len() / self.page_size) as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Writes `bytes` (whole pages) to the file from its page `file_page`:
    /// all of them if the mapping may grow the file, else only up to the
    /// file's end as mapped. An error if that part is past the file's end
    /// now.
    pub(crate) fn write_pages(&self, file_page: u64, bytes: &[u8]) -> Result<(), VmError> {
        let offset = file_page * self.page_size as u64;
        let len = if self.allow_grow {
            bytes.len()
        } else {
            self.len_at_map
                .saturating_sub(offset)
                .min(bytes.len() as u64) as usize
        };
        if len == 0 {
            return Ok(());
        }
        if !self.allow_grow {
            let now = self.len_now(offset)?;
            if now < offset + len as u64 {
                return Err(VmError::FileTruncated {
                    path: self.name.clone(),
                    offset: offset.max(now / self.page_size as u64 * self.page_size as u64),
                    len: now,
                });
            }
        }
        // With the swap cache on: a change by someone else since the last
        // look turns it off before this write hides it; this write's own
        // change to the file's times is taken as the new stamp after.
        let stamp = self
            .swap_cache
            .load(Ordering::Acquire)
            .then(|| self.stamp.lock());
        if let Some(stamp) = &stamp {
            let same = self.file.metadata().is_ok_and(|m| stamp_of(&m) == **stamp);
            if !same {
                self.swap_cache.store(false, Ordering::Release);
            }
        }
        self.file
            .write_all_at(&bytes[..len], offset)
            .map_err(|e| self.error("writing", offset, e))?;
        self.page_outs
            .fetch_add((bytes.len() / self.page_size) as u64, Ordering::Relaxed);
        if let Some(mut stamp) = stamp
            && self.swap_cache.load(Ordering::Acquire)
        {
            match self.file.metadata() {
                Ok(m) => *stamp = stamp_of(&m),
                Err(_) => self.swap_cache.store(false, Ordering::Release),
            }
        }
        Ok(())
    }

    /// Makes what was written to the file durable (`fdatasync`).
    pub(crate) fn sync(&self) -> Result<(), VmError> {
        self.file
            .sync_data()
            .map_err(|e| self.error("syncing", 0, e))
    }
}

/// One entry: `count` pages from its start, mapping `file` from its page
/// `file_page`.
#[derive(Clone, Debug)]
struct Entry {
    count: u64,
    file: Arc<MappedFile>,
    file_page: u64,
}

/// Where a page's contents come from (see the module doc).
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// An anonymous interval: the volume, or zeros.
    Anonymous,
    /// A file mapping: the file and the file's page.
    File(Arc<MappedFile>, u64),
}

/// The file mappings and the maximum protections of a space (m).
#[derive(Debug, Default)]
pub(crate) struct FileMaps {
    /// By first page.
    entries: BTreeMap<u64, Entry>,
    /// Pages read around a fault (not asked for) that the clock has not
    /// come to since: their mapping's file, to tell it whether they were
    /// used.
    around: std::collections::HashMap<u64, Arc<MappedFile>>,
    /// Extents (first page → pages) whose maximum protection is read, and
    /// why.
    read_only_max: BTreeMap<u64, (u64, Arc<str>)>,
    /// Wired memory (`map_memory`): first page → pages, whether the object
    /// was mapped writable (its maximum). Never paged, never written back.
    wired: BTreeMap<u64, (u64, bool)>,
}

/// The extents of `map` overlapping `[start, end)`, as `(first, count)`.
fn overlapping<V>(
    map: &BTreeMap<u64, V>,
    start: u64,
    end: u64,
    count: impl Fn(&V) -> u64,
) -> Vec<u64> {
    let mut firsts: Vec<u64> = map
        .range(..start)
        .next_back()
        .filter(|(s, v)| **s + count(v) > start)
        .map(|(s, _)| *s)
        .into_iter()
        .collect();
    firsts.extend(map.range(start..end).map(|(s, _)| *s));
    firsts
}

/// Removes `[start, end)` from the extents of `map`, splitting those that
/// reach past it; `split(value, pages)` is what the part `pages` pages
/// into an extent keeps.
fn cut<V: Clone>(
    map: &mut BTreeMap<u64, V>,
    start: u64,
    end: u64,
    count: impl Fn(&V) -> u64,
    with_count: impl Fn(&V, u64, u64) -> V,
) {
    for first in overlapping(map, start, end, &count) {
        let value = map.remove(&first).expect("listed");
        let last = first + count(&value);
        if first < start {
            map.insert(first, with_count(&value, 0, start - first));
        }
        if last > end {
            map.insert(end, with_count(&value, end - first, last - end));
        }
    }
}

impl FileMaps {
    /// Maps `file` at the interval `[start, start + count)`, from its page
    /// `file_page`. The interval was just allocated (no entry overlaps it).
    pub(crate) fn insert(&mut self, start: u64, count: u64, file: Arc<MappedFile>, file_page: u64) {
        self.entries.insert(
            start,
            Entry {
                count,
                file,
                file_page,
            },
        );
    }

    /// Where page `page`'s contents come from.
    pub(crate) fn source_of(&self, page: u64) -> Source {
        match self.entries.range(..=page).next_back() {
            Some((&start, e)) if page < start + e.count => {
                Source::File(e.file.clone(), e.file_page + (page - start))
            }
            _ => Source::Anonymous,
        }
    }

    /// Whether pages `page` and `page + 1` are consecutive pages of one
    /// mapping (so of one file, at consecutive file pages).
    pub(crate) fn continues(&self, page: u64) -> bool {
        matches!(self.entries.range(..=page).next_back(),
            Some((&start, e)) if page + 1 < start + e.count)
    }

    /// The file and file page `page` is written back to, if it is in a
    /// shared mapping.
    pub(crate) fn shared_target(&self, page: u64) -> Option<(Arc<MappedFile>, u64)> {
        match self.source_of(page) {
            Source::File(file, at) if file.sharing == Sharing::Shared => Some((file, at)),
            _ => None,
        }
    }

    /// Whether page `page`, clean and evicted with no copy in the volume,
    /// gets one there (its mapping's swap cache is on and valid).
    pub(crate) fn caches(&self, page: u64) -> bool {
        matches!(self.source_of(page), Source::File(file, _) if file.caches())
    }

    /// Records wired memory at `[start, start + count)`.
    pub(crate) fn insert_wired(&mut self, start: u64, count: u64, writable: bool) {
        self.wired.insert(start, (count, writable));
    }

    /// Whether any page of `[start, end)` is wired memory.
    pub(crate) fn any_wired(&self, start: u64, end: u64) -> bool {
        !self.wired.is_empty() && !overlapping(&self.wired, start, end, |w| w.0).is_empty()
    }

    /// The wired mapping `[start, end)` is all of, if it is all of one:
    /// whether it may be writable.
    pub(crate) fn wired_whole(&self, start: u64, end: u64) -> Option<bool> {
        self.wired
            .get(&start)
            .filter(|(count, _)| start + count == end)
            .map(|&(_, writable)| writable)
    }

    /// The wired mapping `[start, end)` lies inside, if it lies inside
    /// one: its first page, pages and whether it may be writable.
    pub(crate) fn wired_around(&self, start: u64, end: u64) -> Option<(u64, u64, bool)> {
        let (&first, &(count, writable)) = self.wired.range(..=start).next_back()?;
        (end <= first + count).then_some((first, count, writable))
    }

    /// Forgets the wired mapping at `start` (freed).
    pub(crate) fn remove_wired(&mut self, start: u64) {
        self.wired.remove(&start);
    }

    /// Whether any mapping is shared.
    pub(crate) fn has_shared(&self) -> bool {
        self.entries
            .values()
            .any(|e| e.file.sharing == Sharing::Shared)
    }

    /// Whether any page of `[start, end)` is in a shared mapping.
    pub(crate) fn any_shared(&self, start: u64, end: u64) -> bool {
        overlapping(&self.entries, start, end, |e| e.count)
            .iter()
            .any(|first| self.entries[first].file.sharing == Sharing::Shared)
    }

    /// The distinct files mapped shared (to sync at `flush`).
    pub(crate) fn shared_files(&self) -> Vec<Arc<MappedFile>> {
        self.files()
            .filter(|f| f.sharing == Sharing::Shared)
            .cloned()
            .collect()
    }

    /// The distinct files mapped (an entry split in two shares its file).
    pub(crate) fn files(&self) -> impl Iterator<Item = &Arc<MappedFile>> {
        let mut seen: Vec<*const MappedFile> = Vec::new();
        self.entries.values().filter_map(move |e| {
            let at = Arc::as_ptr(&e.file);
            (!seen.contains(&at)).then(|| {
                seen.push(at);
                &e.file
            })
        })
    }

    /// Every mapping entry: (interval, file).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (Interval, &Arc<MappedFile>)> {
        self.entries
            .iter()
            .map(|(&start, e)| (Interval::new(start, e.count), &e.file))
    }

    /// Pages `pages` were read around a fault on a page of `file`'s
    /// mapping (see [`MappedFile::read_around`]); at most `limit` such
    /// pages are followed (a bound on the table: past it, it starts anew).
    pub(crate) fn read_around(
        &mut self,
        file: &Arc<MappedFile>,
        pages: std::ops::Range<u64>,
        limit: usize,
    ) {
        if self.around.len() + (pages.end - pages.start) as usize > limit {
            self.around.clear();
        }
        for page in pages {
            self.around.insert(page, file.clone());
        }
    }

    /// Stops following pages `pages` read around (their read failed: they
    /// are absent again).
    pub(crate) fn forget_around(&mut self, pages: std::ops::Range<u64>) {
        if !self.around.is_empty() {
            self.around.retain(|p, _| !pages.contains(p));
        }
    }

    /// The clock came to resident page `page`, `referenced` or not: if it
    /// was read around, its file hears whether it was used.
    pub(crate) fn swept(&mut self, page: u64, referenced: bool) {
        if self.around.is_empty() {
            return;
        }
        if let Some(file) = self.around.remove(&page) {
            file.around_outcome(referenced);
        }
    }

    /// New advice on `[start, end)`: the read-around of the files mapped
    /// there learns afresh.
    pub(crate) fn new_phase(&mut self, start: u64, end: u64) {
        self.forget_around(start..end);
        for first in overlapping(&self.entries, start, end, |e| e.count) {
            self.entries[&first].file.new_phase();
        }
    }

    /// Forgets the mappings and maximum protections of `[start, end)` (it
    /// was freed).
    pub(crate) fn remove(&mut self, start: u64, end: u64) {
        self.forget_around(start..end);
        cut(
            &mut self.entries,
            start,
            end,
            |e| e.count,
            |e, from, count| Entry {
                count,
                file: e.file.clone(),
                file_page: e.file_page + from,
            },
        );
        self.cut_read_only_max(start, end);
    }

    /// Forgets the maximum protections of `[start, end)`.
    fn cut_read_only_max(&mut self, start: u64, end: u64) {
        cut(
            &mut self.read_only_max,
            start,
            end,
            |v| v.0,
            |v, _, count| (count, v.1.clone()),
        );
    }

    /// Lowers the maximum protection of `[start, end)` to read, saying why.
    pub(crate) fn restrict(&mut self, start: u64, end: u64, why: &str) {
        self.cut_read_only_max(start, end);
        self.read_only_max.insert(start, (end - start, why.into()));
    }

    /// The first part of `[start, end)` whose maximum protection is read,
    /// and why, if any.
    pub(crate) fn read_only_max_in(&self, start: u64, end: u64) -> Option<(Interval, String)> {
        let first = *overlapping(&self.read_only_max, start, end, |v| v.0).first()?;
        let (count, why) = &self.read_only_max[&first];
        let from = first.max(start);
        let to = (first + count).min(end);
        Some((Interval::new(from, to - from), why.to_string()))
    }

    /// Whether page `page`'s maximum protection is read.
    pub(crate) fn max_is_read(&self, page: u64) -> bool {
        self.read_only_max_in(page, page + 1).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(sharing: Sharing) -> Arc<MappedFile> {
        let f = tempfile::tempfile().unwrap();
        Arc::new(MappedFile::new(f, &MapFile::new("t", 4, sharing), 4096).unwrap())
    }

    #[test]
    fn freeing_the_middle_of_a_mapping_splits_it_and_keeps_file_offsets() {
        let mut maps = FileMaps::default();
        maps.insert(10, 8, file(Sharing::Shared), 100);
        maps.remove(12, 15);
        assert!(matches!(maps.source_of(11), Source::File(_, 101)));
        assert!(matches!(maps.source_of(12), Source::Anonymous));
        assert!(matches!(maps.source_of(14), Source::Anonymous));
        assert!(matches!(maps.source_of(15), Source::File(_, 105)));
        assert!(matches!(maps.source_of(17), Source::File(_, 107)));
        assert!(matches!(maps.source_of(18), Source::Anonymous));
        assert!(matches!(maps.source_of(9), Source::Anonymous));
        assert!(maps.any_shared(0, 11) && !maps.any_shared(12, 15));
    }

    #[test]
    fn maximum_protections_are_cut_and_found_by_range() {
        let mut maps = FileMaps::default();
        maps.restrict(5, 10, "why");
        assert_eq!(
            maps.read_only_max_in(0, 7),
            Some((Interval::new(5, 2), "why".into()))
        );
        assert!(maps.read_only_max_in(10, 20).is_none());
        maps.remove(6, 8);
        assert!(maps.max_is_read(5) && !maps.max_is_read(6) && !maps.max_is_read(7));
        assert!(maps.max_is_read(8) && maps.max_is_read(9));
    }
}
