//! Read-ahead started and finished by the faulting thread
//! (`VmConfig::inline_read_ahead`) on a drive read with `O_DIRECT`: a scan
//! reads the same bytes as with the read-ahead thread, its clusters are
//! the faulting thread's own reads, and reads nobody meets are finished
//! all the same — by another thread that meets them, by `free`, or when
//! the VM closes.

mod common;
use common::*;
use disk_channel::{CachePolicy, DiskChannel, Drive, FileDrive, FileDriveOptions};
use runtable::{FormatOptions, Volume};
use vm_core::{Advice, Backing, Interval, PageNumber, Vm, VmConfig};

/// Real memory: 2,048 pages (8 MiB; a frame pool of 256 pages).
const BUDGET: u64 = 2048;
/// The data: 4× real memory.
const PAGES: u64 = 4 * BUDGET;

/// A VM over one file drive in `dir`, read-ahead inline or not; `None`
/// (with the reason printed) where the file system refuses `O_DIRECT`.
fn direct_vm(dir: &std::path::Path, inline: bool) -> Option<Vm> {
    direct_vm_with(dir, inline, true)
}

/// [`direct_vm`], with or without the frame pool (`moves`).
fn direct_vm_with(dir: &std::path::Path, inline: bool, moves: bool) -> Option<Vm> {
    let config = VmConfig {
        inline_read_ahead: inline,
        move_frames: moves,
        ..VmConfig::new(PAGES, BUDGET)
    };
    direct_vm_from(dir, config)
}

/// A VM of `config` over one file drive in `dir` as large as its space
/// (see [`direct_vm`]).
fn direct_vm_from(dir: &std::path::Path, config: VmConfig) -> Option<Vm> {
    let pages = config.virtual_pages;
    let options = FileDriveOptions::create(PAGE, pages + 1024);
    let drive = FileDrive::open(dir.join("drive"), &options).unwrap();
    if drive.cache_policy() != CachePolicy::Direct {
        println!(
            "skipped: {} refuses O_DIRECT (the drive fell back to {:?})",
            dir.display(),
            drive.cache_policy()
        );
        return None;
    }
    let channel = DiskChannel::new(vec![Box::new(drive) as Box<dyn Drive>]).unwrap();
    let volume = Volume::format(channel, &FormatOptions::new(PAGE, pages)).unwrap();
    Some(Vm::new(config, Backing::Volume(volume)).unwrap())
}

/// Checks page `p` against pattern `seed` at a few places (cheap enough
/// that a scan outpaces the drive even in a debug build).
fn check_page(vm: &Vm, p: PageNumber, seed: u64) {
    let mut page = vec![0u8; PAGE];
    let addr = vm.address_of(p).0;
    vm.read(vm.address_of(p), &mut page).unwrap();
    for i in (0..PAGE).step_by(509).chain([PAGE - 1]) {
        assert_eq!(
            page[i],
            pattern(seed, addr + i as u64),
            "page {p:?} byte {i}"
        );
    }
}

/// Writes the data out, then scans it under `Sequential` advice, checking
/// every page; the VM's stats after the scan, less those before it.
fn scan(vm: &Vm) -> vm_core::VmStats {
    scan_pages(vm, PAGES)
}

/// [`scan`] of `pages` pages.
fn scan_pages(vm: &Vm, pages: u64) -> vm_core::VmStats {
    let data = vm.allocate(pages).unwrap();
    write_out(vm, data, 7);
    vm.advise(data, Advice::Sequential).unwrap();
    let before = vm.stats();
    for p in data.pages() {
        check_page(vm, p, 7);
    }
    let after = vm.stats();
    vm.check_invariants();
    vm_core::VmStats {
        inline_reads: after.inline_reads - before.inline_reads,
        inline_reads_unmet: after.inline_reads_unmet - before.inline_reads_unmet,
        async_read_aheads: after.async_read_aheads - before.async_read_aheads,
        cluster_reads: after.cluster_reads - before.cluster_reads,
        page_ins: after.page_ins - before.page_ins,
        ..after
    }
}

