//! `Volume`: the drives that together hold the backing file, with their
//! labels, the double header, the run table and the bad-spot table.
//!
//! Lifecycle: [`Volume::format`] once; [`Volume::open`] thereafter, which
//! takes every drive's exclusive lock (a second opener gets
//! [`disk_channel::DriveError::InUse`]), checks the labels, and takes the
//! newest header slot that decodes and checks out; [`Volume::commit`]
//! writes the next generation into the *other* slot and syncs, so that a
//! crash at any point leaves one complete header.
//!
//! The volume is not internally locked: the VM keeps it under its monitor.

use crate::check::mapping_problems;
use crate::envelope::StructError;
use crate::header::{self, Header};
use crate::label;
use crate::layout::{self, BadSpot, Geometry, Layout};
use crate::table::RunTable;
use crate::{DiskAddr, PageNumber, VolumeError};
use disk_channel::{DiskChannel, DiskPage, DriveId};
use std::collections::BTreeSet;

/// The largest header generation taken for real: commits count one at a
/// time, so no volume gets near it, and a generation past it (a damaged or
/// hostile field with a valid checksum) would leave no room to count on.
pub const GENERATION_MAX: u64 = 1 << 62;

/// Largest header this code writes: beyond it, a stripe unit is too small
/// for the virtual size.
pub const HEADER_BYTES_MAX: usize = 64 << 20;

/// How to format a volume.
#[derive(Clone, Debug)]
pub struct FormatOptions {
    /// Bytes per page; must equal the drives' page size.
    pub page_size: usize,
    /// Pages in the virtual address space.
    pub virtual_pages: u64,
    /// Concatenate or stripe across drives.
    pub layout: Layout,
    /// Pages kept at the end of each drive for remapping bad spots.
    pub spare_pages_per_drive: u32,
    /// Remaps the header slots have room for.
    pub reserve_remaps: u32,
    /// Pages known bad before formatting; they never hold data.
    pub bad_spots: Vec<DiskAddr>,
    /// Recorded in the labels: whether the drive files were left sparse.
    pub sparse: bool,
    /// The volume id; `None` draws a random one.
    pub volume_id: Option<u128>,
}

impl FormatOptions {
    /// Defaults: concatenated, 16 spares per drive, room for 64 remaps,
    /// sparse, no bad spots.
    pub fn new(page_size: usize, virtual_pages: u64) -> FormatOptions {
        FormatOptions {
            page_size,
            virtual_pages,
            layout: Layout::Concatenate,
            spare_pages_per_drive: 16,
            reserve_remaps: 64,
            bad_spots: Vec::new(),
            sparse: true,
            volume_id: None,
        }
    }
}

/// Which header slot `open` used, and what it found in the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderChoice {
    /// The slot used (0 or 1).
    pub slot: u64,
    /// Its generation.
    pub generation: u64,
    /// The other slot: its generation if valid, or why not.
    pub other: Result<u64, String>,
}

/// An open volume.
#[derive(Debug)]
pub struct Volume {
    channel: DiskChannel,
    geometry: Geometry,
    table: RunTable,
    bad_spots: Vec<BadSpot>,
    generation: u64,
    /// Drives whose label no longer lists their bad spots.
    stale_labels: BTreeSet<u16>,
    header_choice: HeaderChoice,
}

fn random_volume_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut id = 0u128;
    for salt in 0..2u64 {
        let mut h = state.build_hasher();
        h.write_u64(salt);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        id = (id << 64) | u128::from(h.finish());
    }
    id
}

