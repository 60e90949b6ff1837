//! A corpus of damaged volumes, each made by the test itself: the scavenger
//! names what is wrong with the right exit status, `--repair` puts right
//! what can be put right, and a second scavenge is clean. Nothing panics.

mod common;
use cedar_vm::disk_channel::{DiskChannel, Drive, FileDrive, FileDriveOptions};
use cedar_vm::runtable::header::{self, Header};
use cedar_vm::runtable::{BadSpot, DiskAddr, PageNumber, Run, Volume, label};
use common::*;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const PAGE: u64 = 4096;

fn open(paths: &[PathBuf]) -> Volume {
    open_at(paths, PAGE as usize)
}

fn open_at(paths: &[PathBuf], page_size: usize) -> Volume {
    let drives = paths
        .iter()
        .map(|p| {
            Box::new(FileDrive::open(p, &FileDriveOptions::open(page_size)).unwrap())
                as Box<dyn Drive>
        })
        .collect();
    Volume::open(DiskChannel::new(drives).unwrap()).unwrap()
}

fn scavenge(dir: &Path, repair: bool) -> (i32, String) {
    let mut args = vec!["scavenge", "-d", "a.vol", "-d", "b.vol"];
    if repair {
        args.push("--repair");
    }
    let o = cedarvm(dir, &args);
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    (code(&o), format!("{}{err}", stdout(&o)))
}

/// Checks `expect_code` and `expect_text`, then (when repairable) repairs
/// and checks that a second scavenge is clean.
fn verdict(dir: &Path, expect_code: i32, expect_text: &str) {
    let (c, out) = scavenge(dir, false);
    assert_eq!(c, expect_code, "{out}");
    assert!(
        out.contains(expect_text),
        "wanted `{expect_text}` in:\n{out}"
    );
    let (c, out) = scavenge(dir, true);
    assert_eq!(c, expect_code, "{out}");
    if expect_code == 1 {
        assert!(out.contains("repaired"), "{out}");
        let (c, out) = scavenge(dir, false);
        assert_eq!(c, 0, "after repair:\n{out}");
    }
}

fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// A volume at generation 2 (both slots written), with a known page.
fn volume(dir: &Path) -> Vec<PathBuf> {
    // Short of full (format's default fills the drives), so that a run
    // shifted by a few pages still ends before the spares: each case below
    // damages one thing.
    let paths = format_two(dir, &["--virtual-size", "15MiB"]);
    let mut v = open(&paths);
    v.commit().unwrap();
    paths
}

/// Writes a header with `runs` and `bad` into both slots, and labels with
/// `bad`, as a buggy tool might.
fn write_header(paths: &[PathBuf], runs: Option<Vec<Run>>, bad: Option<Vec<BadSpot>>) {
    let v = open(paths);
    let g = v.geometry().clone();
    let runs = runs.unwrap_or_else(|| v.run_table().runs().to_vec());
    let bad = bad.unwrap_or_else(|| v.bad_spots().to_vec());
    let generation = v.generation();
    drop(v);
    for (k, slot) in [(1, (generation + 1) % 2), (2, (generation + 2) % 2)] {
        let h = Header {
            generation: generation + k,
            geometry: g.clone(),
            runs: runs.clone(),
            bad_spots: bad.clone(),
        };
        poke(
            &paths[0],
            g.header_slot_start(slot) * PAGE,
            &header::encode(&h),
        );
    }
    for (d, path) in paths.iter().enumerate() {
        let spots: Vec<BadSpot> = bad
            .iter()
            .filter(|s| s.addr.drive.index() == d)
            .copied()
            .collect();
        poke(path, 0, &label::encode(&g, d as u16, &spots));
    }
}

#[test]
fn a_torn_header_slot_is_repairable() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let v = open(&paths);
    let newest = v.header_choice().slot;
    let start = v.geometry().header_slot_start(newest);
    drop(v);
    poke(&paths[0], start * PAGE + 100, &[0xEE; 40]);
    verdict(
        dir.path(),
        1,
        &format!("header slot {newest}: checksum mismatch"),
    );
}

#[test]
fn both_slots_corrupt_is_rebuilt_from_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let v = open(&paths);
    let runs = v.run_table().clone();
    let (s0, s1) = (
        v.geometry().header_slot_start(0),
        v.geometry().header_slot_start(1),
    );
    drop(v);
    poke(&paths[0], s0 * PAGE + 20, &[1; 8]);
    poke(&paths[0], s1 * PAGE + 20, &[1; 8]);
    verdict(dir.path(), 1, "rebuilt from the labels");
    assert_eq!(
        open(&paths).run_table(),
        &runs,
        "the rebuilt table is the original one"
    );
}

