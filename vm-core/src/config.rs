//! How to build a VM: [`VmConfig`] and [`FaultService`].

use crate::error::VmError;
use serde::{Deserialize, Serialize};

/// The smallest budget transparent mode accepts, in pages.
pub const TRANSPARENT_MIN_PAGES: u64 = 8;

/// How to build a [`Vm`](crate::Vm).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmConfig {
    /// Bytes per page: a power of two, a multiple of the OS page, at most
    /// 1 MiB. Default 4 KiB.
    pub page_size: usize,
    /// Pages in the address space.
    pub virtual_pages: u64,
    /// The real-memory budget in pages.
    pub real_memory_pages: u64,
    /// Pass the next pending fault's disk page as the seek-ahead hint.
    pub seek_ahead: bool,
    /// Who serves faults.
    pub fault_service: FaultService,
    /// What the monitor is held for while a fault is served.
    pub monitor_scope: MonitorScope,
    /// Transparent mode: plain loads and stores reach the address space
    /// (through [`AddressSpace::view`](crate::AddressSpace::view),
    /// `view_mut` or a raw pointer), paged by the VM through
    /// `userfaultfd`; the copying API works as well. Off by default. The
    /// reclaim list and the streams found without advice belong to the
    /// default service (the faulting thread, [`MonitorScope::Decisions`]);
    /// with the PageFault worker or the seed's scope, faults come in a page
    /// at a time and evicted pages are not kept. An I/O error while serving
    /// a plain access is fatal (the process aborts with the error), as a
    /// failed read of an `mmap`ped file is: use preallocated drives where a
    /// full disk is possible.
    #[serde(default)]
    pub transparent: bool,
    /// Copying mode: move runs of pages between their addresses and a
    /// small pool of committed frames with `UFFDIO_MOVE` (Linux 6.8),
    /// instead of reading into fresh memory and giving it back with
    /// `madvise` (see [`VmConfig::frame_pool_pages`]). On by default; where
    /// the kernel refuses a `userfaultfd` or the move, off by itself.
    #[serde(default = "on")]
    pub move_frames: bool,
    /// With [`VmConfig::move_frames`] and 4 KiB pages: the frame pool's
    /// memory comes in 2 MiB chunks, each committed at once as one huge
    /// page, so that a run read into it lands in physically contiguous
    /// memory — one request to the device per 1 MiB read, not two that
    /// wait for each other — and 512 pages cost one fault. Only the pool
    /// (at most 8 MiB) is advised huge, never the region: the budget's
    /// bound holds. Needs a pool of at least 512 pages (a budget of 16 MiB
    /// or more). On by default.
    #[serde(default = "on")]
    pub huge_pool_chunks: bool,
    /// In the default monitor scope with a volume: a sequential stream's
    /// read-ahead is started by the faulting thread itself, asynchronously
    /// (an `io_uring` read into a run of the frame pool), and finished —
    /// moved in — by the thread that meets it, as the kernel's read-ahead
    /// is; no other thread of the process runs for it. Only for drives
    /// read with `O_DIRECT` and a frame pool; other reads, and every read
    /// with this off, go to the read-ahead thread. On by default (see
    /// `fault::inline` for why and what it measured).
    #[serde(default = "on")]
    pub inline_read_ahead: bool,
    /// In the default monitor scope, copying mode: a fault under `Normal`
    /// advice whose page has a disk copy reads its neighbours with it — 8
    /// pages around it (32 KiB) in one transfer — while more than an
    /// eighth of real memory is free, and only then: the pages go into
    /// frames nothing else holds, so the guess evicts nothing (the
    /// kernel's read-around evicts for its guesses; `MADV_RANDOM` turns
    /// it off altogether). Where memory has just been emptied (a space
    /// opened again, a `DontNeed`), the frames fill eight pages a read
    /// instead of one. Only for drives read with `O_DIRECT`, read by the
    /// faulting thread through its ring (`touch`'s path). On by default:
    /// Zipf reads over a data set four times the budget sent 9–11% fewer
    /// reads to the device and took 0.89–0.90× the time (see
    /// `fault::decided`).
    #[serde(default = "on")]
    pub read_around_free: bool,
}

fn on() -> bool {
    true
}

/// What the monitor is held for while the faulting thread serves a fault.
///
/// The seed holds it for the whole fault, I/O included, "at the expense of
/// some potential parallelism. We believe the actual lost parallelism will
/// be slight" — on a one-processor Dorado with one disk. That belief is
/// measured in BENCHMARKS.md (the fault-path bench's thread runs, one
/// scope against the other).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MonitorScope {
    /// The seed: the monitor is held across the whole fault, the page-in
    /// and the write-backs included. Faults queued behind it give the
    /// seek-ahead hint. The seek-ahead experiments run in this mode.
    #[serde(alias = "HeldAcrossIo")]
    HeldAcrossIo,
    /// The monitor is held to decide — choose a frame, victims and a disk
    /// address, and change page states — never across a page-in or the
    /// release of clean victims' memory. A page being read is latched
    /// ("being read", as in Cedar), and other accessors of it wait on its
    /// latch, not on the monitor; faults on other pages, by other threads,
    /// have their transfers in flight at once. With transfers in flight
    /// together there is no queue to take a seek-ahead hint from: on a real
    /// file the next fault's read is simply already issued (the modern form
    /// of seek-ahead). Dirty victims are still written back under the
    /// monitor, and so is sequential read-ahead. Applies when the faulting
    /// thread serves ([`FaultService::InFaultingThread`]); the PageFault
    /// worker keeps the seed's scope.
    #[default]
    #[serde(alias = "Decisions")]
    Decisions,
}

