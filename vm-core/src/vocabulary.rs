//! The vocabulary of the VM's API that is not the run table's
//! (`PageNumber`, `Interval`, `DiskAddr` come from `runtable`): byte
//! addresses, advice, and Cedar's page state. A leaf module: it imports no
//! other module of the crate.

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
#[serde(rename_all = "kebab-case")]
pub enum Advice {
    /// No special treatment: streams are found as a page cache finds
    /// them (a fault after four resident pages, the one next to it used,
    /// reads a cluster); and while more than an eighth of real memory is
    /// free, a fault on a page with a disk copy reads its absent
    /// neighbours with it, eight pages in all, into frames nothing holds
    /// ([`VmConfig::read_around_free`](crate::VmConfig::read_around_free)).
    #[serde(alias = "Normal")]
    Normal,
    /// Accessed in order: a fault also reads the next pages ahead, in a
    /// window that grows with the stream; many streams at once (a merge)
    /// share a quarter of real memory for their windows. A stream alone
    /// whose window has grown to its most (256 pages) keeps the next
    /// windows coming while it uses this one: as many reads in flight as
    /// the frame pool holds less two, from two to six (six at budgets of
    /// 64 MiB or more with 4 KiB pages; two at 32 MiB, and without a pool)
    /// ([`VmStats::inline_reads_in_flight_high`](crate::VmStats::inline_reads_in_flight_high)). In an
    /// interval larger than real memory, which one pass cannot keep, the
    /// stream also frees its clean pages well behind it (further behind
    /// than the read-ahead windows it keeps in flight and two more, or half
    /// of real memory if that is less) as it reads, referenced or
    /// not — as `MADV_SEQUENTIAL` allows — so that a scan reuses the
    /// memory it has and leaves the rest of the space in memory
    /// ([`VmStats::freed_behind`](crate::VmStats::freed_behind)).
    #[serde(alias = "Sequential")]
    Sequential,
    /// Accessed at random: no read-ahead, no read-around.
    #[serde(alias = "Random")]
    Random,
    /// Will be needed soon: the interval is checked and queued for the
    /// VM's will-need thread, which brings it in (by runs, as `touch`)
    /// while the program goes on, as the kernel reads for `MADV_WILLNEED`.
    /// Advice: past three quarters of real memory waiting it is dropped
    /// (it would push out what it asked for;
    /// [`VmStats::will_need_dropped_pages`](crate::VmStats::will_need_dropped_pages)
    /// counts it), and a read
    /// that fails is met by the access that needs the page.
    /// [`AddressSpace::settle`](crate::AddressSpace::settle) waits for it.
    /// Without a volume it is brought in before the call returns
    /// ([`AddressSpace::touch`](crate::AddressSpace::touch) always is).
    #[serde(alias = "WillNeed")]
    WillNeed,
    /// Not needed: write back changes and give the memory back — pages
    /// being read ahead or for `WillNeed` too, once their reads end (it
    /// waits for them). A changed
    /// page a guard holds cannot be written back: the advice then fails
    /// with [`VmError::PageBusy`](crate::VmError::PageBusy) naming it, and
    /// drops nothing (drop the guard, and advise again).
    #[serde(alias = "DontNeed")]
    DontNeed,
}

/// Cedar's data state of a page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataState {
    /// Not allocated.
    #[default]
    #[serde(alias = "None")]
    None,
    /// Allocated, contents undefined (never written, or killed): reads zeros.
    #[serde(alias = "Undefined")]
    Undefined,
    /// Same as its disk copy (or resident and unchanged).
    #[serde(alias = "Unchanged")]
    Unchanged,
    /// Changed since it was last written back.
    #[serde(alias = "Changed")]
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