/// A damaged label (its checksum broken) is rewritten from the header.
#[test]
fn a_damaged_label_is_rewritten_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    poke(&paths[1], 40, b"DAMAGED!");
    verdict(dir.path(), 1, "drive 1 (b.vol): label unusable");
}

/// A drive (other than drive 0) whose label page holds no label at all may
/// be any file given by mistake: the scavenger does not make it a drive of
/// the volume unless told (`--repair --force`), and says so.
#[test]
fn a_page_with_no_label_is_only_made_a_drive_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    poke(&paths[1], 0, b"NOTALABL");
    let before = file_bytes(&paths[1]);
    verdict(dir.path(), 3, "--repair --force rewrites the label");
    assert!(file_bytes(&paths[1]) == before, "written without --force");
    let (c, out) = scavenge_on(dir.path(), &["a.vol", "b.vol"], &["--repair", "--force"]);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("as --force asks"), "{out}");
    let (c, out) = scavenge(dir.path(), false);
    assert_eq!(c, 0, "{out}");
}

#[test]
fn a_truncated_drive_is_unrecoverable() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[1])
        .unwrap();
    f.set_len(1024 * PAGE).unwrap();
    verdict(
        dir.path(),
        3,
        "truncated: the volume says 2048 pages, the drive has 1024",
    );
}

#[test]
fn overlapping_runs_are_repaired_by_rebuilding() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let mut runs = open(&paths).run_table().runs().to_vec();
    let second = runs[1];
    runs[1] = Run {
        disk: runs[0].disk.offset(5),
        ..second
    };
    write_header(&paths, Some(runs), None);
    verdict(dir.path(), 1, "overlapping runs");
}

#[test]
fn a_run_past_a_drives_end_is_repaired_by_rebuilding() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let mut runs = open(&paths).run_table().runs().to_vec();
    let last = runs.len() - 1;
    runs[last].disk = DiskAddr::new(runs[last].disk.drive.0, 2040);
    write_header(&paths, Some(runs), None);
    verdict(dir.path(), 1, "runs past the end of its drive");
}

#[test]
fn a_bad_spot_under_a_mapped_page_moves_the_page_to_a_spare() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let v = open(&paths);
    let page = PageNumber(123);
    let disk = v.translate(page).unwrap();
    drop(v);
    // The page holds data; then its disk page is recorded bad without a
    // remap, as a careless tool might leave it.
    poke(
        &paths[disk.drive.index()],
        disk.page.0 * PAGE,
        &[0xAB; PAGE as usize],
    );
    write_header(
        &paths,
        None,
        Some(vec![BadSpot {
            addr: disk,
            spare: None,
        }]),
    );
    verdict(dir.path(), 1, "a bad spot");
    let v = open(&paths);
    let moved = v.translate(page).unwrap();
    assert_ne!(moved, disk);
    assert!(v.geometry().is_spare(moved));
    assert_eq!(
        v.bad_spots(),
        &[BadSpot {
            addr: disk,
            spare: Some(moved)
        }]
    );
    drop(v);
    let mut back = vec![0u8; PAGE as usize];
    std::fs::File::open(&paths[moved.drive.index()])
        .unwrap()
        .read_exact_at(&mut back, moved.page.0 * PAGE)
        .unwrap();
    assert!(
        back.iter().all(|&b| b == 0xAB),
        "the page's contents moved with it"
    );
}

#[test]
fn a_volume_with_nothing_left_is_unrecoverable() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    for p in &paths {
        poke(p, 0, &vec![0u8; 64 * PAGE as usize]);
    }
    verdict(dir.path(), 3, "nothing to rebuild from");
}

/// Runs `scavenge` on `drives` (in `dir`) with `extra` arguments.
fn scavenge_on(dir: &Path, drives: &[&str], extra: &[&str]) -> (i32, String) {
    let mut args = vec!["scavenge"];
    for d in drives {
        args.extend(["-d", d]);
    }
    args.extend_from_slice(extra);
    let o = cedarvm(dir, &args);
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    (code(&o), format!("{}{err}", stdout(&o)))
}

/// `info` on `drives`: the volume's id, drive count and virtual pages, or
/// the error.
fn info_on(dir: &Path, drives: &[&str]) -> Result<(String, usize, u64), String> {
    let mut args = vec!["info", "--json"];
    for d in drives {
        args.extend(["-d", d]);
    }
    let o = cedarvm(dir, &args);
    if code(&o) != 0 {
        return Err(stderr(&o));
    }
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    Ok((
        v["volume_id"].as_str().unwrap().to_string(),
        v["drives"].as_array().unwrap().len(),
        v["virtual_pages"].as_u64().unwrap(),
    ))
}

