//! A damaged-volume campaign for the tools, as `vm_core::campaign` is for
//! the VM: one seed formats a random volume (one to three drives, page size,
//! layout, spares, virtual size), writes a marker into pages of it, damages
//! it in one of the ways an operator or a disk does, and then holds `info`
//! and `scavenge` to their promises:
//!
//! - nothing panics, and every call returns (the caller bounds the time);
//! - `info` and `scavenge` agree: a volume the scavenger calls clean
//!   opens, and one that opens is not called unrecoverable;
//! - "repairable" means `--repair` repairs it, after which a second
//!   scavenge is clean — "repaired" then "repairable" again is a failure;
//! - a repair never changes the volume's id, drive count or virtual size;
//! - where the scavenger says unrecoverable, `--repair` writes nothing;
//! - a volume whose header is intact (the damage fell on labels, on the
//!   command line, or past the end) never loses a mapped page: every
//!   marker reads back through the volume's run table afterwards.
//!
//! The damage, one kind per seed: random bytes in the front of a drive
//! (labels and header slots), a truncated or extended drive, drives given
//! swapped or one left off, a foreign label (another volume's id, valid
//! checksum), and damage with a valid checksum: runs out of order, a
//! bad-spot entry off the volume, a label's geometry changed, a bad spot
//! under a mapped page (with spares free, with none left, remapped to a
//! page that is not a spare). [`run_case`] with the same seed replays a case.

use crate::drives::open_channel;
use crate::error::ToolError;
use crate::format::{FormatRequest, format};
use crate::info::info;
use crate::scavenge::{Status, scavenge};
use crate::utility_vm::UtilityVm;
use disk_channel::DriveId;
use disk_channel::rng::SplitMix64;
use runtable::header::{self, Header};
use runtable::{BadSpot, DiskAddr, Geometry, Layout, PageNumber, Volume, label};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a case did when it kept every promise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseOutcome {
    /// The damage done.
    pub damage: String,
    /// The scavenger's first verdict.
    pub verdict: Status,
    /// Whether `--repair` repaired it.
    pub repaired: bool,
    /// Markers checked afterwards (0 where the header was not intact).
    pub markers_checked: usize,
}

/// A broken promise; the seed replays it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseFailure {
    /// The case's seed.
    pub seed: u64,
    /// The damage done.
    pub damage: String,
    /// What was wrong.
    pub message: String,
}

impl std::fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "damaged-volume case {} ({}): {}",
            self.seed, self.damage, self.message
        )
    }
}

/// The volume as formatted: what a repair may not change, and where the
/// markers are.
struct Original {
    volume_id: String,
    drives: usize,
    virtual_pages: u64,
    markers: Vec<PageNumber>,
}

/// How the damage leaves the header, and so what may be asserted after.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeaderState {
    /// Untouched: no mapped page may be lost.
    Intact,
    /// Changed only in ways a repair puts right without moving data
    /// (runs reordered, an impossible bad-spot entry, a bad spot under a
    /// page whose contents still read): no mapped page may be lost either.
    Mendable,
    /// Possibly damaged: only the tools' agreement is asserted.
    Unknown,
}

const MARKERS: usize = 48;

