//! The persistent address space (`Vm::create`, `Vm::open`): every interval
//! comes back at its address with its contents, protection and advice —
//! in the same process, in a new process, after `kill -9` in the middle of
//! a write loop, and after a crash at every write of a `flush` (the
//! previous synced shape or the new one, page by page the old or the new
//! contents, never anything else).

use disk_channel::{DiskChannel, Drive, FaultyDrive, FileDrive, FileDriveOptions, SimDrive};
use runtable::{FormatOptions, Interval, PageNumber, Volume};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use vm_core::{Advice, Backing, VAddr, Vm, VmConfig, VmError};

const PAGE: usize = 4096;
/// Pages of the volumes here (the space is a little less: the map's slots).
const VOLUME_PAGES: u64 = 512;

fn sim_volume() -> (Volume, SimDrive) {
    let drive = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(VOLUME_PAGES + 64)
        .unwrap();
    let media = drive.share_media();
    let channel = DiskChannel::new(vec![Box::new(drive) as Box<dyn Drive>]).unwrap();
    let volume = Volume::format(channel, &FormatOptions::new(PAGE, VOLUME_PAGES)).unwrap();
    (volume, media)
}

/// A new persistent space of 6 pages of real memory on a simulated drive
/// whose faults the handle plans; the medium, to reopen it after a crash.
fn faulty_space(volume_pages: u64) -> (Vm, VmConfig, SimDrive, disk_channel::FaultHandle) {
    faulty_space_with(volume_pages, 6)
}

/// `faulty_space` with `budget` pages of real memory.
fn faulty_space_with(
    volume_pages: u64,
    budget: u64,
) -> (Vm, VmConfig, SimDrive, disk_channel::FaultHandle) {
    let drive = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(volume_pages + 64)
        .unwrap();
    let media = drive.share_media();
    let faulty = FaultyDrive::new(drive);
    let handle = faulty.handle();
    let channel = DiskChannel::new(vec![Box::new(faulty) as Box<dyn Drive>]).unwrap();
    let volume = Volume::format(channel, &FormatOptions::new(PAGE, volume_pages)).unwrap();
    let cfg = config(&volume, budget);
    let vm = Vm::create(volume, cfg.clone()).unwrap();
    (vm, cfg, media, handle)
}

fn reopen_sim(media: &SimDrive) -> Volume {
    let channel = DiskChannel::new(vec![Box::new(media.share_media()) as Box<dyn Drive>]).unwrap();
    Volume::open(channel).unwrap()
}

fn config(volume: &Volume, budget: u64) -> VmConfig {
    VmConfig::new(Vm::persistent_pages(volume).unwrap(), budget)
}

fn file_volume(dir: &Path, create: bool) -> Volume {
    let path = dir.join("space.vol");
    let options = if create {
        FileDriveOptions::create(PAGE, VOLUME_PAGES + 64)
    } else {
        FileDriveOptions::open(PAGE)
    };
    let drive = FileDrive::open(&path, &options).unwrap();
    let channel = DiskChannel::new(vec![Box::new(drive) as Box<dyn Drive>]).unwrap();
    if create {
        Volume::format(channel, &FormatOptions::new(PAGE, VOLUME_PAGES)).unwrap()
    } else {
        Volume::open(channel).unwrap()
    }
}

fn read_all(vm: &Vm, interval: Interval) -> Vec<u8> {
    let mut bytes = vec![0u8; interval.count.0 as usize * PAGE];
    vm.read(vm.address_of(interval.page), &mut bytes).unwrap();
    bytes
}

/// Same process: intervals, contents, protection and advice come back; a
/// freed interval does not; pages never written read as zeros; a budget
/// smaller than the space pages it in.
#[test]
fn a_space_reopens_with_every_interval_at_its_address() {
    let (volume, media) = sim_volume();
    let cfg = config(&volume, 8);
    let vm = Vm::create(volume, cfg.clone()).unwrap();
    assert!(vm.is_persistent());
    let a = vm.allocate(20).unwrap();
    let b = vm.allocate(3).unwrap();
    let c = vm.allocate(7).unwrap();
    let d = vm.allocate(5).unwrap();
    for (k, i) in [a, b, c, d].iter().enumerate() {
        let bytes: Vec<u8> = (0..i.count.0 as usize * PAGE)
            .map(|n| (n / 7 + k * 31) as u8)
            .collect();
        vm.write(vm.address_of(i.page), &bytes).unwrap();
    }
    // Half of d is never written: it reads as zeros after reopen too.
    vm.kill(Interval::new(d.page.0 + 2, 3)).unwrap();
    vm.make_read_only(b).unwrap();
    vm.advise(c, Advice::Sequential).unwrap();
    vm.free(a).unwrap();
    let expected = vm.intervals();
    let contents: Vec<Vec<u8>> = [b, c, d].iter().map(|&i| read_all(&vm, i)).collect();
    vm.close().unwrap();

    let vm = Vm::open(reopen_sim(&media), cfg).unwrap();
    assert_eq!(vm.intervals(), expected);
    assert!(
        vm.intervals().iter().all(|(i, _)| *i != a),
        "a freed interval came back"
    );
    for (i, want) in [b, c, d].iter().zip(&contents) {
        assert!(read_all(&vm, *i) == *want, "{i} came back different");
    }
    assert!(
        read_all(&vm, Interval::new(d.page.0 + 2, 3))
            .iter()
            .all(|&x| x == 0)
    );
    let err = vm.write(vm.address_of(b.page), b"x").unwrap_err();
    assert!(matches!(err, VmError::WriteProtect { .. }), "{err}");
    assert!(vm.stats().page_ins > 0, "the contents came from the drive");
}