fn format_on(dir: &Path, drives: &[&str], extra: &[&str]) {
    let mut args = vec!["format"];
    for d in drives {
        args.extend(["-d", d]);
    }
    if !extra.contains(&"--drive-size") {
        args.extend(["--drive-size", "4MiB"]);
    }
    args.extend_from_slice(extra);
    let o = cedarvm(dir, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Issue 14, item 3: one drive of three left off the command line. Repair
/// used to rebuild a two-drive volume (the third drive's data gone, and it
/// "belonged to another volume" after). Now the header says the volume has
/// three drives: unrecoverable as given, naming what is missing, and
/// `--repair` writes nothing; with all three drives it is clean.
#[test]
fn a_missing_drive_is_never_repaired_away() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    format_on(d, &["a.vol", "b.vol", "c.vol"], &[]);
    let before: Vec<Vec<u8>> = ["a.vol", "b.vol", "c.vol"]
        .iter()
        .map(|f| file_bytes(&d.join(f)))
        .collect();
    for extra in [&[][..], &["--repair"][..]] {
        let (c, out) = scavenge_on(d, &["a.vol", "b.vol"], extra);
        assert_eq!(c, 3, "{out}");
        assert!(
            out.contains("the volume has 3 drives but 2 were given: drive 2 and on are missing"),
            "{out}"
        );
    }
    for (f, bytes) in ["a.vol", "b.vol", "c.vol"].iter().zip(&before) {
        assert!(file_bytes(&d.join(f)) == *bytes, "{f} was changed");
    }
    let (c, out) = scavenge_on(d, &["a.vol", "b.vol", "c.vol"], &[]);
    assert_eq!(c, 0, "{out}");
}

/// Issue 14, item 3: another volume's label copied over drive 0 of a
/// one-drive volume. Repair used to succeed by making the drive the other
/// volume's (its id and size). The header on drive 0 is the authority: the
/// label is rewritten from it, and the volume keeps its id and size.
#[test]
fn a_foreign_label_on_drive_0_is_rewritten_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    format_on(d, &["a.vol"], &[]);
    format_on(d, &["other.vol"], &["--drive-size", "8MiB"]);
    let original = info_on(d, &["a.vol"]).unwrap();
    let foreign = file_bytes(&d.join("other.vol"))[..PAGE as usize].to_vec();
    poke(&d.join("a.vol"), 0, &foreign);
    let (c, out) = scavenge_on(d, &["a.vol"], &[]);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("its label names volume"), "{out}");
    let (c, out) = scavenge_on(d, &["a.vol"], &["--repair"]);
    assert_eq!(c, 1, "{out}");
    assert_eq!(info_on(d, &["a.vol"]).unwrap(), original);
    let (c, out) = scavenge_on(d, &["a.vol"], &[]);
    assert_eq!(c, 0, "{out}");
}

/// Issue 14, item 3: a drive of another volume given as drive 1 is not
/// taken over: unrecoverable as given, naming the drive.
#[test]
fn a_drive_of_another_volume_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    format_on(d, &["a.vol", "b.vol"], &[]);
    format_on(d, &["x.vol", "y.vol"], &[]);
    let y = file_bytes(&d.join("y.vol"));
    let (c, out) = scavenge_on(d, &["a.vol", "y.vol"], &["--repair"]);
    assert_eq!(c, 3, "{out}");
    assert!(
        out.contains("drive 1 (y.vol): belongs to another volume"),
        "{out}"
    );
    assert!(file_bytes(&d.join("y.vol")) == y, "y.vol was changed");
    // Given out of order, the drives are named in their order.
    let (c, out) = scavenge_on(d, &["b.vol", "a.vol"], &[]);
    assert_eq!(c, 3, "{out}");
    assert!(out.contains("give the drives in their order"), "{out}");
}

