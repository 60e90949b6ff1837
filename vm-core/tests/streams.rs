//! Many sequential streams at once share real memory: a merge of 32 runs
//! that together are 4× real memory reads each page about once, where
//! windows that each grew to the maximum evicted each other's pages before
//! the merge reached them (the demo's merge read its data 2.65 times over).

mod common;
use common::*;
use disk_channel::{Drive, SimDrive};
use vm_core::{Advice, FaultService, Interval, MonitorScope, PageNumber, Vm};

/// Real memory: 2,048 pages (8 MiB); 32 runs of 256 pages, 8,192 in all.
const BUDGET: u64 = 2048;
const RUNS: u64 = 32;
const RUN: u64 = 256;

/// A scan after the merge: 4,096 pages.
const SCAN: u64 = 4096;

fn vm(scope: MonitorScope) -> Vm {
    let drive = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(RUNS * RUN + SCAN + 1024)
        .unwrap();
    vm_scoped(
        vec![Box::new(drive) as Box<dyn Drive>],
        RUNS * RUN + SCAN,
        BUDGET,
        FaultService::InFaultingThread,
        scope,
    )
}

/// Reads page `p` and checks it against pattern `seed`.
fn read_checked(vm: &Vm, p: PageNumber, seed: u64) {
    let mut page = vec![0u8; PAGE];
    let addr = vm.address_of(p).0;
    vm.read(vm.address_of(p), &mut page).unwrap();
    for (i, &b) in page.iter().enumerate() {
        assert_eq!(b, pattern(seed, addr + i as u64), "page {p:?} byte {i}");
    }
}

/// The page-ins and cluster reads of `work`.
fn counted(vm: &Vm, work: impl FnOnce()) -> (u64, u64) {
    let before = vm.stats();
    work();
    let after = vm.stats();
    (
        after.page_ins - before.page_ins,
        after.cluster_reads - before.cluster_reads,
    )
}

/// The merge's data was read about once: at most 10% more page-ins than
/// its pages.
fn assert_read_about_once(page_ins: u64, what: &str) {
    assert!(
        page_ins <= RUNS * RUN * 11 / 10,
        "{what}: {page_ins} page-ins for {} pages",
        RUNS * RUN
    );
}

/// A merge's reads of `data` (runs of pattern `seed`): one page of each
/// run in turn, every run in order; its page-ins and cluster reads.
fn merge(vm: &Vm, data: Interval, seed: u64) -> (u64, u64) {
    counted(vm, || {
        for step in 0..RUN {
            for run in 0..RUNS {
                read_checked(vm, PageNumber(data.page.0 + run * RUN + step), seed);
            }
        }
    })
}

/// A scan of `interval` (pattern `seed`); its page-ins and cluster reads.
fn scan(vm: &Vm, interval: Interval, seed: u64) -> (u64, u64) {
    counted(vm, || {
        interval.pages().for_each(|p| read_checked(vm, p, seed))
    })
}

/// A merge's reads: one page of each run in turn, every run in order, each
/// page checked against the pattern. Then one stream alone has its whole
/// window back once it has read half of real memory.
#[test]
fn a_merge_of_many_runs_reads_each_page_about_once() {
    for scope in [MonitorScope::default(), MonitorScope::HeldAcrossIo] {
        let vm = vm(scope);
        let data = vm.allocate(RUNS * RUN).unwrap();
        let after_it = vm.allocate(SCAN).unwrap();
        write_out(&vm, data, 11);
        write_out(&vm, after_it, 12);
        vm.advise(data, Advice::Sequential).unwrap();
        vm.advise(after_it, Advice::Sequential).unwrap();
        let (page_ins, reads) = merge(&vm, data, 11);
        eprintln!("{scope:?}: {page_ins} page-ins in {reads} cluster reads");
        assert_read_about_once(page_ins, &format!("{scope:?}"));
        // By runs still, each stream counted once: a window is a quarter
        // of memory over 32 streams, 16 pages (512 reads and the first
        // windows, which grow from 8 pages; 1,024 were a stream counted
        // twice).
        assert!(
            reads <= 640,
            "{scope:?}: {reads} cluster reads for {} pages",
            RUNS * RUN
        );

        // The scan alone: windows of 16 pages (the merge's share) for the
        // first half of memory, 64 reads; then they grow to 256 pages.
        // (Were the merge's streams counted until they had faulted a fixed
        // number of times, the scan would keep 16-page windows through
        // all its 4,096 pages: 256 reads; were it counted as two streams
        // itself, windows of 256 pages still, but as three, 170.)
        let (page_ins, reads) = scan(&vm, after_it, 12);
        eprintln!("{scope:?}: the scan after it, {page_ins} page-ins in {reads} cluster reads");
        assert_eq!(page_ins, SCAN, "{scope:?}");
        assert!(
            reads <= 80,
            "{scope:?}: {reads} cluster reads for {SCAN} pages"
        );
    }
}

/// The same merge under `Normal` advice (a program that says nothing):
/// the streams found by their resident pages share memory too. (The
/// seed's scope reads a page at a time under `Normal`.)
#[test]
fn a_merge_under_normal_advice_reads_each_page_about_once() {
    let vm = vm(MonitorScope::default());
    let data = vm.allocate(RUNS * RUN).unwrap();
    write_out(&vm, data, 13);
    let (page_ins, reads) = merge(&vm, data, 13);
    eprintln!("Normal advice: {page_ins} page-ins in {reads} cluster reads");
    assert_read_about_once(page_ins, "Normal advice");
    // Found as streams and read by runs: fewer reads than a page at a time
    // by far.
    assert!(reads <= RUNS * RUN / 8, "{reads} cluster reads");
}

/// A stream of fresh pages (zeros, no read) under `Sequential` advice is
/// one stream too: a scan after it has its whole windows. (A review found
/// its faults counted as one page each, so that each run of zeros started
/// a stream, and the scan after it shared memory with 64 of them. Its runs
/// are now counted whole, and a fault also follows its stream past the
/// pages resident before it: either keeps it one stream; with neither, the
/// scan made 99 cluster reads.)
#[test]
fn a_stream_of_fresh_pages_is_one_stream() {
    for scope in [MonitorScope::default(), MonitorScope::HeldAcrossIo] {
        let vm = vm(scope);
        let fresh = vm.allocate(SCAN).unwrap();
        let data = vm.allocate(SCAN).unwrap();
        write_out(&vm, data, 14);
        vm.advise(fresh, Advice::Sequential).unwrap();
        vm.advise(data, Advice::Sequential).unwrap();
        let mut page = vec![1u8; PAGE];
        for p in fresh.pages() {
            vm.read(vm.address_of(p), &mut page).unwrap();
            assert!(page.iter().all(|&b| b == 0), "{scope:?}: fresh page {p:?}");
        }
        let (page_ins, reads) = scan(&vm, data, 14);
        eprintln!(
            "{scope:?}: the scan after the fresh pages, {page_ins} page-ins in {reads} cluster reads"
        );
        assert!(page_ins <= SCAN * 11 / 10, "{scope:?}: {page_ins} page-ins");
        // Windows grow from 8 pages to 256: about 20 reads.
        assert!(
            reads <= 40,
            "{scope:?}: {reads} cluster reads for {SCAN} pages"
        );
    }
}
