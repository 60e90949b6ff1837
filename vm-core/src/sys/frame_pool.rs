//! Frames in passage (copying mode): a small pool of committed pages that
//! a run's read lands in and an evicted run's memory goes back to, moved
//! to and from the pages' addresses with `UFFDIO_MOVE`.
//!
//! # Why
//!
//! Without it, every page a transfer brings in is fresh anonymous memory
//! — the kernel allocates it, zeroes it and charges it to the memory
//! cgroup while the direct read pins it — and every page evicted is given
//! back with `madvise(MADV_DONTNEED)`, which frees it again. The page
//! cache reuses its pages instead. Measured on this machine (a scratch
//! program, 128 MiB read in 1 MiB runs into memory released after each
//! run): with `O_DIRECT`, 3.4–3.7 µs a page that way against 1.6–2.6 µs
//! reading into committed pages moved in and out with `UFFDIO_MOVE`
//! (1.5–2.2 µs with no move at all); from the page cache 1.4 against 0.8
//! µs. For single pages the two cost the same (two `ioctl`s against a
//! fault and an `madvise`), so only runs of [`MIN_RUN`] pages or more
//! come through the pool; a page alone keeps the plain path. (Tried with
//! single pages too, `bench fault-path`: a fault took 3,667 ns against
//! 1,903, and two threads made 0.12× one thread's faults — the pool's
//! lock and a TLB shootdown per move — where the plain path makes 1.16×.)
//!
//! # How
//!
//! The region and the pool are registered on one `userfaultfd` for
//! write-protect faults only (`Uffd::register_for_moves`), which leaves
//! them ordinary anonymous memory — nothing is ever write-protected, a
//! missing page is zero-filled by the kernel — and lets `UFFDIO_MOVE`
//! move pages into them. A slot of the pool is *full* (its page present)
//! or empty; a read takes a run of full slots where it finds one
//! ([`FramePool::lease_for_read`]), reads into it and moves the run to
//! its pages' addresses ([`FramePool::move_in`]); an eviction moves a run
//! into empty slots ([`FramePool::move_out`]). The pool holds at most its
//! slots' worth of memory beyond the budget (`VmConfig::frame_pool_pages`:
//! an eighth of the budget, at least 16 and at most 2,048 pages) and never
//! more: an eviction that finds no empty run gives its memory back as
//! before.
//!
//! # Huge-page chunks
//!
//! Where pages are 4 KiB and the pool has 512 slots or more
//! (`VmConfig::huge_pool_chunks`, on by default), its slots come in 2 MiB
//! chunks advised `MADV_HUGEPAGE` (the pool only: the region stays
//! `MADV_NOHUGEPAGE`, so the budget's bound holds). A read of 255 pages or
//! more (`CHUNK_MIN_RUN`) that finds no run of full slots takes the idle
//! chunk with the fewest pages, gives those back and commits the chunk at
//! once as one huge page ([`FramePool::commit_chunk`]); its pages stay
//! physically contiguous after the moves split the huge page, and an
//! evicted run moves back into the pool in the same order, so the next run
//! read into it is contiguous again.
//!
//! Why: this machine's disk (virtio, `max_segments` 254, a ring of 256
//! descriptors) takes a 1 MiB direct read into 256 scattered pages as two
//! 512 KiB requests *one after the other* (`block_rq_issue`: the second
//! issued when the first completes), and one into contiguous memory as one
//! request. Measured with a scratch program reading 512 MiB in 1 MiB
//! direct reads: 343–376 µs a read into a huge page, 437–630 µs into
//! committed small pages, 774–955 µs into memory released after each read;
//! through the VM's scan, 650 µs a read before, 490–530 µs after. The
//! kernel's page cache has the same advantage: its read-ahead issues 4 MiB
//! requests from large folios. Zero runs take no chunk: a page of zeros
//! in a huge page being split is replaced by the shared zero page, and the
//! first store to it would fault after all. A chunk is split into small
//! pages right after its commit (its last page moved out and back: the
//! pages stay where they are), while no read pins it: two reads into one
//! huge page would each pin it, the kernel then refuses to split it, and
//! their moves would all fail. A chunk the kernel would not split stays
//! *whole*, and the run read into it holds all of it until the run has
//! moved. (`khugepaged` may collapse a split chunk again while it waits:
//! then two reads sharing it have their moves refused and their pages are
//! copied — right, but slower.) A thread about to wait for a read in
//! flight (a scan that caught up with its read-ahead) commits the next
//! chunk ahead ([`FramePool::prepare`]), so that the zeroing overlaps the
//! transfer instead of delaying the next one: fresh huge pages are slow to
//! zero on this virtual machine (a scratch program: 4.7 ms for 2 MiB of
//! memory the host had taken back, 0.26 ms for memory just freed; 0.8–1.2
//! ms for 2 MiB of small pages). The pool checks once, on its first
//! chunk, that the kernel gives a huge page at the first store and again
//! after a split and a release (`MADV_DONTNEED` over a whole chunk frees
//! its page table only from Linux 6.14 on x86-64); where it does not, the
//! pool has no chunks.
//!
//! A child made by `fork` inherits the descriptor, and a move through it
//! acts on the memory of the process that made it: in any other process
//! the pool is not used (every transfer takes the plain path there).
//!
//! Whatever the kernel refuses is done the plain way, never lost: a page
//! that will not move in (still pinned by its read, after a wait where the
//! caller holds no lock; or a destination present) is copied; one that
//! will not move out is released
//! by the caller. The slots' full/empty marks are hints for choosing runs
//! — a wrong one costs a fallback, not a wrong byte: every byte moved in
//! was written by the read first.

use super::mapping::Mapping;
use super::uffd::Uffd;
use crate::error::VmError;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Runs shorter than this take the plain path (see the module docs).
pub(crate) const MIN_RUN: u64 = 2;

/// The longest a run's move waits for its read's pin to go before its
/// pages are copied instead (see [`FramePool::wait_for_unpin`]).
const PIN_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// Slots in a huge-page chunk: 2 MiB of 4 KiB pages.
const CHUNK_SLOTS: usize = 512;
const CHUNK_BYTES: usize = 2 << 20;

/// Runs shorter than this take no chunk: up to 254 pages are one request
/// to this machine's disk in any memory (`max_segments` 254), so a chunk
/// would only cost its commit — up to 4.7 ms here for a fresh huge page —
/// for little (measured: a mapped file's read-around, 128 pages at random,
/// `bench out-of-core --sides vm-mapped` uniform-fit, 0.043-0.091 s with
/// chunks against 0.046-0.048 without). A read-ahead cluster (256 pages)
/// takes one; a mapped file's read-around (up to 511) only one committed
/// already ([`RunUse::ReadReady`]).
const CHUNK_MIN_RUN: usize = 255;