#[test]
fn a_scan_reads_its_clusters_in_the_faulting_thread_and_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(vm) = direct_vm(dir.path(), true) else {
        return;
    };
    let inline = scan(&vm);
    vm.close().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vm = direct_vm(dir.path(), false).unwrap();
    let thread = scan(&vm);
    vm.close().unwrap();
    // Both read the data once, in clusters read ahead.
    for stats in [&inline, &thread] {
        assert_eq!(stats.page_ins, PAGES, "{stats:?}");
        assert!(
            stats.async_read_aheads * 2 > stats.cluster_reads,
            "{stats:?}"
        );
    }
    // Inline: the read-ahead is the faulting thread's own reads.
    assert!(inline.inline_reads > 0, "{inline:?}");
    assert!(
        inline.inline_reads <= inline.async_read_aheads,
        "{inline:?}"
    );
    assert!(
        inline.inline_reads * 2 > inline.async_read_aheads,
        "{inline:?}"
    );
    // And the scan met them itself: the read-ahead thread finishes only
    // reads left complete for 20 ms (a few, on a loaded machine; a scan
    // whose waiters never help leaves it all of them).
    assert!(
        inline.inline_reads_unmet * 2 < inline.inline_reads,
        "{inline:?}"
    );
    // Off: none.
    assert_eq!(thread.inline_reads, 0, "{thread:?}");
    // A pool of 256 pages has no room for more than two 1 MiB clusters
    // in flight (see the next test).
    assert!(
        (1..=2).contains(&inline.inline_reads_in_flight_high),
        "{inline:?}"
    );
}

#[test]
fn a_scan_keeps_up_to_six_clusters_in_flight_where_the_pool_has_room() {
    // A budget of 64 MiB: a frame pool of 2,048 pages, room for six
    // clusters of 256 in flight and two refilled behind them. The data (24
    // clusters) fits: no page is evicted, only read.
    let dir = tempfile::tempdir().unwrap();
    let pages = 24 * 256;
    let Some(vm) = direct_vm_from(dir.path(), VmConfig::new(pages, 16_384)) else {
        return;
    };
    let stats = scan_pages(&vm, pages);
    vm.close().unwrap();
    assert_eq!(stats.page_ins, pages, "{stats:?}");
    if stats.frame_pool_pages < 2048 {
        println!("skipped the depth check: the kernel gave no frame pool ({stats:?})");
        return;
    }
    // Meeting a cluster in flight plans those after it up to six (it
    // planned one only, so that two were ever in flight, before; then up
    // to four); never more than six.
    assert!(
        (5..=6).contains(&stats.inline_reads_in_flight_high),
        "{stats:?}"
    );
    assert!(
        stats.inline_reads * 2 > stats.async_read_aheads,
        "{stats:?}"
    );

    // Where the pool is smaller (a 32 MiB budget: 1,024 pages), or there
    // is none, two: a read that found every committed slot in flight
    // would commit fresh memory in its own time. (A quarter of these
    // budgets would allow eight and sixteen clusters.)
    for (budget, moves) in [(8192, true), (16_384, false)] {
        let dir = tempfile::tempdir().unwrap();
        let config = VmConfig {
            move_frames: moves,
            ..VmConfig::new(pages, budget)
        };
        let vm = direct_vm_from(dir.path(), config).unwrap();
        let stats = scan_pages(&vm, pages);
        vm.close().unwrap();
        assert_eq!(stats.page_ins, pages, "{stats:?}");
        assert!(
            (1..=2).contains(&stats.inline_reads_in_flight_high),
            "budget {budget}, moves {moves}: {stats:?}"
        );
    }
}

#[test]
fn dont_need_drops_the_clusters_in_flight_too() {
    // A scan stopped halfway, with clusters read ahead in flight (or
    // complete and latched for their reader, who never comes), then
    // `DontNeed` of its data: nothing stays in, by the VM's count or the
    // kernel's — the reads are waited for and their pages dropped.
    for (budget, moves) in [(16_384, true), (BUDGET, true), (16_384, false)] {
        let dir = tempfile::tempdir().unwrap();
        let pages = 24 * 256;
        let config = VmConfig {
            move_frames: moves,
            ..VmConfig::new(pages, budget)
        };
        let Some(vm) = direct_vm_from(dir.path(), config) else {
            return;
        };
        let data = vm.allocate(pages).unwrap();
        write_out(&vm, data, 9);
        vm.advise(data, Advice::Sequential).unwrap();
        let before = vm.stats().inline_reads;
        for p in data.pages().take(pages as usize / 2) {
            check_page(&vm, p, 9);
        }
        let reading = vm.stats();
        assert!(reading.inline_reads > before, "{reading:?}");
        vm.advise(data, Advice::DontNeed).unwrap();
        let after = vm.stats();
        assert_eq!(
            after.resident_pages, 0,
            "budget {budget}, moves {moves}: {after:?}"
        );
        assert_eq!(vm.kernel_resident_pages().unwrap(), 0, "{after:?}");
        vm.check_invariants();
        // And the data reads back whole.
        for p in data.pages().step_by(97) {
            check_page(&vm, p, 9);
        }
        vm.close().unwrap();
    }
}

