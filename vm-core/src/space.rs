//! The address space: construction, the handle ([`Vm`]) and the shared
//! state ([`AddressSpace`]), the PageFault worker's lifetime, and the
//! monitor's entry point.
//!
//! Every operation is a method of [`AddressSpace`]; the methods live in the
//! module of the room they belong to (see the crate docs): `access` (the
//! hot path), `fault` (the fault service), `replace` (the clock and
//! write-back), `ops` (Cedar's interval operations), `stats`.
//!
//! Field guards, as in FreeBSD's `vm_page.h`:
//! `(c)` constant after construction, `(m)` the monitor, `(a)` atomic,
//! `(x)` the page's latch in its state word, `(q)` its own lock.

use crate::config::{FaultService, MonitorScope, VmConfig};
use crate::error::VmError;
use crate::fault::planned::ReadAheadQueue;
use crate::fault::queue::FaultQueue;
use crate::hit_counter::HitCounter;
use crate::monitor::{Monitor, MonitorGuard};
use crate::padded::Padded;
use crate::state::PageStates;
use crate::sys::region::{Region, StateArray};
use crate::vocabulary::VAddr;
use parking_lot::Mutex;
use runtable::{PageNumber, Volume};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

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
///
/// # After `fork`
///
/// A child made by `fork` has a copy of a VM in copying mode (in
/// transparent mode it has no region at all), without the VM's threads,
/// and the parent's drives: a page its copy writes back lands in the
/// parent's volume. Read through it, or exec or exit. In the child,
/// `WillNeed` is brought in before it returns, [`Vm::close`] is refused
/// and writes nothing, and dropping the copy writes and joins nothing.
pub struct Vm {
    /// (c) The address space, shared with the worker.
    space: Arc<AddressSpace>,
    /// (c) The PageFault worker, when faults are served by one; taken only
    /// when it is stopped (through `&mut self`).
    worker: Option<thread::JoinHandle<()>>,
    /// (c) The read-ahead thread, in the default monitor scope with a
    /// volume; taken only when it is stopped.
    read_ahead: Option<thread::JoinHandle<()>>,
    /// Closed by [`Vm::close`] or [`Vm::into_volume`]: nothing left for
    /// `Drop` to flush.
    closed: bool,
    /// (c) The process that made the VM. A child made by `fork` has a copy
    /// of the VM but none of its threads, and the parent's drives: its
    /// `close` and `Drop` neither join threads it does not have nor write
    /// into the parent's volume.
    owner: u32,
}

/// The address space itself: region, page states, monitor and fault queue.
pub struct AddressSpace {
    /// (c) Bytes per page.
    pub(crate) page_size: usize,
    /// (c) Pages in the address space.
    pub(crate) virtual_pages: u64,
    /// (c) Whether transfers carry the next transfer's disk page as a hint.
    pub(crate) seek_ahead: bool,
    /// (c) What the monitor is held for while a fault is served.
    pub(crate) monitor_scope: MonitorScope,
    /// (c) Faults read their neighbours into free memory
    /// ([`VmConfig::read_around_free`]).
    pub(crate) read_around_free: bool,
    /// (c) Cluster reads started by faulting threads, in flight or not yet
    /// finished (see `fault::inline`; the reads themselves are (q)).
    /// Declared before `channel` and `region`: its reads hold runs of the
    /// region's frame pool and read the channel's drives, and its drop
    /// waits for them before either goes.
    pub(crate) inline: Option<crate::fault::inline_reads::InlineReads>,
    /// (c) The volume's drives, for transfers made without the monitor
    /// (faults served in [`MonitorScope::Decisions`]); `None` without
    /// backing. The drives themselves are locked by the channel, or need
    /// no lock (`disk_channel::ParallelIo`).
    pub(crate) channel: Option<disk_channel::ChannelHandle>,
    /// (c) The reserved range; a page's bytes are guarded by its latch (x).
    pub(crate) region: Region,
    /// (a) One state word per page (see `state`): the page latches.
    pub(crate) states: StateArray,
    /// (q) In transparent mode, the live views and page guards
    /// (`transparent`); `None` otherwise.
    pub(crate) views: Option<crate::views::Views>,
    /// (c) The reclaim list's slots (transparent mode with a volume); which
    /// slot holds what is the monitor's (`Monitor::reclaim`), a slot's
    /// bytes its owner's (see `reclaim`).
    pub(crate) reclaim_slots: Option<crate::sys::region::Slots>,
    /// (c) The monitor itself: every field of [`Monitor`] is `(m)`.
    pub(crate) monitor: Mutex<Monitor>,
    /// (q) Pages whose faults wait for the monitor, oldest first, with
    /// their tickets and whether the fault overwrites the whole page: where
    /// the seek-ahead hint comes from when faulting threads serve
    /// themselves.
    pub(crate) pending: Mutex<VecDeque<(u64, u64, bool)>>,
    /// (a) The next ticket of the pending queue.
    pub(crate) next_ticket: AtomicU64,
    /// (c) The PageFault worker's queue, when faults are served by the
    /// worker (the queue itself is (q)).
    pub(crate) worker_queue: Option<FaultQueue>,
    /// (c) The read-ahead thread's queue of planned cluster reads, in
    /// [`MonitorScope::Decisions`] with a volume (the queue itself is (q)).
    pub(crate) read_ahead: Option<ReadAheadQueue>,
    /// (c) The will-need thread's queue, with a volume (the queue itself
    /// is (q), and holds the thread once the first interval made it; see
    /// `will_need`).
    pub(crate) will_need: Option<crate::will_need::WillNeedQueue>,
    /// (a) Pages latched by a transfer in flight without the monitor — a
    /// fault being served in [`MonitorScope::Decisions`], a planned
    /// read-ahead — each holding a frame: the clock does not wait for
    /// their latches under the monitor (their holders may need it).
    pub(crate) in_transit: AtomicU64,
    /// (a) Resident hits, per-thread shards.
    pub(crate) hits: HitCounter,
    /// (a) Total time the monitor was held, nanoseconds: written at every
    /// release of the monitor, so on a cache line of its own.
    pub(crate) monitor_held_ns: Padded<AtomicU64>,
    /// (a) A panic unwound through the fault service: the VM's structures
    /// may be half-changed, so faults and I/O operations fail fast with
    /// [`VmError::Poisoned`] from then on. Read by every fault, written
    /// once: on a cache line of its own, away from `monitor_held_ns`,
    /// which the monitor holder writes at every release (sharing that
    /// line cost a cross-core miss per fault with the PageFault worker:
    /// 10% of its fault service time).
    pub(crate) poisoned: Padded<AtomicBool>,
}