/// What a run leased from the pool is for ([`FramePool::lease_for_read`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunUse {
    /// A read: into full slots, a chunk committed ahead, a chunk committed
    /// now (a long run), or empty slots.
    Read,
    /// A read that waits for no huge-page chunk's commit: into full slots,
    /// a chunk committed ahead, or — in a pool without chunks — empty
    /// slots; else none (the caller reads straight into its pages).
    /// Committing a chunk costs its zeroing in the read's time: 0.26–5 ms
    /// for 2 MiB on this machine, where a 2 MiB read takes about 1.2 ms;
    /// and empty slots of a chunk may be committed as a huge page by the
    /// read itself. (Measured for a mapped file's read-around, which uses
    /// it: committing the next chunk on the read-ahead thread meanwhile
    /// did no better alone — uniform-fit 1.02–1.20× the kernel against
    /// 0.94–1.18× without — and worse after a random workload, 43–49 ms
    /// against 38–41, the two cores being shared; not kept.)
    ReadReady,
    /// Zeros: full slots only (committed memory, zeroed and moved in
    /// whole), never a chunk or empty slots.
    Zeros,
}

/// The pool of a copying-mode region.
#[derive(Debug)]
pub(crate) struct FramePool {
    uffd: Uffd,
    mapping: Mapping,
    /// Where slot 0 is in the mapping: its start rounded up to a huge page
    /// where the pool has huge-page chunks.
    offset: usize,
    page_size: usize,
    slots: usize,
    /// The whole huge-page chunks of [`CHUNK_SLOTS`] slots at the start
    /// of the pool (none where pages are not 4 KiB, the pool is smaller,
    /// or the kernel will not give huge pages).
    chunks: usize,
    /// The process that made the pool: a child made by `fork` inherits
    /// the descriptor, whose moves act on the *parent's* memory, so in any
    /// other process the pool is not used (`usable`).
    owner: u32,
    marks: Mutex<Marks>,
    /// Pages moved into the region from the pool.
    pub(crate) moved_in: AtomicU64,
    /// Pages moved out of the region into the pool.
    pub(crate) moved_out: AtomicU64,
    /// Pages that would not move in and were copied instead.
    pub(crate) copied_in: AtomicU64,
    /// Moves the kernel refused, either way (each ends a move early: in,
    /// a page is copied; out, the rest of the run is given back).
    pub(crate) refused: AtomicU64,
    /// Chunks committed at once, as one huge page.
    pub(crate) chunks_committed: AtomicU64,
    /// Runs whose move waited for their read's pin to go (see
    /// [`FramePool::wait_for_unpin`]); those that still found it pinned
    /// were copied (`copied_in`).
    pub(crate) pin_waits: AtomicU64,
    /// Held while the page past the slots is used to split a chunk (see
    /// [`FramePool::commit_chunk`]).
    spare: Mutex<()>,
}

/// One bit a slot: whether its page is present, whether a transfer holds
/// it.
#[derive(Debug)]
struct Marks {
    full: Vec<u64>,
    busy: Vec<u64>,
    /// Per chunk: committed as one huge page and not split since (every
    /// slot full). A run read into it holds the whole chunk until it has
    /// moved: a second read would pin the huge page, and the kernel
    /// refuses to split a pinned huge page, so the first run's moves
    /// would fail.
    whole: Vec<bool>,
}

/// A run of slots held by one transfer; dropped without
/// [`FramePool::move_in`] (a read that failed or panicked), its slots are
/// free again, counted full (the read may have committed them).
#[derive(Debug)]
pub(crate) struct Lease<'a> {
    pool: &'a FramePool,
    first: usize,
    count: usize,
    /// The whole chunk the run lies in, held with it until it moves in or
    /// is dropped (see `Marks::whole`).
    chunk: Option<usize>,
}

impl Lease<'_> {
    /// The slots the lease holds busy: its run, or its whole chunk.
    fn held(&self) -> (usize, usize) {
        match self.chunk {
            Some(chunk) => (chunk * CHUNK_SLOTS, CHUNK_SLOTS),
            None => (self.first, self.count),
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut marks = self.pool.marks.lock();
        Marks::set(&mut marks.full, self.first, self.count, true);
        let (first, count) = self.held();
        Marks::set(&mut marks.busy, first, count, false);
    }
}

impl Marks {
    /// The words of huge-page chunk `chunk`.
    fn chunk_words(chunk: usize) -> std::ops::Range<usize> {
        chunk * CHUNK_SLOTS / 64..(chunk + 1) * CHUNK_SLOTS / 64
    }

    /// All ones over the words of a whole chunk, else none.
    fn whole_mask(&self, w: usize) -> u64 {
        match self.whole.get(w * 64 / CHUNK_SLOTS) {
            Some(true) => u64::MAX,
            _ => 0,
        }
    }

    /// The first free run of `count` full slots outside whole chunks (the
    /// memory of evicted runs, or of chunks split).
    fn full_run(&self, slots: usize, count: usize) -> Option<usize> {
        Self::find(slots, count, |w| {
            self.full[w] & !self.busy[w] & !self.whole_mask(w)
        })
    }

    /// A whole chunk no transfer holds (committed ahead and not split).
    fn ready_chunk(&self, chunks: usize) -> Option<usize> {
        (0..chunks).find(|&c| self.whole[c] && self.chunk_idle(c))
    }

    /// The idle chunk (not whole) to commit: the one with the fewest
    /// pages, which it gives back.
    fn chunk_to_commit(&self, chunks: usize) -> Option<usize> {
        (0..chunks)
            .filter(|&c| !self.whole[c] && self.chunk_idle(c))
            .min_by_key(|&c| self.chunk_full(c))
    }

    /// Whether no transfer holds a slot of huge-page chunk `chunk`.
    fn chunk_idle(&self, chunk: usize) -> bool {
        Self::chunk_words(chunk).all(|w| self.busy[w] == 0)
    }

    /// How many slots of huge-page chunk `chunk` are full.
    fn chunk_full(&self, chunk: usize) -> u32 {
        Self::chunk_words(chunk)
            .map(|w| self.full[w].count_ones())
            .sum()
    }

    fn set(bits: &mut [u64], from: usize, count: usize, on: bool) {
        for i in from..from + count {
            if on {
                bits[i / 64] |= 1 << (i % 64);
            } else {
                bits[i / 64] &= !(1 << (i % 64));
            }
        }
    }