/// Only what a completed flush or sync covered counts. The drive loses
/// every write after the sync (a crash right after it): the reopened space
/// is the synced one exactly. (The third review: this test used to open
/// the live media while the VM went on writing into it.)
#[test]
fn the_space_is_as_of_the_last_sync() {
    let (vm, cfg, media, handle) = faulty_space(VOLUME_PAGES);
    let a = vm.allocate(4).unwrap();
    vm.write(vm.address_of(a.page), &[1u8; 4 * PAGE]).unwrap();
    vm.sync(a).unwrap();
    handle.crash_after_writes(0);
    // After the sync: a new interval, and new contents in a, written back.
    let b = vm.allocate(2).unwrap();
    vm.write(vm.address_of(b.page), &[2u8; 2 * PAGE]).unwrap();
    vm.write(vm.address_of(a.page), &[3u8; PAGE]).unwrap();
    let _ = vm.flush();
    std::mem::forget(vm);
    let vm = Vm::open(reopen_sim(&media), cfg).unwrap();
    assert_eq!(vm.intervals().len(), 1);
    assert!(read_all(&vm, a).iter().all(|&x| x == 1));
    assert!(handle.dropped_writes() > 0, "the test dropped nothing");
}

/// Third review: a freed interval's pages were reused before the map that
/// freed them was written, so a crash brought the freed interval back
/// holding the new one's bytes. Freed pages wait for the next map.
#[test]
fn freed_pages_are_not_reused_before_the_map_that_frees_them() {
    let (vm, cfg, media, _handle) = faulty_space(VOLUME_PAGES);
    let a = vm.allocate(4).unwrap();
    vm.write(vm.address_of(a.page), &[1u8; 4 * PAGE]).unwrap();
    vm.sync(a).unwrap();
    vm.free(a).unwrap();
    let c = vm.allocate(4).unwrap();
    assert_ne!(c.page, a.page, "reused before the map freed it");
    vm.write(vm.address_of(c.page), &[7u8; 4 * PAGE]).unwrap();
    vm.clean(c).unwrap();
    std::mem::forget(vm);
    let vm = Vm::open(reopen_sim(&media), cfg.clone()).unwrap();
    // The crash kept the last map: a, with its own contents.
    assert_eq!(vm.intervals().len(), 1);
    assert!(read_all(&vm, a).iter().all(|&x| x == 1));
    // After a map is written, the pages are free again.
    let d = vm.allocate(2).unwrap();
    vm.free(d).unwrap();
    vm.flush().unwrap();
    vm.free(a).unwrap();
    vm.flush().unwrap();
    assert_eq!(vm.allocate(4).unwrap().page, a.page);
}

/// Third review: a VmFile's length (its header page) and its interval's
/// size (the map) become durable separately. A crash after the file grew
/// and its header was written back, but before a sync, left a header
/// longer than the interval the map brought back: the file could not be
/// opened. And bytes past the synced length could show after a later
/// growth. Open cuts the length to the interval and clears past it.
#[test]
fn a_vm_file_opens_after_a_crash_mid_growth() {
    let (vm, cfg, media, _handle) = faulty_space(VOLUME_PAGES);
    let mut file = vm_core::VmFile::create(&vm, 4096).unwrap();
    file.write_at(&[9u8; 100], 0).unwrap();
    file.sync_data().unwrap();
    let interval = file.interval();
    file.write_at(&[5u8; 64 * 1024], 0).unwrap();
    vm.clean(file.interval()).unwrap();
    std::mem::forget(vm);
    let vm = Vm::open(reopen_sim(&media), cfg).unwrap();
    assert_eq!(vm.intervals()[0].0, interval);
    let mut file = vm_core::VmFile::open(&vm, interval).unwrap();
    assert!(file.len() <= file.capacity());
    // Past the length, zeros — also once the file grows again.
    let len = file.len();
    file.set_len(file.capacity()).unwrap();
    let mut tail = vec![1u8; (file.capacity() - len) as usize];
    file.read_at(&mut tail, len).unwrap();
    assert!(tail.iter().all(|&x| x == 0), "old bytes past the end");
}

/// Reopen refuses what is not its space, in words: a volume with no
/// persistent space, a space of another size, damaged maps.
#[test]
fn reopen_refuses_what_is_not_its_space() {
    let (volume, media) = sim_volume();
    let cfg = config(&volume, 8);
    let err = Vm::open(volume, cfg.clone()).unwrap_err().to_string();
    assert!(err.contains("no persistent address space"), "{err}");
    let vm = Vm::create(reopen_sim(&media), cfg.clone()).unwrap();
    vm.allocate(3).unwrap();
    vm.close().unwrap();
    let smaller = VmConfig::new(cfg.virtual_pages - 1, 8);
    let err = Vm::open(reopen_sim(&media), smaller)
        .unwrap_err()
        .to_string();
    assert!(err.contains("differs from the persistent space"), "{err}");
    // Damage both map slots (the top pages of the volume's space).
    let volume = reopen_sim(&media);
    let first = cfg.virtual_pages;
    for page in first..VOLUME_PAGES {
        let disk = volume.translate(PageNumber(page)).unwrap();
        volume
            .channel()
            .write(disk.drive, disk.page, &[0xEE; PAGE], None)
            .unwrap();
    }
    let err = Vm::open(volume, cfg).unwrap_err().to_string();
    assert!(err.contains("wrong magic"), "{err}");
}

/// What a crash in the middle of a flush left: the shape reopened.
#[derive(Debug, PartialEq)]
enum Left {
    Old,
    New,
}

/// Where the power goes in the middle of a flush.
#[derive(Clone, Copy, Debug)]
enum Crash {
    /// After this many writes (later writes are dropped).
    AfterWrites(u64),
    /// At this sync (counted from 0): it never completes.
    AtSync(u64),
}