#[test]
fn without_a_frame_pool_the_reads_go_straight_into_the_pages() {
    let dir = tempfile::tempdir().unwrap();
    let Some(vm) = direct_vm_with(dir.path(), true, false) else {
        return;
    };
    let stats = scan(&vm);
    vm.close().unwrap();
    assert_eq!(stats.page_ins, PAGES, "{stats:?}");
    assert!(
        stats.inline_reads * 2 > stats.async_read_aheads,
        "{stats:?}"
    );
    assert_eq!(stats.frame_pool_pages, 0, "{stats:?}");
    assert_eq!(stats.frames_moved_in, 0, "{stats:?}");
    // Without a pool, two clusters in flight at most.
    assert!(
        (1..=2).contains(&stats.inline_reads_in_flight_high),
        "{stats:?}"
    );
}

/// Faults the first page of `data` (advised `Sequential`): its cluster is
/// read, and the next one planned and started by this thread, which then
/// walks away from it.
fn start_a_read_ahead(vm: &Vm, data: Interval) {
    vm.advise(data, Advice::Sequential).unwrap();
    // A stream's window grows to the maximum before it reads ahead: read
    // the first eighth of the data, then fault once more.
    for p in data.pages().take(PAGES as usize / 8) {
        check_page(vm, p, 3);
    }
}

#[test]
fn reads_nobody_meets_are_finished_by_others_by_free_and_by_close() {
    let dir = tempfile::tempdir().unwrap();
    let Some(vm) = direct_vm(dir.path(), true) else {
        return;
    };
    let data = vm.allocate(PAGES).unwrap();
    write_out(&vm, data, 3);

    // Another thread meets the pages this one read ahead: it waits for the
    // read itself and finds the right bytes.
    start_a_read_ahead(&vm, data);
    let started = vm.stats().inline_reads;
    assert!(started > 0, "{:?}", vm.stats());
    std::thread::scope(|s| {
        s.spawn(|| {
            for p in data
                .pages()
                .skip(PAGES as usize / 8)
                .take(PAGES as usize / 8)
            {
                check_page(&vm, p, 3);
            }
        });
    });
    vm.check_invariants();

    // `touch` of pages being read ahead helps their read.
    start_a_read_ahead(&vm, data);
    let ahead = Interval::new(data.page.0 + PAGES / 8, PAGES / 8);
    vm.touch(ahead).unwrap();
    for p in ahead.pages() {
        check_page(&vm, p, 3);
    }

    // `free` of the data while reads are in flight waits for them.
    start_a_read_ahead(&vm, data);
    vm.free(data).unwrap();
    vm.check_invariants();
    let data = vm.allocate(PAGES).unwrap();
    write_out(&vm, data, 5);

    // Closing with reads in flight finishes them first.
    vm.advise(data, Advice::Sequential).unwrap();
    for p in data.pages().take(PAGES as usize / 8) {
        check_page(&vm, p, 5);
    }
    assert!(vm.stats().inline_reads > started, "{:?}", vm.stats());
    vm.close().unwrap();
}

/// The stats' read counters over `f`: cluster reads, reads through the
/// ring, pages in, faults (one a cluster).
fn reads_over(vm: &Vm, f: impl FnOnce()) -> (u64, u64, u64, u64) {
    let before = vm.stats();
    f();
    let after = vm.stats();
    (
        after.cluster_reads - before.cluster_reads,
        after.inline_reads - before.inline_reads,
        after.page_ins - before.page_ins,
        after.faults - before.faults,
    )
}

