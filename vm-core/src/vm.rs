//! `Vm`: the single address space and its safe API (named after Cedar's
//! `VM` interface), with the fault service.
//!
//! # Paths
//!
//! - **Resident hit** (`read`, `write`, guards): latch the page's state word
//!   (shared to read, exclusive to write), copy, unlatch. No monitor, no
//!   allocation, no system call.
//! - **Fault**: the accessor records its page in the pending-fault queue,
//!   takes the monitor, and serves its own fault while holding it (the
//!   monitor serializes every fault, as the seed decides; threads waiting
//!   on it are the queue). The seek-ahead hint of the transfer is the disk
//!   address of the next page in the pending queue. Serving in the faulting
//!   thread avoids a thread handoff, which on this machine costs more than
//!   a page read from the page cache (see the crate docs).
//! - **Replacement**: the clock over the frames of the real-memory budget,
//!   evicting a batch (up to 1/16 of the budget, at most 64 pages) when no
//!   frame is free, so that releases are amortized.

use crate::fault_queue::{FaultOutcome, FaultQueue, HitCounter};
use crate::monitor::Monitor;
use crate::region::{Region, StateArray};
use crate::state::{
    DIRTY, ON_DISK, PageStates, READ_ONLY, REFERENCED, TAG_ABSENT, TAG_LOCKED, TAG_RESIDENT,
};
use crate::{Advice, DataState, FaultService, PageState, VAddr, VmConfig, VmError, VmStats};
use parking_lot::{Mutex, MutexGuard};
use runtable::{Interval, PageCount, PageNumber, Volume};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

/// Read-ahead on a fault in an interval advised `Sequential`.
const READ_AHEAD_PAGES: u64 = 8;
/// Most victims one eviction batch takes.
const EVICTION_BATCH_MAX: u64 = 64;
/// Spins on a latched page before yielding the processor.
const SPINS_BEFORE_YIELD: u32 = 64;

/// What backs the address space.
#[allow(clippy::large_enum_variant)] // built once per VM; boxing buys nothing
pub enum Backing {
    /// A formatted volume: pages are paged to and from its drives.
    Volume(Volume),
    /// No backing storage: the VM lives within real memory, allocation is
    /// limited by the budget and nothing is ever paged (utility mode).
    RealMemoryOnly,
}

/// The virtual memory: a handle on its [`AddressSpace`], which it shares
/// with its PageFault worker thread when faults are served by one. Every
/// operation is a method of [`AddressSpace`], reached through `Deref`.
pub struct Vm {
    space: Arc<AddressSpace>,
    worker: Option<thread::JoinHandle<()>>,
}

/// The address space itself: region, page states, monitor and fault queue.
pub struct AddressSpace {
    page_size: usize,
    virtual_pages: u64,
    seek_ahead: bool,
    region: Region,
    states: StateArray,
    monitor: Mutex<Monitor>,
    /// Pages whose faults wait for the monitor, oldest first: where the
    /// seek-ahead hint comes from.
    pending: Mutex<VecDeque<(u64, u64)>>,
    /// The next ticket of the pending queue.
    next_ticket: AtomicU64,
    /// The PageFault worker's queue, when faults are served by the worker.
    worker_queue: Option<FaultQueue>,
    hits: HitCounter,
    monitor_held_ns: AtomicU64,
}

/// The monitor, held; counts the time it was held.
pub(crate) struct Held<'a> {
    guard: MutexGuard<'a, Monitor>,
    since: Instant,
    total: &'a AtomicU64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.total
            .fetch_add(self.since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

impl std::ops::Deref for Held<'_> {
    type Target = Monitor;
    fn deref(&self) -> &Monitor {
        &self.guard
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Monitor {
        &mut self.guard
    }
}

/// The latch an accessor takes once its fault is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Latch {
    Shared,
    Exclusive,
}

/// Why serving a fault did not finish.
pub(crate) enum Serve {
    /// The page is latched by a guard or writer: let go and retry.
    Busy,
}

impl Vm {
    /// A VM of `config` over `backing`.
    pub fn new(config: VmConfig, backing: Backing) -> Result<Vm, VmError> {
        config.validate()?;
        let budget = config.real_memory_pages;
        let volume = match backing {
            Backing::Volume(volume) => {
                if volume.page_size() != config.page_size {
                    return Err(VmError::Config {
                        field: "page_size",
                        reason: format!(
                            "{} differs from the volume's page size {}",
                            config.page_size,
                            volume.page_size()
                        ),
                    });
                }
                if config.virtual_pages > volume.virtual_pages() {
                    return Err(VmError::Config {
                        field: "virtual_pages",
                        reason: format!(
                            "{} is more than the volume backs ({})",
                            config.virtual_pages,
                            volume.virtual_pages()
                        ),
                    });
                }
                Some(volume)
            }
            Backing::RealMemoryOnly => None,
        };
        // Without backing there is no I/O to wait for, so no worker either.
        let worker_mode = config.fault_service == FaultService::Worker && volume.is_some();
        let space = Arc::new(AddressSpace {
            page_size: config.page_size,
            virtual_pages: config.virtual_pages,
            seek_ahead: config.seek_ahead,
            region: Region::reserve(config.virtual_pages, config.page_size)?,
            states: StateArray::new(config.virtual_pages)?,
            monitor: Mutex::new(Monitor::new(config.virtual_pages, budget, volume)),
            pending: Mutex::new(VecDeque::new()),
            next_ticket: AtomicU64::new(0),
            worker_queue: worker_mode.then(FaultQueue::default),
            hits: HitCounter::default(),
            monitor_held_ns: AtomicU64::new(0),
        });
        let worker = if worker_mode {
            let shared = Arc::clone(&space);
            let handle = thread::Builder::new()
                .name("page-fault-worker".into())
                .spawn(move || shared.run_worker())
                .map_err(|source| VmError::Map {
                    what: "spawning the PageFault worker",
                    bytes: 0,
                    source,
                })?;
            Some(handle)
        } else {
            None
        };
        Ok(Vm { space, worker })
    }