    /// The first run of `count` slots among `slots` for which `wanted`
    /// (a word of candidates from the word index) has every bit set.
    fn find(slots: usize, count: usize, wanted: impl Fn(usize) -> u64) -> Option<usize> {
        let mut run = 0;
        let mut i = 0;
        while i < slots {
            if i % 64 == 0 && i + 64 <= slots {
                match wanted(i / 64) {
                    0 => {
                        run = 0;
                        i += 64;
                        continue;
                    }
                    u64::MAX if run + 64 < count => {
                        run += 64;
                        i += 64;
                        continue;
                    }
                    _ => {}
                }
            }
            if wanted(i / 64) & (1 << (i % 64)) != 0 {
                run += 1;
                if run == count {
                    return Some(i + 1 - count);
                }
            } else {
                run = 0;
            }
            i += 1;
        }
        None
    }
}

/// Whether the page at `page` (page-aligned, of this process) is in
/// memory (`mincore`); `None` where the kernel will not say.
fn resident(page: *const u8) -> Option<bool> {
    let mut vec = [0u8; 1];
    // SAFETY: mincore reads no memory of the range, only its page table;
    // it writes one byte, into `vec`, for the one page asked about.
    let r = unsafe { libc::mincore(page.cast_mut().cast(), 1, vec.as_mut_ptr()) };
    (r == 0).then_some(vec[0] & 1 == 1)
}

/// Whether the mapping that holds `addr` has huge pages in it
/// (`AnonHugePages` in `/proc/self/smaps`); `None` where the kernel will
/// not say.
fn huge_backed(addr: *const u8) -> Option<bool> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let addr = addr as usize;
    let mut inside = false;
    for line in smaps.lines() {
        let range = line
            .split_whitespace()
            .next()
            .and_then(|r| r.split_once('-'));
        if let Some((start, end)) = range
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            inside = (start..end).contains(&addr);
        } else if inside && let Some(kb) = line.strip_prefix("AnonHugePages:") {
            let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().ok()?;
            return Some(kb > 0);
        }
    }
    None
}

/// The page-table entry of the page at `page` (`/proc/self/pagemap`: bit
/// 63 present, bit 62 swapped), if the kernel will say.
fn page_entry(page: *const u8) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open("/proc/self/pagemap").ok()?;
    let mut entry = [0u8; 8];
    let at = (page as u64 / rustix::param::page_size() as u64) * 8;
    file.read_exact_at(&mut entry, at).ok()?;
    Some(u64::from_le_bytes(entry))
}

impl FramePool {
    /// A pool of `slots` pages for the region `[base, base + len)`, with
    /// huge-page chunks if `huge_chunks` (and pages are 4 KiB, and there
    /// are 512 slots or more), or why the kernel will not have one (no
    /// `userfaultfd`, or no `UFFDIO_MOVE` before Linux 6.8).
    pub(crate) fn new(
        base: *mut u8,
        len: usize,
        slots: usize,
        page_size: usize,
        huge_chunks: bool,
    ) -> Result<FramePool, VmError> {
        let uffd = Uffd::open_with(false)?;
        // Huge-page chunks where a chunk is 512 pages (see the module doc);
        // the mapping is a chunk longer, so that slot 0 can start on a
        // chunk's boundary.
        let huge = huge_chunks && page_size * CHUNK_SLOTS == CHUNK_BYTES && slots >= CHUNK_SLOTS;
        let mapping = Mapping::new(
            slots * page_size + if huge { CHUNK_BYTES } else { 0 },
            "frame pool",
        )?;
        let offset = if huge {
            (mapping.base.as_ptr() as usize).next_multiple_of(CHUNK_BYTES)
                - mapping.base.as_ptr() as usize
        } else {
            0
        };
        let refused = |what: &str, e: rustix::io::Errno| VmError::TransparentUnavailable {
            reason: format!("{what} was refused: {e}"),
        };
        uffd.register_for_moves(base, len)
            .map_err(|e| refused("UFFDIO_REGISTER (write-protect) of the region", e))?;
        uffd.register_for_moves(mapping.base.as_ptr(), mapping.len)
            .map_err(|e| refused("UFFDIO_REGISTER (write-protect) of the frame pool", e))?;
        let words = slots.div_ceil(64);
        let mut pool = FramePool {
            uffd,
            mapping,
            offset,
            page_size,
            slots,
            chunks: 0,
            owner: super::futex::current_pid(),
            marks: Mutex::new(Marks {
                full: vec![0; words],
                busy: vec![0; words],
                whole: vec![false; slots / CHUNK_SLOTS],
            }),
            moved_in: AtomicU64::new(0),
            moved_out: AtomicU64::new(0),
            copied_in: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            chunks_committed: AtomicU64::new(0),
            pin_waits: AtomicU64::new(0),
            spare: Mutex::new(()),
        };
        // Probe the move itself (Linux 6.8 and later): one page from slot
        // 0 to slot 1 (the region asks for at least two slots).
        assert!(slots >= 2, "a frame pool of {slots} slots");
        let probe = pool.slot_ptr(0);
        // SAFETY: slot 0 is the pool's own and no one else uses it yet;
        // the store commits it.
        unsafe { probe.write_volatile(1) };
        // SAFETY: both are pages of the pool, held by this function alone;
        // slot 1 is missing, and the pool is registered.
        let (moved, result) = unsafe {
            pool.uffd
                .move_pages(pool.slot_ptr(1), probe, page_size, false)
        };
        result.map_err(|e| refused("UFFDIO_MOVE", e))?;
        if huge {
            // The probe's pages go (a chunk with a page in it is never
            // committed whole).
            // SAFETY: slots 0 and 1 are the pool's, unused; their contents
            // are no one's.
            let _ = unsafe {
                rustix::mm::madvise(
                    probe.cast(),
                    2 * page_size,
                    rustix::mm::Advice::LinuxDontNeed,
                )
            };
            pool.chunks = pool.huge_chunks_work(slots / CHUNK_SLOTS);
        } else if moved == page_size {
            let mut marks = pool.marks.lock();
            Marks::set(&mut marks.full, 1, 1, true);
        }
        Ok(pool)
    }