/// Issue 14, item 3: a label whose geometry fields were changed, with a
/// valid checksum, made repair write into data pages (it took the label's
/// shape for the volume's). The header is the authority: the label is
/// rewritten from it, and no data page changes.
#[test]
fn a_label_with_changed_geometry_is_rewritten_not_obeyed() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let v = open(&paths);
    let g = v.geometry().clone();
    let data_start = g.reserved_front(cedar_vm::disk_channel::DriveId(0)) * PAGE;
    drop(v);
    // Data everywhere past the reserved front, so that a write there shows.
    let data_len = 1 << 20;
    poke(&paths[0], data_start, &vec![0x5A; data_len]);
    let data_before = file_bytes(&paths[0])[data_start as usize..].to_vec();
    for change in 0..3 {
        let mut forged = g.clone();
        match change {
            0 => forged.header_slot_pages += 7,
            1 => forged.virtual_pages -= 100,
            _ => forged.spare_pages_per_drive += 3,
        }
        poke(&paths[0], 0, &label::encode(&forged, 0, &[]));
        assert!(info_on(dir.path(), &["a.vol", "b.vol"]).is_err());
        let (c, out) = scavenge(dir.path(), false);
        assert_eq!(c, 1, "{out}");
        assert!(out.contains("its label disagrees with the header"), "{out}");
        let (c, out) = scavenge(dir.path(), true);
        assert_eq!(c, 1, "{out}");
        assert!(
            file_bytes(&paths[0])[data_start as usize..] == data_before[..],
            "repair wrote into data pages"
        );
        let (c, out) = scavenge(dir.path(), false);
        assert_eq!(c, 0, "{out}");
        assert_eq!(open(&paths).geometry(), &g);
    }
}

/// Issue 14, item 4: a damaged label on a one-drive volume right after
/// `format` was unrecoverable at page sizes other than 4 KiB (the header
/// was looked for at 4 KiB pages, and slot 0 is blank at generation 1). The
/// header is found at its own page size and the label rewritten from it.
#[test]
fn a_damaged_label_is_rewritten_from_the_header_at_every_page_size() {
    for page_size in ["4096", "8192", "16384", "65536"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        format_on(d, &["a.vol"], &["--page-size", page_size]);
        let original = info_on(d, &["a.vol"]).unwrap();
        poke(&d.join("a.vol"), 16, &[0xFF; 8]);
        assert!(info_on(d, &["a.vol"]).is_err());
        let (c, out) = scavenge_on(d, &["a.vol"], &[]);
        assert_eq!(c, 1, "page size {page_size}: {out}");
        assert!(out.contains("drive 0 (a.vol): label unusable"), "{out}");
        let (c, out) = scavenge_on(d, &["a.vol"], &["--repair"]);
        assert_eq!(c, 1, "page size {page_size}: {out}");
        assert_eq!(info_on(d, &["a.vol"]).unwrap(), original);
        let (c, out) = scavenge_on(d, &["a.vol"], &[]);
        assert_eq!(c, 0, "page size {page_size}: {out}");
    }
}

/// Issue 14, item 5: `scavenge` said clean (and `--repair` exited 0) where
/// `info` refused to open: runs out of order, a bad-spot entry past the end
/// of a drive, a wrong drive count in a label. One validation now serves
/// both: each is reported, repaired, and opens afterwards.
#[test]
fn what_open_refuses_scavenge_reports_and_repairs() {
    for case in [
        "runs out of order",
        "bad spot past the end",
        "drive count in a label",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let paths = volume(dir.path());
        let v = open(&paths);
        let g = v.geometry().clone();
        let runs = v.run_table().runs().to_vec();
        drop(v);
        match case {
            "runs out of order" => {
                let mut swapped = runs.clone();
                swapped.swap(0, 1);
                write_header(&paths, Some(swapped), None);
            }
            "bad spot past the end" => write_header(
                &paths,
                None,
                Some(vec![BadSpot {
                    addr: DiskAddr::new(1, 1 << 40),
                    spare: None,
                }]),
            ),
            _ => {
                let mut three = g.clone();
                three.drive_pages.push(2048);
                poke(&paths[1], 0, &label::encode(&three, 1, &[]));
            }
        }
        assert!(
            info_on(dir.path(), &["a.vol", "b.vol"]).is_err(),
            "{case}: info opens it"
        );
        let (c, out) = scavenge(dir.path(), false);
        assert_eq!(c, 1, "{case}: {out}");
        let (c, out) = scavenge(dir.path(), true);
        assert_eq!(c, 1, "{case}: {out}");
        let (c, out) = scavenge(dir.path(), false);
        assert_eq!(c, 0, "{case}: {out}");
        let v = open(&paths);
        assert_eq!(v.run_table().runs(), &runs[..], "{case}: the runs changed");
    }
}