/// State A (intervals a of 1s and b of 2s) flushed; then state B (a
/// rewritten with 5s, b freed, c of 7s) flushed with the power going at
/// `crash`; with `lose`, the loss also undoes a seeded half of the writes
/// made since the last completed sync. Reopens and checks that the space
/// is A or B, never a mix, and every page whole. Returns whether the
/// crash point was reached, and which shape came back.
fn crash_in_a_flush(volume_pages: u64, crash: Crash, lose: Option<u64>) -> (bool, Left) {
    let (vm, cfg, media, handle) = faulty_space(volume_pages);
    let a = vm.allocate(6).unwrap();
    let b = vm.allocate(4).unwrap();
    vm.write(vm.address_of(a.page), &[1u8; 6 * PAGE]).unwrap();
    vm.write(vm.address_of(b.page), &[2u8; 4 * PAGE]).unwrap();
    vm.flush().unwrap();
    handle.track_unsynced();
    let shape_a = vm.intervals();
    vm.write(vm.address_of(a.page), &[5u8; 6 * PAGE]).unwrap();
    vm.free(b).unwrap();
    let c = vm.allocate(3).unwrap();
    vm.write(vm.address_of(c.page), &[7u8; 3 * PAGE]).unwrap();
    let shape_b = vm.intervals();
    match crash {
        Crash::AfterWrites(n) => handle.crash_after_writes(n),
        Crash::AtSync(k) => handle.fail_once(disk_channel::OpKind::Sync, k),
    }
    let flushed = vm.flush();
    let crashed = match crash {
        Crash::AfterWrites(_) => handle.crashed() && handle.dropped_writes() > 0,
        Crash::AtSync(_) => flushed.is_err(),
    };
    std::mem::forget(vm); // the process died here: no close, no drop
    if let Some(seed) = lose {
        let mut rng = disk_channel::rng::SplitMix64::new(seed);
        let mut drive = media.share_media();
        for (page, before) in handle.unsynced() {
            if rng.below(2) == 0 {
                drive.write(page, &before, None).unwrap();
            }
        }
    }
    let vm = Vm::open(reopen_sim(&media), cfg).unwrap();
    let shape = vm.intervals();
    let what = format!("{volume_pages} pages, {crash:?}, loss {lose:?}");
    let left = if shape == shape_a {
        // b was freed in B: its pages waited for B's map, so they hold b.
        assert!(read_all(&vm, b).iter().all(|&x| x == 2), "{what}: b");
        Left::Old
    } else {
        assert_eq!(shape, shape_b, "{what}: neither shape");
        assert!(read_all(&vm, c).iter().all(|&x| x == 7), "{what}: c");
        Left::New
    };
    // a: page by page, 1s or 5s, never a torn page.
    let back = read_all(&vm, a);
    for (p, page) in back.chunks(PAGE).enumerate() {
        assert!(
            page.iter().all(|&x| x == 1) || page.iter().all(|&x| x == 5),
            "{what}: page {p} of a is neither"
        );
    }
    if !crashed && lose.is_none() {
        flushed.unwrap();
        assert_eq!(left, Left::New, "{what}");
        assert!(back.iter().all(|&x| x == 5), "{what}");
    }
    (crashed, left)
}

/// A crash at every write of a flush (the drive drops every write from
/// that point): the reopened space is the previous synced shape or the new
/// one, never a mix; every page holds its previous or its new contents,
/// whole; the flush that completed gives the new state exactly. On a
/// volume whose map is one page, and one whose map spans three (so that a
/// map write writes only the pages that changed).
#[test]
fn a_crash_at_any_write_of_a_flush_leaves_the_old_or_the_new_space() {
    for volume_pages in [VOLUME_PAGES, 9000] {
        let mut saw = (false, false);
        for crash_at in 0.. {
            let (crashed, left) =
                crash_in_a_flush(volume_pages, Crash::AfterWrites(crash_at), None);
            match left {
                Left::Old => saw.0 = true,
                Left::New => saw.1 = true,
            }
            if !crashed {
                break;
            }
            assert!(crash_at < 200, "the flush never completed");
        }
        assert!(saw.0 && saw.1, "{volume_pages} pages: {saw:?}");
    }
}

/// Third review: a crash that only drops writes from a point on keeps every
/// write before it, so a flush that wrote its map without first syncing
/// the data would pass. Here the power goes at every write and at every
/// sync of the flush, and the loss also undoes a seeded half of the writes
/// since the last completed sync, in any order, as a drive's volatile cache
/// may: still the old or the new space, whole pages. (Without the sync
/// between the data and the map, this test fails.)
#[test]
fn a_power_loss_that_keeps_some_unsynced_writes_leaves_the_old_or_the_new_space() {
    let mut losses = 0;
    for volume_pages in [VOLUME_PAGES, 9000] {
        let crashes = (0..12)
            .map(Crash::AfterWrites)
            .chain((0..4).map(Crash::AtSync));
        for crash in crashes {
            for seed in 0..6 {
                let (crashed, _) = crash_in_a_flush(volume_pages, crash, Some(seed));
                losses += usize::from(crashed);
            }
        }
    }
    assert!(losses > 50, "only {losses} runs lost power mid-flush");
}

/// A torn write (a prefix of a write reaches the drive, then it crashes)
/// at every write of a flush: a torn map is caught by its checksum and the
/// previous one used; no page is mixed — not even the synced page being
/// rewritten in place at the tear (the journal's image of it is replayed
/// at open); a space that came back new has all of c.
#[test]
fn a_torn_write_in_a_flush_never_gives_a_torn_map_or_page() {
    let mut tears = 0;
    for nth in 0..40 {
        let (vm, cfg, media, handle) = faulty_space(9000);
        let a = vm.allocate(6).unwrap();
        vm.write(vm.address_of(a.page), &[1u8; 6 * PAGE]).unwrap();
        vm.flush().unwrap();
        vm.write(vm.address_of(a.page), &[5u8; 6 * PAGE]).unwrap();
        let c = vm.allocate(2).unwrap();
        vm.write(vm.address_of(c.page), &[7u8; 2 * PAGE]).unwrap();
        handle.tear_write(nth, 100 + nth as usize * 37);
        let _ = vm.flush();
        tears += usize::from(handle.crashed());
        std::mem::forget(vm);
        let vm = Vm::open(reopen_sim(&media), cfg).unwrap();
        let mut torn = 0;
        for page in read_all(&vm, a).chunks(PAGE) {
            if !(page.iter().all(|&x| x == 1) || page.iter().all(|&x| x == 5)) {
                torn += 1;
            }
        }
        assert_eq!(torn, 0, "tear at write {nth}: {torn} pages mixed");
        match vm.intervals().len() {
            1 => {}
            2 => assert!(read_all(&vm, c).iter().all(|&x| x == 7), "tear at {nth}: c"),
            n => panic!("tear at {nth}: {n} intervals"),
        }
    }
    assert!(tears >= 3, "only {tears} writes were torn");
}