    /// Advises the first `chunks` chunks huge and checks, on chunk 0, that
    /// the kernel gives this pool what huge-page chunks need: a huge page
    /// at the first store, again after a move split it and the chunk was
    /// given back (which needs the kernel to free an empty page table,
    /// Linux 6.14 and later on x86-64). Returns `chunks`, or 0 (the advice
    /// undone) where it does not — transparent huge pages off, no huge
    /// page to be had, an older kernel: a chunk committed then would cost
    /// 512 small faults, more than the plain path.
    fn huge_chunks_work(&self, chunks: usize) -> usize {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        let pmd = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
        if thp.is_ok_and(|t| t.contains("[never]"))
            || pmd.map_or(true, |p| p.trim() != CHUNK_BYTES.to_string())
        {
            return 0;
        }
        let slot0 = self.slot_ptr(0);
        let advise = |advice| {
            // SAFETY: the chunks lie inside the mapping (slot 0 is
            // `offset` < a chunk in, which the mapping has in excess);
            // advice changes no contents. (The rest of the mapping keeps
            // the mapping's MADV_NOHUGEPAGE.)
            unsafe { rustix::mm::madvise(slot0.cast(), chunks * CHUNK_BYTES, advice) }
        };
        if advise(rustix::mm::Advice::LinuxHugepage).is_err() {
            return 0;
        }
        // A page of the mapping past the slots (it is a chunk longer than
        // they are): where chunk 0's first page moves to, which splits it.
        // SAFETY: offset + slots pages + a page <= the mapping's length.
        let spare = unsafe { slot0.add(self.slots * self.page_size) };
        let give_back = |at: *mut u8, len| {
            // SAFETY: a range of the pool's own mapping (chunk 0 or the
            // spare page), used by no one yet.
            let _ =
                unsafe { rustix::mm::madvise(at.cast(), len, rustix::mm::Advice::LinuxDontNeed) };
        };
        let huge_fault = || {
            // SAFETY: slot 0 is the pool's, unused yet.
            unsafe { slot0.write_volatile(1) };
            huge_backed(slot0) == Some(true)
        };
        // (The probe's page table goes too.)
        give_back(slot0, CHUNK_BYTES);
        let first = huge_fault();
        // SAFETY: slot 0 and the spare page are the pool's, unused; the
        // spare page is missing and the mapping registered.
        let (moved, _) = unsafe { self.uffd.move_pages(spare, slot0, self.page_size, false) };
        give_back(spare, self.page_size);
        give_back(slot0, CHUNK_BYTES);
        let again = moved == self.page_size && huge_fault();
        give_back(slot0, CHUNK_BYTES);
        if first && again {
            chunks
        } else {
            let _ = advise(rustix::mm::Advice::LinuxNoHugepage);
            0
        }
    }

    /// Re-registers part of the region after it was mapped over and given
    /// back (`Region::unmap_fd`). Best effort: where it fails, moves into
    /// those pages are refused (`EINVAL`) and copied instead.
    pub(crate) fn register_again(&self, start: *mut u8, len: usize) {
        if self.usable() {
            let _ = self.uffd.register_for_moves(start, len);
        }
    }

    /// Whether this process made the pool (see `owner`).
    fn usable(&self) -> bool {
        super::futex::current_pid() == self.owner
    }

    /// The pool's size in pages.
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    fn slot_ptr(&self, slot: usize) -> *mut u8 {
        assert!(slot < self.slots);
        // SAFETY: slot < slots, and the mapping is the slots plus a chunk
        // long when `offset` (< a chunk) is not 0: inside the mapping.
        unsafe {
            self.mapping
                .base
                .as_ptr()
                .add(self.offset + slot * self.page_size)
        }
    }

