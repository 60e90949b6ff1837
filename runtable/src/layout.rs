//! Where everything goes on the drives, derived deterministically from the
//! drive sizes, the format options and the format-time bad spots.
//!
//! ```text
//!  drive 0:  | label | header slot 0 (S pages) | header slot 1 (S pages) | data ...      | spares |
//!  drive i:  | label | data ...                                                         | spares |
//! ```
//!
//! Data pages are the pages between the reserved front and the spare pool,
//! minus the format-time bad spots. Virtual pages are handed out in order by
//! one rule that covers both layouts: a cursor stands on a drive; it moves
//! to the next drive after `unit` pages (striping) or when the drive has no
//! data page left; each page takes the drive's next data page.
//! Concatenation is striping with an unbounded unit. Because the rule uses
//! only (drive sizes, options, format-time bad spots), the scavenger can
//! re-derive the run table from the labels alone and replay the remaps that
//! the bad-spot table records.

use crate::table::{Run, RunTable};
use crate::{DiskAddr, PageCount, PageNumber, VolumeError};
use disk_channel::DriveId;
use serde::{Deserialize, Serialize};

/// Smallest page size a volume accepts.
pub const PAGE_SIZE_MIN: usize = 4096;
/// Largest page size a volume accepts.
pub const PAGE_SIZE_MAX: usize = 1 << 20;

/// How virtual pages are spread over the drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Fill drive 0, then drive 1, ...
    #[serde(alias = "Concatenate")]
    Concatenate,
    /// Round-robin in units of `unit` pages.
    #[serde(alias = "Stripe")]
    Stripe {
        /// Pages per stripe unit.
        unit: u32,
    },
}

impl Layout {
    /// Pages the cursor stays on one drive.
    fn unit(self) -> u64 {
        match self {
            Layout::Concatenate => u64::MAX,
            Layout::Stripe { unit } => u64::from(unit),
        }
    }
}

/// A disk page that must not hold data, and where its virtual page went if
/// it was found bad after formatting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BadSpot {
    /// The bad page.
    pub addr: DiskAddr,
    /// `None`: known when the volume was formatted, never mapped.
    /// `Some(spare)`: found later; its virtual page was moved to `spare`.
    pub spare: Option<DiskAddr>,
}

/// Everything about a volume's shape except its runs and bad spots: what
/// labels and header both record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    /// Random identity shared by the drives of one volume.
    pub volume_id: u128,
    /// Bytes per page.
    pub page_size: usize,
    /// Pages in the virtual address space the volume backs.
    pub virtual_pages: u64,
    /// Pages on each drive, in drive order.
    pub drive_pages: Vec<u64>,
    /// How pages are spread.
    pub layout: Layout,
    /// Pages at the end of each drive kept for remapping bad spots.
    pub spare_pages_per_drive: u32,
    /// Pages in each of the two header slots on drive 0.
    pub header_slot_pages: u32,
    /// Remaps the header slots have room for beyond the format's runs.
    pub reserve_remaps: u32,
    /// Whether the drive files were left sparse (informational).
    pub sparse: bool,
}

impl Geometry {
    /// Drives in the volume.
    pub fn drive_count(&self) -> usize {
        self.drive_pages.len()
    }

    /// Pages at the front of `drive` that hold the label (and, on drive 0,
    /// the header slots).
    pub fn reserved_front(&self, drive: DriveId) -> u64 {
        if drive.0 == 0 {
            1 + 2 * u64::from(self.header_slot_pages)
        } else {
            1
        }
    }

    /// First page of header slot `slot` (0 or 1) on drive 0.
    pub fn header_slot_start(&self, slot: u64) -> u64 {
        1 + slot * u64::from(self.header_slot_pages)
    }

    /// The spare pool of `drive`: `[start, end)`.
    pub fn spare_range(&self, drive: DriveId) -> (u64, u64) {
        let end = self.drive_pages[drive.index()];
        (
            end.saturating_sub(u64::from(self.spare_pages_per_drive)),
            end,
        )
    }

    /// Whether `addr` is a label or header page.
    pub fn is_reserved(&self, addr: DiskAddr) -> bool {
        addr.page.0 < self.reserved_front(addr.drive)
    }

    /// Whether `addr` lies in its drive's spare pool.
    pub fn is_spare(&self, addr: DiskAddr) -> bool {
        let (start, end) = self.spare_range(addr.drive);
        (start..end).contains(&addr.page.0)
    }