impl Volume {
    /// The most virtual pages a volume formatted with `options` on drives of
    /// `drive_pages` pages can hold: every data page (what the labels,
    /// header slots, spares and `options.bad_spots` leave), where the
    /// header slots themselves grow with the run table, so with the virtual
    /// size (small stripe units make many runs). `options.virtual_pages` is
    /// ignored. (`cedarvm format` makes this size when not given one.)
    /// The reverse: [`Volume::drive_pages_for`].
    pub fn fit_virtual_pages(
        options: &FormatOptions,
        drive_pages: &[u64],
    ) -> Result<u64, VolumeError> {
        let mut geometry = Geometry {
            volume_id: 0,
            page_size: options.page_size,
            virtual_pages: 0,
            drive_pages: drive_pages.to_vec(),
            layout: options.layout,
            spare_pages_per_drive: options.spare_pages_per_drive,
            header_slot_pages: 1,
            reserve_remaps: options.reserve_remaps,
            sparse: options.sparse,
        };
        geometry.validate()?;
        // Each bad spot once (format keeps one of each).
        let bad_spots: std::collections::BTreeSet<DiskAddr> =
            options.bad_spots.iter().copied().collect();
        let available = |g: &Geometry| -> u64 {
            (0..g.drive_count())
                .map(|d| {
                    let drive = DriveId(d as u16);
                    let start = g.reserved_front(drive);
                    let (end, _) = g.spare_range(drive);
                    let bad = bad_spots
                        .iter()
                        .filter(|b| b.drive == drive && (start..end).contains(&b.page.0))
                        .count() as u64;
                    end.saturating_sub(start).saturating_sub(bad)
                })
                .sum()
        };
        // Whether `pages` virtual pages fit the data pages their own header
        // leaves. Fewer virtual pages, fewer runs, smaller header slots,
        // more data pages: so what fits is a prefix of the sizes, and the
        // largest is found by bisection.
        let most = available(&geometry);
        let mut fits = |pages: u64| -> Result<bool, VolumeError> {
            geometry.virtual_pages = pages;
            // A header too large for so many pages: fewer fit (review:
            // drive_pages_for met it growing drives for a large space).
            geometry.header_slot_pages =
                match header_slot_pages(&geometry, bad_spots.len(), options) {
                    Err(VolumeError::HeaderTooLarge { .. }) => return Ok(false),
                    other => other?,
                };
            if geometry.validate().is_err() {
                return Ok(false);
            }
            Ok(pages <= available(&geometry))
        };
        if fits(most)? {
            return Ok(most);
        }
        // `lo` fits, `hi` does not.
        let (mut lo, mut hi) = (0u64, most);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return Err(VolumeError::BadGeometry {
                reason: "the drives hold no data page once labels, headers and spares are placed"
                    .into(),
            });
        }
        Ok(lo)
    }

    /// The fewest pages each of `drives` drives, all of one size, needs
    /// for a volume formatted with `options` to hold its
    /// `options.virtual_pages` (the labels, header slots, spares and bad
    /// spots taken off): what to create drives with
    /// (`FileDriveOptions::create(page_size, pages)`). The reverse of
    /// [`Volume::fit_virtual_pages`].
    pub fn drive_pages_for(options: &FormatOptions, drives: usize) -> Result<u64, VolumeError> {
        let want = options.virtual_pages;
        if drives == 0 || drives > usize::from(u16::MAX) || want == 0 {
            return Err(VolumeError::BadGeometry {
                reason: format!(
                    "{want} virtual pages on {drives} drives: each needs at least one, and \
                     a volume has at most {} drives",
                    u16::MAX
                ),
            });
        }
        // Whether drives of `pages` pages hold the space, and have every
        // bad spot on them (a spot past a drive's end is refused).
        let holds = |pages: u64| -> bool {
            options
                .bad_spots
                .iter()
                .all(|b| usize::from(b.drive.0) < drives && b.page.0 < pages)
                && Volume::fit_virtual_pages(options, &vec![pages; drives])
                    .is_ok_and(|fit| fit >= want)
        };
        // `lo` does not hold, `hi` does: doubled up from the pages alone,
        // then halved down to the fewest.
        let mut lo = want.div_ceil(drives as u64).saturating_sub(1);
        let mut hi = lo.max(1);
        while !holds(hi) {
            lo = hi;
            hi = hi.checked_mul(2).filter(|&h| h < 1 << 48).ok_or_else(|| {
                VolumeError::BadGeometry {
                    reason: format!("no drive size holds {want} virtual pages"),
                }
            })?;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if holds(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        // What `format` would refuse whatever the size (a bad spot on a
        // label or header page) is said now.
        Volume::check_format(options, &vec![hi; drives])?;
        Ok(hi)
    }

    /// Checks, without touching a drive, that a volume formatted with
    /// `options` fits drives of `drive_pages` pages: everything
    /// [`Volume::format`] checks before it writes (the geometry, the bad
    /// spots' places, the run table). A tool calls it before it creates,
    /// resizes or writes any drive file, so that a request `format` would
    /// refuse destroys nothing. (How many bad spots a drive's label can
    /// list, by name, is left to `format`.)
    pub fn check_format(options: &FormatOptions, drive_pages: &[u64]) -> Result<(), VolumeError> {
        Self::plan(options, drive_pages.to_vec()).map(drop)
    }

    /// The geometry, bad spots and run table of a volume formatted with
    /// `options` on drives of `drive_pages` pages, or why there is none.
    fn plan(
        options: &FormatOptions,
        drive_pages: Vec<u64>,
    ) -> Result<(Geometry, Vec<BadSpot>, RunTable), VolumeError> {
        let mut bad_spots: Vec<BadSpot> = options
            .bad_spots
            .iter()
            .map(|&addr| BadSpot { addr, spare: None })
            .collect();
        bad_spots.sort_by_key(|s| s.addr);
        bad_spots.dedup();
        let mut geometry = Geometry {
            volume_id: options.volume_id.unwrap_or_else(random_volume_id),
            page_size: options.page_size,
            virtual_pages: options.virtual_pages,
            drive_pages,
            layout: options.layout,
            spare_pages_per_drive: options.spare_pages_per_drive,
            header_slot_pages: 1,
            reserve_remaps: options.reserve_remaps,
            sparse: options.sparse,
        };
        if let Layout::Stripe { unit: 0 } = geometry.layout {
            return Err(VolumeError::BadGeometry {
                reason: "a stripe unit of 0 pages (give at least 1)".into(),
            });
        }
        geometry.header_slot_pages = header_slot_pages(&geometry, bad_spots.len(), options)?;
        geometry.validate()?;
        for spot in &bad_spots {
            let on_drive = geometry
                .drive_pages
                .get(spot.addr.drive.index())
                .is_some_and(|&pages| spot.addr.page.0 < pages);
            if !on_drive || geometry.is_reserved(spot.addr) {
                return Err(VolumeError::BadSpotOffVolume { addr: spot.addr });
            }
        }
        let table = layout::derive_run_table(&geometry, &bad_spots)?;
        Ok((geometry, bad_spots, table))
    }

    /// Formats the drives of `channel` as a new volume (overwriting whatever
    /// they held) and returns it open.
    pub fn format(channel: DiskChannel, options: &FormatOptions) -> Result<Volume, VolumeError> {
        channel.lock_all()?;
        let drives = channel.drive_count();
        if options.page_size != channel.page_size() {
            return Err(VolumeError::PageSizeMismatch {
                volume: options.page_size,
                drives: channel.page_size(),
            });
        }
        let drive_pages = (0..drives)
            .map(|d| channel.page_count(DriveId(d as u16)))
            .collect::<Result<Vec<u64>, _>>()?;
        let (geometry, bad_spots, table) = Self::plan(options, drive_pages)?;
        let mut volume = Volume {
            channel,
            geometry,
            table,
            bad_spots,
            generation: 0,
            stale_labels: (0..drives as u16).collect(),
            header_choice: HeaderChoice {
                slot: 1,
                generation: 1,
                other: Err("erased by format".into()),
            },
        };
        volume.check_label_capacity()?;
        // Erase slot 0 so that no header of an earlier volume survives.
        let slot_bytes = volume.geometry.header_slot_pages as usize * volume.geometry.page_size;
        volume.channel.write(
            DriveId(0),
            DiskPage(volume.geometry.header_slot_start(0)),
            &vec![0; slot_bytes],
            None,
        )?;
        volume.commit()?;
        Ok(volume)
    }

    /// Opens the volume on the drives of `channel`.
    pub fn open(channel: DiskChannel) -> Result<Volume, VolumeError> {
        channel.lock_all()?;
        let drives = channel.drive_count();
        let page_size = channel.page_size();
        let mut labels = Vec::with_capacity(drives);
        let mut page = vec![0u8; page_size];
        for index in 0..drives {
            let drive = DriveId(index as u16);
            let name = channel.name(drive)?.to_string();
            channel.read(drive, DiskPage(0), &mut page, None)?;
            let raw = label::decode(&page).map_err(|reason| match reason {
                StructError::WrongMagic { .. } => VolumeError::NotAVolume {
                    drive: name.clone(),
                    reason,
                },
                StructError::FutureVersion { version, .. } => VolumeError::FutureVersion {
                    drive: name.clone(),
                    structure: "label",
                    version,
                },
                reason => VolumeError::CorruptLabel {
                    drive: name.clone(),
                    reason,
                },
            })?;
            labels.push((name, raw));
        }
        let (first_name, first) = &labels[0];
        let raw_geometry = first.geometry.clone();
        let volume_page_size = raw_geometry.page_size as usize;
        if !volume_page_size.is_power_of_two()
            || !(layout::PAGE_SIZE_MIN..=layout::PAGE_SIZE_MAX).contains(&volume_page_size)
        {
            return Err(VolumeError::BadPageSize {
                page_size: volume_page_size,
            });
        }
        if volume_page_size != page_size {
            return Err(VolumeError::PageSizeMismatch {
                volume: volume_page_size,
                drives: page_size,
            });
        }
        if usize::from(raw_geometry.drive_count) != drives {
            return Err(VolumeError::WrongDrive {
                drive: first_name.clone(),
                reason: format!(
                    "the volume has {} drive{} but {drives} {} given",
                    raw_geometry.drive_count,
                    if raw_geometry.drive_count == 1 {
                        ""
                    } else {
                        "s"
                    },
                    if drives == 1 { "was" } else { "were" }
                ),
            });
        }
        for (index, (name, raw)) in labels.iter().enumerate() {
            if raw.volume_id != first.volume_id || raw.geometry != raw_geometry {
                // Which of the two is wrong, the labels alone cannot say:
                // the scavenger weighs them against the header.
                let what = if raw.volume_id != first.volume_id {
                    format!(
                        "are of different volumes ({:032x} and {:032x})",
                        raw.volume_id, first.volume_id
                    )
                } else {
                    "disagree on the volume's geometry".to_string()
                };
                return Err(VolumeError::WrongDrive {
                    drive: name.clone(),
                    reason: format!(
                        "its label and {first_name}'s {what}: one of the two is not a drive \
                         of this volume, or its label is damaged"
                    ),
                });
            }
            if usize::from(raw.drive_index) != index {
                return Err(VolumeError::WrongDrive {
                    drive: name.clone(),
                    reason: format!(
                        "it is drive {} of its volume, given as drive {index}",
                        raw.drive_index
                    ),
                });
            }
            let actual_pages = channel.page_count(DriveId(index as u16))?;
            if actual_pages < raw.drive_pages {
                return Err(VolumeError::TruncatedDrive {
                    drive: name.clone(),
                    label_pages: raw.drive_pages,
                    actual_pages,
                });
            }
        }
        let drive_pages = labels.iter().map(|(_, l)| l.drive_pages).collect();
        let geometry = raw_geometry
            .to_geometry(first.volume_id, drive_pages)
            .map_err(|reason| VolumeError::CorruptLabel {
                drive: first_name.clone(),
                reason,
            })?;
        geometry.validate()?;
        let label_bad: BTreeSet<BadSpot> = labels
            .iter()
            .flat_map(|(_, l)| l.bad_spots.iter().copied())
            .collect();

        let slots = [
            Self::read_slot(&channel, &geometry, 0),
            Self::read_slot(&channel, &geometry, 1),
        ];
        let best = match (&slots[0], &slots[1]) {
            (Ok(a), Ok(b)) => Some(if a.generation >= b.generation { 0 } else { 1 }),
            (Ok(_), Err(_)) => Some(0),
            (Err(_), Ok(_)) => Some(1),
            (Err(_), Err(_)) => None,
        };
        let Some(best) = best else {
            let [a, b] = slots;
            let (a, b) = (a.unwrap_err(), b.unwrap_err());
            // A newer format, or a slot that decoded but does not fit the
            // volume, says more than "no valid header".
            let future =
                |e: &SlotError| matches!(e, SlotError::Rejected(VolumeError::FutureVersion { .. }));
            let (a, b) = if future(&b) && !future(&a) {
                (b, a)
            } else {
                (a, b)
            };
            return Err(match (a, b) {
                (SlotError::Rejected(e), _) | (_, SlotError::Rejected(e)) => e,
                (a, b) => VolumeError::NoValidHeader {
                    slot0: a.to_string(),
                    slot1: b.to_string(),
                },
            });
        };
        let [a, b] = slots;
        let (chosen, other) = if best == 0 { (a, b) } else { (b, a) };
        let chosen = chosen.expect("chosen slot is valid");
        let bad_spots = chosen.bad_spots.clone();
        let table = RunTable::new(chosen.runs.clone()).map_err(VolumeError::RunTable)?;
        let stale_labels = (0..drives as u16)
            .filter(|&d| {
                let want: BTreeSet<BadSpot> = bad_spots
                    .iter()
                    .filter(|s| s.addr.drive.0 == d)
                    .copied()
                    .collect();
                let have: BTreeSet<BadSpot> = label_bad
                    .iter()
                    .filter(|s| s.addr.drive.0 == d)
                    .copied()
                    .collect();
                want != have
            })
            .collect();
        let volume = Volume {
            channel,
            geometry,
            table,
            bad_spots,
            generation: chosen.generation,
            stale_labels,
            header_choice: HeaderChoice {
                slot: best,
                generation: chosen.generation,
                other: other.map(|h| h.generation).map_err(|e| e.to_string()),
            },
        };
        // A bad-spot table the labels cannot hold could never be committed.
        volume.check_label_capacity()?;
        Ok(volume)
    }

    /// Reads, decodes and checks header slot `slot`.
    fn read_slot(
        channel: &DiskChannel,
        geometry: &Geometry,
        slot: u64,
    ) -> Result<Header, SlotError> {
        let bytes_len = geometry.header_slot_pages as usize * geometry.page_size;
        let mut bytes = vec![0u8; bytes_len];
        channel
            .read(
                DriveId(0),
                DiskPage(geometry.header_slot_start(slot)),
                &mut bytes,
                None,
            )
            .map_err(|e| SlotError::Unreadable(e.to_string()))?;
        let raw = header::decode(&bytes).map_err(|e| match e {
            StructError::FutureVersion { version, .. } => {
                SlotError::Rejected(VolumeError::FutureVersion {
                    drive: channel.name(DriveId(0)).unwrap_or("drive 0").to_string(),
                    structure: "header",
                    version,
                })
            }
            e => SlotError::Corrupt(e),
        })?;
        if raw.volume_id != geometry.volume_id {
            return Err(SlotError::Stale("it belongs to another volume".into()));
        }
        let header_geometry = raw
            .geometry
            .to_geometry(raw.volume_id, raw.drive_pages.clone())
            .map_err(SlotError::Corrupt)?;
        if header_geometry != *geometry {
            if !header_geometry.page_size.is_power_of_two() {
                return Err(SlotError::Rejected(VolumeError::BadPageSize {
                    page_size: header_geometry.page_size,
                }));
            }
            return Err(SlotError::Stale(
                "its geometry differs from the labels'".into(),
            ));
        }
        if raw.generation == 0 || raw.generation > GENERATION_MAX {
            return Err(SlotError::Corrupt(StructError::BadField {
                field: "generation",
                value: raw.generation,
            }));
        }
        if let Some(problem) = mapping_problems(geometry, &raw.runs, &raw.bad_spots)
            .into_iter()
            .next()
        {
            return Err(SlotError::Rejected(VolumeError::Mapping(problem)));
        }
        Ok(Header {
            generation: raw.generation,
            geometry: header_geometry,
            runs: raw.runs,
            bad_spots: raw.bad_spots,
        })
    }

    fn check_label_capacity(&self) -> Result<(), VolumeError> {
        let max = label::max_bad_spots(self.geometry.page_size);
        for drive in 0..self.geometry.drive_count() {
            let count = self
                .bad_spots
                .iter()
                .filter(|s| s.addr.drive.index() == drive)
                .count();
            if count > max {
                return Err(VolumeError::TooManyBadSpots {
                    drive: self.channel.name(DriveId(drive as u16))?.to_string(),
                    count,
                    max,
                });
            }
        }
        Ok(())
    }

    /// Writes the next generation of the header into the slot not holding
    /// the current one, syncs, then rewrites any stale labels and syncs.
    /// On error the volume keeps its current generation.
    pub fn commit(&mut self) -> Result<(), VolumeError> {
        let generation = self.generation + 1;
        let slot = generation % 2;
        let header = Header {
            generation,
            geometry: self.geometry.clone(),
            runs: self.table.runs().to_vec(),
            bad_spots: self.bad_spots.clone(),
        };
        let mut bytes = header::encode(&header);
        let slot_bytes = self.geometry.header_slot_pages as usize * self.geometry.page_size;
        if bytes.len() > slot_bytes {
            return Err(VolumeError::HeaderTooLarge {
                bytes: bytes.len(),
                max: slot_bytes,
            });
        }
        bytes.resize(bytes.len().next_multiple_of(self.geometry.page_size), 0);
        let drive0 = DriveId(0);
        self.channel.write(
            drive0,
            DiskPage(self.geometry.header_slot_start(slot)),
            &bytes,
            None,
        )?;
        self.channel.sync(drive0)?;
        self.generation = generation;
        self.header_choice = HeaderChoice {
            slot,
            generation,
            other: Ok(generation - 1),
        };
        let stale: Vec<u16> = self.stale_labels.iter().copied().collect();
        for drive in stale {
            let spots: Vec<BadSpot> = self
                .bad_spots
                .iter()
                .filter(|s| s.addr.drive.0 == drive)
                .copied()
                .collect();
            let page = label::encode(&self.geometry, drive, &spots);
            self.channel
                .write(DriveId(drive), DiskPage(0), &page, None)?;
            self.channel.sync(DriveId(drive))?;
            self.stale_labels.remove(&drive);
        }
        Ok(())
    }

    /// Records `addr` as bad and moves the virtual page mapped there to a
    /// spare (on the same drive if it has one left); returns the spare. The
    /// caller copies the page's contents and then commits.
    pub fn remap_bad_page(&mut self, addr: DiskAddr) -> Result<DiskAddr, VolumeError> {
        let page = layout::find_virtual(&self.table, addr)
            .ok_or(VolumeError::RemapOfUnmappedPage { addr })?;
        let spare = self
            .free_spare(addr.drive)
            .ok_or(VolumeError::NoSpare { addr })?;
        let used =
            self.bad_spots.len() - self.bad_spots.iter().filter(|s| s.spare.is_none()).count();
        if used >= self.geometry.reserve_remaps as usize {
            return Err(VolumeError::NoSpare { addr });
        }
        self.table
            .remap(page, spare)
            .map_err(VolumeError::RunTable)?;
        self.bad_spots.push(BadSpot {
            addr,
            spare: Some(spare),
        });
        self.stale_labels.insert(addr.drive.0);
        if let Err(e) = self.check_label_capacity() {
            self.bad_spots.pop();
            self.table
                .remap(page, addr)
                .map_err(VolumeError::RunTable)?;
            return Err(e);
        }
        Ok(spare)
    }

    /// The first spare page not bad and not yet assigned, preferring `drive`.
    fn free_spare(&self, drive: DriveId) -> Option<DiskAddr> {
        let taken: BTreeSet<DiskAddr> = self
            .bad_spots
            .iter()
            .flat_map(|s| [Some(s.addr), s.spare])
            .flatten()
            .collect();
        let drives = self.geometry.drive_count();
        (0..drives)
            .map(|k| DriveId(((drive.index() + k) % drives) as u16))
            .find_map(|d| {
                let (start, end) = self.geometry.spare_range(d);
                (start..end)
                    .map(|p| DiskAddr::new(d.0, p))
                    .find(|a| !taken.contains(a))
            })
    }

    /// The disk address of virtual page `page`.
    pub fn translate(&self, page: PageNumber) -> Result<DiskAddr, VolumeError> {
        self.table
            .translate(page)
            .ok_or(VolumeError::AddressOutOfRange {
                page,
                virtual_pages: self.geometry.virtual_pages,
            })
    }

    /// The run table.
    pub fn run_table(&self) -> &RunTable {
        &self.table
    }

    /// The geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The bad-spot table.
    pub fn bad_spots(&self) -> &[BadSpot] {
        &self.bad_spots
    }

    /// The current header generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Which slot `open` used and what the other held.
    pub fn header_choice(&self) -> &HeaderChoice {
        &self.header_choice
    }

    /// Bytes per page.
    pub fn page_size(&self) -> usize {
        self.geometry.page_size
    }

    /// Pages in the virtual space.
    pub fn virtual_pages(&self) -> u64 {
        self.geometry.virtual_pages
    }

    /// The drives.
    pub fn channel(&self) -> &DiskChannel {
        &self.channel
    }

    /// Closes the volume and gives back its channel (the drive locks go
    /// with the drives).
    pub fn into_channel(self) -> DiskChannel {
        self.channel
    }
}

/// Why one header slot was not used.
#[derive(Debug, thiserror::Error)]
enum SlotError {
    #[error("unreadable: {0}")]
    Unreadable(String),
    #[error("{0}")]
    Corrupt(StructError),
    #[error("stale: {0}")]
    Stale(String),
    #[error("{0}")]
    Rejected(VolumeError),
}

/// The pages each header slot needs for `geometry` (its run table at the
/// most runs the layout can make, plus `options.reserve_remaps` remaps)
/// with `bad_spots` format-time bad spots.
fn header_slot_pages(
    geometry: &Geometry,
    bad_spots: usize,
    options: &FormatOptions,
) -> Result<u32, VolumeError> {
    let runs_max = layout::run_count_bound(geometry, bad_spots)
        .saturating_add(2 * options.reserve_remaps as usize);
    let bytes = header::header_bytes(
        geometry.drive_count(),
        runs_max,
        bad_spots + options.reserve_remaps as usize,
    );
    if bytes > HEADER_BYTES_MAX {
        return Err(VolumeError::HeaderTooLarge {
            bytes,
            max: HEADER_BYTES_MAX,
        });
    }
    Ok(bytes.div_ceil(geometry.page_size) as u32)
}