    /// A run of `count` slots for `used` (see [`RunUse`]): full ones if a
    /// run of them is free; else, for a read, a huge-page chunk committed
    /// ahead, or (`RunUse::Read`, a long run) one committed at once (see
    /// [`FramePool::commit_chunk`]); else, but for `RunUse::ReadReady`
    /// (in a pool with chunks) and `RunUse::Zeros`, any free run (its
    /// empty slots are committed by the read itself, as the region's pages
    /// would be); `None` if no run is free.
    pub(crate) fn lease_for_read(&self, count: usize, used: RunUse) -> Option<Lease<'_>> {
        // (A whole chunk's run could move a huge page into the region,
        // which is not advised huge: no run that long takes the pool.)
        if count > self.slots || (self.chunks > 0 && count >= CHUNK_SLOTS) || !self.usable() {
            return None;
        }
        let mut marks = self.marks.lock();
        if let Some(first) = marks.full_run(self.slots, count) {
            Marks::set(&mut marks.busy, first, count, true);
            return Some(Lease {
                pool: self,
                first,
                count,
                chunk: None,
            });
        }
        // Zeroed pages would not survive a chunk's split (the kernel maps
        // the shared zero page in their place), so a zero run takes no
        // whole chunk and commits none; nor does a short run (see
        // `CHUNK_MIN_RUN`).
        if used != RunUse::Zeros {
            // A chunk committed ahead (`prepare`: any read may take it, so
            // that it never stands idle), or, for a long run, one
            // committed now.
            let ready = marks.ready_chunk(self.chunks);
            let chunk = ready.or_else(|| {
                (used == RunUse::Read && count >= CHUNK_MIN_RUN)
                    .then(|| marks.chunk_to_commit(self.chunks))
                    .flatten()
            });
            if let Some(chunk) = chunk {
                let first = chunk * CHUNK_SLOTS;
                Marks::set(&mut marks.busy, first, CHUNK_SLOTS, true);
                if ready.is_none() {
                    drop(marks);
                    self.commit_chunk(chunk);
                    marks = self.marks.lock();
                }
                // A whole chunk is held whole; a split one only where the
                // run lies.
                if marks.whole[chunk] {
                    return Some(Lease {
                        pool: self,
                        first,
                        count,
                        chunk: Some(chunk),
                    });
                }
                Marks::set(&mut marks.busy, first + count, CHUNK_SLOTS - count, false);
                return Some(Lease {
                    pool: self,
                    first,
                    count,
                    chunk: None,
                });
            }
        }
        // Empty slots would give zeros nothing: a page of the region that is
        // absent reads as zeros already, and the kernel commits it at its
        // first store — where zeroing empty slots first committed and
        // zeroed it twice (once by the kernel, once by the fill).
        if used == RunUse::Zeros || (used == RunUse::ReadReady && self.chunks > 0) {
            return None;
        }
        let first = Marks::find(self.slots, count, |w| !marks.busy[w] & !marks.whole_mask(w))?;
        Marks::set(&mut marks.busy, first, count, true);
        Some(Lease {
            pool: self,
            first,
            count,
            chunk: None,
        })
    }

    /// Commits a chunk ahead of the read that will want it, where no run
    /// of `count` full slots and no whole chunk is free: called by a thread
    /// about to wait for a read in flight (the scan waiting for its
    /// read-ahead), so that the zeroing of the huge page overlaps the
    /// transfer instead of delaying the next one.
    pub(crate) fn prepare(&self, count: usize) {
        if self.chunks == 0 || !(CHUNK_MIN_RUN..CHUNK_SLOTS).contains(&count) || !self.usable() {
            return;
        }
        let mut marks = self.marks.lock();
        if marks.full_run(self.slots, count).is_some() || marks.ready_chunk(self.chunks).is_some() {
            return;
        }
        let Some(chunk) = marks.chunk_to_commit(self.chunks) else {
            return;
        };
        Marks::set(&mut marks.busy, chunk * CHUNK_SLOTS, CHUNK_SLOTS, true);
        drop(marks);
        self.commit_chunk(chunk);
        let mut marks = self.marks.lock();
        Marks::set(&mut marks.busy, chunk * CHUNK_SLOTS, CHUNK_SLOTS, false);
    }

    /// Commits chunk `chunk` (busy, the marks' lock not held) as one huge
    /// page, splits it, and marks it full (still busy; whole if the split
    /// failed). Whatever pages it has are given back first
    /// (`MADV_DONTNEED` over a whole chunk also frees its page table,
    /// without which the next fault there would be a small page again);
    /// then the first store faults in 2 MiB at once — one fault and one zeroing for 512 pages,
    /// and physically contiguous memory, so that a 1 MiB read into it is
    /// one request to the device rather than two that wait for each other
    /// (see the module doc). Every page is stored to, so that none reads as
    /// zeros when a move splits the huge page (the kernel would map the
    /// shared zero page in its place, and a read into that would take a
    /// fresh page after all).
    fn commit_chunk(&self, chunk: usize) {
        // SAFETY: the chunk lies in the pool and is busy: no lease or move
        // reaches it; a pool page's contents are no one's.
        let _ = unsafe {
            rustix::mm::madvise(
                self.slot_ptr(chunk * CHUNK_SLOTS).cast(),
                CHUNK_BYTES,
                rustix::mm::Advice::LinuxDontNeed,
            )
        };
        for slot in chunk * CHUNK_SLOTS..(chunk + 1) * CHUNK_SLOTS {
            // SAFETY: as above; no reference into the slot exists.
            unsafe { self.slot_ptr(slot).write_volatile(1) };
        }
        self.chunks_committed.fetch_add(1, Ordering::Relaxed);
        // Split the huge page now, while no read pins it: its last page
        // moves to the page past the slots and back (a move splits a huge
        // page into small ones, which stay where they are, so the chunk
        // stays contiguous). A split chunk is full slots like any others,
        // which several reads may use at once; one the kernel would not
        // split stays whole (see `Marks::whole`).
        let last = (chunk + 1) * CHUNK_SLOTS - 1;
        let (split, last_gone) = {
            let _spare = self.spare.lock();
            let spare = self.spare_ptr();
            let ps = self.page_size;
            // SAFETY: the last slot is the chunk's (busy: ours); the spare
            // page is the pool's own (used under `spare`'s lock once the
            // pool is shared), and no reference into either exists; the
            // mapping is registered.
            let (out, _) = unsafe { self.uffd.move_pages(spare, self.slot_ptr(last), ps, false) };
            let (back, _) = if out == ps {
                // SAFETY: as above, the other way.
                unsafe { self.uffd.move_pages(self.slot_ptr(last), spare, ps, false) }
            } else {
                (0, Ok(()))
            };
            if out != ps || back != ps {
                // Whatever went wrong (the kernel has reported a move it
                // made as refused), the spare page is left empty for the
                // next split.
                // SAFETY: the spare page is ours (the lock); its contents
                // are no one's.
                let _ = unsafe {
                    rustix::mm::madvise(spare.cast(), ps, rustix::mm::Advice::LinuxDontNeed)
                };
            }
            // The last slot as the page table has it, not as the moves said.
            let gone = page_entry(self.slot_ptr(last)).is_some_and(|e| e >> 62 == 0);
            (out == ps, gone)
        };
        let mut marks = self.marks.lock();
        Marks::set(&mut marks.full, chunk * CHUNK_SLOTS, CHUNK_SLOTS, true);
        if last_gone {
            Marks::set(&mut marks.full, last, 1, false);
        }
        marks.whole[chunk] = !split;
    }

    /// The page of the mapping past the slots (the mapping is a chunk
    /// longer than they are where the pool has chunks).
    fn spare_ptr(&self) -> *mut u8 {
        assert!(self.offset + (self.slots + 1) * self.page_size <= self.mapping.len);
        // SAFETY: offset + slots pages + a page <= the mapping's length (a
        // chunk longer than the slots, offset < a chunk, page-aligned).
        unsafe {
            self.mapping
                .base
                .as_ptr()
                .add(self.offset + self.slots * self.page_size)
        }
    }

    /// The bytes of a leased run, for the read.
    ///
    /// # Safety
    /// The lease is this pool's; the slice is gone before the lease is
    /// handed to [`FramePool::move_in`] or dropped.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn lease_bytes(&self, lease: &Lease<'_>) -> &mut [u8] {
        // SAFETY: the run lies inside the mapping (a lease is found there)
        // and is marked busy: no other lease or move reaches it.
        unsafe {
            std::slice::from_raw_parts_mut(self.slot_ptr(lease.first), lease.count * self.page_size)
        }
    }

    /// Moves a leased run, read in full, to the pages at `dst`; a page the
    /// kernel will not move is copied. The slots moved are empty
    /// afterwards.
    ///
    /// With `patient` (a caller that holds no lock others wait on), a
    /// page still pinned by the read is waited for first (see
    /// [`FramePool::wait_for_unpin`]).
    ///
    /// # Safety
    /// `dst` is the first of `lease.count` pages of the registered region
    /// that the caller holds exclusively (no reference into them exists).
    pub(crate) unsafe fn move_in(&self, lease: Lease<'_>, dst: *mut u8, patient: bool) {
        let all = [(0, lease.count)];
        // SAFETY: as the caller promises, for every page of the run.
        unsafe { self.move_in_parts(lease, dst, &all, patient) }
    }

    /// [`FramePool::move_in`] for parts of the run only: `parts` are
    /// (offset, length) in pages from its start, in order and apart. The
    /// slots outside them stay full (what was read there is not wanted: a
    /// read around resident pages reads them too, to be one request).
    /// `patient` as for [`FramePool::move_in`].
    ///
    /// # Safety
    /// For each part, the pages of `dst` at its offsets are pages of the
    /// registered region that the caller holds exclusively (no reference
    /// into them exists); `dst` need not be held elsewhere.
    pub(crate) unsafe fn move_in_parts(
        &self,
        lease: Lease<'_>,
        dst: *mut u8,
        parts: &[(usize, usize)],
        patient: bool,
    ) {
        let ps = self.page_size;
        // (Checked before any move: a part past the run would reach slots
        // another lease is writing.)
        let mut end = 0;
        for &(start, len) in parts {
            assert!(
                start >= end && start + len <= lease.count,
                "parts in order, in the run"
            );
            end = start + len;
        }
        // The slots that stay full: those copied, not moved (none, and no
        // allocation, unless the kernel refuses), and those outside the
        // parts.
        let mut copied = Vec::new();
        let mut outside = Vec::new();
        let mut next = 0;
        // Whether this run may still wait for its read's pin to go (once).
        let mut may_wait = patient;
        for &(start, len) in parts {
            if start > next {
                outside.push((next, start - next));
            }
            let end = start + len;
            let mut at = start;
            while at < end {
                // SAFETY: the pages from `at` to `end` of the run and of
                // `dst` are held (the lease, the caller's latches); `dst`
                // is registered.
                let (moved, mut result) = unsafe {
                    self.uffd.move_pages(
                        dst.wrapping_add(at * ps),
                        self.slot_ptr(lease.first + at),
                        (end - at) * ps,
                        false,
                    )
                };
                at += moved / ps;
                if result == Err(rustix::io::Errno::BUSY) && at < end && may_wait {
                    may_wait = false;
                    // SAFETY: as for the move above, for the page at `at`.
                    match unsafe {
                        self.wait_for_unpin(dst.wrapping_add(at * ps), lease.first + at)
                    } {
                        Ok(()) => {
                            at += 1;
                            continue;
                        }
                        // What the last try met decides below (an `EEXIST`
                        // there may mean the page moved after all).
                        Err(last) => result = Err(last),
                    }
                }
                if result.is_err() && at < end {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    // The kernel can report less than it moved: a
                    // destination present (`EEXIST`) whose slot is empty —
                    // neither present nor swapped out — was moved (this
                    // run's slots are leased: no one else empties them),
                    // and copying the empty slot over it would write
                    // zeros. Seen with two reads into one huge page, each
                    // pinning it while the other's moves split it, before
                    // whole chunks were held by one read.
                    let slot = self.slot_ptr(lease.first + at);
                    if result == Err(rustix::io::Errno::EXIST)
                        && page_entry(slot).is_some_and(|e| e >> 62 == 0)
                        && resident(dst.wrapping_add(at * ps)) == Some(true)
                    {
                        at += 1;
                        continue;
                    }
                    // SAFETY: the slot is leased and the page held; both
                    // are a page long and do not overlap (pool and region
                    // are different mappings).
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            self.slot_ptr(lease.first + at),
                            dst.wrapping_add(at * ps),
                            ps,
                        )
                    };
                    copied.push(lease.first + at);
                    at += 1;
                }
            }
            next = end;
        }
        if next < lease.count {
            outside.push((next, lease.count - next));
        }
        let outside_pages: usize = outside.iter().map(|&(_, len)| len).sum();
        let moved = lease.count - outside_pages - copied.len();
        self.moved_in.fetch_add(moved as u64, Ordering::Relaxed);
        self.copied_in
            .fetch_add(copied.len() as u64, Ordering::Relaxed);
        let mut marks = self.marks.lock();
        Marks::set(&mut marks.full, lease.first, lease.count, false);
        for &slot in &copied {
            Marks::set(&mut marks.full, slot, 1, true);
        }
        for &(start, len) in &outside {
            Marks::set(&mut marks.full, lease.first + start, len, true);
        }
        if let Some(chunk) = lease.chunk
            && moved > 0
        {
            // Split by the moves (a chunk none of whose pages moved may
            // still be whole).
            marks.whole[chunk] = false;
        }
        let (first, count) = lease.held();
        Marks::set(&mut marks.busy, first, count, false);
        drop(marks);
        // Its marks are set: nothing for the drop to do.
        std::mem::forget(lease);
    }

    /// A move refused as busy (`EBUSY`): the slot's page is most likely
    /// still pinned by the direct read that filled it. The kernel wakes
    /// the reader before it unpins the read's pages (`iomap`'s completion
    /// does the wake-up first), and on this virtual machine the unpinning
    /// CPU can be held off for milliseconds: measured with a scratch build
    /// that retried, 0.8–3.7 ms after the read had returned (five cases;
    /// `bench out-of-core --scale 4 --workloads scan`, where such a run
    /// then had every page copied into fresh memory — hundreds to
    /// thousands of pages a run of the bench on a busy host). Tries the
    /// move of the slot's one page again, yielding between tries, for at
    /// most [`PIN_WAIT`]: `Ok` once it moved, else the last try's error. A
    /// page pinned for longer (by anything else that pins memory) costs the
    /// wait once per run (the caller asks once), then is copied as before.
    /// Only callers that hold no lock others wait on ask (the read-ahead's
    /// finisher, a faulting thread finishing its own read-ahead, a mapped
    /// file's read-around): a fault that reads under the
    /// monitor copies at once rather than stall every other fault.
    ///
    /// # Safety
    /// As for [`FramePool::move_in_parts`]: the slot is leased and `dst`
    /// is a page of the registered region the caller holds exclusively.
    unsafe fn wait_for_unpin(&self, dst: *mut u8, slot: usize) -> rustix::io::Result<()> {
        self.pin_waits.fetch_add(1, Ordering::Relaxed);
        let deadline = std::time::Instant::now() + PIN_WAIT;
        loop {
            std::thread::yield_now();
            // SAFETY: as the caller promises, for this one page.
            let (moved, result) = unsafe {
                self.uffd
                    .move_pages(dst, self.slot_ptr(slot), self.page_size, false)
            };
            if moved == self.page_size {
                return Ok(());
            }
            let busy = result == Err(rustix::io::Errno::BUSY);
            if !busy || std::time::Instant::now() >= deadline {
                return Err(result.err().unwrap_or(rustix::io::Errno::BUSY));
            }
        }
    }

    /// Moves the memory of `count` pages at `src` into a free run of empty
    /// slots, if there is one. Returns how many pages, from the first,
    /// moved: the caller releases the rest the plain way.
    ///
    /// # Safety
    /// `src` is the first of `count` pages of the region that the caller
    /// holds exclusively (no reference into them exists).
    pub(crate) unsafe fn move_out(&self, src: *mut u8, count: usize) -> usize {
        if !self.usable() {
            return 0;
        }
        let first = {
            let mut marks = self.marks.lock();
            let Some(first) = Marks::find(self.slots, count, |w| !marks.full[w] & !marks.busy[w])
            else {
                return 0;
            };
            Marks::set(&mut marks.busy, first, count, true);
            first
        };
        // SAFETY: the slots are leased (busy) and empty; the pages are held
        // by the caller; the pool is registered.
        let (moved, result) = unsafe {
            self.uffd
                .move_pages(self.slot_ptr(first), src, count * self.page_size, true)
        };
        if result.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        let pages = moved / self.page_size;
        self.moved_out.fetch_add(pages as u64, Ordering::Relaxed);
        let mut marks = self.marks.lock();
        // A slot found present (its mark was wrong: a huge page's split
        // left it there) is full.
        let present = usize::from(result == Err(rustix::io::Errno::EXIST));
        Marks::set(&mut marks.full, first, pages + present, true);
        Marks::set(&mut marks.busy, first, count, false);
        pages
    }
}