    /// Whether a PageFault worker thread serves the faults.
    pub fn has_worker(&self) -> bool {
        self.worker.is_some()
    }

    fn stop_worker(&mut self) {
        if let Some(handle) = self.worker.take() {
            self.space
                .worker_queue
                .as_ref()
                .expect("a worker has a queue")
                .stop(handle.thread());
            // A worker that panicked already reported it.
            let _ = handle.join();
        }
    }

    /// Closes the VM and returns its volume (after a
    /// [`AddressSpace::flush`], the volume holds everything written).
    pub fn into_volume(mut self) -> Option<Volume> {
        self.stop_worker();
        self.space.monitor.lock().volume.take()
    }

    /// Pages of `interval` as page numbers (a helper for callers).
    pub fn pages(interval: Interval) -> impl Iterator<Item = PageNumber> {
        (interval.page.0..interval.end().0).map(PageNumber)
    }

    /// The interval of `count` pages from `page` (a helper for callers).
    pub fn interval(page: PageNumber, count: u64) -> Interval {
        Interval {
            page,
            count: PageCount(count),
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop_worker();
    }
}

impl std::ops::Deref for Vm {
    type Target = AddressSpace;
    fn deref(&self) -> &AddressSpace {
        &self.space
    }
}

impl AddressSpace {
    pub(crate) fn states(&self) -> PageStates<'_> {
        PageStates::new(self.states.words())
    }