/// Issue 14, item 6: a bad spot under a mapped page with no spare left was
/// "repairable" forever (`--repair` failed with 2, then `scavenge` said 1
/// again), and so was an impossible bad-spot entry. What repair cannot do
/// is unrecoverable, and `--repair` says the same without writing.
#[test]
fn what_repair_cannot_do_is_not_repairable() {
    for case in ["no spare left", "spare outside the pool"] {
        let dir = tempfile::tempdir().unwrap();
        let paths = volume(dir.path());
        let v = open(&paths);
        let g = v.geometry().clone();
        let page = PageNumber(77);
        let disk = v.translate(page).unwrap();
        drop(v);
        let bad = match case {
            "no spare left" => {
                // Every spare of both drives already taken by other spots.
                let mut bad = vec![BadSpot {
                    addr: disk,
                    spare: None,
                }];
                for drive in 0..2u16 {
                    let (start, end) = g.spare_range(cedar_vm::disk_channel::DriveId(drive));
                    for p in start..end {
                        bad.push(BadSpot {
                            addr: DiskAddr::new(drive, p),
                            spare: None,
                        });
                    }
                }
                bad
            }
            _ => vec![BadSpot {
                addr: disk,
                spare: Some(DiskAddr::new(0, 2)),
            }],
        };
        write_header(&paths, None, Some(bad));
        let a = file_bytes(&paths[0]);
        for repair in [false, true] {
            let (c, out) = scavenge(dir.path(), repair);
            assert_eq!(c, 3, "{case}, repair {repair}: {out}");
        }
        assert!(file_bytes(&paths[0]) == a, "{case}: a failed repair wrote");
    }
}

/// Issue 14, items 8 and 12: the scavenger's memory is what the volume's
/// run table needs, not a fixed default: without `--memory` it takes that
/// (a volume too large for the old 16 MiB default is checkable), with too
/// small a `--memory` it says up front how much to give, and a huge
/// `--memory` on a small volume takes no more than the work needs.
#[test]
fn the_scavengers_memory_is_what_the_volume_needs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A stripe unit of one page: a run a page, 2040 runs (64 KiB of page map).
    format_on(d, &["a.vol", "b.vol"], &["--stripe", "1"]);
    let (c, out) = scavenge_on(d, &["a.vol", "b.vol"], &["--memory", "16KiB"]);
    assert_eq!(c, 4, "{out}");
    assert!(out.contains("give --memory"), "{out}");
    let json = |extra: &[&str]| {
        let o = cedarvm(
            d,
            &[
                &["scavenge", "-d", "a.vol", "-d", "b.vol", "--json"][..],
                extra,
            ]
            .concat(),
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()
    };
    let report = json(&[]);
    let runs = report["runs_checked"].as_u64().unwrap();
    let memory = report["memory_bytes"].as_u64().unwrap();
    assert!(runs > 1000, "{report}");
    assert!(
        memory >= runs / 2 * 32 && memory <= runs * 32 + 8192,
        "{memory} bytes for {runs} runs checked"
    );
    let report = json(&["--memory", "1GiB"]);
    assert_eq!(report["memory_bytes"].as_u64().unwrap(), memory, "{report}");
}

/// Re-seals the structure (label or header) at `offset` of `bytes` after a
/// field was changed: a CRC-valid lie, as a buggy tool writes one.
fn reseal(bytes: &mut [u8], offset: usize) {
    let length = u32::from_le_bytes(bytes[offset + 12..offset + 16].try_into().unwrap()) as usize;
    let crc = crc32c::crc32c(&bytes[offset..offset + length - 4]);
    bytes[offset + length - 4..offset + length].copy_from_slice(&crc.to_le_bytes());
}

/// Review of the scavenger rewrite: a second labelled drive of another
/// volume given beyond the volume's drive count panicked (an index past
/// the header's drive table). It is an extra drive: unrecoverable as given.
#[test]
fn an_extra_labelled_drive_is_named_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    format_on(d, &["a.vol"], &[]);
    format_on(d, &["b.vol"], &[]);
    for extra in [&[][..], &["--repair"][..]] {
        let (c, out) = scavenge_on(d, &["a.vol", "b.vol"], extra);
        assert_eq!(c, 3, "{out}");
        assert!(out.contains("drive 1 (b.vol) not part of it"), "{out}");
    }
}

