//! Units of the mapping layer: virtual pages, counts, intervals and disk
//! addresses. Arithmetic between units goes through named methods.

use disk_channel::{DiskPage, DriveId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A virtual page number in the single address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PageNumber(pub u64);

/// A number of pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PageCount(pub u64);

impl PageNumber {
    /// The page `count` pages later, or `None` on overflow.
    pub fn checked_add(self, count: PageCount) -> Option<PageNumber> {
        self.0.checked_add(count.0).map(PageNumber)
    }

    /// The page `count` pages later. Panics on overflow (a broken invariant:
    /// pages come from validated tables).
    pub fn plus(self, count: PageCount) -> PageNumber {
        self.checked_add(count).expect("virtual page overflow")
    }

    /// Pages from `earlier` to this page (`earlier <= self`).
    pub fn since(self, earlier: PageNumber) -> PageCount {
        PageCount(self.0.checked_sub(earlier.0).expect("page order"))
    }
}

impl fmt::Display for PageNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "virtual page {}", self.0)
    }
}

/// A run of virtual pages (Cedar's `VM.Interval`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Interval {
    /// First page.
    pub page: PageNumber,
    /// Pages in the run.
    pub count: PageCount,
}

impl Interval {
    /// The interval of `count` pages from `page`.
    pub fn new(page: u64, count: u64) -> Interval {
        Interval {
            page: PageNumber(page),
            count: PageCount(count),
        }
    }

    /// One past the last page; `None` if that overflows.
    pub fn checked_end(self) -> Option<PageNumber> {
        self.page.checked_add(self.count)
    }

    /// One past the last page. Panics on overflow.
    pub fn end(self) -> PageNumber {
        self.page.plus(self.count)
    }

    /// Whether `page` lies in the interval.
    pub fn contains(self, page: PageNumber) -> bool {
        page >= self.page && page.0 - self.page.0 < self.count.0
    }

    /// Whether the interval has no pages.
    pub fn is_empty(self) -> bool {
        self.count.0 == 0
    }

    /// The interval of `count` pages from `page`.
    pub fn of(page: PageNumber, count: PageCount) -> Interval {
        Interval { page, count }
    }

    /// Its pages, in order.
    pub fn pages(self) -> impl Iterator<Item = PageNumber> {
        (self.page.0..self.end().0).map(PageNumber)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.checked_end() {
            Some(end) => write!(f, "virtual pages {}..{}", self.page.0, end.0),
            None => write!(
                f,
                "virtual pages {}+{} (past the last page number)",
                self.page.0, self.count.0
            ),
        }
    }
}

/// A disk page on one drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DiskAddr {
    /// The drive.
    pub drive: DriveId,
    /// The page on it.
    pub page: DiskPage,
}

impl DiskAddr {
    /// The address of `page` on `drive`.
    pub fn new(drive: u16, page: u64) -> DiskAddr {
        DiskAddr {
            drive: DriveId(drive),
            page: DiskPage(page),
        }
    }

    /// The page `count` pages later on the same drive.
    pub fn offset(self, count: u64) -> DiskAddr {
        DiskAddr {
            drive: self.drive,
            page: self.page.offset(count),
        }
    }
}

impl fmt::Display for DiskAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.drive, self.page)
    }
}