    /// Checks the geometry on its own: page size, drives, room for the
    /// reserved pages and spares.
    pub fn validate(&self) -> Result<(), VolumeError> {
        if !self.page_size.is_power_of_two()
            || !(PAGE_SIZE_MIN..=PAGE_SIZE_MAX).contains(&self.page_size)
        {
            return Err(VolumeError::BadPageSize {
                page_size: self.page_size,
            });
        }
        if self.drive_pages.is_empty() || self.drive_pages.len() > usize::from(u16::MAX) {
            return Err(VolumeError::BadGeometry {
                reason: format!("{} drives", self.drive_pages.len()),
            });
        }
        if let Layout::Stripe { unit: 0 } = self.layout {
            return Err(VolumeError::BadGeometry {
                reason: "stripe unit of 0 pages".into(),
            });
        }
        if self.header_slot_pages == 0 {
            return Err(VolumeError::BadGeometry {
                reason: "header slots of 0 pages".into(),
            });
        }
        for (index, &pages) in self.drive_pages.iter().enumerate() {
            let drive = DriveId(index as u16);
            let needed = self.reserved_front(drive) + u64::from(self.spare_pages_per_drive);
            if pages < needed {
                return Err(VolumeError::BadGeometry {
                    reason: format!(
                        "{drive} has {pages} page{}; its label, headers and spares alone need \
                         {needed}, and the data pages come on top",
                        if pages == 1 { "" } else { "s" }
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The data pages of one drive as ascending extents `[start, end)`.
fn data_extents(geometry: &Geometry, drive: DriveId, format_bad: &[u64]) -> Vec<(u64, u64)> {
    let start = geometry.reserved_front(drive);
    let (end, _) = geometry.spare_range(drive);
    let mut extents = Vec::new();
    let mut cursor = start;
    for &bad in format_bad {
        if bad < cursor || bad >= end {
            continue;
        }
        if bad > cursor {
            extents.push((cursor, bad));
        }
        cursor = bad + 1;
    }
    if cursor < end {
        extents.push((cursor, end));
    }
    extents
}

/// Derives the run table from the geometry and the bad-spot table: the
/// format rule over the format-time bad spots, then each later remap in
/// table order.
pub fn derive_run_table(
    geometry: &Geometry,
    bad_spots: &[BadSpot],
) -> Result<RunTable, VolumeError> {
    geometry.validate()?;
    let drives = geometry.drive_count();
    let mut format_bad: Vec<Vec<u64>> = vec![Vec::new(); drives];
    for spot in bad_spots.iter().filter(|s| s.spare.is_none()) {
        let list = format_bad
            .get_mut(spot.addr.drive.index())
            .ok_or(VolumeError::BadSpotOffVolume { addr: spot.addr })?;
        list.push(spot.addr.page.0);
    }
    let mut extents: Vec<std::collections::VecDeque<(u64, u64)>> = Vec::with_capacity(drives);
    for (index, list) in format_bad.iter_mut().enumerate() {
        list.sort_unstable();
        list.dedup();
        extents.push(data_extents(geometry, DriveId(index as u16), list).into());
    }
    let unit = geometry.layout.unit();
    let mut runs = Vec::new();
    let (mut cursor, mut used_in_unit) = (0usize, 0u64);
    let mut page = 0u64;
    while page < geometry.virtual_pages {
        if used_in_unit == unit {
            cursor = (cursor + 1) % drives;
            used_in_unit = 0;
        }
        let mut tried = 0;
        while extents[cursor].is_empty() {
            cursor = (cursor + 1) % drives;
            used_in_unit = 0;
            tried += 1;
            if tried > drives {
                let data_pages: u64 = page;
                return Err(VolumeError::NotEnoughDisk {
                    virtual_pages: geometry.virtual_pages,
                    data_pages,
                });
            }
        }
        let extent = extents[cursor].front_mut().expect("non-empty");
        let take = (unit - used_in_unit)
            .min(geometry.virtual_pages - page)
            .min(extent.1 - extent.0);
        runs.push(Run {
            page: PageNumber(page),
            disk: DiskAddr::new(cursor as u16, extent.0),
            count: PageCount(take),
        });
        extent.0 += take;
        if extent.0 == extent.1 {
            extents[cursor].pop_front();
        }
        used_in_unit += take;
        page += take;
    }
    let mut table = RunTable::new(runs).map_err(VolumeError::RunTable)?;
    for spot in bad_spots {
        if let Some(spare) = spot.spare {
            let page = find_virtual(&table, spot.addr)
                .ok_or(VolumeError::RemapOfUnmappedPage { addr: spot.addr })?;
            table.remap(page, spare).map_err(VolumeError::RunTable)?;
        }
    }
    Ok(table)
}

/// The virtual page mapped to `addr`, by a scan of the runs (rare: remaps).
pub fn find_virtual(table: &RunTable, addr: DiskAddr) -> Option<PageNumber> {
    table.runs().iter().find_map(|run| {
        let start = run.disk.page.0;
        (run.disk.drive == addr.drive && (start..start + run.count.0).contains(&addr.page.0))
            .then(|| run.page.plus(PageCount(addr.page.0 - start)))
    })
}

/// An upper bound on the runs the format rule can make, before remaps.
pub fn run_count_bound(geometry: &Geometry, format_bad_spots: usize) -> usize {
    let extents_bound = geometry.drive_count() + format_bad_spots;
    let stripes = match geometry.layout {
        Layout::Concatenate => 0,
        // A unit of 0 is refused by `validate`; counted as 1 here so that
        // the bound never divides by zero.
        Layout::Stripe { unit } => geometry.virtual_pages.div_ceil(u64::from(unit.max(1))) as usize,
    };
    stripes + extents_bound
}