/// Runs damaged-volume case `seed` in `dir` (an empty directory the caller
/// owns and removes).
pub fn run_case(dir: &Path, seed: u64) -> Result<CaseOutcome, CaseFailure> {
    let mut rng = SplitMix64::new(seed ^ 0x5CA7_E46E);
    let mut damage = String::from("format");
    let fail = |damage: &str, message: String| CaseFailure {
        seed,
        damage: damage.to_string(),
        message,
    };
    let (paths, original, geometry) =
        make_volume(dir, &mut rng).map_err(|e| fail("format", format!("format: {e}")))?;
    let (given, header_state) = do_damage(&paths, &geometry, &original, &mut rng, &mut damage)
        .map_err(|e| fail(&damage, format!("damaging: {e}")))?;
    let before = snapshot(&paths);

    let opened = info(&given);
    let report = scavenge(&given, false, None).map_err(|e| {
        fail(
            &damage,
            format!("scavenge failed instead of reporting: {e}"),
        )
    })?;
    match (&opened, report.status) {
        (Err(e), Status::Clean) => {
            return Err(fail(
                &damage,
                format!("scavenge says clean but info fails: {e}"),
            ));
        }
        (Ok(_), Status::Unrecoverable) => {
            return Err(fail(
                &damage,
                format!(
                    "info opens the volume but scavenge calls it unrecoverable: {:?}",
                    report.findings
                ),
            ));
        }
        _ => {}
    }
    let repair = scavenge(&given, true, None);
    let repaired = match (report.status, &repair) {
        (Status::Clean, Ok(r)) if r.status == Status::Clean => false,
        (Status::Repairable, Ok(r)) if r.status == Status::Repaired => true,
        (Status::Unrecoverable, Ok(r)) if r.status == Status::Unrecoverable => {
            if snapshot(&paths) != before {
                return Err(fail(
                    &damage,
                    "an unrecoverable volume was written by --repair".into(),
                ));
            }
            false
        }
        (status, other) => {
            return Err(fail(
                &damage,
                format!("said {status:?}, then --repair gave {other:?}"),
            ));
        }
    };
    if repaired {
        let again = scavenge(&given, false, None)
            .map_err(|e| fail(&damage, format!("scavenge after repair: {e}")))?;
        if again.status != Status::Clean {
            return Err(fail(
                &damage,
                format!("repaired, then {:?}: {:?}", again.status, again.findings),
            ));
        }
        let now = info(&given).map_err(|e| fail(&damage, format!("info after repair: {e}")))?;
        let identity = (now.volume_id.clone(), now.drives.len(), now.virtual_pages);
        if identity
            != (
                original.volume_id.clone(),
                original.drives,
                original.virtual_pages,
            )
        {
            return Err(fail(
                &damage,
                format!(
                    "repair changed the volume: {identity:?}, formatted as {:?}",
                    (&original.volume_id, original.drives, original.virtual_pages)
                ),
            ));
        }
    }
    let mut markers_checked = 0;
    if header_state != HeaderState::Unknown && report.status != Status::Unrecoverable {
        markers_checked = check_markers(&paths, &original)
            .map_err(|e| fail(&damage, format!("a mapped page was lost: {e}")))?;
    }
    if given != paths {
        // Drives given swapped or one left off: unrecoverable as given, and
        // given right, every page is still there.
        if report.status != Status::Unrecoverable {
            return Err(fail(
                &damage,
                format!("not unrecoverable as given: {:?}", report.status),
            ));
        }
        markers_checked = check_markers(&paths, &original)
            .map_err(|e| fail(&damage, format!("drives given wrong lost a page: {e}")))?;
    }
    Ok(CaseOutcome {
        damage,
        verdict: report.status,
        repaired,
        markers_checked,
    })
}

/// Formats a random small volume in `dir` and writes markers into random
/// pages; commits once more half the time (both header slots written).
fn make_volume(
    dir: &Path,
    rng: &mut SplitMix64,
) -> Result<(Vec<PathBuf>, Original, Geometry), ToolError> {
    let drives = 1 + rng.below(3) as usize;
    let page_size = [4096usize, 8192, 16384][rng.below(3) as usize];
    let drive_pages = 256 + rng.below(768);
    let layout = if rng.below(2) == 0 {
        Layout::Concatenate
    } else {
        Layout::Stripe {
            unit: 1 + rng.below(16) as u32,
        }
    };
    let paths: Vec<PathBuf> = (0..drives).map(|d| dir.join(format!("d{d}.vol"))).collect();
    let request = FormatRequest {
        drives: paths.clone(),
        page_size,
        drive_pages,
        virtual_pages: None,
        layout,
        spare_pages: 4 + rng.below(12) as u32,
        preallocate: false,
        force: false,
        scan: None,
    };
    format(&request, &UtilityVm::new(2 << 20)?)?;
    let mut volume = Volume::open(open_channel(&paths, page_size)?)?;
    let g = volume.geometry().clone();
    let mut markers: Vec<PageNumber> = (0..MARKERS)
        .map(|_| PageNumber(rng.below(g.virtual_pages)))
        .collect();
    markers.push(PageNumber(0));
    markers.push(PageNumber(g.virtual_pages - 1));
    markers.sort_unstable();
    markers.dedup();
    for &page in &markers {
        let disk = volume.translate(page)?;
        volume
            .channel()
            .write(disk.drive, disk.page, &marker(page, g.page_size), None)?;
    }
    for d in 0..drives {
        volume.channel().sync(DriveId(d as u16))?;
    }
    if rng.below(2) == 0 {
        volume.commit()?;
    }
    let original = Original {
        volume_id: format!("{:032x}", g.volume_id),
        drives,
        virtual_pages: g.virtual_pages,
        markers,
    };
    Ok((paths, original, g))
}