/// The journal's rule, seen in the counters and on the medium: a page the
/// newest map names on disk gets one image before its first rewrite in
/// place (not one per write-back), a page with no synced copy gets none,
/// and a map commit starts over. A tear of the in-place rewrite leaves the
/// image's version after a reopen; a tear of the image's own write leaves
/// the synced one.
#[test]
fn a_synced_page_gets_one_image_per_map_and_a_torn_rewrite_comes_back_whole() {
    let (vm, _cfg, _media, _handle) = faulty_space(600);
    let a = vm.allocate(3).unwrap();
    let at = |k: u64| vm.address_of(PageNumber(a.page.0 + k));
    vm.write(at(0), &[1u8; 3 * PAGE]).unwrap();
    vm.clean(a).unwrap();
    assert_eq!(vm.stats().journal_images, 0, "no synced copy yet");
    vm.flush().unwrap();
    vm.write(at(1), &[2u8; PAGE]).unwrap();
    vm.clean(a).unwrap();
    assert_eq!(vm.stats().journal_images, 1);
    vm.write(at(1), &[3u8; PAGE]).unwrap();
    vm.clean(a).unwrap();
    assert_eq!(vm.stats().journal_images, 1, "one image per map");
    vm.flush().unwrap();
    vm.write(at(1), &[4u8; PAGE]).unwrap();
    vm.write(at(2), &[4u8; PAGE]).unwrap();
    vm.flush().unwrap();
    assert_eq!(vm.stats().journal_images, 3, "a new map, new images");
    drop(vm);

    // Tear each write of a rewrite's write-back in turn.
    let mut outcomes = std::collections::BTreeSet::new();
    for nth in 0..4 {
        let (vm, cfg, media, handle) = faulty_space(600);
        let a = vm.allocate(3).unwrap();
        vm.write(vm.address_of(a.page), &[1u8; 3 * PAGE]).unwrap();
        vm.flush().unwrap();
        vm.write(vm.address_of(PageNumber(a.page.0 + 1)), &[2u8; PAGE])
            .unwrap();
        handle.tear_write(nth, 1000);
        let _ = vm.clean(a);
        let crashed = handle.crashed();
        std::mem::forget(vm);
        let vm = Vm::open(reopen_sim(&media), cfg).unwrap();
        let bytes = read_all(&vm, a);
        let page = &bytes[PAGE..2 * PAGE];
        let whole = |v: u8| page.iter().all(|&x| x == v);
        assert!(
            whole(1) || whole(2),
            "tear at write {nth}: the synced page came back mixed"
        );
        assert!(
            bytes[..PAGE]
                .iter()
                .chain(&bytes[2 * PAGE..])
                .all(|&x| x == 1)
        );
        outcomes.insert((crashed, page[0]));
    }
    // The image's write torn (the synced version stays), the in-place
    // write torn (the image's version comes back), nothing torn.
    assert!(outcomes.contains(&(true, 1)), "{outcomes:?}");
    assert!(outcomes.contains(&(true, 2)), "{outcomes:?}");
}

/// Review of the journal: a checkpoint in the middle of a batch dropped
/// the images of the batch's pages that the old chain held, and those were
/// then written in place unprotected. A 600-page volume has a 16-page
/// journal (15 images a record at most): P's image, then 13 more, fill it;
/// then P and Q14 are written back in one batch — Q14's image does not fit,
/// a checkpoint starts a new chain, and P needs its image again. Each write
/// of that batch is torn in turn; P and Q14 come back whole. (32 pages of
/// real memory: nothing is evicted on the way.)
#[test]
fn a_checkpoint_in_the_middle_of_a_batch_keeps_every_page_of_it_imaged() {
    let mut checkpoints = 0;
    let mut crashes = 0;
    for nth in 0..6 {
        let (vm, cfg, media, handle) = faulty_space_with(600, 32);
        let a = vm.allocate(15).unwrap();
        let at = |k: u64| vm.address_of(PageNumber(a.page.0 + k));
        vm.write(at(0), &[1u8; 15 * PAGE]).unwrap();
        vm.flush().unwrap();
        vm.write(at(0), &[2u8; PAGE]).unwrap();
        vm.clean(a).unwrap();
        vm.write(at(1), &[2u8; 13 * PAGE]).unwrap();
        vm.clean(a).unwrap();
        let before = vm.stats().journal_checkpoints;
        vm.write(at(0), &[3u8; PAGE]).unwrap();
        vm.write(at(14), &[3u8; PAGE]).unwrap();
        handle.tear_write(nth, 1000);
        let _ = vm.clean(a);
        checkpoints += vm.stats().journal_checkpoints - before;
        crashes += u64::from(handle.crashed());
        std::mem::forget(vm);
        let vm = Vm::open(reopen_sim(&media), cfg).unwrap();
        let bytes = read_all(&vm, a);
        for k in [0usize, 14] {
            let page = &bytes[k * PAGE..(k + 1) * PAGE];
            assert!(
                page.iter().all(|&x| x == page[0]) && [1, 2, 3].contains(&page[0]),
                "tear at write {nth}: page {k} came back mixed"
            );
        }
    }
    assert!(checkpoints >= 1, "the batch never checkpointed");
    assert!(crashes >= 3, "only {crashes} tears landed");
}