impl Vm {
    /// A VM of `config` over `backing`.
    pub fn new(config: VmConfig, backing: Backing) -> Result<Vm, VmError> {
        Self::new_at(config, backing, None)
    }

    /// As [`Vm::new`], with the region at machine address `at` if given
    /// (a persistent space reopened in transparent mode goes where it was,
    /// so that pointers stored in it still hold).
    pub(crate) fn new_at(
        config: VmConfig,
        backing: Backing,
        at: Option<usize>,
    ) -> Result<Vm, VmError> {
        config.validate()?;
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
        // Asynchronous read-ahead belongs to the scope that lets transfers
        // run without the monitor; the seed's keeps its synchronous one.
        let read_ahead_mode =
            !worker_mode && config.monitor_scope == MonitorScope::Decisions && volume.is_some();
        // `WillNeed` without waiting, where there is something to read.
        let will_need_mode = volume.is_some();
        let slots = Self::reclaim_slots(&config, volume.is_some());
        let inline = (read_ahead_mode && config.inline_read_ahead && !config.transparent)
            .then(crate::fault::inline_reads::InlineReads::new)
            .flatten();
        let space = Arc::new(AddressSpace {
            page_size: config.page_size,
            virtual_pages: config.virtual_pages,
            seek_ahead: config.seek_ahead,
            read_around_free: config.read_around_free,
            // The PageFault worker serves in the seed's scope, whatever the
            // configuration asks (see `MonitorScope::Decisions`).
            monitor_scope: if worker_mode {
                MonitorScope::HeldAcrossIo
            } else {
                config.monitor_scope
            },
            channel: volume.as_ref().map(|v| v.channel().handle()),
            region: Region::reserve_at(
                at,
                config.virtual_pages,
                config.page_size,
                config.transparent,
                (config.frame_pool_pages() as usize, config.huge_pool_chunks),
            )?,
            states: StateArray::new(config.virtual_pages)?,
            views: config.transparent.then(crate::views::Views::default),
            reclaim_slots: match slots {
                0 => None,
                slots => Some(crate::sys::region::Slots::new(
                    slots as u32,
                    config.page_size,
                )?),
            },
            monitor: Mutex::new(Self::monitor_for(&config, volume, slots)?),
            pending: Mutex::new(VecDeque::new()),
            next_ticket: AtomicU64::new(0),
            worker_queue: worker_mode.then(FaultQueue::default),
            read_ahead: read_ahead_mode.then(ReadAheadQueue::default),
            will_need: will_need_mode.then(crate::will_need::WillNeedQueue::default),
            inline,
            in_transit: AtomicU64::new(0),
            hits: HitCounter::default(),
            monitor_held_ns: Padded(AtomicU64::new(0)),
            poisoned: Padded(AtomicBool::new(false)),
        });
        if config.transparent {
            space.attach_fault_service()?;
        }
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
        let read_ahead = if read_ahead_mode {
            let shared = Arc::clone(&space);
            let spawned = thread::Builder::new()
                .name("read-ahead".into())
                .spawn(move || shared.run_read_ahead());
            match spawned {
                Ok(handle) => Some(handle),
                Err(source) => {
                    // Stop the worker already started (none in this mode)
                    // and report.
                    return Err(VmError::Map {
                        what: "spawning the read-ahead thread",
                        bytes: 0,
                        source,
                    });
                }
            }
        } else {
            None
        };
        // The will-need thread is made at the first `WillNeed` queued, not
        // here: most VMs are never advised so. It holds the space while it
        // runs (the VM stops and joins it before the space goes); the
        // queue holds only a weak reference, so no cycle keeps the space.
        // Where the thread cannot be made, `WillNeed` brings its interval
        // in before it returns, as it did before there was one.
        if let Some(queue) = space.will_need.as_ref() {
            let weak = Arc::downgrade(&space);
            queue.set_spawner(Box::new(move || {
                let shared = weak
                    .upgrade()
                    .ok_or_else(|| std::io::Error::other("the address space is gone"))?;
                thread::Builder::new()
                    .name("will-need".into())
                    .spawn(move || shared.run_will_need())
            }));
        }
        Ok(Vm {
            space,
            worker,
            read_ahead,
            closed: false,
            owner: crate::sys::futex::current_pid(),
        })
    }

