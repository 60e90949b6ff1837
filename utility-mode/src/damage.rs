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
use crate::scavenge::{ScavengeOptions, Status, scavenge};

const REPAIR: ScavengeOptions = ScavengeOptions {
    repair: true,
    force: false,
    memory: None,
};
use crate::utility_vm::UtilityVm;
use disk_channel::DriveId;
use disk_channel::rng::SplitMix64;
use runtable::header::{self, Header};
use runtable::{BadSpot, DiskAddr, Geometry, Layout, PageNumber, Volume, label, layout};
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
    page_size: usize,
    drives: usize,
    virtual_pages: u64,
    markers: Vec<PageNumber>,
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
    let mut must_repair = false;
    let given = do_damage(
        &paths,
        &geometry,
        &original,
        &mut rng,
        &mut damage,
        &mut must_repair,
    )
    .map_err(|e| fail(&damage, format!("damaging: {e}")))?;
    // Every file the tools are given or the volume has.
    let mut files = paths.clone();
    files.extend(given.iter().filter(|p| !paths.contains(p)).cloned());
    let before = snapshot(&files);

    let opened = info(&given);
    let report = scavenge(&given, &ScavengeOptions::default()).map_err(|e| {
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
    // Damage to labels alone, with the header intact: the rule is that
    // such a label is rewritten from the header.
    if must_repair && report.status != Status::Repairable {
        return Err(fail(
            &damage,
            format!(
                "the header is intact, yet {:?}: {:?}",
                report.status, report.findings
            ),
        ));
    }
    let repair = scavenge(&given, &REPAIR);
    let repaired = match (report.status, &repair) {
        (Status::Clean, Ok(r)) if r.status == Status::Clean => {
            if snapshot(&files) != before {
                return Err(fail(&damage, "--repair wrote to a clean volume".into()));
            }
            false
        }
        (Status::Repairable, Ok(r)) if r.status == Status::Repaired => true,
        (Status::Unrecoverable, Ok(r)) if r.status == Status::Unrecoverable => {
            if snapshot(&files) != before {
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
        let again = scavenge(&given, &ScavengeOptions::default())
            .map_err(|e| fail(&damage, format!("scavenge after repair: {e}")))?;
        if again.status != Status::Clean {
            return Err(fail(
                &damage,
                format!("repaired, then {:?}: {:?}", again.status, again.findings),
            ));
        }
        let now = info(&given).map_err(|e| fail(&damage, format!("info after repair: {e}")))?;
        let identity = (
            now.volume_id.clone(),
            now.page_size,
            now.drives.len(),
            now.virtual_pages,
        );
        let formatted = (
            original.volume_id.clone(),
            original.page_size,
            original.drives,
            original.virtual_pages,
        );
        if identity != formatted {
            return Err(fail(
                &damage,
                format!("repair changed the volume: {identity:?}, formatted as {formatted:?}"),
            ));
        }
    }
    let mut markers_checked = 0;
    // No campaign volume has remaps, so whatever a repair rebuilds from
    // (the other slot, the labels) maps every page where it was; a page
    // moved off a bad spot takes its contents along.
    if report.status != Status::Unrecoverable {
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
        page_size: g.page_size,
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
    must_repair: &mut bool,
) -> Result<Vec<PathBuf>, String> {
    let drives = paths.len();
    let ps = g.page_size as u64;
    let d = rng.below(drives as u64) as usize;
    let io = |e: std::io::Error| e.to_string();
    let mut given = paths.to_vec();
    match rng.below(22) {
        0 => {
            // Random bytes in a label page only.
            let at = rng.below(ps - 8);
            *damage = format!("bytes at {at} of drive {d}'s label");
            poke(&paths[d], at, &rng.next_u64().to_le_bytes()).map_err(io)?;
            // A damaged label — not one whose magic is gone from a drive
            // other than 0, which may be any file — is rewritten.
            // (Past the label's 84 bytes the page is padding no one reads.)
            *must_repair = at < 84 && (d == 0 || at >= 8);
        }
        1 => {
            // Random bytes in the front of a drive: label or header slots.
            let front = g.reserved_front(DriveId(d as u16)) * ps;
            let at = rng.below(front - 8);
            *damage = format!("bytes at {at} of drive {d}'s front");
            poke(&paths[d], at, &rng.next_u64().to_le_bytes()).map_err(io)?;
        }
        2 => {
            let pages = g.drive_pages[d] - 1 - rng.below(g.drive_pages[d] / 2);
            *damage = format!("truncated drive {d} to {pages} pages");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&paths[d])
                .and_then(|f| f.set_len(pages * ps))
                .map_err(io)?;
        }
        3 => {
            let pages = g.drive_pages[d] + 1 + rng.below(64);
            *damage = format!("extended drive {d} to {pages} pages");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&paths[d])
                .and_then(|f| f.set_len(pages * ps))
                .map_err(io)?;
        }
        4 if drives > 1 => {
            let e = (d + 1) % drives;
            *damage = format!("drives {d} and {e} given swapped");
            given.swap(d, e);
        }
        5 if drives > 1 => {
            *damage = format!("drive {d} left off");
            given.remove(d);
        }
        6 => {
            let mut foreign = g.clone();
            foreign.volume_id = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
            *damage = format!("a foreign label on drive {d}");
            poke(&paths[d], 0, &label::encode(&foreign, d as u16, &[])).map_err(io)?;
            *must_repair = d == 0;
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
            *must_repair = true;
        }
        8 => {
            let volume = open_volume(paths, g)?;
            let mut runs = volume.run_table().runs().to_vec();
            if runs.len() < 2 {
                *damage = "nothing (one run)".into();
                return Ok(given);
            }
            let i = rng.below(runs.len() as u64 - 1) as usize;
            runs.swap(i, i + 1);
            *damage = format!("runs {i} and {} swapped in both header slots", i + 1);
            let bad = volume.bad_spots().to_vec();
            drop(volume);
            rewrite_tables(paths, g, runs, bad).map_err(io)?;
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
        }
        13 => {
            // An extra drive: a labelled drive of another volume.
            let extra = dir_of(paths).join("extra.vol");
            let mut foreign = g.clone();
            foreign.volume_id ^= 1;
            foreign.drive_pages = vec![g.drive_pages[0]];
            std::fs::write(&extra, label::encode(&foreign, 0, &[])).map_err(io)?;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&extra)
                .and_then(|f| f.set_len(g.drive_pages[0] * ps))
                .map_err(io)?;
            *damage = "an extra drive of another volume given".into();
            given.push(extra);
        }
        14 if drives > 1 => {
            // A copy of one drive given in another's place.
            let e = (d + 1) % drives;
            let copy = dir_of(paths).join("copy.vol");
            std::fs::copy(&paths[d], &copy).map_err(io)?;
            *damage = format!("a copy of drive {d} given as drive {e}");
            given[e] = copy;
        }
        15 => {
            // A file that is no drive of any volume, of the right size.
            let other = dir_of(paths).join("photo.bin");
            let mut bytes = vec![0u8; (g.drive_pages[d] * ps) as usize];
            for chunk in bytes.chunks_mut(8) {
                let word = rng.next_u64().to_le_bytes();
                chunk.copy_from_slice(&word[..chunk.len()]);
            }
            std::fs::write(&other, bytes).map_err(io)?;
            *damage = format!("a file of random bytes given as drive {d}");
            given[d] = other;
        }
        16 => {
            // A label's page-size field changed, checksum valid.
            let mut page = std::fs::read(&paths[d]).map_err(io)?;
            page.truncate(ps as usize);
            let wrong = (g.page_size as u32).wrapping_mul([2, 4, 1 << 10][rng.below(3) as usize]);
            page[48..52].copy_from_slice(&wrong.to_le_bytes());
            reseal(&mut page);
            *damage = format!("drive {d}'s label says page size {wrong}");
            poke(&paths[d], 0, &page).map_err(io)?;
            *must_repair = true;
        }
        kind @ (17..=19) => {
            // The newest header slot made a CRC-valid lie: longer than its
            // slot (17), of an impossible generation (18), or with a
            // geometry of its own (19) — the other slot, if written, is
            // good.
            let volume = open_volume(paths, g)?;
            let generation = volume.generation();
            let mut h = Header {
                generation: generation + 1,
                geometry: g.clone(),
                runs: volume.run_table().runs().to_vec(),
                bad_spots: volume.bad_spots().to_vec(),
            };
            drop(volume);
            let mut bytes = match kind {
                17 => {
                    let mut bytes = header::encode(&h);
                    let length = g.header_slot_pages as usize * g.page_size + 8;
                    bytes.truncate(bytes.len() - 4);
                    bytes.resize(length, 0);
                    bytes[12..16].copy_from_slice(&(length as u32).to_le_bytes());
                    bytes.extend_from_slice(&[0; 4]);
                    bytes
                }
                18 => {
                    h.generation = u64::MAX - rng.below(2);
                    header::encode(&h)
                }
                _ => {
                    h.geometry.virtual_pages =
                        h.geometry.virtual_pages.saturating_sub(1 + rng.below(9));
                    header::encode(&h)
                }
            };
            if kind == 17 {
                reseal(&mut bytes);
            }
            let slot = h.generation % 2;
            *damage = format!(
                "header slot {slot}: {}",
                [
                    "longer than its slot",
                    "an impossible generation",
                    "a geometry of its own"
                ][kind as usize - 17]
            );
            // Only the slot is written: the claimed length runs past it.
            let slot_bytes = g.header_slot_pages as usize * g.page_size;
            bytes.truncate(slot_bytes);
            poke(&paths[0], g.header_slot_start(slot) * ps, &bytes).map_err(io)?;
        }
        20 => {
            // Two bad spots under mapped pages of one run.
            let volume = open_volume(paths, g)?;
            let runs = volume.run_table().runs().to_vec();
            let Some(run) = runs.iter().find(|r| r.count.0 >= 2).copied() else {
                *damage = "nothing (no run of two pages)".into();
                return Ok(given);
            };
            let mut bad = volume.bad_spots().to_vec();
            drop(volume);
            let first = rng.below(run.count.0 - 1);
            let second = first + 1 + rng.below(run.count.0 - first - 1);
            for k in [first, second] {
                bad.push(BadSpot {
                    addr: run.disk.offset(k),
                    spare: None,
                });
            }
            *damage = format!(
                "two bad spots under run at {} ({first}, {second})",
                run.page
            );
            rewrite_tables(paths, g, runs, bad).map_err(io)?;
        }
        21 => {
            // A header of a volume of a larger page size in a data page of
            // drive 0, where that page size puts header slot 0: what a
            // volume formatted over an older one can hold.
            let volume = open_volume(paths, g)?;
            let front = g.reserved_front(DriveId(0));
            let mut stale = g.clone();
            stale.volume_id ^= 0x5A5A;
            stale.page_size = (g.page_size << (1 + rng.below(4))).min(1 << 20);
            let at = stale.page_size as u64 / ps;
            let page = layout::find_virtual(volume.run_table(), DiskAddr::new(0, at));
            drop(volume);
            if at < front || page.is_none_or(|p| original.markers.contains(&p)) {
                *damage = "nothing (no free data page for a stale header)".into();
                return Ok(given);
            }
            stale.header_slot_pages = 1;
            let h = Header {
                generation: 2 + rng.below(5),
                geometry: stale.clone(),
                runs: Vec::new(),
                bad_spots: Vec::new(),
            };
            *damage = format!(
                "a stale header of {}-byte pages at byte {} (data page {at})",
                stale.page_size, stale.page_size
            );
            poke(&paths[0], stale.page_size as u64, &header::encode(&h)).map_err(io)?;
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
        }
    }
    Ok(given)
}

/// The folder of the case (where its drive files are).
fn dir_of(paths: &[PathBuf]) -> PathBuf {
    paths[0].parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Re-seals a label or header at the start of `bytes` (its length field
/// says where the checksum goes) after a field was changed.
fn reseal(bytes: &mut [u8]) {
    let Some(length) = header::claimed_length(bytes).or_else(|| {
        (bytes.len() >= 16)
            .then(|| u32::from_le_bytes(bytes[12..16].try_into().unwrap_or_default()) as usize)
    }) else {
        return;
    };
    if length < 4 || length > bytes.len() {
        return;
    }
    let mut w = runtable::codec::Writer::with_capacity(length);
    w.bytes(&bytes[..length - 4]);
    let sealed = w.finish_with_crc();
    bytes[..length].copy_from_slice(&sealed);
}

fn open_volume(paths: &[PathBuf], g: &Geometry) -> Result<Volume, String> {
    let channel = open_channel(paths, g.page_size).map_err(|e| e.to_string())?;
    Volume::open(channel).map_err(|e| e.to_string())
}