/// Review of the journal: a map commit that failed after its write began
/// (here its sync) may have left the new map on the medium, naming pages
/// the newest map before it did not. Those pages are imaged before their
/// next rewrite in place, and the chain is replayed under either map.
#[test]
fn after_a_failed_map_commit_a_torn_rewrite_still_comes_back_whole() {
    let mut crashes = 0;
    for nth in 0..4 {
        let (vm, cfg, media, handle) = faulty_space(600);
        let a = vm.allocate(2).unwrap();
        vm.write(vm.address_of(a.page), &[1u8; 2 * PAGE]).unwrap();
        vm.flush().unwrap();
        let b = vm.allocate(2).unwrap();
        vm.write(vm.address_of(b.page), &[2u8; 2 * PAGE]).unwrap();
        // The flush's data sync passes, the map's sync fails.
        handle.fail_once(disk_channel::OpKind::Sync, 1);
        assert!(vm.flush().is_err(), "the map's sync did not fail");
        vm.write(vm.address_of(b.page), &[3u8; PAGE]).unwrap();
        vm.write(vm.address_of(a.page), &[3u8; PAGE]).unwrap();
        handle.tear_write(nth, 1000);
        let _ = vm.clean(a);
        let _ = vm.clean(b);
        crashes += u64::from(handle.crashed());
        std::mem::forget(vm);
        let vm = Vm::open(reopen_sim(&media), cfg).unwrap();
        let intervals: Vec<Interval> = vm.intervals().iter().map(|(i, _)| *i).collect();
        assert_eq!(intervals.len(), 2, "the failed map landed on the medium");
        for interval in intervals {
            for (k, page) in read_all(&vm, interval).chunks(PAGE).enumerate() {
                assert!(
                    page.iter().all(|&x| x == page[0]),
                    "tear at write {nth}: page {k} of {interval:?} came back mixed"
                );
            }
        }
    }
    assert!(crashes >= 2, "only {crashes} tears landed");
}

/// Review of the journal: a bad spot under the journal failed every
/// rewrite of a synced page from then on (the record aimed at the same
/// page each time). Its page now moves to a spare (the run table
/// committed), and the space reopens with the rewrite.
#[test]
fn a_bad_spot_under_the_journal_moves_it() {
    let volume_pages = 600;
    let (vm, cfg, media, handle) = faulty_space(volume_pages);
    let slot_pages = (68 + volume_pages).div_ceil(PAGE as u64);
    // The journal: the 16 pages below the map slots.
    let journal_first = PageNumber(volume_pages - 2 * slot_pages - 16);
    let a = vm.allocate(2).unwrap();
    vm.write(vm.address_of(a.page), &[1u8; 2 * PAGE]).unwrap();
    vm.flush().unwrap();
    let bad = vm.disk_address(journal_first).unwrap();
    handle.add_bad_page(bad.page);
    vm.write(vm.address_of(a.page), &[2u8; PAGE]).unwrap();
    vm.clean(a).unwrap();
    assert_eq!(vm.stats().journal_images, 1);
    assert_ne!(vm.disk_address(journal_first).unwrap(), bad, "did not move");
    vm.flush().unwrap();
    std::mem::forget(vm);
    let vm = Vm::open(reopen_sim(&media), cfg).unwrap();
    let bytes = read_all(&vm, a);
    assert!(bytes[..PAGE].iter().all(|&x| x == 2));
    assert!(bytes[PAGE..].iter().all(|&x| x == 1));
}

