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
    let options = FileDriveOptions::create(PAGE, PAGES + 1024);
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
    let volume = Volume::format(channel, &FormatOptions::new(PAGE, PAGES)).unwrap();
    let config = VmConfig {
        inline_read_ahead: inline,
        move_frames: moves,
        ..VmConfig::new(PAGES, BUDGET)
    };
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
    let data = vm.allocate(PAGES).unwrap();
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
