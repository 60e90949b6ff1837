//! Units of the drive layer: which drive, and which page on it.
//!
//! A disk page is in units of the volume's page size `P`, never in sectors or
//! bytes; conversions go through named methods so that a byte offset cannot
//! be mistaken for a page number.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Index of a drive within a channel (and within a volume).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DriveId(pub u16);

impl DriveId {
    /// The drive's index as a `usize`, for indexing a drive table.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for DriveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "drive {}", self.0)
    }
}

/// A page on one drive, in units of the drive's page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DiskPage(pub u64);

impl DiskPage {
    /// The page `count` pages after this one.
    ///
    /// Panics on overflow: disk pages come from validated tables, so an
    /// overflow here is a broken invariant, not bad input.
    pub fn offset(self, count: u64) -> DiskPage {
        DiskPage(self.0.checked_add(count).expect("disk page overflow"))
    }

    /// Byte offset of the page's first byte on its drive.
    pub fn byte_offset(self, page_size: usize) -> u64 {
        self.0
            .checked_mul(page_size as u64)
            .expect("disk byte offset overflow")
    }
}

impl fmt::Display for DiskPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "disk page {}", self.0)
    }
}