/// The child side of the cross-process tests: does its work only when the
/// parent test runs it with `CEDAR_PERSIST_CHILD` set.
#[test]
fn child() {
    let Ok(what) = std::env::var("CEDAR_PERSIST_CHILD") else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var("CEDAR_PERSIST_DIR").unwrap());
    match what.as_str() {
        "list" => {
            // A linked list whose links are addresses in the space, its
            // nodes scattered over several intervals; the head's address
            // at the start of the first interval.
            let volume = file_volume(&dir, true);
            let cfg = config(&volume, 16);
            let vm = Vm::create(volume, cfg).unwrap();
            let root = vm.allocate(1).unwrap();
            let pools: Vec<Interval> = (0..4).map(|k| vm.allocate(3 + k).unwrap()).collect();
            let mut next = 0u64; // the end of the list
            for n in (0..200u64).rev() {
                let pool = pools[(n * 7 % 4) as usize];
                let at = vm.address_of(pool.page).0 + (n * 40) % (pool.count.0 * PAGE as u64 - 16);
                let at = at / 16 * 16;
                let mut node = [0u8; 16];
                node[..8].copy_from_slice(&(n * n + 1).to_le_bytes());
                node[8..].copy_from_slice(&next.to_le_bytes());
                vm.write(VAddr(at), &node).unwrap();
                next = at;
            }
            vm.write(vm.address_of(root.page), &next.to_le_bytes())
                .unwrap();
            vm.flush().unwrap();
            // Exit without closing or dropping: only the flush counts.
            std::process::exit(0);
        }
        "loop" => {
            // Writes records for ever, syncing every 10, saying so.
            let volume = file_volume(&dir, true);
            let cfg = config(&volume, 8);
            let vm = Vm::create(volume, cfg).unwrap();
            let log = vm.allocate(64).unwrap();
            let base = vm.address_of(log.page).0;
            let mut out = std::io::stdout();
            for i in 0u64.. {
                let slot = i % (64 * PAGE as u64 / 16);
                let mut record = [0u8; 16];
                record[..8].copy_from_slice(&i.to_le_bytes());
                record[8..].copy_from_slice(&(i ^ 0xA5A5_A5A5).to_le_bytes());
                vm.write(VAddr(base + slot * 16), &record).unwrap();
                if i % 10 == 9 {
                    vm.sync(log).unwrap();
                    use std::io::Write;
                    writeln!(out, "synced {i}").unwrap();
                    out.flush().unwrap();
                }
            }
        }
        "raw-list" => {
            // Transparent mode: a list whose links are machine pointers,
            // stored by plain stores; the head's pointer in the first word.
            let volume = file_volume(&dir, true);
            let cfg = config(&volume, 16).transparent();
            let vm = match Vm::create(volume, cfg) {
                Ok(vm) => vm,
                Err(vm_core::VmError::TransparentUnavailable { reason }) => {
                    println!("unavailable: {reason}");
                    std::process::exit(0);
                }
                Err(e) => panic!("{e}"),
            };
            let root = vm.allocate(1).unwrap();
            let pool = vm.allocate(24).unwrap();
            let mut nodes = vm.view_mut::<u64>(pool).unwrap();
            let base = nodes.as_mut_ptr();
            let mut next = 0u64;
            for n in (0..300usize).rev() {
                // Scattered: node n at word 2·(n·37 mod 300)·7.
                let at = 2 * ((n * 37 % 300) * 7);
                nodes[at] = (n * n + 1) as u64;
                nodes[at + 1] = next;
                next = base.wrapping_add(at) as u64;
            }
            drop(nodes);
            vm.view_mut::<u64>(root).unwrap()[0] = next;
            vm.flush().unwrap();
            println!("base {:#x}", vm.transparent_ptr(VAddr(0)).unwrap() as usize);
            std::process::exit(0);
        }
        "raw-walk" => {
            // Reopens the space in transparent mode and walks the list by
            // the machine pointers stored in it.
            let volume = file_volume(&dir, false);
            let cfg = config(&volume, 8).transparent();
            let vm = match Vm::open(volume, cfg) {
                Ok(vm) => vm,
                Err(e @ vm_core::VmError::TransparentUnavailable { .. }) => {
                    println!("taken: {e}");
                    std::process::exit(0);
                }
                Err(e) => panic!("{e}"),
            };
            let root = vm.intervals()[0].0;
            let mut at = vm.view::<u64>(root).unwrap()[0] as *const u64;
            let pool = vm.intervals()[1].0;
            let _view = vm.view::<u64>(pool).unwrap();
            let mut n = 0u64;
            while !at.is_null() {
                // SAFETY: `at` is a pointer the writer stored into the
                // space, which is mapped where it was: inside the pool,
                // which the view above holds (shared) and keeps allocated;
                // loads of absent pages are served by the VM.
                let (value, next) = unsafe { (at.read(), at.add(1).read()) };
                assert_eq!(value, n * n + 1, "node {n}");
                at = next as *const u64;
                n += 1;
            }
            assert!(vm.stats().page_ins > 0);
            println!(
                "walked {n} at {:#x}",
                vm.transparent_ptr(VAddr(0)).unwrap() as usize
            );
            std::process::exit(0);
        }
        other => panic!("unknown child {other}"),
    }
}

