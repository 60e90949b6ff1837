//! The tools as library functions: the scan finds exactly the injected bad
//! pages, formatting keeps them out, and the tools' working memory lives in
//! the utility VM.

use disk_channel::{DiskChannel, DiskPage, Drive, FaultyDrive, SimDrive};
use runtable::{DiskAddr, FormatOptions, PageNumber, Volume};
use utility_mode::scan::{ScanMode, scan};
use utility_mode::{ToolError, UtilityVm};

const PAGE: usize = 4096;

#[test]
fn the_scan_finds_exactly_the_injected_bad_pages_and_format_avoids_them() {
    let bad = [(0u16, 3u64), (0, 700), (1, 0), (1, 1023), (1, 512)];
    let mut drives: Vec<Box<dyn Drive>> = Vec::new();
    for d in 0..2u16 {
        let sim = SimDrive::preset("ssd", PAGE)
            .unwrap()
            .with_page_count(1024)
            .unwrap();
        let faulty = FaultyDrive::new(sim);
        for &(drive, page) in &bad {
            if drive == d {
                faulty.handle().add_bad_page(DiskPage(page));
            }
        }
        drives.push(Box::new(faulty));
    }
    let channel = DiskChannel::new(drives).unwrap();
    let uvm = UtilityVm::new(4 << 20).unwrap();
    let report = scan(&channel, ScanMode::Full, &uvm).unwrap();
    let mut expected: Vec<DiskAddr> = bad.iter().map(|&(d, p)| DiskAddr::new(d, p)).collect();
    expected.sort();
    assert_eq!(report.bad, expected);
    assert_eq!(report.pages_tested, 2048);
    let stats = uvm.stats();
    assert!(
        stats.hits > 0 && stats.resident_high_water > 0,
        "the bad list lived in the VM: {stats:?}"
    );

    // Drive 1's page 0 is its label: format must refuse that drive...
    let mut options = FormatOptions::new(PAGE, 1500);
    options.bad_spots = report.bad.clone();
    let err = Volume::format(channel, &options).unwrap_err();
    assert!(err.to_string().contains("bad spot"), "{err}");
}

#[test]
fn a_format_after_the_scan_maps_no_virtual_page_onto_a_bad_one() {
    let sim = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(1024)
        .unwrap();
    let faulty = FaultyDrive::new(sim);
    for page in [40, 41, 300, 1000] {
        faulty.handle().add_bad_page(DiskPage(page));
    }
    let channel = DiskChannel::new(vec![Box::new(faulty)]).unwrap();
    let uvm = UtilityVm::new(4 << 20).unwrap();
    let report = scan(&channel, ScanMode::Full, &uvm).unwrap();
    assert_eq!(report.bad.len(), 4);
    let mut options = FormatOptions::new(PAGE, 900);
    options.bad_spots = report.bad.clone();
    let volume = Volume::format(channel, &options).unwrap();
    for page in 0..900 {
        let disk = volume.translate(PageNumber(page)).unwrap();
        assert!(
            !report.bad.contains(&disk),
            "virtual page {page} on bad {disk}"
        );
    }
}

#[test]
fn a_quick_scan_samples_and_still_catches_sampled_bad_pages() {
    let sim = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(1000)
        .unwrap();
    let faulty = FaultyDrive::new(sim);
    faulty.handle().add_bad_page(DiskPage(122)); // 122 = 2 × 61: sampled
    faulty.handle().add_bad_page(DiskPage(123)); // not sampled
    let channel = DiskChannel::new(vec![Box::new(faulty)]).unwrap();
    let uvm = UtilityVm::new(4 << 20).unwrap();
    let report = scan(&channel, ScanMode::Quick, &uvm).unwrap();
    assert_eq!(report.bad, vec![DiskAddr::new(0, 122)]);
    assert!(report.pages_tested < 20);
}