/// `touch` and `WillNeed` read by runs without holding the monitor across
/// the transfer: each cluster is planned under it, then started in the
/// ring and waited for by the thread that asked (under the monitor, a
/// cluster is read with the drive's own `pread`, and the ring counts
/// nothing). The bytes are the data's, and the pages are resident after.
#[test]
fn touch_and_will_need_read_their_clusters_through_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let Some(vm) = direct_vm(dir.path(), true) else {
        return;
    };
    let data = vm.allocate(PAGES).unwrap();
    write_out(&vm, data, 11);
    // Two clusters of the most a cluster reads (256 pages) each.
    let first = Interval::new(data.page.0, 512);
    let second = Interval::new(data.page.0 + 512, 512);
    assert_eq!(
        reads_over(&vm, || vm.touch(first).unwrap()),
        (2, 2, 512, 2),
        "touch: {:?}",
        vm.stats()
    );
    assert_eq!(
        reads_over(&vm, || {
            vm.advise(second, Advice::WillNeed).unwrap();
            vm.settle();
        }),
        (2, 2, 512, 2),
        "WillNeed: {:?}",
        vm.stats()
    );
    // Resident: read back without a page-in, the data's bytes.
    let (_, _, page_ins, _) = reads_over(&vm, || {
        for p in first.pages().chain(second.pages()) {
            check_page(&vm, p, 11);
        }
    });
    assert_eq!(page_ins, 0);
    vm.check_invariants();
    vm.close().unwrap();
}

/// `touch` right after a scan that stopped with its clusters in flight
/// (up to six, with a 64 MiB budget) still reads through the ring: its
/// reads have a most of their own beside the stream's. (Before, any two
/// reads in flight sent it back to reading under the monitor.) The
/// scan's reads stay in flight for 20 ms at least (the read-ahead thread
/// finishes unmet reads that old): a thread preempted longer between the
/// two retries, three times at most.
#[test]
fn a_touch_beside_a_deep_scan_still_reads_through_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let pages = 32 * 256;
    let Some(vm) = direct_vm_from(dir.path(), VmConfig::new(pages, 16_384)) else {
        return;
    };
    if vm.stats().frame_pool_pages < 2048 {
        println!("skipped: the kernel gave no frame pool");
        return;
    }
    let scanned = vm.allocate(24 * 256).unwrap();
    let touched = vm.allocate(2 * 256).unwrap();
    write_out(&vm, scanned, 15);
    write_out(&vm, touched, 16);
    vm.advise(scanned, Advice::Sequential).unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        for p in scanned.pages().take(12 * 256) {
            check_page(&vm, p, 15);
        }
        let ahead = vm.stats().inline_reads;
        let reads = reads_over(&vm, || vm.touch(touched).unwrap());
        seen.push((reads, vm.stats().inline_reads_in_flight_high, ahead));
        for p in touched.pages() {
            check_page(&vm, p, 16);
        }
        if reads == (2, 2, 512, 2) {
            break;
        }
        vm.advise(scanned, Advice::DontNeed).unwrap();
        vm.advise(touched, Advice::DontNeed).unwrap();
    }
    assert!(
        seen.iter().any(|&(reads, _, _)| reads == (2, 2, 512, 2)),
        "(reads, in flight high, ring reads before): {seen:?}"
    );
    vm.check_invariants();
    vm.close().unwrap();
}

/// A VM over a drive in `dir` whose data (`PAGES` pages of pattern `seed`)
/// went out, after which the drive's file was cut to nothing: a ring's read
/// then comes back short, and the drive's own read gives zeros past the
/// file's end. `None` where `direct_vm` is.
fn written_then_cut(dir: &std::path::Path, seed: u64) -> Option<(std::sync::Arc<Vm>, Interval)> {
    let vm = direct_vm(dir, true)?;
    let data = vm.allocate(PAGES).unwrap();
    write_out(&vm, data, seed);
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("drive"))
        .unwrap()
        .set_len(0)
        .unwrap();
    Some((std::sync::Arc::new(vm), data))
}

/// `f` on a thread of its own, and what it returned, waited for a minute
/// at most (a call that loops forever fails the test; nothing is timed).
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the call returned within a minute")
}

/// A cluster `touch` planned whose read fails (here: the drive's file cut
/// short under the VM, so the ring's read comes back short) is planned
/// once: the page is then read under the monitor, through the drive, which
/// gives zeros past a file's end. `touch` returns (a retry of the plan
/// would loop forever: the minute's wait detects that; no timing is
/// measured) and the pages read as zeros.
#[test]
fn a_touch_whose_ring_read_fails_reads_under_the_monitor_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some((vm, data)) = written_then_cut(dir.path(), 13) else {
        return;
    };
    let shared = vm.clone();
    let first = Interval::new(data.page.0, 512);
    let before = vm.stats();
    within_a_minute(move || shared.touch(first)).unwrap();
    read_again_through_the_drive(&vm, first, &before);
    // The will-need thread does as touch does: each failed ring read is
    // made again under the monitor, through the drive.
    let second = Interval::new(data.page.0 + 512, 512);
    let before = vm.stats();
    vm.advise(second, Advice::WillNeed).unwrap();
    vm.settle();
    read_again_through_the_drive(&vm, second, &before);
    vm.check_invariants();
}