fn spawn_child(what: &str, dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env("CEDAR_PERSIST_CHILD", what)
        .env("CEDAR_PERSIST_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// A new process writes a pointer-linked list, flushes and exits without
/// closing; this process reopens the files and walks the list by the
/// addresses stored in the space.
#[test]
fn a_linked_list_survives_the_process_that_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    let status = spawn_child("list", dir.path()).wait().unwrap();
    assert!(status.success(), "the writer failed: {status}");
    let volume = file_volume(dir.path(), false);
    let cfg = config(&volume, 4);
    let vm = Vm::open(volume, cfg).unwrap();
    let root = vm.intervals()[0].0;
    let mut head = [0u8; 8];
    vm.read(vm.address_of(root.page), &mut head).unwrap();
    let mut at = u64::from_le_bytes(head);
    let mut n = 0u64;
    while at != 0 {
        let mut node = [0u8; 16];
        vm.read(VAddr(at), &mut node).unwrap();
        assert_eq!(u64::from_le_bytes(node[..8].try_into().unwrap()), n * n + 1);
        at = u64::from_le_bytes(node[8..].try_into().unwrap());
        n += 1;
    }
    assert_eq!(n, 200, "the list came back whole");
}

/// Transparent mode: a new process writes a list linked by machine
/// pointers, flushes and exits; another reopens the space in transparent
/// mode — at the same address — and walks the list by the pointers; with
/// that range taken (here), the reopen is refused with a reason, and the
/// copying API opens it anyway.
#[test]
fn raw_pointers_survive_a_transparent_reopen_at_the_same_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = spawn_child("raw-list", dir.path())
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "the writer failed: {}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if let Some(reason) = stdout
        .lines()
        .find_map(|l| l.split_once("unavailable: ").map(|(_, r)| r))
    {
        println!("skipped: transparent mode unavailable: {reason}");
        return;
    }
    // (The harness's "test child ..." may share the line.)
    let base = stdout
        .lines()
        .find_map(|l| l.split_once("base 0x").map(|(_, h)| h))
        .map(|h| usize::from_str_radix(h.trim(), 16).unwrap())
        .unwrap_or_else(|| panic!("the writer says where its space was: {stdout}"));
    // Another new process walks it (the range could be taken by chance in
    // one process's layout: a few tries, each a fresh layout).
    let mut walked = None;
    for _ in 0..4 {
        let out = spawn_child("raw-walk", dir.path())
            .wait_with_output()
            .unwrap();
        assert!(out.status.success(), "the walker failed: {}", out.status);
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        if said.contains("taken: ") {
            println!("a walker found the range taken: {said}");
            continue;
        }
        walked = Some(said);
        break;
    }
    let walked = walked.expect("the range was taken in every walker");
    assert!(
        walked.contains(&format!("walked 300 at {base:#x}")),
        "{walked}"
    );
    // The range taken by another mapping: refused, saying why.
    // SAFETY: an anonymous mapping at a range this process may use for
    // something else; FIXED_NOREPLACE never replaces what is there.
    let taken = unsafe {
        libc::mmap(
            base as *mut libc::c_void,
            PAGE,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    // Mapped by us, or taken already by something of this process's: the
    // range is taken either way.
    let ours = taken as usize == base;
    if !ours && taken != libc::MAP_FAILED {
        // SAFETY: a mapping the kernel made elsewhere (a hint-only kernel).
        unsafe { libc::munmap(taken, PAGE) };
        panic!("the kernel ignored MAP_FIXED_NOREPLACE");
    }
    let volume = file_volume(dir.path(), false);
    let cfg = config(&volume, 8).transparent();
    let err = Vm::open(volume, cfg).unwrap_err();
    assert!(
        matches!(&err, vm_core::VmError::TransparentUnavailable { reason } if reason.contains("cannot be mapped in this process")),
        "{err}"
    );
    let volume = file_volume(dir.path(), false);
    let cfg = config(&volume, 8);
    let vm = Vm::open(volume, cfg).unwrap();
    assert_eq!(vm.intervals().len(), 2);
    drop(vm);
    if ours {
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(taken, PAGE) };
    }
}

/// `kill -9` in the middle of a write loop: every record a completed
/// `sync` covered is there after reopen.
#[test]
fn kill_9_keeps_every_synced_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child("loop", dir.path());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut synced = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(i) = line.strip_prefix("synced ") {
            synced = Some(i.parse::<u64>().unwrap());
            if synced.unwrap() >= 300 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The child may have synced more than it said before it died.
    let last = synced.expect("the child synced");
    let volume = file_volume(dir.path(), false);
    let cfg = config(&volume, 8);
    let vm = Vm::open(volume, cfg).unwrap();
    let log = vm.intervals()[0].0;
    let base = vm.address_of(log.page).0;
    let slots = 64 * PAGE as u64 / 16;
    for i in last.saturating_sub(slots - 1)..=last {
        let mut record = [0u8; 16];
        vm.read(VAddr(base + (i % slots) * 16), &mut record)
            .unwrap();
        let got = u64::from_le_bytes(record[..8].try_into().unwrap());
        let check = u64::from_le_bytes(record[8..].try_into().unwrap());
        assert_eq!(check, got ^ 0xA5A5_A5A5, "slot of record {i} torn");
        // The slot holds record i, or a later one that overwrote it.
        assert!(
            got >= i && got % slots == i % slots,
            "record {i} lost: {got}"
        );
    }
}

/// A persistent space is opened through its volume like any VM: the
/// anonymous `Vm::new` on the same volume sees no intervals (the Cedar
/// behaviour stays the default).
#[test]
fn vm_new_stays_anonymous() {
    let (volume, media) = sim_volume();
    let cfg = config(&volume, 8);
    let vm = Vm::create(volume, cfg.clone()).unwrap();
    vm.allocate(3).unwrap();
    vm.close().unwrap();
    let vm = Vm::new(cfg, Backing::Volume(reopen_sim(&media))).unwrap();
    assert!(!vm.is_persistent());
    assert!(vm.intervals().is_empty());
}

/// An interval at a chosen address, and growth in place: both refused
/// where the pages are taken, both remembered by a persistent space.
#[test]
fn intervals_placed_and_grown_in_place_come_back() {
    let (volume, media) = sim_volume();
    let cfg = config(&volume, 8);
    let vm = Vm::create(volume, cfg.clone()).unwrap();
    let at = vm.allocate_at(PageNumber(100), 10).unwrap();
    assert_eq!(at, Interval::new(100, 10));
    assert!(vm.allocate_at(PageNumber(105), 10).is_err(), "overlaps");
    assert!(
        vm.allocate_at(PageNumber(cfg.virtual_pages - 2), 3)
            .is_err(),
        "past the end"
    );
    let blocker = vm.allocate_at(PageNumber(120), 1).unwrap();
    let grown = vm.grow(at, 10).unwrap();
    assert_eq!(grown, Interval::new(100, 20));
    assert!(vm.grow(grown, 1).is_err(), "page 120 is taken");
    vm.free(blocker).unwrap();
    // Freed pages of a persistent space are reused once a map frees them.
    assert!(vm.grow(grown, 5).is_err(), "reused before the map freed it");
    vm.flush().unwrap();
    let grown = vm.grow(grown, 5).unwrap();
    vm.write(vm.address_of(PageNumber(124)), b"end of the grown part")
        .unwrap();
    let shape = vm.intervals();
    vm.close().unwrap();
    let vm = Vm::open(reopen_sim(&media), cfg).unwrap();
    assert_eq!(vm.intervals(), shape);
    assert_eq!(vm.intervals()[0].0, grown);
    let mut back = [0u8; 21];
    vm.read(vm.address_of(PageNumber(124)), &mut back).unwrap();
    assert_eq!(&back, b"end of the grown part");
}

/// One call makes the drive files (sized by the code, not by hand) and
/// the space; one call reopens it; making it again over data is refused.
#[test]
fn create_files_and_open_files_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let files = vm_core::SpaceFiles {
        paths: vec![dir.path().join("a.vol"), dir.path().join("b.vol")],
        real_memory_bytes: 64 << 10,
        ..vm_core::SpaceFiles::new(dir.path().join("unused"))
    };
    let vm = Vm::create_files(&files, 3 << 20).unwrap();
    assert!(vm.virtual_pages() * PAGE as u64 >= 3 << 20);
    let i = vm.allocate(600).unwrap();
    let bytes: Vec<u8> = (0..600 * PAGE).map(|n| (n % 251) as u8).collect();
    vm.write(vm.address_of(i.page), &bytes).unwrap();
    vm.close().unwrap();
    let err = Vm::create_files(&files, 1 << 20).unwrap_err().to_string();
    assert!(err.contains("already holds data"), "{err}");
    // A space past what a map can hold is refused at once (it looped).
    let other = vm_core::SpaceFiles::new(dir.path().join("huge.vol"));
    let err = Vm::create_files(&other, 1 << 60).unwrap_err().to_string();
    assert!(
        err.contains("more than a persistent space can have"),
        "{err}"
    );
    assert!(!dir.path().join("huge.vol").exists());
    // Reopened with another page size: the error names the field to change
    // (an embedder's trial read "the drives use 8192" as the drives' fault).
    let wrong = vm_core::SpaceFiles {
        page_size: 8192,
        ..files.clone()
    };
    let err = Vm::open_files(&wrong).unwrap_err().to_string();
    assert!(
        err.contains("SpaceFiles::page_size is 8192") && err.contains("4096"),
        "{err}"
    );
    let vm = Vm::open_files(&files).unwrap();
    assert_eq!(vm.intervals()[0].0, i);
    assert!(read_all(&vm, i) == bytes);
}