#[test]
fn a_tool_with_too_small_a_budget_says_not_enough_real_memory() {
    let sim = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(64)
        .unwrap();
    let channel = DiskChannel::new(vec![Box::new(sim)]).unwrap();
    let uvm = UtilityVm::new(64 * 1024).unwrap();
    let err = scan(&channel, ScanMode::Full, &uvm).err().unwrap();
    assert!(
        matches!(err, ToolError::NotEnoughRealMemory { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not enough real memory"), "{err}");
}

#[test]
fn vm_arrays_sort_records_in_place() {
    let uvm = UtilityVm::new(1 << 20).unwrap();
    let a = uvm.array(3 * 500).unwrap();
    let mut rng = disk_channel::rng::SplitMix64::new(5);
    let mut model: Vec<[u64; 3]> = (0..500)
        .map(|i| [rng.below(50), rng.below(50), i])
        .collect();
    for (i, r) in model.iter().enumerate() {
        a.write_slice(i as u64 * 3, r).unwrap();
    }
    utility_mode::sort_records(&a, 3, 2).unwrap();
    model.sort_by_key(|r| (r[0], r[1]));
    let mut back = [0u64; 3];
    for (i, r) in model.iter().enumerate() {
        a.read_slice(i as u64 * 3, &mut back).unwrap();
        assert_eq!(back[..2], r[..2]);
    }
}

#[test]
fn the_scavengers_page_map_lives_in_the_utility_vm() {
    let dir = tempfile::tempdir().unwrap();
    let request = utility_mode::format::FormatRequest {
        drives: vec![dir.path().join("a.vol"), dir.path().join("b.vol")],
        page_size: PAGE,
        drive_pages: 4096,
        virtual_pages: Some(3000),
        layout: runtable::Layout::Stripe { unit: 1 },
        spare_pages: 16,
        preallocate: false,
        force: false,
        scan: None,
    };
    let uvm = UtilityVm::new(4 << 20).unwrap();
    utility_mode::format::format(&request, &uvm).unwrap();
    let report = utility_mode::scavenge::scavenge(&request.drives, &Default::default()).unwrap();
    assert_eq!(
        report.status,
        utility_mode::scavenge::Status::Clean,
        "{report:?}"
    );
    // One 32-byte record per run of a slot (a run a page here: 3000), in a
    // utility VM made for it — no more.
    assert!(report.runs_checked >= 3000, "{report:?}");
    assert!(
        (3000 * 32..=3000 * 32 + 8192).contains(&report.memory_bytes),
        "{report:?}"
    );
    // With a limit below that, refused before any work, saying how much.
    let err = utility_mode::scavenge::scavenge(
        &request.drives,
        &utility_mode::scavenge::ScavengeOptions {
            memory: Some(64 << 10),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("give --memory"), "{err}");
}

/// `info` says when the header slot it did not read is unusable past
/// generation 1 — the newest generation may be the one lost — and points
/// at the scavenger; a freshly formatted volume's blank slot, and a
/// healthy volume's older slot, draw no warning.
#[test]
fn info_warns_when_it_read_an_older_header_than_was_written() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let drives = vec![dir.path().join("a.vol"), dir.path().join("b.vol")];
    let request = utility_mode::format::FormatRequest {
        drives: drives.clone(),
        page_size: PAGE,
        drive_pages: 2048,
        virtual_pages: None,
        layout: runtable::Layout::Stripe { unit: 4 },
        spare_pages: 16,
        preallocate: false,
        force: false,
        scan: None,
    };
    let uvm = UtilityVm::new(1 << 20).unwrap();
    utility_mode::format::format(&request, &uvm).unwrap();
    let fresh = utility_mode::info::info(&drives).unwrap();
    assert_eq!(fresh.generation, 1);
    assert_eq!(fresh.header_warning, None, "a fresh volume's blank slot");
    // Three more commits: generation 4, its slot the newest.
    let (newest, slot_pages) = {
        let mut volume =
            Volume::open(utility_mode::drives::open_channel(&drives, PAGE).unwrap()).unwrap();
        for _ in 0..3 {
            volume.commit().unwrap();
        }
        assert_eq!(volume.generation(), 4);
        (
            volume.header_choice().slot,
            volume.geometry().header_slot_pages,
        )
    };
    let healthy = utility_mode::info::info(&drives).unwrap();
    assert_eq!((healthy.generation, healthy.header_slot), (4, newest));
    assert_eq!(healthy.header_warning, None, "the older slot is fine");
    // One byte of the newest slot's first page flipped.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&drives[0])
        .unwrap();
    let at = (1 + newest * u64::from(slot_pages)) * PAGE as u64 + 0x48;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x55], at).unwrap();
    drop(file);
    let damaged = utility_mode::info::info(&drives).unwrap();
    assert_eq!((damaged.generation, damaged.header_slot), (3, 1 - newest));
    let warning = damaged.header_warning.clone().expect("a warning");
    assert!(
        warning.contains(&format!("header slot {newest} is unusable"))
            && warning.contains("generation 3")
            && warning.contains("cedarvm scavenge"),
        "{warning}"
    );
    assert!(damaged.table().contains(&warning), "{}", damaged.table());
}