    /// The monitor for `config` over `volume`, `slots` pages of the budget
    /// set aside for the reclaim list and the rest frames.
    fn monitor_for(
        config: &VmConfig,
        volume: Option<Volume>,
        slots: u64,
    ) -> Result<Monitor, VmError> {
        let budget = config.real_memory_pages;
        let mut monitor = Monitor::new(config.virtual_pages, budget - slots, volume)?;
        if slots > 0 {
            monitor.reclaim = Some(crate::reclaim::Reclaim::new(slots as u32));
        }
        Ok(monitor)
    }

    /// The reclaim list's share of the budget: a quarter, in transparent
    /// mode with a volume, a budget of at least 16 pages and the default
    /// service (the faulting thread deciding under the monitor — the only
    /// path that takes copies back; elsewhere the list would hold copies
    /// nobody reclaims, in frames taken from the clock).
    fn reclaim_slots(config: &VmConfig, volume: bool) -> u64 {
        let budget = config.real_memory_pages;
        let default_service = config.fault_service == FaultService::InFaultingThread
            && config.monitor_scope == MonitorScope::Decisions;
        if config.transparent && volume && default_service && budget >= 16 {
            budget / 4
        } else {
            0
        }
    }

    /// Whether a PageFault worker thread serves the faults.
    pub fn has_worker(&self) -> bool {
        self.worker.is_some()
    }

    /// Stops the will-need thread at the next page of the interval it is
    /// bringing in; the intervals still waiting are dropped (advice).
    fn stop_will_need(&mut self) {
        if let Some(handle) = self.space.will_need.as_ref().and_then(|q| q.stop()) {
            // The thread catches a panic of its work itself
            // (`run_will_need`).
            let _ = handle.join();
        }
    }