/// Since `before`, the two clusters of `interval` (512 pages) went to the
/// ring and came back short (a failed read's counts are taken back: none
/// of the ring's reads is a cluster read, a page-in or a fault); each was
/// then read once more, under the monitor, through the drive (whose own
/// counts have only those two reads), one fault a cluster; the pages read
/// as the cut file's zeros.
fn read_again_through_the_drive(vm: &Vm, interval: Interval, before: &vm_core::VmStats) {
    let after = vm.stats();
    let delta = |f: fn(&vm_core::VmStats) -> u64| f(&after) - f(before);
    assert_eq!(delta(|s| s.inline_reads), 2, "{after:?}");
    assert_eq!(delta(|s| s.cluster_reads), 2, "{after:?}");
    assert_eq!(delta(|s| s.disk_reads), 2, "{after:?}");
    assert_eq!(delta(|s| s.page_ins), 512, "{after:?}");
    assert_eq!(delta(|s| s.faults), 2, "{after:?}");
    let mut page = vec![0xFFu8; PAGE];
    for p in interval.pages() {
        vm.read(vm.address_of(p), &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 0), "page {p:?}");
    }
}

/// Threads at once on an `O_DIRECT` volume: two touch, pin or advise
/// `WillNeed` random intervals (their clusters read in the ring, without
/// the monitor), two read random pages, and one advises `DontNeed` (pages
/// leave, to be read again); every page read has the data's bytes, and
/// every call returns (a minute's wait detects a hang; nothing is timed).
#[test]
fn touches_reads_and_discards_at_once_keep_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let Some(vm) = direct_vm(dir.path(), true) else {
        return;
    };
    let data = vm.allocate(PAGES).unwrap();
    write_out(&vm, data, 17);
    let vm = std::sync::Arc::new(vm);
    let (tx, rx) = std::sync::mpsc::channel();
    for thread in 0..5u64 {
        let (vm, tx) = (vm.clone(), tx.clone());
        std::thread::spawn(move || {
            let mut rng = disk_channel::rng::SplitMix64::new(1983 + thread);
            for _ in 0..300 {
                let first = rng.next_u64() % PAGES;
                let count = (1 + rng.next_u64() % 600).min(PAGES - first);
                let interval = Interval::new(data.page.0 + first, count);
                match thread {
                    0 | 1 => match rng.next_u64() % 3 {
                        0 => vm.touch(interval).unwrap(),
                        1 => {
                            let short = Interval::new(interval.page.0, count.min(200));
                            vm.pin(short).unwrap();
                            vm.unpin(short).unwrap();
                        }
                        _ => vm.advise(interval, Advice::WillNeed).unwrap(),
                    },
                    2 | 3 => {
                        for p in interval.pages().take(8) {
                            check_page(&vm, p, 17);
                        }
                    }
                    _ => vm.advise(interval, Advice::DontNeed).unwrap(),
                }
            }
            let _ = tx.send(thread);
        });
    }
    drop(tx);
    for _ in 0..5 {
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("every thread finished");
    }
    vm.settle();
    vm.check_invariants();
    // The ring was used by the touches, and every page still reads right.
    assert!(vm.stats().inline_reads > 0, "{:?}", vm.stats());
    for p in data.pages().step_by(7) {
        check_page(&vm, p, 17);
    }
}

/// The read counters over `f`: reads around into free memory, pages in,
/// reads the drive served.
fn around_over(vm: &Vm, f: impl FnOnce()) -> (u64, u64, u64) {
    let before = vm.stats();
    f();
    let after = vm.stats();
    (
        after.free_read_arounds - before.free_read_arounds,
        after.page_ins - before.page_ins,
        after.disk_reads - before.disk_reads,
    )
}