/// What page `page` holds: its number, then a fixed pattern.
fn marker(page: PageNumber, page_size: usize) -> Vec<u8> {
    let mut bytes = vec![0xC5u8; page_size];
    bytes[..8].copy_from_slice(&page.0.to_le_bytes());
    bytes
}

/// Every marker, read through the volume's run table as it now opens with
/// the drives in order: the number of markers checked.
fn check_markers(paths: &[PathBuf], original: &Original) -> Result<usize, String> {
    let channel = open_channel(paths, 4096).map_err(|e| e.to_string())?;
    let volume = Volume::open(channel).map_err(|e| format!("the volume does not open: {e}"))?;
    let page_size = volume.page_size();
    let mut bytes = vec![0u8; page_size];
    for &page in &original.markers {
        let disk = volume.translate(page).map_err(|e| e.to_string())?;
        volume
            .channel()
            .read(disk.drive, disk.page, &mut bytes, None)
            .map_err(|e| format!("{page} at {disk}: {e}"))?;
        if bytes != marker(page, page_size) {
            return Err(format!("{page} at {disk} holds something else"));
        }
    }
    Ok(original.markers.len())
}

/// The bytes of every drive file (small volumes: this is the test's model
/// of "nothing written").
fn snapshot(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect()
}

fn poke(path: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all_at(bytes, offset)
}

/// Writes `runs` and `bad` as the header of both slots and the labels'
/// bad-spot lists, with valid checksums, as a buggy tool might.
fn rewrite_tables(
    paths: &[PathBuf],
    g: &Geometry,
    runs: Vec<runtable::Run>,
    bad: Vec<BadSpot>,
) -> std::io::Result<()> {
    for slot in 0..2u64 {
        let h = Header {
            generation: 10 + slot,
            geometry: g.clone(),
            runs: runs.clone(),
            bad_spots: bad.clone(),
        };
        let start = g.header_slot_start((10 + slot) % 2);
        poke(&paths[0], start * g.page_size as u64, &header::encode(&h))?;
    }
    for (d, path) in paths.iter().enumerate() {
        let spots: Vec<BadSpot> = bad
            .iter()
            .filter(|s| s.addr.drive.index() == d)
            .copied()
            .collect();
        poke(path, 0, &label::encode(g, d as u16, &spots))?;
    }
    Ok(())
}