    /// Stops the read-ahead thread once its planned reads are done.
    fn stop_read_ahead(&mut self) {
        if let Some(handle) = self.read_ahead.take() {
            self.space
                .read_ahead
                .as_ref()
                .expect("a read-ahead thread has a queue")
                .stop();
            // The thread catches a drive's panic itself.
            let _ = handle.join();
        }
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

    /// Flushes, closes the VM and returns its volume, which then holds
    /// everything written (`None` without backing). If the flush fails, the
    /// error is returned and the VM dropped: what it could not write is
    /// lost, as with [`Vm::close`].
    pub fn into_volume(mut self) -> Result<Option<Volume>, VmError> {
        self.close_flushing()?;
        Ok(self.space.monitor.lock().volume.take())
    }

    /// Runs `f` on the backing volume (tools and tests), under the
    /// monitor. It takes the VM by `&mut`: no other reference to the VM can
    /// live while `f` runs, so `f` cannot call the VM and wait for the
    /// monitor it is running under — the deadlock is not expressible.
    pub fn with_volume<R>(&mut self, f: impl FnOnce(&Volume) -> R) -> Option<R> {
        let monitor = self.space.lock_monitor();
        monitor.volume.as_ref().map(f)
    }

    /// Flushes (see [`AddressSpace::flush`]) and closes the VM, returning
    /// the flush's error: the way to end a persistent space and know that
    /// everything written is on disk. (Dropping a persistent VM flushes
    /// too, but can only ignore a failure.) In a child made by `fork` after
    /// the VM was made it writes nothing into the volume, which is the
    /// parent's, and returns [`VmError::BadArgument`].
    pub fn close(mut self) -> Result<(), VmError> {
        self.close_flushing()
    }

    /// Whether this process is a child made by `fork` after the VM was
    /// made: the VM's threads are not in it, and its volume is the
    /// parent's.
    fn in_forked_child(&self) -> bool {
        crate::sys::futex::current_pid() != self.owner
    }

    /// In a child made by `fork`: lets go of the parent's threads' handles
    /// without joining them (they are not in this process: a join fails).
    /// The will-need thread's handle stays in its queue: that thread's
    /// reference keeps the child's copy of the space, which is never
    /// freed here.
    fn forget_parents_threads(&mut self) {
        for handle in [self.worker.take(), self.read_ahead.take()]
            .into_iter()
            .flatten()
        {
            std::mem::forget(handle);
        }
    }

    /// Flushes if the VM can, then stops its threads; `Drop` then has
    /// nothing left to do. In a child made by `fork`, flushes nothing (the
    /// volume is the parent's) and fails.
    fn close_flushing(&mut self) -> Result<(), VmError> {
        if self.in_forked_child() {
            self.forget_parents_threads();
            self.closed = true;
            return Err(VmError::BadArgument {
                call: "close",
                reason: "this process is a child made by fork: the VM's volume and threads \
                         are the parent's, and nothing was written (exec or exit in the child)"
                    .into(),
            });
        }
        self.stop_will_need();
        let flushed = if self.space.is_poisoned() {
            Err(VmError::Poisoned)
        } else {
            self.space.flush()
        };
        self.closed = true;
        self.stop_worker();
        self.stop_read_ahead();
        flushed
    }
}

impl Drop for Vm {
    /// A persistent space is flushed, best effort (a failure cannot be
    /// reported here: [`Vm::close`] reports it); an anonymous one is
    /// dropped with its contents, as Cedar's — but for its shared file
    /// mappings, whose changes go to their files (best effort; as
    /// `munmap` at exit; `flush` or `free` first to see the errors). In a
    /// child made by `fork` nothing is written or joined (see
    /// [`Vm::close`]).
    fn drop(&mut self) {
        if self.in_forked_child() {
            self.forget_parents_threads();
            return;
        }
        self.stop_will_need();
        if !self.closed && !self.space.is_poisoned() {
            if self.space.is_persistent() {
                let _ = self.space.flush();
            } else {
                let _ = self.space.write_back_mappings();
            }
        }
        self.stop_worker();
        self.stop_read_ahead();
    }
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("space", &*self.space)
            .field("worker", &self.worker.is_some())
            .field("read_ahead", &self.read_ahead.is_some())
            .finish()
    }
}

impl std::fmt::Debug for AddressSpace {
    /// The shape of the space and its counters (taking the monitor briefly,
    /// or saying it is busy).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("AddressSpace");
        d.field("page_size", &self.page_size)
            .field("virtual_pages", &self.virtual_pages)
            .field("monitor_scope", &self.monitor_scope)
            .field("poisoned", &self.is_poisoned());
        match self.monitor.try_lock() {
            Some(monitor) => d
                .field("backed", &monitor.volume.is_some())
                .field("persistent", &monitor.map.is_some())
                .field("allocated_pages", &monitor.allocated_pages)
                .field("resident_pages", &monitor.frame_of.len())
                .field("real_memory_pages", &monitor.frames.len()),
            None => d.field("monitor", &"busy"),
        };
        d.finish()
    }
}

impl std::ops::Deref for Vm {
    type Target = AddressSpace;
    fn deref(&self) -> &AddressSpace {
        &self.space
    }
}

impl AddressSpace {
    /// The page-state words (see `state`).
    pub(crate) fn states(&self) -> PageStates<'_> {
        PageStates::new(self.states.words())
    }

    /// Takes the monitor; the guard counts how long it is held. Monitor not
    /// held on entry (it is not re-entrant), held on return.
    pub(crate) fn lock_monitor(&self) -> MonitorGuard<'_> {
        MonitorGuard::new(self.monitor.lock(), &self.monitor_held_ns, &self.poisoned)
    }

    /// Fails with [`VmError::Poisoned`] once a panic unwound through the
    /// fault service.
    pub(crate) fn check_poisoned(&self) -> Result<(), VmError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(VmError::Poisoned);
        }
        Ok(())
    }

    /// Whether a panic in the fault service has made the VM unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
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

    /// The process addresses the address space occupies (resident pages
    /// sit at `start + page * page_size`), as numbers: for tools that look
    /// at the process from outside, such as `/proc/self/smaps` or
    /// `mincore`. They are not a way in: the VM's pages may be released,
    /// replaced or written by other threads at any moment, and only the
    /// latched access paths (`read`, `write`, guards) may touch them.
    pub fn region_addresses(&self) -> std::ops::Range<usize> {
        let start = self.region.base() as usize;
        start..start + self.virtual_pages as usize * self.page_size
    }
}