/// Review: a volume formatted over an older one of another page size kept
/// the old volume's header in a data page, at the byte where the old page
/// size puts header slot 0. The scavenger took that header for the
/// authority and "repaired" the new volume into the old one. Every page
/// size the drives suggest is now tried, and the one whose header agrees
/// with the labels wins: the new volume is clean.
#[test]
fn an_old_header_in_a_data_page_is_not_the_authority() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    format_on(d, &["a.vol"], &["--page-size", "64KiB"]);
    let mut old = open_at(&[d.join("a.vol")], 65536);
    old.commit().unwrap();
    drop(old);
    let o = cedarvm(
        d,
        &["format", "-d", "a.vol", "--drive-size", "4MiB", "--force"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let new = info_on(d, &["a.vol"]).unwrap();
    let (c, out) = scavenge_on(d, &["a.vol"], &["--repair"]);
    assert_eq!(c, 0, "{out}");
    assert_eq!(info_on(d, &["a.vol"]).unwrap(), new);
}

/// Review: another volume's label, of another page size, copied onto drive
/// 0 made the scavenger read the drives at that page size: "truncated",
/// "belongs to another volume", unrecoverable. The header on drive 0 is
/// found at the volume's own page size and the label rewritten from it.
#[test]
fn a_foreign_label_of_another_page_size_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    format_on(d, &["a.vol", "b.vol"], &["--drive-size", "16MiB"]);
    format_on(
        d,
        &["x.vol", "y.vol"],
        &[
            "--drive-size",
            "32MiB",
            "--page-size",
            "16KiB",
            "--stripe",
            "4",
        ],
    );
    let original = info_on(d, &["a.vol", "b.vol"]).unwrap();
    let foreign = file_bytes(&d.join("x.vol"))[..PAGE as usize].to_vec();
    poke(&d.join("a.vol"), 0, &foreign);
    let (c, out) = scavenge_on(d, &["a.vol", "b.vol"], &[]);
    assert_eq!(c, 1, "{out}");
    let (c, out) = scavenge_on(d, &["a.vol", "b.vol"], &["--repair"]);
    assert_eq!(c, 1, "{out}");
    assert_eq!(info_on(d, &["a.vol", "b.vol"]).unwrap(), original);
}

/// Review: a label whose page-size field was changed (checksum valid) made
/// a volume with an intact header unrecoverable ("truncated"), and a page
/// size of 1 GiB in it made the tools allocate a gigabyte. The field is
/// judged against the header like any other.
#[test]
fn a_label_with_a_changed_page_size_is_rewritten() {
    for page_size in [8192u32, 1 << 30] {
        let dir = tempfile::tempdir().unwrap();
        let paths = volume(dir.path());
        let mut label = file_bytes(&paths[0])[..PAGE as usize].to_vec();
        label[48..52].copy_from_slice(&page_size.to_le_bytes());
        reseal(&mut label, 0);
        poke(&paths[0], 0, &label);
        let (c, out) = scavenge(dir.path(), false);
        assert_eq!(c, 1, "page size {page_size}: {out}");
        assert!(out.contains("page size"), "{out}");
        let (c, out) = scavenge(dir.path(), true);
        assert_eq!(c, 1, "page size {page_size}: {out}");
        let (c, out) = scavenge(dir.path(), false);
        assert_eq!(c, 0, "page size {page_size}: {out}");
    }
}

/// Review: a header that claims more bytes than its slot holds passed the
/// scavenger (it read up to 64 MiB) but not `open` (which reads the slot):
/// "clean" at generation 3 while `info` opened generation 2. Now the slot
/// is unusable to both, and repair rewrites it.
#[test]
fn a_header_longer_than_its_slot_is_unusable_to_both() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let v = open(&paths);
    let g = v.geometry().clone();
    let h = Header {
        generation: v.generation() + 1,
        geometry: g.clone(),
        runs: v.run_table().runs().to_vec(),
        bad_spots: v.bad_spots().to_vec(),
    };
    let slot = h.generation % 2;
    drop(v);
    let slot_bytes = g.header_slot_pages as usize * PAGE as usize;
    let mut bytes = header::encode(&h);
    let length = slot_bytes + 4096;
    bytes.resize(length, 0);
    bytes[12..16].copy_from_slice(&(length as u32).to_le_bytes());
    reseal(&mut bytes, 0);
    poke(&paths[0], g.header_slot_start(slot) * PAGE, &bytes);
    let generation_open = open(&paths).generation();
    assert_eq!(generation_open, h.generation - 1);
    verdict(
        dir.path(),
        1,
        &format!("header slot {slot}: its {length} bytes overflow"),
    );
}

