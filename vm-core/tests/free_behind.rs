//! Free-behind: a sequential stream in an interval larger than real memory
//! evicts its own clean pages well behind it, so a scan reuses the memory
//! it has and leaves the rest of the space in memory; an interval that fits
//! keeps what it read.

mod common;
use common::*;
use disk_channel::{Drive, SimDrive};
use vm_core::{Advice, FaultService, Interval, MonitorScope, Vm};

/// Real memory of these tests: 2,048 pages (8 MiB). A scan keeps the two
/// windows it has in flight (a pool of 256 pages holds two) and two more
/// (1,024 pages) behind the read it plans; the hot interval's 256 pages fit
/// beside them.
const BUDGET: u64 = 2048;
const HOT: u64 = 256;

fn vm(scope: MonitorScope) -> Vm {
    let drive = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(16384 + 1024)
        .unwrap();
    vm_scoped(
        vec![Box::new(drive) as Box<dyn Drive>],
        16384,
        BUDGET,
        FaultService::InFaultingThread,
        scope,
    )
}

/// Reads every page of `interval` in order and checks it against pattern
/// `seed`.
fn scan_and_check(vm: &Vm, interval: Interval, seed: u64) {
    let mut page = vec![0u8; PAGE];
    for p in interval.pages() {
        let addr = vm.address_of(p).0;
        vm.read(vm.address_of(p), &mut page).unwrap();
        for (i, &b) in page.iter().enumerate() {
            assert_eq!(b, pattern(seed, addr + i as u64), "page {p:?} byte {i}");
        }
    }
}

/// A scan of 4× real memory under `Sequential` advice frees pages behind
/// it, reads every byte right, and leaves a hot interval it never touched
/// in memory: reading the hot interval after the scan reads nothing from
/// the drive. (Without free-behind the clock takes the hot pages once the
/// scan has filled real memory.)
#[test]
fn a_scan_larger_than_memory_frees_behind_itself_and_spares_the_rest() {
    for scope in [MonitorScope::default(), MonitorScope::HeldAcrossIo] {
        let vm = vm(scope);
        let data = vm.allocate(4 * BUDGET).unwrap();
        let hot = vm.allocate(HOT).unwrap();
        write_out(&vm, data, 7);
        write_out(&vm, hot, 8);
        scan_and_check(&vm, hot, 8);
        vm.advise(data, Advice::Sequential).unwrap();
        let before = vm.stats();
        scan_and_check(&vm, data, 7);
        let after = vm.stats();
        let freed = after.freed_behind - before.freed_behind;
        eprintln!(
            "{scope:?}: freed behind {freed}, evictions {}, high water {}",
            after.evictions - before.evictions,
            after.resident_high_water
        );
        let resident_hot = hot.pages().filter(|&p| vm.state(p).has_real_memory).count() as u64;
        assert_eq!(resident_hot, HOT, "{scope:?}: the scan evicted hot pages");
        let page_ins = vm.stats().page_ins;
        scan_and_check(&vm, hot, 8);
        assert_eq!(
            vm.stats().page_ins,
            page_ins,
            "{scope:?}: hot pages read again"
        );
        // All but what the stream keeps behind it and has ahead.
        assert!(
            freed >= 4 * BUDGET - BUDGET,
            "{scope:?}: only {freed} pages freed behind"
        );
    }
}

/// An interval that fits in real memory keeps what a sequential pass read:
/// nothing is freed behind, and a second pass reads nothing from the drive.
#[test]
fn a_scan_that_fits_in_memory_keeps_its_pages() {
    let vm = vm(MonitorScope::default());
    let data = vm.allocate(BUDGET - HOT).unwrap();
    write_out(&vm, data, 3);
    vm.advise(data, Advice::Sequential).unwrap();
    scan_and_check(&vm, data, 3);
    let stats = vm.stats();
    assert_eq!(stats.freed_behind, 0);
    scan_and_check(&vm, data, 3);
    assert_eq!(
        vm.stats().page_ins,
        stats.page_ins,
        "the second pass read pages"
    );
}