/// A fault under `Normal` advice with most of real memory free reads its
/// neighbours with it (`VmConfig::read_around_free`): eight pages, four of
/// them before it, in one read through the ring, stopping at resident
/// pages; their bytes are the data's, and a block of them unused is not
/// taken for a stream. Once memory is seven eighths full, a fault reads
/// its page alone — and so it does under `Random` advice, and with the
/// option off.
#[test]
fn a_fault_reads_its_neighbours_into_free_memory_and_only_there() {
    let dir = tempfile::tempdir().unwrap();
    let Some(vm) = direct_vm(dir.path(), true) else {
        return;
    };
    let data = vm.allocate(PAGES).unwrap();
    write_out(&vm, data, 13);
    let at = |i: u64| PageNumber(data.page.0 + i);
    let check = |i: u64| check_page(&vm, at(i), 13);
    // Memory empty: pages 96..104 in one read.
    assert_eq!(
        around_over(&vm, || check(100)),
        (1, 8, 1),
        "{:?}",
        vm.stats()
    );
    assert_eq!(vm.stats().resident_pages, 8);
    // Next to those (unused: no stream), only the absent pages: 104..112
    // (none before 104 is absent), and 91..96 (the run stops at 96).
    assert_eq!(around_over(&vm, || check(104)), (1, 8, 1));
    assert_eq!(around_over(&vm, || check(95)), (1, 5, 1));
    assert_eq!(vm.stats().resident_pages, 21);
    // All of them the data's, read without a read.
    assert_eq!(around_over(&vm, || (91..112).for_each(check)), (0, 0, 0));
    // Used in order now: the next fault is a stream's, read as one.
    let (arounds, page_ins, _) = around_over(&vm, || check(112));
    assert!(arounds == 0 && page_ins > 1, "{:?}", vm.stats());
    // Fill memory to seven eighths with faults on pages far apart, each
    // reading eight.
    let floor = BUDGET / 8 + 8;
    let mut next = 1000;
    while BUDGET - vm.stats().resident_pages >= floor {
        assert_eq!(around_over(&vm, || check(next)), (1, 8, 1), "page {next}");
        next += 16;
    }
    // Now a fault reads its page alone.
    assert_eq!(around_over(&vm, || check(next)), (0, 1, 1));
    // `Random` advice: its page alone, whatever is free.
    vm.advise(data, Advice::DontNeed).unwrap();
    vm.advise(data, Advice::Random).unwrap();
    assert_eq!(around_over(&vm, || check(100)), (0, 1, 1));
    vm.advise(data, Advice::Normal).unwrap();
    assert_eq!(around_over(&vm, || check(200)), (1, 8, 1));
    vm.check_invariants();
    vm.close().unwrap();
    // Off: its page alone.
    let dir = tempfile::tempdir().unwrap();
    let config = VmConfig {
        read_around_free: false,
        ..VmConfig::new(PAGES, BUDGET)
    };
    let vm = direct_vm_from(dir.path(), config).unwrap();
    let data = vm.allocate(PAGES).unwrap();
    write_out(&vm, data, 13);
    let before = vm.stats();
    check_page(&vm, PageNumber(data.page.0 + 100), 13);
    let after = vm.stats();
    assert_eq!(
        (
            after.free_read_arounds - before.free_read_arounds,
            after.page_ins - before.page_ins
        ),
        (0, 1)
    );
    vm.close().unwrap();
}

/// A read-around whose read fails (the drive's file cut to nothing after
/// the data went out: the ring's read comes back short) is planned once:
/// the accessor's next fault on the page reads it alone, through the
/// drive, which gives zeros past the file's end. The read returns (a
/// retry of the plan would loop forever: the minute's wait detects that;
/// nothing is timed), and the failed read-around's counts are taken back.
#[test]
fn a_read_around_whose_read_fails_is_planned_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some((vm, data)) = written_then_cut(dir.path(), 19) else {
        return;
    };
    let shared = vm.clone();
    let page = vm.address_of(PageNumber(data.page.0 + 100));
    let before = vm.stats();
    let bytes = within_a_minute(move || {
        let mut bytes = vec![0xFFu8; PAGE];
        shared.read(page, &mut bytes).map(|()| bytes)
    })
    .unwrap();
    assert!(bytes.iter().all(|&b| b == 0));
    let after = vm.stats();
    let delta = |f: fn(&vm_core::VmStats) -> u64| f(&after) - f(&before);
    // One read in the ring, failed and taken back; then the page alone.
    assert_eq!(delta(|s| s.inline_reads), 1, "{after:?}");
    assert_eq!(delta(|s| s.free_read_arounds), 0, "{after:?}");
    assert_eq!(delta(|s| s.cluster_reads), 0, "{after:?}");
    assert_eq!(delta(|s| s.page_ins), 1, "{after:?}");
    assert_eq!(delta(|s| s.faults), 1, "{after:?}");
    assert_eq!(vm.stats().resident_pages, 1);
    vm.check_invariants();
}