/// Review: a header of generation 2^64 - 1 made repair count past the end
/// (generation 0 written). Such a generation is not taken for real.
#[test]
fn an_impossible_generation_is_not_counted_on() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let v = open(&paths);
    let g = v.geometry().clone();
    let h = Header {
        generation: u64::MAX,
        geometry: g.clone(),
        runs: v.run_table().runs().to_vec(),
        bad_spots: v.bad_spots().to_vec(),
    };
    let slot = 1 - v.header_choice().slot;
    drop(v);
    poke(
        &paths[0],
        g.header_slot_start(slot) * PAGE,
        &header::encode(&h),
    );
    // `open` agrees (second review): it skips that slot, as the scavenger.
    assert!(open(&paths).generation() < 1 << 62);
    verdict(dir.path(), 1, "is impossible");
    assert!(open(&paths).generation() < 1 << 62);
}

/// Review: with two bad spots in one run, repair moved only the first (the
/// problem list names one a run), then called the volume unrecoverable.
/// Every page on a bad spot moves, with its contents.
#[test]
fn every_page_on_a_bad_spot_moves() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let v = open(&paths);
    let pages = [PageNumber(100), PageNumber(110)];
    let disks: Vec<DiskAddr> = pages.iter().map(|&p| v.translate(p).unwrap()).collect();
    drop(v);
    for (k, disk) in disks.iter().enumerate() {
        poke(
            &paths[disk.drive.index()],
            disk.page.0 * PAGE,
            &[0xA0 + k as u8; PAGE as usize],
        );
    }
    let bad = disks
        .iter()
        .map(|&addr| BadSpot { addr, spare: None })
        .collect();
    write_header(&paths, None, Some(bad));
    verdict(dir.path(), 1, "a bad spot");
    let v = open(&paths);
    for (k, &page) in pages.iter().enumerate() {
        let moved = v.translate(page).unwrap();
        assert!(v.geometry().is_spare(moved), "{page} still at {moved}");
        let mut back = vec![0u8; PAGE as usize];
        std::fs::File::open(&paths[moved.drive.index()])
            .unwrap()
            .read_exact_at(&mut back, moved.page.0 * PAGE)
            .unwrap();
        assert!(
            back.iter().all(|&b| b == 0xA0 + k as u8),
            "{page}'s contents"
        );
    }
}

/// Second review: a volume formatted over an older one of another page
/// size, whose own header slot 1 is then damaged (slot 0 is blank after a
/// fresh format). The old volume's header, still in a data page where its
/// page size puts slot 0, used to be taken for the authority — repair
/// turned the volume back into the old one. A header no label names,
/// found at a page size no label has, is not trusted: the labels rebuild
/// the new volume.
#[test]
fn an_old_header_does_not_outrank_the_labels_when_the_new_one_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    format_on(d, &["a.vol"], &["--page-size", "16KiB"]);
    let o = cedarvm(
        d,
        &["format", "-d", "a.vol", "--drive-size", "4MiB", "--force"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let new = info_on(d, &["a.vol"]).unwrap();
    let v = open(&[d.join("a.vol")]);
    let slot1 = v.geometry().header_slot_start(1);
    drop(v);
    poke(&d.join("a.vol"), slot1 * PAGE + 20, &[0x55; 64]);
    let (c, out) = scavenge_on(d, &["a.vol"], &[]);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("rebuilt from the labels"), "{out}");
    let (c, out) = scavenge_on(d, &["a.vol"], &["--repair"]);
    assert_eq!(c, 1, "{out}");
    assert_eq!(info_on(d, &["a.vol"]).unwrap(), new);
}

/// Second review: a drive of another volume whose label is only damaged
/// (its checksum broken, its volume id intact) was adopted without
/// `--force`. The damaged label's id bytes are looked at first.
#[test]
fn a_damaged_label_of_another_volume_is_not_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    format_on(d, &["a0.vol", "a1.vol"], &[]);
    format_on(d, &["b0.vol", "b1.vol"], &[]);
    poke(&d.join("b1.vol"), 34, &[0xFF]);
    let before = file_bytes(&d.join("b1.vol"));
    let (c, out) = scavenge_on(d, &["a0.vol", "b1.vol"], &["--repair"]);
    assert_eq!(c, 3, "{out}");
    assert!(
        out.contains("its damaged label names another volume"),
        "{out}"
    );
    assert!(
        file_bytes(&d.join("b1.vol")) == before,
        "b1.vol was written"
    );
}

