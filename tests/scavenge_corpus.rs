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
    let drives = paths
        .iter()
        .map(|p| {
            Box::new(FileDrive::open(p, &FileDriveOptions::open(PAGE as usize)).unwrap())
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

#[test]
fn a_wrong_label_is_rewritten_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let paths = volume(dir.path());
    poke(&paths[1], 0, b"NOTALABL");
    verdict(dir.path(), 1, "drive 1 (");
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
        "truncated: the label says 2048 pages, the drive has 1024",
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