/// Pages changed during a scan keep their changes through free-behind
/// (it takes clean pages; the clock writes the changed ones back).
#[test]
fn changes_made_during_a_scan_survive_free_behind() {
    let vm = vm(MonitorScope::default());
    let data = vm.allocate(4 * BUDGET).unwrap();
    write_out(&vm, data, 5);
    vm.advise(data, Advice::Sequential).unwrap();
    // Scan, changing one byte of every 16th page as it goes.
    let mut page = vec![0u8; PAGE];
    for p in data.pages() {
        vm.read(vm.address_of(p), &mut page).unwrap();
        if p.0 % 16 == 0 {
            vm.write(vm.address_of(p), &[0xEE]).unwrap();
        }
    }
    assert!(vm.stats().freed_behind > 0);
    vm.advise(data, Advice::Normal).unwrap();
    for p in data.pages() {
        let addr = vm.address_of(p).0;
        vm.read(vm.address_of(p), &mut page).unwrap();
        let first = if p.0 % 16 == 0 {
            0xEE
        } else {
            pattern(5, addr)
        };
        assert_eq!(page[0], first, "page {p:?}");
        assert_eq!(page[1], pattern(5, addr + 1), "page {p:?}");
    }
}

/// A program that reads a chunk of a quarter of real memory in order and
/// then rewrites it in place, whole pages (an external sort forming its
/// runs), reads every page from the drive once: free-behind takes the
/// chunk's first pages before the rewrite reaches them (it keeps only the
/// windows in flight and two more behind the stream), and the rewrite of a
/// whole page brings it back without a read (an overwrite). Each chunk is
/// cleaned after its rewrite, so that free-behind can take it later and
/// the clock is never needed: what leaves memory, free-behind took.
#[test]
fn a_chunk_read_in_order_and_rewritten_in_place_is_read_once() {
    let budget = 8192;
    let chunk = budget / 4;
    let drive = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(12288 + 1024)
        .unwrap();
    let vm = vm_scoped(
        vec![Box::new(drive) as Box<dyn Drive>],
        12288,
        budget,
        FaultService::InFaultingThread,
        MonitorScope::default(),
    );
    let data = vm.allocate(budget + 2 * chunk).unwrap();
    write_out(&vm, data, 9);
    vm.advise(data, Advice::Sequential).unwrap();
    let before = vm.stats();
    let mut page = vec![0u8; PAGE];
    let pages: Vec<_> = data.pages().collect();
    for run in pages.chunks(chunk as usize) {
        for &p in run {
            vm.read(vm.address_of(p), &mut page).unwrap();
            assert_eq!(page[0], pattern(9, vm.address_of(p).0), "{p:?}");
        }
        for &p in run {
            page.fill(p.0 as u8);
            vm.write(vm.address_of(p), &page).unwrap();
        }
        vm.clean(Interval::new(run[0].0, run.len() as u64)).unwrap();
    }
    let after = vm.stats();
    eprintln!(
        "freed behind {}, evictions {}, overwrites {}",
        after.freed_behind - before.freed_behind,
        after.evictions - before.evictions,
        after.overwrites - before.overwrites
    );
    // Free-behind took the chunks behind the stream, and nothing else
    // had to go.
    let freed = after.freed_behind - before.freed_behind;
    assert!(freed >= 2 * chunk, "only {freed} pages freed behind");
    assert_eq!(
        after.evictions - before.evictions,
        freed,
        "the clock had to evict"
    );
    // Each page was read once: the rewrites of the pages free-behind had
    // taken read nothing.
    assert_eq!(
        after.page_ins - before.page_ins,
        data.count.0,
        "pages were read twice"
    );
    assert!(
        after.overwrites > before.overwrites,
        "no rewrite found its page gone: free-behind kept the whole chunk"
    );
    for &p in &pages {
        vm.read(vm.address_of(p), &mut page).unwrap();
        assert!(page.iter().all(|&b| b == p.0 as u8), "{p:?}");
    }
}