#[cfg(test)]
mod tests {
    use super::Marks;

    #[test]
    fn find_takes_the_first_run_long_enough() {
        let mut bits = vec![0u64; 3];
        Marks::set(&mut bits, 3, 2, true);
        Marks::set(&mut bits, 10, 100, true);
        assert_eq!(Marks::find(150, 2, |w| bits[w]), Some(3));
        assert_eq!(Marks::find(150, 3, |w| bits[w]), Some(10));
        assert_eq!(Marks::find(150, 100, |w| bits[w]), Some(10));
        assert_eq!(Marks::find(150, 101, |w| bits[w]), None);
        // Across whole words of ones.
        Marks::set(&mut bits, 110, 40, true);
        assert_eq!(Marks::find(150, 140, |w| bits[w]), Some(10));
        // The tail past `slots` is never counted.
        assert_eq!(Marks::find(140, 131, |w| bits[w]), None);
        assert_eq!(Marks::find(140, 130, |w| bits[w]), Some(10));
    }
}

#[cfg(test)]
mod fork_tests {
    use crate::sys::region::Region;

    /// A child made by `fork` inherits the pool's descriptor, whose moves
    /// would act on the parent's memory: a release in the child must not
    /// move the parent's pages away (found by review). On this machine's
    /// kernel the child's move is refused by the kernel itself (tried with
    /// the pool's own guard, `usable`, taken out); the guard keeps it so
    /// on any kernel, and this checks the end result: the parent's pages.
    #[test]
    fn a_release_in_a_forked_child_leaves_the_parent_s_pages_alone() {
        let page_size = rustix::param::page_size();
        let region = Region::reserve_at(None, 64, page_size, false, (16, false)).unwrap();
        if region.pool_counts()[0] == 0 {
            eprintln!("skipped: the kernel refused a userfaultfd or UFFDIO_MOVE");
            return;
        }
        // SAFETY: this test owns the region; pages 8..12 are absent.
        unsafe {
            region
                .fill(8, 4, |bytes| {
                    bytes.fill(0xA5);
                    Ok::<(), ()>(())
                })
                .unwrap()
        };
        assert_eq!(region.pool_counts()[1], 4, "the run should have moved in");
        let mut pipe = [0i32; 2];
        // SAFETY: a pipe for the two processes to take turns.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: the child calls only `read`, `release` (no allocation,
        // no lock another thread could hold: the pool's lock is this
        // test's) and `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let mut byte = 0u8;
            // SAFETY: waits until the parent has written its pages again
            // (after the fork they are shared, and the kernel would refuse
            // to move them anyway).
            unsafe { libc::read(pipe[0], (&raw mut byte).cast(), 1) };
            // SAFETY: the child's copy of the region, held by it alone.
            unsafe { region.release(8, 4) }.ok();
            // SAFETY: ends the child.
            unsafe { libc::_exit(0) };
        }
        // The parent's stores make the pages its own again.
        // SAFETY: the pages are this test's, resident since the fill.
        unsafe { region.pages_mut(8, 4) }.fill(0x5A);
        // SAFETY: one byte to the child.
        assert_eq!(unsafe { libc::write(pipe[1], [1u8].as_ptr().cast(), 1) }, 1);
        let mut status = 0;
        // SAFETY: waits for the child just made.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        // SAFETY: the pages are this test's, resident since the fill.
        let bytes = unsafe { region.pages(8, 4) };
        assert!(
            bytes.iter().all(|&b| b == 0x5A),
            "the parent's pages changed under a child's release"
        );
        for fd in pipe {
            // SAFETY: the pipe's ends, closed once.
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::{CHUNK_SLOTS, FramePool, RunUse, resident};
    use crate::sys::mapping::Mapping;
    use std::sync::atomic::Ordering::Relaxed;

    /// A region of `pages` OS pages and a pool of `slots` for it (with
    /// huge-page `chunks` or not), or `None` — the reason printed — where
    /// the kernel refuses the pool. (The pool first: it drops before the
    /// region it was registered over.)
    fn test_pool(pages: usize, slots: usize, chunks: bool) -> Option<(FramePool, Mapping)> {
        let ps = rustix::param::page_size();
        let region = Mapping::new(pages * ps, "test region").unwrap();
        match FramePool::new(region.base.as_ptr(), region.len, slots, ps, chunks) {
            Ok(pool) => Some((pool, region)),
            Err(e) => {
                eprintln!("skipped: no frame pool here: {e}");
                None
            }
        }
    }

    /// A chunk committed ahead is split at once (its pages stay where they
    /// are), so two reads use it at the same time, with no second commit;
    /// a run moves in whole.
    #[test]
    fn a_chunk_committed_ahead_serves_two_reads_at_once() {
        let Some((pool, region)) = test_pool(4096, 1024, true) else {
            return;
        };
        if pool.chunks == 0 {
            eprintln!("skipped: the kernel gives no huge pages here (or not again after a split)");
            return;
        }
        assert_eq!(pool.chunks, 2);
        pool.prepare(256);
        assert_eq!(pool.chunks_committed.load(Relaxed), 1);
        let chunk = {
            let marks = pool.marks.lock();
            let committed: Vec<usize> = (0..2).filter(|&c| marks.chunk_full(c) == 512).collect();
            assert_eq!(committed.len(), 1, "one chunk full");
            assert!(!marks.whole[committed[0]], "split at its commit");
            committed[0]
        };
        let first = pool.lease_for_read(256, RunUse::Read).unwrap();
        let second = pool.lease_for_read(256, RunUse::Read).unwrap();
        let mut firsts = [first.first, second.first];
        firsts.sort();
        assert_eq!(
            firsts,
            [chunk * CHUNK_SLOTS, chunk * CHUNK_SLOTS + 256],
            "both reads in the chunk"
        );
        assert!(first.chunk.is_none() && second.chunk.is_none());
        assert_eq!(pool.chunks_committed.load(Relaxed), 1, "no second commit");
        // A zero run finds no full run left: it takes nothing, and commits
        // nothing.
        assert!(pool.lease_for_read(8, RunUse::Zeros).is_none());
        assert_eq!(pool.chunks_committed.load(Relaxed), 1);
        drop(second);
        // SAFETY: the region's first 256 pages are this test's, missing, and
        // registered with the pool's descriptor.
        unsafe { pool.move_in(first, region.base.as_ptr(), true) };
        assert_eq!(
            (pool.moved_in.load(Relaxed), pool.copied_in.load(Relaxed)),
            (256, 0)
        );
    }

    /// A run moved in by parts: the pages of the parts get what was read
    /// for them; the pages between keep what they had (resident) or stay
    /// absent; the slots not moved stay full, the others are empty.
    #[test]
    fn a_run_moved_in_by_parts_leaves_the_pages_between_as_they_were() {
        let ps = rustix::param::page_size();
        let Some((pool, region)) = test_pool(64, 64, false) else {
            return;
        };
        let base = region.base.as_ptr();
        // Page 3 holds something of its own.
        // SAFETY: the region's pages are this test's; no reference exists.
        unsafe { base.add(3 * ps).write_bytes(0xee, ps) };
        let lease = pool.lease_for_read(8, RunUse::Read).unwrap();
        let first = lease.first;
        // SAFETY: the lease is this pool's; the slice is gone before the move.
        let bytes = unsafe { pool.lease_bytes(&lease) };
        for (i, page) in bytes.chunks_mut(ps).enumerate() {
            page.fill(i as u8 + 1);
        }
        // SAFETY: pages 0-2 and 4-5 of the region are this test's, absent,
        // and registered with the pool's descriptor.
        unsafe { pool.move_in_parts(lease, base, &[(0, 3), (4, 2)], true) };
        let page = |i: usize| {
            // SAFETY: in the region; no one writes it now.
            unsafe { std::slice::from_raw_parts(base.add(i * ps), ps) }
        };
        for i in [0, 1, 2, 4, 5] {
            assert!(
                page(i).iter().all(|&b| b == i as u8 + 1),
                "page {i} moved in"
            );
        }
        assert!(page(3).iter().all(|&b| b == 0xee), "page 3 kept its own");
        for i in [6, 7] {
            assert_eq!(resident(base.wrapping_add(i * ps)), Some(false), "page {i}");
        }
        assert_eq!(
            pool.moved_in.load(Relaxed) + pool.copied_in.load(Relaxed),
            5
        );
        let marks = pool.marks.lock();
        let full = |slot: usize| marks.full[slot / 64] >> (slot % 64) & 1 == 1;
        let busy = |slot: usize| marks.busy[slot / 64] >> (slot % 64) & 1 == 1;
        for i in 0..8 {
            assert_eq!(full(first + i), [3, 6, 7].contains(&i), "slot {i}'s mark");
            assert!(!busy(first + i), "slot {i} free again");
        }
    }
}

#[cfg(test)]
mod pin_tests {
    use super::RunUse;
    use crate::sys::region::Region;

