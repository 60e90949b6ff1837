//! # vm-core
//!
//! The single address space of cedar-vm: one large range of virtual pages
//! whose resident pages live in a bounded real-memory budget and whose
//! other pages live on a [`runtable::Volume`] — or, in real-memory-only
//! (utility) mode, nowhere.
//!
//! | module | owns | guarded by |
//! |---|---|---|
//! | `region` | the reserved address range and the page-state array; all mapping calls | — |
//! | `state` | one atomic word per page: residency, latches, referenced/dirty/read-only | the word itself |
//! | `monitor` | allocator, map entries, frames and clock hand, pins, counters, the volume | the monitor |
//! | `vm` | the safe API and the fault service | — |
//! | `fault_queue` | the handoff to the PageFault worker; the hit counter | its own locks |
//! | [`simulate`] | the deterministic driver | — |
//! | [`shm`] | shared segments between processes; BSD `mset`/`mclear`, robust mutex, counting semaphore, semaphore set, on futexes | the words themselves |
//!
//! ```
//! use vm_core::{Backing, VAddr, Vm, VmConfig};
//!
//! let vm = Vm::new(VmConfig::new(1024, 64), Backing::RealMemoryOnly).unwrap();
//! let interval = vm.allocate(4).unwrap();
//! let at = vm.address_of(interval.page);
//! vm.write(VAddr(at.0 + 4090), b"crosses a page boundary").unwrap();
//! let mut back = [0u8; 23];
//! vm.read(VAddr(at.0 + 4090), &mut back).unwrap();
//! assert_eq!(&back, b"crosses a page boundary");
//! ```
//!
//! # Where this departs from the design card
//!
//! - The region is mapped read-write with `MAP_NORESERVE` rather than with
//!   no access (see `region`'s module doc for why).
//! - A page-state word of zero means "absent, no disk copy"; whether the
//!   page is allocated at all is the monitor's allocation map, so
//!   allocating or freeing a huge interval costs no per-page work up front.
//! - Faults are served under the monitor either by the faulting thread
//!   itself or by one PageFault worker thread ([`FaultService`]). In the
//!   first mode the monitor holder serves the pending queue in ticket
//!   order up to its own fault, so that, as with the worker, the service
//!   order is the queue order and the seek-ahead hint names the transfer
//!   that really comes next.
//! - [`simulate`] runs the same fault service step by step on the drives'
//!   virtual clock with simulated faulting processes (deterministic).

mod error;
mod fault_queue;
mod monitor;
mod region;
pub mod shm;
pub mod simulate;
mod state;
mod vm;

pub use error::VmError;
pub use region::kernel_reference;
pub use vm::{AddressSpace, Backing, PageMut, PageRef, Vm};

use serde::{Deserialize, Serialize};
use std::fmt;

/// A byte address in the VM: `page * page_size + offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VAddr(pub u64);

impl fmt::Display for VAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "address {:#x}", self.0)
    }
}

/// Advice about how an interval will be used (the BSD `madvise` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Advice {
    /// No special treatment.
    Normal,
    /// Accessed in order: a fault also reads the next pages ahead.
    Sequential,
    /// Accessed at random: no read-ahead.
    Random,
    /// Will be needed soon: bring it in now.
    WillNeed,
    /// Not needed: write back changes and give the memory back.
    DontNeed,
}

/// Cedar's data state of a page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataState {
    /// Not allocated.
    #[default]
    None,
    /// Allocated, contents undefined (never written, or killed): reads zeros.
    Undefined,
    /// Same as its disk copy (or resident and unchanged).
    Unchanged,
    /// Changed since it was last written back.
    Changed,
}

/// Cedar's `PageState`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageState {
    /// The data state.
    pub data: DataState,
    /// Write-protected.
    pub read_only: bool,
    /// Resident in real memory.
    pub has_real_memory: bool,
    /// Resident and changed: replacing it needs a write.
    pub needs_cleaning: bool,
    /// Pin count.
    pub pin_count: u32,
}

/// The VM's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmStats {
    /// Faults served (accesses that found the page absent).
    pub faults: u64,
    /// Accesses that found the page resident.
    pub hits: u64,
    /// Faults served with zeros, no I/O.
    pub zero_fills: u64,
    /// Pages read from the backing store.
    pub page_ins: u64,
    /// Pages written to the backing store.
    pub page_outs: u64,
    /// Pages brought in ahead of a sequential fault.
    pub read_aheads: u64,
    /// Pages replaced.
    pub evictions: u64,
    /// Transfers that carried a seek-ahead hint (from the drives).
    pub seek_aheads_issued: u64,
    /// Hints the next transfer used (from the drives).
    pub seek_aheads_used: u64,
    /// Pages resident now.
    pub resident_pages: u64,
    /// Most pages ever resident at once.
    pub resident_high_water: u64,
    /// The real-memory budget in pages.
    pub real_memory_pages: u64,
    /// Pages allocated.
    pub allocated_pages: u64,
    /// Total time the monitor was held, nanoseconds.
    pub monitor_held_ns: u64,
}

/// How to build a [`Vm`].
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
}

/// Who serves a fault. Either way the monitor is held during the service,
/// including its I/O, and the threads waiting for it form the queue from
/// which the seek-ahead hint is taken.
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
    InFaultingThread,
    /// One PageFault worker thread serves every fault, synchronously, as in
    /// the seed; faulting threads spin briefly, then park.
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
        }
    }

    /// The same with the budget given in bytes (rounded down to pages).
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
        if self.real_memory_pages == 0 || self.real_memory_pages > u64::from(u32::MAX) {
            return Err(VmError::Config {
                field: "real_memory_pages",
                reason: format!("{} is not within 1..=2^32-1", self.real_memory_pages),
            });
        }
        Ok(())
    }
}