    pub(crate) fn lock_monitor(&self) -> Held<'_> {
        self.lock()
    }

    fn lock(&self) -> Held<'_> {
        let guard = self.monitor.lock();
        Held {
            guard,
            since: Instant::now(),
            total: &self.monitor_held_ns,
        }
    }

    /// Bytes per page.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Pages in the address space.
    pub fn virtual_pages(&self) -> u64 {
        self.virtual_pages
    }

    /// Whether the VM has no backing storage.
    pub fn is_real_memory_only(&self) -> bool {
        self.monitor.lock().volume.is_none()
    }

    /// The address of the first byte of `page`.
    pub fn address_of(&self, page: PageNumber) -> VAddr {
        VAddr(page.0 * self.page_size as u64)
    }

    /// Where the address space starts in this process (resident pages sit at
    /// `base + page * page_size`).
    pub fn base_ptr(&self) -> *const u8 {
        self.region.base()
    }

    // ----- allocation -------------------------------------------------------

    /// Allocates `count` pages; their contents read as zeros.
    pub fn allocate(&self, count: u64) -> Result<Interval, VmError> {
        if count == 0 {
            return Err(VmError::CantAllocateVirtual { pages: 0 });
        }
        let mut m = self.lock();
        if m.volume.is_none() && m.allocated_pages + count > m.budget() {
            return Err(VmError::CantAllocateReal {
                pages: count,
                allocated: m.allocated_pages,
                budget: m.budget(),
            });
        }
        let start = m
            .allocate(count)
            .ok_or(VmError::CantAllocateVirtual { pages: count })?;
        Ok(Interval::new(start, count))
    }

    /// Frees `interval` (all of it must be allocated); its contents are
    /// discarded without I/O.
    pub fn free(&self, interval: Interval) -> Result<(), VmError> {
        let mut m = self.lock();
        self.check_allocated(&m, interval)?;
        self.discard(&mut m, interval)?;
        let states = self.states();
        for page in interval.page.0..interval.end().0 {
            m.pins.remove(&page);
            states.reset_absent(page);
        }
        m.deallocate(interval.page.0, interval.count.0);
        Ok(())
    }

    fn check_allocated(&self, m: &Monitor, interval: Interval) -> Result<(), VmError> {
        let fits = interval
            .checked_end()
            .is_some_and(|end| end.0 <= self.virtual_pages);
        if interval.is_empty() || !fits || !m.is_allocated(interval.page.0, interval.count.0) {
            return Err(VmError::NotAllocated { interval });
        }
        Ok(())
    }

    /// Drops every page of `interval` from real memory without writing it
    /// back, and forgets its disk copy: its contents become undefined (they
    /// read as zeros).
    fn discard(&self, m: &mut Monitor, interval: Interval) -> Result<(), VmError> {
        let states = self.states();
        for page in interval.page.0..interval.end().0 {
            let word = states.load(page);
            match word.tag() {
                TAG_RESIDENT => {
                    states
                        .try_lock_resident(page)
                        .map_err(|_| VmError::PageBusy {
                            page: PageNumber(page),
                        })?;
                    self.region.release(page, 1)?;
                    states.unlock(page, TAG_ABSENT, word.flags() & READ_ONLY);
                    m.remove_frame(page);
                }
                TAG_LOCKED => {
                    return Err(VmError::PageBusy {
                        page: PageNumber(page),
                    });
                }
                _ => states.clear_flags(page, ON_DISK | DIRTY),
            }
        }
        Ok(())
    }

    // ----- data access ------------------------------------------------------

    #[inline]
    fn page_range(&self, addr: VAddr, len: usize) -> Result<(), VmError> {
        let end = addr.0.checked_add(len as u64);
        if end.is_none_or(|end| end > self.virtual_pages * self.page_size as u64) {
            return Err(VmError::AddressFault {
                addr,
                page: PageNumber(addr.0 / self.page_size as u64),
            });
        }
        Ok(())
    }

    /// Splits `[addr, addr+len)` into (page, offset in page, piece length).
    ///
    /// Hot path: the page size is a power of two, so shifts and masks, not
    /// divisions (a 64-bit division costs more than the rest of a hit).
    #[inline]
    fn pieces(&self, addr: VAddr, len: usize) -> impl Iterator<Item = (u64, usize, usize)> + use<> {
        let page_size = self.page_size;
        let shift = page_size.trailing_zeros();
        let mask = page_size as u64 - 1;
        let mut at = addr.0;
        let end = addr.0 + len as u64;
        std::iter::from_fn(move || {
            (at < end).then(|| {
                let page = at >> shift;
                let offset = (at & mask) as usize;
                let piece = (page_size - offset).min((end - at) as usize);
                at += piece as u64;
                (page, offset, piece)
            })
        })
    }

    /// Copies `buf.len()` bytes at `addr` into `buf`, faulting pages in as
    /// needed.
    pub fn read(&self, addr: VAddr, buf: &mut [u8]) -> Result<(), VmError> {
        self.page_range(addr, buf.len())?;
        let mut done = 0;
        for (page, offset, len) in self.pieces(addr, buf.len()) {
            self.share(page)?;
            // SAFETY: we hold a shared latch on `page` until `unshare` below.
            let bytes = unsafe { self.region.page(page) };
            buf[done..done + len].copy_from_slice(&bytes[offset..offset + len]);
            self.states().unshare(page);
            done += len;
        }
        Ok(())
    }

    /// Copies `data` to `addr`, faulting pages in as needed.
    pub fn write(&self, addr: VAddr, data: &[u8]) -> Result<(), VmError> {
        self.page_range(addr, data.len())?;
        let mut done = 0;
        for (page, offset, len) in self.pieces(addr, data.len()) {
            let word = self.lock_exclusive(page)?;
            if word.has(READ_ONLY) {
                self.states().unlock(page, TAG_RESIDENT, word.flags());
                return Err(VmError::WriteProtect {
                    page: PageNumber(page),
                });
            }
            // SAFETY: we hold the exclusive latch on `page` until `unlock`.
            let bytes = unsafe { self.region.page_mut(page) };
            bytes[offset..offset + len].copy_from_slice(&data[done..done + len]);
            self.states()
                .unlock(page, TAG_RESIDENT, word.flags() | DIRTY | REFERENCED);
            done += len;
        }
        Ok(())
    }

    /// Takes a shared latch on `page`, faulting it in first if needed.
    #[inline]
    fn share(&self, page: u64) -> Result<(), VmError> {
        let states = self.states();
        let mut spins = 0u32;
        loop {
            match states.try_share(page) {
                Ok(_) => {
                    self.hits.add();
                    return Ok(());
                }
                Err(word) if word.tag() == TAG_ABSENT => {
                    if self.fault(page, Latch::Shared)?.is_some() {
                        return Ok(());
                    }
                }
                Err(_) => backoff(&mut spins),
            }
        }
    }

    /// Takes the exclusive latch on `page`, faulting it in first if needed;
    /// returns the word as it was.
    fn lock_exclusive(&self, page: u64) -> Result<crate::state::Word, VmError> {
        let states = self.states();
        let mut spins = 0u32;
        loop {
            match states.try_lock_resident(page) {
                Ok(word) => {
                    self.hits.add();
                    return Ok(word);
                }
                Err(word) if word.tag() == TAG_ABSENT => {
                    if let Some(word) = self.fault(page, Latch::Exclusive)? {
                        return Ok(word);
                    }
                }
                Err(_) => backoff(&mut spins),
            }
        }
    }

    /// A shared guard on `page`: the page stays resident and unchanged while
    /// the guard lives. Holding it and asking for the same page exclusively
    /// from the same thread waits forever, as a `RwLock` would.
    pub fn page(&self, page: PageNumber) -> Result<PageRef<'_>, VmError> {
        self.page_range(self.address_of(page), self.page_size)?;
        self.share(page.0)?;
        Ok(PageRef {
            vm: self,
            page: page.0,
        })
    }

    /// An exclusive guard on `page`: the page stays resident, and is marked
    /// changed when the guard is dropped.
    pub fn page_mut(&self, page: PageNumber) -> Result<PageMut<'_>, VmError> {
        self.page_range(self.address_of(page), self.page_size)?;
        let word = self.lock_exclusive(page.0)?;
        if word.has(READ_ONLY) {
            self.states().unlock(page.0, TAG_RESIDENT, word.flags());
            return Err(VmError::WriteProtect { page });
        }
        Ok(PageMut {
            vm: self,
            page: page.0,
            flags: word.flags(),
        })
    }

    // ----- the fault service -------------------------------------------------

    /// Serves a fault on `page` — in this thread or by the PageFault
    /// worker — and returns with the latch the accessor wants already taken
    /// (under the monitor, so no other fault can replace the page in
    /// between). `None`: the page is latched by someone else, or its fault
    /// was served for it and then lost its frame; retry.
    fn fault(&self, page: u64, latch: Latch) -> FaultOutcome {
        let outcome = match &self.worker_queue {
            None => self.serve_in_order(page, latch),
            Some(queue) => queue.submit_and_wait(page, latch),
        };
        if let Ok(None) = outcome {
            std::thread::yield_now();
        }
        outcome
    }

    /// Fault service in the faulting thread. The fault takes a ticket in
    /// the pending queue; whoever holds the monitor serves the queue in
    /// ticket order up to and including its own fault (faults of threads
    /// still waiting for the monitor are served for them, and they find
    /// their page resident). So the service order is the queue order, and
    /// the seek-ahead hint — the next fault in the queue — names the very
    /// transfer that comes next. A failure of someone else's fault is left
    /// for that thread, which retries and meets it itself.
    fn serve_in_order(&self, page: u64, latch: Latch) -> FaultOutcome {
        let ticket = {
            let mut pending = self.pending.lock();
            let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
            pending.push_back((ticket, page));
            ticket
        };
        let mut m = self.lock();
        let mut own = None;
        loop {
            let (head_ticket, head, next) = {
                let mut pending = self.pending.lock();
                match pending.front() {
                    Some(&(t, p)) if t <= ticket => {
                        pending.pop_front();
                        // The next transfer: the next queued fault on
                        // another page (one on this page costs none).
                        let next = pending.iter().map(|&(_, n)| n).find(|&n| n != p);
                        (t, p, next)
                    }
                    _ => break,
                }
            };
            let served = self.serve(&mut m, head, next);
            if head_ticket == ticket {
                own = Some(served);
                break;
            }
        }
        // `None`: another holder served this fault already.
        match own.unwrap_or(Ok(Ok(()))) {
            Ok(Ok(())) => Ok(self.latch_resident(page, latch)),
            Ok(Err(Serve::Busy)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes `latch` on `page` if it is resident. The monitor is held.
    fn latch_resident(&self, page: u64, latch: Latch) -> Option<crate::state::Word> {
        match latch {
            Latch::Shared => self.states().try_share(page).ok(),
            Latch::Exclusive => self.states().try_lock_resident(page).ok(),
        }
    }

    /// The PageFault worker's loop: take the head of the queue, serve it
    /// under the monitor with the next queued fault as the seek-ahead hint,
    /// take the accessor's latch, hand the outcome back, wake the faulting
    /// thread.
    fn run_worker(&self) {
        let queue = self.worker_queue.as_ref().expect("the worker has a queue");
        queue.register_worker();
        while let Some(ticket) = queue.next() {
            let outcome = {
                let mut m = self.lock();
                let next = queue.peek_page_other_than(ticket.page);
                match self.serve(&mut m, ticket.page, next) {
                    Ok(Ok(())) => Ok(self.latch_resident(ticket.page, ticket.latch)),
                    Ok(Err(Serve::Busy)) => Ok(None),
                    Err(e) => Err(e),
                }
            };
            ticket.complete(outcome);
        }
    }

    /// Brings `page` in; `next` is the page of the fault that will be
    /// served next, if known (the seek-ahead target). The monitor is held,
    /// and stays held.
    pub(crate) fn serve(
        &self,
        m: &mut Monitor,
        page: u64,
        next: Option<u64>,
    ) -> Result<Result<(), Serve>, VmError> {
        let states = self.states();
        let word = states.load(page);
        match word.tag() {
            TAG_RESIDENT => return Ok(Ok(())),
            TAG_LOCKED => return Ok(Err(Serve::Busy)),
            _ => {}
        }
        let Some((_, allocation)) = m.allocation_of(page) else {
            return Err(VmError::AddressFault {
                addr: self.address_of(PageNumber(page)),
                page: PageNumber(page),
            });
        };
        m.counters.faults += 1;
        let sequential = allocation.advice == Advice::Sequential;
        // Under sequential advice the next transfer is the read-ahead.
        let next = if sequential {
            Some(page + 1).filter(|&p| p < self.virtual_pages)
        } else {
            next
        };
        self.bring_in(m, page, next)?;
        if sequential {
            // Read ahead at most a quarter of real memory, and keep the page
            // that faulted from being replaced by its own read-ahead.
            let ahead = READ_AHEAD_PAGES.min(m.budget() / 4);
            *m.pins.entry(page).or_insert(0) += 1;
            for next in page + 1..(page + 1 + ahead).min(self.virtual_pages) {
                let absent = states.load(next).tag() == TAG_ABSENT;
                if !absent || m.allocation_of(next).is_none() {
                    break;
                }
                // Read-ahead is a guess: if it cannot get a frame or its
                // read fails, the page is simply left for a later fault.
                if self.bring_in(m, next, None).is_err() {
                    break;
                }
                m.counters.read_aheads += 1;
            }
            let pins = m.pins.get_mut(&page).expect("pinned above");
            *pins -= 1;
            if *pins == 0 {
                m.pins.remove(&page);
            }
        }
        Ok(Ok(()))
    }

    /// Puts absent, allocated `page` into a frame: zero-fill or page-in,
    /// with seek-ahead toward `next`.
    fn bring_in(&self, m: &mut Monitor, page: u64, next: Option<u64>) -> Result<(), VmError> {
        let states = self.states();
        if m.free_frames.is_empty() {
            self.evict_batch(m, page)?;
        }
        // If this page takes the last free frame, the next fault would start
        // with write-backs, and a hint at its page would be wasted: choose
        // those victims now, hint this read at the first write-back, and
        // write them back right after it (the last hinting at `next`).
        let early = if m.free_frames.len() == 1 && m.volume.is_some() {
            self.select_victims(m, page).ok()
        } else {
            None
        };
        let word = states.lock_absent(page);
        if word.has(ON_DISK) {
            let volume = m.volume.as_ref().expect("pages on disk imply a volume");
            let disk = volume.translate(PageNumber(page))?;
            let target = match early.as_deref().and_then(|v| self.first_write_back(m, v)) {
                Some(write_back) => Some(write_back),
                None => next.and_then(|next| volume.translate(PageNumber(next)).ok()),
            };
            let hint = target
                .filter(|t| self.seek_ahead && t.drive == disk.drive)
                .map(|t| t.page);
            // SAFETY: we hold the exclusive latch on `page` until `unlock`.
            let bytes = unsafe { self.region.page_mut(page) };
            if let Err(source) = volume.channel().read(disk.drive, disk.page, bytes, hint) {
                states.unlock(page, TAG_ABSENT, word.flags());
                for (p, w) in early.unwrap_or_default() {
                    states.unlock(p, TAG_RESIDENT, w.flags());
                }
                return Err(VmError::Io {
                    page: PageNumber(page),
                    disk,
                    source,
                });
            }
            m.counters.seek_ahead_hints += u64::from(hint.is_some());
            m.counters.page_ins += 1;
        } else {
            // The page's memory was released (or never touched), so it
            // already reads as zeros: no I/O and no copy.
            m.counters.zero_fills += 1;
        }
        m.install_frame(page);
        states.unlock(
            page,
            TAG_RESIDENT,
            (word.flags() & (ON_DISK | READ_ONLY)) | REFERENCED,
        );
        if let Some(victims) = early {
            // A failed write-back leaves the victims resident and dirty; the
            // next fault that needs a frame meets the error itself.
            let _ = self.write_back_and_release(m, victims, next);
        }
        Ok(())
    }

    /// Frees a batch of frames with the clock; dirty victims are written back
    /// first (with seek-ahead toward `incoming`).
    fn evict_batch(&self, m: &mut Monitor, incoming: u64) -> Result<(), VmError> {
        let victims = self.select_victims(m, incoming)?;
        self.write_back_and_release(m, victims, Some(incoming))
    }

    /// Chooses up to a batch of victims with the clock (second chance;
    /// pinned and latched pages are passed over) and takes their exclusive
    /// latches. The monitor is held.
    fn select_victims(
        &self,
        m: &mut Monitor,
        incoming: u64,
    ) -> Result<Vec<(u64, crate::state::Word)>, VmError> {
        let states = self.states();
        let budget = m.budget();
        if m.volume.is_none() {
            return Err(VmError::CantAllocateReal {
                pages: 1,
                allocated: m.allocated_pages,
                budget,
            });
        }
        let want = (budget / 16).clamp(1, EVICTION_BATCH_MAX);
        let mut victims: Vec<(u64, crate::state::Word)> = Vec::with_capacity(want as usize);
        let mut scanned = 0u64;
        while (victims.len() as u64) < want && scanned < 2 * budget + 1 {
            let frame = m.hand;
            m.hand = (m.hand + 1) % budget as usize;
            scanned += 1;
            let Some(page) = m.frames[frame] else {
                continue;
            };
            if m.pins.contains_key(&page) {
                continue;
            }
            let word = states.load(page);
            if word.tag() != TAG_RESIDENT {
                continue;
            }
            if word.has(REFERENCED) {
                states.clear_flags(page, REFERENCED);
                continue;
            }
            if let Ok(word) = states.try_lock_resident(page) {
                victims.push((page, word));
            }
        }
        if victims.is_empty() {
            return Err(VmError::AllPinned {
                page: PageNumber(incoming),
                budget,
            });
        }
        Ok(victims)
    }

    /// The disk address of the first dirty victim in disk order (where the
    /// write-backs will start).
    fn first_write_back(
        &self,
        m: &Monitor,
        victims: &[(u64, crate::state::Word)],
    ) -> Option<runtable::DiskAddr> {
        let volume = m.volume.as_ref()?;
        victims
            .iter()
            .filter(|(_, w)| w.has(DIRTY))
            .filter_map(|&(p, _)| volume.translate(PageNumber(p)).ok())
            .min()
    }

    /// Writes back the dirty `victims` in disk order — each transfer
    /// hinting at the next, the last at `toward` if that page will be read
    /// — then releases all of them in one batch. On a write failure every
    /// victim stays resident with its state, and the error is returned. The
    /// monitor is held.
    fn write_back_and_release(
        &self,
        m: &mut Monitor,
        mut victims: Vec<(u64, crate::state::Word)>,
        toward: Option<u64>,
    ) -> Result<(), VmError> {
        let states = self.states();
        // Write back the dirty victims in disk order, each transfer hinting
        // at the next one and the last at the page about to be read (if it
        // will be read). On failure every victim stays resident and keeps
        // its state.
        let volume = m.volume.as_ref().expect("checked above");
        let mut dirty: Vec<(runtable::DiskAddr, usize)> = Vec::with_capacity(victims.len());
        for (i, &(page, word)) in victims.iter().enumerate() {
            if !word.has(DIRTY) {
                continue;
            }
            match volume.translate(PageNumber(page)) {
                Ok(disk) => dirty.push((disk, i)),
                Err(e) => {
                    for &(p, w) in &victims {
                        states.unlock(p, TAG_RESIDENT, w.flags());
                    }
                    return Err(e.into());
                }
            }
        }
        dirty.sort_unstable();
        let incoming_read = toward
            .filter(|&p| p < self.virtual_pages && states.load(p).has(ON_DISK))
            .and_then(|p| volume.translate(PageNumber(p)).ok());
        for k in 0..dirty.len() {
            let (disk, i) = dirty[k];
            let (page, word) = victims[i];
            let target = dirty.get(k + 1).map(|&(d, _)| d).or(incoming_read);
            let hint = target
                .filter(|d| d.drive == disk.drive && self.seek_ahead)
                .map(|d| d.page);
            // SAFETY: we hold the exclusive latch on `page`.
            let bytes = unsafe { self.region.page(page) };
            if let Err(source) = volume.channel().write(disk.drive, disk.page, bytes, hint) {
                for &(p, w) in &victims {
                    states.unlock(p, TAG_RESIDENT, w.flags());
                }
                return Err(VmError::Io {
                    page: PageNumber(page),
                    disk,
                    source,
                });
            }
            m.counters.page_outs += 1;
            victims[i].1 = crate::state::Word((word.0 & !DIRTY) | ON_DISK);
        }
        victims.sort_unstable_by_key(|&(p, _)| p);
        let mut runs: Vec<(u64, u64)> = Vec::with_capacity(victims.len());
        for &(page, _) in &victims {
            match runs.last_mut() {
                Some((start, count)) if *start + *count == page => *count += 1,
                _ => runs.push((page, 1)),
            }
        }
        if self.region.release_runs(&runs).is_err() {
            // The memory stays committed; zero it by hand so that a later
            // zero-fill fault still reads zeros.
            for &(page, _) in &victims {
                // SAFETY: we hold the exclusive latch on every victim.
                unsafe { self.region.page_mut(page) }.fill(0);
            }
        }
        for &(page, word) in &victims {
            states.unlock(page, TAG_ABSENT, word.flags() & (ON_DISK | READ_ONLY));
            m.remove_frame(page);
            m.counters.evictions += 1;
        }
        Ok(())
    }

    // ----- Cedar's VM operations ---------------------------------------------

    /// Brings every page of `interval` into real memory; with `kill`, their
    /// contents are discarded first (no read: they come in as zeros); with
    /// `pin`, they stay until unpinned.
    pub fn swap_in(&self, interval: Interval, kill: bool, pin: bool) -> Result<(), VmError> {
        if kill {
            self.kill(interval)?;
        }
        for page in interval.page.0..interval.end().0 {
            loop {
                let mut m = self.lock();
                self.check_allocated(&m, Interval::new(page, 1))?;
                match self.serve(&mut m, page, None)? {
                    Ok(()) => {
                        if pin {
                            *m.pins.entry(page).or_insert(0) += 1;
                        }
                        break;
                    }
                    Err(Serve::Busy) => {
                        drop(m);
                        std::thread::yield_now();
                    }
                }
            }
        }
        Ok(())
    }

    /// Brings `interval` into real memory (Cedar's `Touch`).
    pub fn touch(&self, interval: Interval) -> Result<(), VmError> {
        self.swap_in(interval, false, false)
    }

    /// Brings `interval` in and keeps it there until [`AddressSpace::unpin`].
    pub fn pin(&self, interval: Interval) -> Result<(), VmError> {
        self.swap_in(interval, false, true)
    }

    /// Undoes one [`AddressSpace::pin`] of each page of `interval`.
    pub fn unpin(&self, interval: Interval) -> Result<(), VmError> {
        let mut m = self.lock();
        self.check_allocated(&m, interval)?;
        for page in interval.page.0..interval.end().0 {
            if let Some(count) = m.pins.get_mut(&page) {
                *count -= 1;
                if *count == 0 {
                    m.pins.remove(&page);
                }
            }
        }
        Ok(())
    }

    /// Makes the contents of `interval` undefined without I/O: they read as
    /// zeros.
    pub fn kill(&self, interval: Interval) -> Result<(), VmError> {
        let mut m = self.lock();
        self.check_allocated(&m, interval)?;
        self.discard(&mut m, interval)
    }

    /// Applies `change` to the state word of every page of `interval`,
    /// under the monitor (so no page moves in or out meanwhile).
    fn change_words(
        &self,
        interval: Interval,
        change: impl Fn(&PageStates<'_>, u64),
    ) -> Result<(), VmError> {
        let m = self.lock();
        self.check_allocated(&m, interval)?;
        let states = self.states();
        for page in interval.page.0..interval.end().0 {
            change(&states, page);
        }
        Ok(())
    }

    /// Write-protects `interval`.
    pub fn make_read_only(&self, interval: Interval) -> Result<(), VmError> {
        self.change_words(interval, |states, page| states.set_flags(page, READ_ONLY))
    }

    /// Removes the write protection of `interval`.
    pub fn make_read_write(&self, interval: Interval) -> Result<(), VmError> {
        self.change_words(interval, |states, page| states.clear_flags(page, READ_ONLY))
    }

    /// Marks the resident pages of `interval` as changed (they will be
    /// written back).
    pub fn make_changed(&self, interval: Interval) -> Result<(), VmError> {
        self.change_words(interval, |states, page| {
            if states.load(page).tag() == TAG_RESIDENT {
                states.set_flags(page, DIRTY);
            }
        })
    }

    /// Marks the resident pages of `interval` as unchanged: their changes
    /// are not written back.
    pub fn make_unchanged(&self, interval: Interval) -> Result<(), VmError> {
        self.change_words(interval, |states, page| states.clear_flags(page, DIRTY))
    }

    /// Makes the pages of `interval` first in line for replacement.
    pub fn age(&self, interval: Interval) -> Result<(), VmError> {
        self.change_words(interval, |states, page| {
            states.clear_flags(page, REFERENCED)
        })
    }

    /// Advice about how `interval` will be used (the BSD `madvise` values).
    pub fn advise(&self, interval: Interval, advice: Advice) -> Result<(), VmError> {
        match advice {
            Advice::WillNeed => self.touch(interval),
            Advice::DontNeed => {
                self.clean(interval)?;
                let mut m = self.lock();
                self.check_allocated(&m, interval)?;
                let states = self.states();
                for page in interval.page.0..interval.end().0 {
                    if m.pins.contains_key(&page) {
                        continue;
                    }
                    if let Ok(word) = states.try_lock_resident(page) {
                        if word.has(DIRTY) || (!word.has(ON_DISK) && m.volume.is_none()) {
                            // Changed again since `clean`, or no backing to
                            // hold it: keep it.
                            states.unlock(page, TAG_RESIDENT, word.flags());
                            continue;
                        }
                        self.region.release(page, 1)?;
                        states.unlock(page, TAG_ABSENT, word.flags() & (ON_DISK | READ_ONLY));
                        m.remove_frame(page);
                        m.counters.evictions += 1;
                    }
                }
                Ok(())
            }
            Advice::Normal | Advice::Sequential | Advice::Random => {
                let mut m = self.lock();
                self.check_allocated(&m, interval)?;
                m.set_advice(interval.page.0, interval.count.0, advice);
                Ok(())
            }
        }
    }

    /// Writes back the changed resident pages of `interval`; they stay
    /// resident. A no-op without backing.
    pub fn clean(&self, interval: Interval) -> Result<(), VmError> {
        let m = self.lock();
        self.check_allocated(&m, interval)?;
        self.write_back_range(&m, interval.page.0, interval.end().0)
    }

    /// Writes back every changed page and syncs the drives: on return every
    /// change has reached stable storage. A no-op without backing.
    pub fn flush(&self) -> Result<(), VmError> {
        let m = self.lock();
        let Some(volume) = m.volume.as_ref() else {
            return Ok(());
        };
        let mut pages: Vec<u64> = m.frame_of.keys().copied().collect();
        pages.sort_unstable();
        for page in pages {
            self.write_back(&m, page)?;
        }
        volume.channel().sync_all().map_err(VmError::Sync)
    }

    fn write_back_range(&self, m: &Monitor, start: u64, end: u64) -> Result<(), VmError> {
        if m.volume.is_none() {
            return Ok(());
        }
        for page in start..end {
            if m.frame_of.contains_key(&page) {
                self.write_back(m, page)?;
            }
        }
        Ok(())
    }

    /// Writes `page` back if it is resident and dirty. The monitor is held.
    fn write_back(&self, m: &Monitor, page: u64) -> Result<(), VmError> {
        let states = self.states();
        if !states.load(page).has(DIRTY) {
            return Ok(());
        }
        let mut spins = 0;
        // A writer's latch is short; a held exclusive guard makes the page
        // busy, which is reported rather than waited for.
        let word = loop {
            match states.try_share(page) {
                Ok(word) => break word,
                Err(word) if word.tag() == TAG_LOCKED && spins < 1000 => backoff(&mut spins),
                Err(_) => {
                    return Err(VmError::PageBusy {
                        page: PageNumber(page),
                    });
                }
            }
        };
        let volume = m.volume.as_ref().expect("write_back needs a volume");
        let result = if word.has(DIRTY) {
            let disk = volume.translate(PageNumber(page))?;
            // SAFETY: we hold a shared latch on `page` until `unshare`.
            let bytes = unsafe { self.region.page(page) };
            match volume.channel().write(disk.drive, disk.page, bytes, None) {
                Ok(()) => {
                    states.clear_flags(page, DIRTY);
                    states.set_flags(page, ON_DISK);
                    Ok(())
                }
                Err(source) => Err(VmError::Io {
                    page: PageNumber(page),
                    disk,
                    source,
                }),
            }
        } else {
            Ok(())
        };
        states.unshare(page);
        result
    }

    /// Cedar's `PageState` of `page`.
    pub fn state(&self, page: PageNumber) -> PageState {
        let m = self.lock();
        if page.0 >= self.virtual_pages || m.allocation_of(page.0).is_none() {
            return PageState::default();
        }
        let word = self.states().load(page.0);
        let resident = word.tag() != TAG_ABSENT;
        let data = if word.has(DIRTY) {
            DataState::Changed
        } else if resident || word.has(ON_DISK) {
            DataState::Unchanged
        } else {
            DataState::Undefined
        };
        PageState {
            data,
            read_only: word.has(READ_ONLY),
            has_real_memory: resident,
            needs_cleaning: resident && word.has(DIRTY),
            pin_count: m.pins.get(&page.0).copied().unwrap_or(0),
        }
    }

    /// The VM's counters.
    pub fn stats(&self) -> VmStats {
        let m = self.lock();
        let drives = m
            .volume
            .as_ref()
            .map(|v| v.channel().total_stats())
            .unwrap_or_default();
        VmStats {
            faults: m.counters.faults,
            hits: self.hits.total(),
            zero_fills: m.counters.zero_fills,
            page_ins: m.counters.page_ins,
            page_outs: m.counters.page_outs,
            read_aheads: m.counters.read_aheads,
            evictions: m.counters.evictions,
            seek_aheads_issued: drives.seek_aheads_issued,
            seek_aheads_used: drives.seek_aheads_used,
            resident_pages: m.resident(),
            resident_high_water: m.counters.resident_high_water,
            real_memory_pages: m.budget(),
            allocated_pages: m.allocated_pages,
            monitor_held_ns: self.monitor_held_ns.load(Ordering::Relaxed),
        }
    }

    /// Pages of the address space the kernel holds in memory now, counted
    /// with `mincore` — the outside view of the real-memory bound (it can
    /// exceed the budget only while an eviction batch is being released).
    pub fn kernel_resident_pages(&self) -> Result<u64, VmError> {
        self.region.kernel_resident_pages()
    }

    /// Checks the monitor's structures and that every frame's page is
    /// resident (tests call this after operations). A failure is a bug.
    pub fn check_invariants(&self) {
        let m = self.lock();
        m.check_invariants();
        for &page in m.frame_of.keys() {
            assert_ne!(
                self.states().load(page).tag(),
                TAG_ABSENT,
                "frame holds absent page {page}"
            );
        }
    }

    /// Runs `f` on the backing volume (tests and tools), under the monitor.
    pub fn with_volume<R>(&self, f: impl FnOnce(&Volume) -> R) -> Option<R> {
        let m = self.lock();
        m.volume.as_ref().map(f)
    }
}

fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < SPINS_BEFORE_YIELD {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// A shared guard on one resident page; see [`AddressSpace::page`].
pub struct PageRef<'a> {
    vm: &'a AddressSpace,
    page: u64,
}

impl std::ops::Deref for PageRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the guard holds a shared latch on the page for its life.
        unsafe { self.vm.region.page(self.page) }
    }
}

impl Drop for PageRef<'_> {
    fn drop(&mut self) {
        self.vm.states().unshare(self.page);
    }
}

/// An exclusive guard on one resident page; see [`AddressSpace::page_mut`].
pub struct PageMut<'a> {
    vm: &'a AddressSpace,
    page: u64,
    flags: u64,
}

impl std::ops::Deref for PageMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the guard holds the exclusive latch for its life.
        unsafe { self.vm.region.page(self.page) }
    }
}

impl std::ops::DerefMut for PageMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: the guard holds the exclusive latch for its life, and
        // `&mut self` makes this the only slice.
        unsafe { self.vm.region.page_mut(self.page) }
    }
}

impl Drop for PageMut<'_> {
    fn drop(&mut self) {
        self.vm
            .states()
            .unlock(self.page, TAG_RESIDENT, self.flags | DIRTY | REFERENCED);
    }
}