/// Second review: more bad spots than a label holds opened fine in `info`
/// (and a VM) while the scavenger called the volume unrecoverable. One
/// rule for both now: `open` refuses it too.
#[test]
fn open_and_scavenge_agree_on_label_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let v = open(&paths);
    let g = v.geometry().clone();
    let (_, end) = g.spare_range(cedar_vm::disk_channel::DriveId(1));
    let max = label::max_bad_spots(PAGE as usize) as u64;
    // Pages at the end of drive 1 that no run maps (the volume is 15 MiB
    // of 16): one more bad spot than its label can list.
    let bad: Vec<BadSpot> = (0..=max)
        .map(|k| BadSpot {
            addr: DiskAddr::new(1, end - 1 - k),
            spare: None,
        })
        .collect();
    for spot in &bad {
        assert!(
            runtable::layout::find_virtual(v.run_table(), spot.addr).is_none(),
            "{} is mapped",
            spot.addr
        );
    }
    let runs = v.run_table().runs().to_vec();
    let generation = v.generation();
    drop(v);
    // The header only (the labels could not hold the list).
    for k in 1..=2 {
        let h = Header {
            generation: generation + k,
            geometry: g.clone(),
            runs: runs.clone(),
            bad_spots: bad.clone(),
        };
        let slot = (generation + k) % 2;
        poke(
            &paths[0],
            g.header_slot_start(slot) * PAGE,
            &header::encode(&h),
        );
    }
    let info = info_on(dir.path(), &["a.vol", "b.vol"]);
    let (c, out) = scavenge(dir.path(), false);
    assert!(
        info.as_ref().is_err_and(|e| e.contains("bad spots")) && c != 0,
        "info {info:?}, scavenge {c}: {out}"
    );
}

/// Second review: a drive cut shorter than one page made `scavenge` fail
/// to check (exit 4, "the drive has no whole page"); it is a finding: the
/// drive is truncated, unrecoverable as given.
#[test]
fn a_drive_shorter_than_a_page_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[1])
        .unwrap()
        .set_len(100)
        .unwrap();
    let (c, out) = scavenge(dir.path(), false);
    assert_eq!(c, 3, "{out}");
    assert!(out.contains("shorter than a page"), "{out}");
}

/// Second review: a header of a newer format version was "damage" that
/// repair would have overwritten. It is not this scavenger's to judge:
/// unrecoverable, nothing written.
#[test]
fn a_header_of_a_newer_format_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let v = open(&paths);
    let start = v.geometry().header_slot_start(v.header_choice().slot);
    drop(v);
    let mut slot =
        file_bytes(&paths[0])[(start * PAGE) as usize..((start + 1) * PAGE) as usize].to_vec();
    slot[8..12].copy_from_slice(&2u32.to_le_bytes());
    let length = u32::from_le_bytes(slot[12..16].try_into().unwrap()) as usize;
    if length <= slot.len() {
        reseal(&mut slot, 0);
    }
    poke(&paths[0], start * PAGE, &slot);
    let before = file_bytes(&paths[0]);
    let (c, out) = scavenge(dir.path(), true);
    assert_eq!(c, 3, "{out}");
    assert!(out.contains("newer cedar-vm"), "{out}");
    assert!(file_bytes(&paths[0]) == before, "written");
}

/// Review: when both header slots were readable but their run tables bad,
/// the rebuild took the labels' bad-spot lists — which lag behind the
/// header until a commit rewrites them — and so lost remaps made since.
/// The newest header's own bad-spot table is tried first.
#[test]
fn a_rebuild_keeps_the_remaps_the_header_knows() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    let mut v = open(&paths);
    let page = PageNumber(200);
    let old = v.translate(page).unwrap();
    let spare = v.remap_bad_page(old).unwrap();
    v.commit().unwrap();
    assert_eq!(v.translate(page).unwrap(), spare);
    let g = v.geometry().clone();
    let bad = v.bad_spots().to_vec();
    let mut runs = v.run_table().runs().to_vec();
    let generation = v.generation();
    drop(v);
    // Both slots: the remap kept, the runs damaged (two overlap on disk).
    let second = runs[1];
    runs[1] = Run {
        disk: runs[0].disk.offset(3),
        ..second
    };
    for k in 1..=2 {
        let h = Header {
            generation: generation + k,
            geometry: g.clone(),
            runs: runs.clone(),
            bad_spots: bad.clone(),
        };
        poke(
            &paths[0],
            g.header_slot_start((generation + k) % 2) * PAGE,
            &header::encode(&h),
        );
    }
    // The labels lag: no bad spots.
    for (d, path) in paths.iter().enumerate() {
        poke(path, 0, &label::encode(&g, d as u16, &[]));
    }
    let (c, out) = scavenge(dir.path(), true);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("bad-spot table"), "{out}");
    assert_eq!(
        open(&paths).translate(page).unwrap(),
        spare,
        "the remap was lost"
    );
    let (c, out) = scavenge(dir.path(), false);
    assert_eq!(c, 0, "{out}");
}