impl MonitorScope {
    /// The scope's name as reports write it (`decisions`,
    /// `held-across-io`; the JSON's too).
    pub fn name(self) -> &'static str {
        match self {
            MonitorScope::HeldAcrossIo => "held-across-io",
            MonitorScope::Decisions => "decisions",
        }
    }
}

/// Who serves a fault. The faulting thread holds the monitor as
/// [`MonitorScope`] says (by default for decisions only, never across a
/// transfer); the worker serves in the seed's scope, the monitor held
/// across each transfer, and the threads waiting for it form the queue
/// from which the seek-ahead hint is taken. In JSON as `--fault-service`
/// takes it: `"thread"`, `"worker"` (the variants' own names are still
/// read).
///
/// The default is the faulting thread: on this project's 2-core machine a
/// fault with the file in the page cache took 2.8–3.0 µs served in the
/// faulting thread against 3.4–3.5 µs through the worker (criterion, same
/// runs; see BENCHMARKS.md) — the worker's handoff is cheap because both sides spin
/// before they park, but not free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultService {
    /// The faulting thread serves its own fault (no thread handoff).
    #[default]
    #[serde(rename = "thread", alias = "InFaultingThread")]
    InFaultingThread,
    /// One PageFault worker thread serves every fault, synchronously, as in
    /// the seed; faulting threads spin briefly, then park.
    #[serde(rename = "worker", alias = "Worker")]
    Worker,
}

impl VmConfig {
    /// 4 KiB pages, seek-ahead on.
    pub fn new(virtual_pages: u64, real_memory_pages: u64) -> VmConfig {
        VmConfig {
            page_size: 4096,
            virtual_pages,
            real_memory_pages,
            seek_ahead: true,
            fault_service: FaultService::default(),
            monitor_scope: MonitorScope::default(),
            transparent: false,
            move_frames: true,
            huge_pool_chunks: true,
            inline_read_ahead: true,
            read_around_free: true,
        }
    }

    /// The frame pool's size in pages (0 for none): an eighth of the
    /// budget, but at least 16 pages (so a budget under 128 pages gets a
    /// pool larger than an eighth of it) and at most 2,048 and 8 MiB (room
    /// for six 1 MiB read-ahead clusters in flight and two clusters' slots
    /// refilled behind them: see `Advice::Sequential`) —
    /// memory the VM holds beyond its budget, in passage between a
    /// transfer and its pages; `kernel_resident_pages` counts the region
    /// only, not the pool. No pool in transparent mode (its installs copy
    /// from a staging buffer), nor with pages larger than the OS page.
    pub fn frame_pool_pages(&self) -> u64 {
        if !self.move_frames || self.transparent {
            return 0;
        }
        (self.real_memory_pages / 8)
            .clamp(16, 2048)
            .min(((8 << 20) / self.page_size as u64).max(2))
    }

    /// The same in transparent mode (see [`VmConfig::transparent`]).
    pub fn transparent(mut self) -> VmConfig {
        self.transparent = true;
        self
    }

    /// The same with the budget given in bytes (rounded down to pages of
    /// the page size set now: set `page_size` first).
    pub fn with_real_memory_bytes(mut self, bytes: u64) -> VmConfig {
        self.real_memory_pages = bytes / self.page_size as u64;
        self
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), VmError> {
        let os_page = rustix::param::page_size();
        if !self.page_size.is_power_of_two()
            || self.page_size < os_page
            || !self.page_size.is_multiple_of(os_page)
            || self.page_size > 1 << 20
        {
            return Err(VmError::Config {
                field: "page_size",
                reason: format!(
                    "{} is not a power of two between the OS page ({os_page}) and 1 MiB",
                    self.page_size
                ),
            });
        }
        if self.virtual_pages == 0 {
            return Err(VmError::Config {
                field: "virtual_pages",
                reason: "the address space needs at least one page".into(),
            });
        }
        if self.transparent && self.real_memory_pages < TRANSPARENT_MIN_PAGES {
            return Err(VmError::Config {
                field: "real_memory_pages",
                reason: format!(
                    "{} pages is too little for transparent mode (at least \
                     {TRANSPARENT_MIN_PAGES}: one instruction may touch two pages, and a fault \
                     served in the faulting thread must find a frame)",
                    self.real_memory_pages
                ),
            });
        }
        if self.real_memory_pages == 0 || self.real_memory_pages > u64::from(u32::MAX) {
            return Err(VmError::Config {
                field: "real_memory_pages",
                reason: format!("{} is not within 1..=2^32-1", self.real_memory_pages),
            });
        }
        Ok(())
    }
}