/// Reopen with the wrong page size, or over a map copied from another
/// volume, is a clear error, not a space read wrong.
#[test]
fn reopen_with_a_wrong_page_size_or_a_foreign_map_is_refused() {
    let (volume, media) = sim_volume();
    let cfg = config(&volume, 8);
    Vm::create(volume, cfg.clone()).unwrap().close().unwrap();
    let wrong = VmConfig {
        page_size: 8192,
        ..cfg.clone()
    };
    let err = Vm::open(reopen_sim(&media), wrong).unwrap_err().to_string();
    assert!(
        err.contains("page_size") || err.contains("page size"),
        "{err}"
    );
    // Another volume's space, its map copied over this one's.
    let (other, other_media) = sim_volume();
    let vm = Vm::create(other, cfg.clone()).unwrap();
    vm.allocate(9).unwrap();
    vm.close().unwrap();
    let from = reopen_sim(&other_media);
    let to = reopen_sim(&media);
    let mut page = vec![0u8; PAGE];
    for p in cfg.virtual_pages..VOLUME_PAGES {
        let a = from.translate(PageNumber(p)).unwrap();
        from.channel()
            .read(a.drive, a.page, &mut page, None)
            .unwrap();
        let b = to.translate(PageNumber(p)).unwrap();
        to.channel().write(b.drive, b.page, &page, None).unwrap();
    }
    let err = Vm::open(to, cfg).unwrap_err().to_string();
    assert!(err.contains("another volume"), "{err}");
}

/// Third review: a map page that cannot be written failed every later
/// flush (the commit kept aiming at the same slot), and a slot that cannot
/// be read failed `open` though the other held the newest map. The page
/// now moves to a spare (the run table committed first), and an unreadable
/// slot is a bad one.
#[test]
fn a_bad_spot_under_the_map_moves_it_and_an_unreadable_slot_is_passed_over() {
    let volume_pages = 9000;
    let (vm, cfg, media, handle) = faulty_space(volume_pages);
    let slot_pages = (68 + volume_pages).div_ceil(PAGE as u64);
    let a = vm.allocate(5).unwrap();
    vm.write(vm.address_of(a.page), &[3u8; 5 * PAGE]).unwrap();
    vm.flush().unwrap();
    // The next map goes to slot 0 (create wrote 1 then 0, the flush 1):
    // its first page goes bad.
    // The slots are the volume's top pages (the journal is below them).
    let slot0 = PageNumber(volume_pages - 2 * slot_pages);
    let bad = vm.disk_address(slot0).unwrap();
    handle.add_bad_page(bad.page);
    let b = vm.allocate(2).unwrap();
    vm.write(vm.address_of(b.page), &[4u8; 2 * PAGE]).unwrap();
    vm.flush().unwrap();
    assert_ne!(
        vm.disk_address(slot0).unwrap(),
        bad,
        "the map page did not move"
    );
    std::mem::forget(vm);
    let vm = Vm::open(reopen_sim(&media), cfg.clone()).unwrap();
    assert_eq!(vm.intervals().len(), 2);
    assert!(read_all(&vm, b).iter().all(|&x| x == 4));
    drop(vm);
    // Slot 1 (the older map) unreadable: open takes slot 0.
    let volume = reopen_sim(&media);
    let slot1 = volume
        .translate(PageNumber(volume_pages - slot_pages))
        .unwrap();
    let faulty = FaultyDrive::new(media.share_media());
    faulty.handle().add_bad_page(slot1.page);
    drop(volume);
    let channel = DiskChannel::new(vec![Box::new(faulty) as Box<dyn Drive>]).unwrap();
    let vm = Vm::open(Volume::open(channel).unwrap(), cfg).unwrap();
    assert_eq!(vm.intervals().len(), 2);
}

/// A space made smaller than the volume allows is reopened at its own
/// size, read from the volume (`Vm::space_pages`), without the embedder
/// keeping it anywhere (an embedder's trial: only `open_files` could);
/// a volume that never held a persistent space says so.
#[test]
fn a_space_s_size_is_read_from_its_volume() {
    let (volume, media) = sim_volume();
    assert!(Vm::space_pages(&volume).is_err(), "no space made yet");
    let pages = Vm::persistent_pages(&volume).unwrap() / 2 + 3;
    let vm = Vm::create(volume, VmConfig::new(pages, 8)).unwrap();
    let i = vm.allocate(4).unwrap();
    vm.write(vm.address_of(i.page), b"sized").unwrap();
    vm.close().unwrap();
    let volume = reopen_sim(&media);
    assert_eq!(Vm::space_pages(&volume).unwrap(), pages);
    let vm = Vm::open(volume, VmConfig::new(pages, 8)).unwrap();
    let mut back = [0u8; 5];
    vm.read(vm.address_of(i.page), &mut back).unwrap();
    assert_eq!(&back, b"sized");
}