    /// A run whose slot page is still pinned when it moves in (pinned here
    /// by an `io_uring` fixed buffer for the whole move, as a direct read's
    /// pin can outlast the read for milliseconds): a patient mover waits
    /// for the pin once, then copies that page; one that may hold the
    /// monitor copies it at once. Either way the rest of the run moves and
    /// every byte arrives.
    #[test]
    fn a_page_still_pinned_at_its_move_is_waited_for_only_by_a_patient_mover() {
        let page_size = rustix::param::page_size();
        for patient in [true, false] {
            let region = Region::reserve_at(None, 64, page_size, false, (16, false)).unwrap();
            if region.pool_counts()[0] == 0 {
                eprintln!("skipped: the kernel refused a userfaultfd or UFFDIO_MOVE");
                return;
            }
            let mut ring = None;
            let mut refused = None;
            // SAFETY: this test owns the region; pages 8..12 are absent and
            // held by no one else until the move below.
            let read = unsafe {
                region.read_into_pool(8, 4, RunUse::Read, |bytes| {
                    for (i, b) in bytes.iter_mut().enumerate() {
                        *b = (i / page_size) as u8 + 1;
                    }
                    match io_uring::IoUring::new(2) {
                        Ok(r) => {
                            // The run's second page, pinned until the ring
                            // is dropped (after the move).
                            let iov = libc::iovec {
                                iov_base: bytes[page_size..].as_mut_ptr().cast(),
                                iov_len: page_size,
                            };
                            // SAFETY: the page stays mapped (in the pool
                            // or, moved, in the region) until the ring is
                            // dropped, before the region.
                            match r.submitter().register_buffers(&[iov]) {
                                Ok(()) => ring = Some(r),
                                Err(e) => refused = Some(e),
                            }
                        }
                        Err(e) => refused = Some(e),
                    }
                    Ok::<(), ()>(())
                })
            };
            let Ok(Ok(run)) = read else {
                panic!("no pool run for 4 pages");
            };
            // SAFETY: pages 8..12 are this test's, absent.
            unsafe { region.move_in_run(run, patient) };
            if let Some(e) = refused {
                eprintln!("skipped: the kernel refused an io_uring fixed buffer to pin with: {e}");
                return;
            }
            let [_, moved_in, _, copied_in, refusals, _, pin_waits] = region.pool_counts();
            assert_eq!(pin_waits, u64::from(patient), "patient {patient}");
            assert_eq!(
                (moved_in, copied_in, refusals),
                (3, 1, 1),
                "patient {patient}"
            );
            // SAFETY: the pages are this test's, resident since the move.
            let bytes = unsafe { region.pages(8, 4) };
            for (i, &b) in bytes.iter().enumerate() {
                assert_eq!(b, (i / page_size) as u8 + 1, "byte {i}, patient {patient}");
            }
            drop(ring);
        }
    }
}