/// Damages the volume one way: the drives as the tools are then given
/// them, and what is left of the header.
fn do_damage(
    paths: &[PathBuf],
    g: &Geometry,
    original: &Original,
    rng: &mut SplitMix64,
    damage: &mut String,
) -> Result<(Vec<PathBuf>, HeaderState), String> {
    let drives = paths.len();
    let ps = g.page_size as u64;
    let d = rng.below(drives as u64) as usize;
    let io = |e: std::io::Error| e.to_string();
    let mut given = paths.to_vec();
    let state = match rng.below(13) {
        0 => {
            // Random bytes in a label page only.
            let at = rng.below(ps - 8);
            *damage = format!("bytes at {at} of drive {d}'s label");
            poke(&paths[d], at, &rng.next_u64().to_le_bytes()).map_err(io)?;
            HeaderState::Intact
        }
        1 => {
            // Random bytes in the front of a drive: label or header slots.
            let front = g.reserved_front(DriveId(d as u16)) * ps;
            let at = rng.below(front - 8);
            *damage = format!("bytes at {at} of drive {d}'s front");
            poke(&paths[d], at, &rng.next_u64().to_le_bytes()).map_err(io)?;
            if at < ps {
                HeaderState::Intact
            } else {
                HeaderState::Unknown
            }
        }
        2 => {
            let pages = g.drive_pages[d] - 1 - rng.below(g.drive_pages[d] / 2);
            *damage = format!("truncated drive {d} to {pages} pages");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&paths[d])
                .and_then(|f| f.set_len(pages * ps))
                .map_err(io)?;
            HeaderState::Intact
        }
        3 => {
            let pages = g.drive_pages[d] + 1 + rng.below(64);
            *damage = format!("extended drive {d} to {pages} pages");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&paths[d])
                .and_then(|f| f.set_len(pages * ps))
                .map_err(io)?;
            HeaderState::Intact
        }
        4 if drives > 1 => {
            let e = (d + 1) % drives;
            *damage = format!("drives {d} and {e} given swapped");
            given.swap(d, e);
            HeaderState::Intact
        }
        5 if drives > 1 => {
            *damage = format!("drive {d} left off");
            given.remove(d);
            HeaderState::Intact
        }
        6 => {
            let mut foreign = g.clone();
            foreign.volume_id = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
            *damage = format!("a foreign label on drive {d}");
            poke(&paths[d], 0, &label::encode(&foreign, d as u16, &[])).map_err(io)?;
            HeaderState::Intact
        }
        7 => {
            let mut changed = g.clone();
            let field = rng.below(4);
            match field {
                0 => {
                    changed.virtual_pages = changed.virtual_pages.saturating_sub(1 + rng.below(50))
                }
                1 => changed.header_slot_pages += 1 + rng.below(8) as u32,
                2 => changed.spare_pages_per_drive += 1 + rng.below(8) as u32,
                _ => changed.drive_pages[d] += 1 + rng.below(100),
            }
            *damage = format!("drive {d}'s label geometry changed (field {field})");
            poke(&paths[d], 0, &label::encode(&changed, d as u16, &[])).map_err(io)?;
            HeaderState::Intact
        }
        8 => {
            let volume = open_volume(paths, g)?;
            let mut runs = volume.run_table().runs().to_vec();
            if runs.len() < 2 {
                *damage = "nothing (one run)".into();
                return Ok((given, HeaderState::Intact));
            }
            let i = rng.below(runs.len() as u64 - 1) as usize;
            runs.swap(i, i + 1);
            *damage = format!("runs {i} and {} swapped in both header slots", i + 1);
            let bad = volume.bad_spots().to_vec();
            drop(volume);
            rewrite_tables(paths, g, runs, bad).map_err(io)?;
            HeaderState::Mendable
        }
        9 => {
            let volume = open_volume(paths, g)?;
            let runs = volume.run_table().runs().to_vec();
            let mut bad = volume.bad_spots().to_vec();
            drop(volume);
            let addr = DiskAddr::new(d as u16, g.drive_pages[d] + rng.below(1 << 30));
            bad.push(BadSpot { addr, spare: None });
            *damage = format!("a bad-spot entry {addr} off the volume");
            rewrite_tables(paths, g, runs, bad).map_err(io)?;
            HeaderState::Mendable
        }
        kind @ (11 | 12) => {
            // A bad spot under a mapped page that repair cannot move: every
            // spare already taken (11), or an entry whose spare lies
            // outside the spare pools (12).
            let volume = open_volume(paths, g)?;
            let page = original.markers[rng.below(original.markers.len() as u64) as usize];
            let disk = volume.translate(page).map_err(|e| e.to_string())?;
            let runs = volume.run_table().runs().to_vec();
            drop(volume);
            let mut bad = Vec::new();
            if kind == 11 {
                bad.push(BadSpot {
                    addr: disk,
                    spare: None,
                });
                for drive in 0..drives {
                    let (start, end) = g.spare_range(DriveId(drive as u16));
                    bad.extend((start..end).map(|p| BadSpot {
                        addr: DiskAddr::new(drive as u16, p),
                        spare: None,
                    }));
                }
                *damage = format!("{page}'s disk page {disk} recorded bad, no spare left");
            } else {
                let spare = DiskAddr::new(0, g.reserved_front(DriveId(0)) - 1);
                bad.push(BadSpot {
                    addr: disk,
                    spare: Some(spare),
                });
                *damage = format!("{page}'s disk page {disk} remapped to {spare}, not a spare");
            }
            rewrite_tables(paths, g, runs, bad).map_err(io)?;
            HeaderState::Unknown
        }
        _ => {
            let volume = open_volume(paths, g)?;
            let page = original.markers[rng.below(original.markers.len() as u64) as usize];
            let disk = volume.translate(page).map_err(|e| e.to_string())?;
            let runs = volume.run_table().runs().to_vec();
            let mut bad = volume.bad_spots().to_vec();
            drop(volume);
            bad.push(BadSpot {
                addr: disk,
                spare: None,
            });
            *damage = format!("{page}'s disk page {disk} recorded bad, not remapped");
            rewrite_tables(paths, g, runs, bad).map_err(io)?;
            HeaderState::Mendable
        }
    };
    Ok((given, state))
}

fn open_volume(paths: &[PathBuf], g: &Geometry) -> Result<Volume, String> {
    let channel = open_channel(paths, g.page_size).map_err(|e| e.to_string())?;
    Volume::open(channel).map_err(|e| e.to_string())
}
