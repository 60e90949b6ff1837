//! Many sequential streams at once share real memory: a merge of 32 runs
//! that together are 4× real memory reads each page about once, where
//! windows that each grew to the maximum evicted each other's pages before
//! the merge reached them (the demo's merge read its data 2.65 times over).

mod common;
use common::*;
use disk_channel::{Drive, SimDrive};
use vm_core::{Advice, FaultService, Interval, MonitorScope, Vm};

/// Real memory: 2,048 pages (8 MiB); 32 runs of 256 pages, 8,192 in all.
const BUDGET: u64 = 2048;
const RUNS: u64 = 32;
const RUN: u64 = 256;

fn vm(scope: MonitorScope) -> Vm {
    let drive = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(RUNS * RUN + 1024)
        .unwrap();
    vm_scoped(
        vec![Box::new(drive) as Box<dyn Drive>],
        RUNS * RUN,
        BUDGET,
        FaultService::InFaultingThread,
        scope,
    )
}

/// Writes `interval` with pattern `seed`, flushes it and drops it from
/// memory: every page absent, on disk.
fn write_out(vm: &Vm, interval: Interval, seed: u64) {
    let mut page = vec![0u8; PAGE];
    for p in interval.pages() {
        let addr = vm.address_of(p).0;
        for (i, b) in page.iter_mut().enumerate() {
            *b = pattern(seed, addr + i as u64);
        }
        vm.write(vm.address_of(p), &page).unwrap();
    }
    vm.flush().unwrap();
    vm.advise(interval, Advice::DontNeed).unwrap();
}

/// A merge's reads: one page of each run in turn, every run in order, each
/// page checked against the pattern.
#[test]
fn a_merge_of_many_runs_reads_each_page_about_once() {
    for scope in [MonitorScope::default(), MonitorScope::HeldAcrossIo] {
        let vm = vm(scope);
        let data = vm.allocate(RUNS * RUN).unwrap();
        write_out(&vm, data, 11);
        vm.advise(data, Advice::Sequential).unwrap();
        let before = vm.stats();
        let mut page = vec![0u8; PAGE];
        for step in 0..RUN {
            for run in 0..RUNS {
                let p = vm_core::PageNumber(data.page.0 + run * RUN + step);
                let addr = vm.address_of(p).0;
                vm.read(vm.address_of(p), &mut page).unwrap();
                for (i, &b) in page.iter().enumerate() {
                    assert_eq!(b, pattern(11, addr + i as u64), "page {p:?} byte {i}");
                }
            }
        }
        let after = vm.stats();
        let page_ins = after.page_ins - before.page_ins;
        let reads = after.cluster_reads - before.cluster_reads;
        eprintln!("{scope:?}: {page_ins} page-ins in {reads} cluster reads");
        assert!(
            page_ins <= RUNS * RUN * 11 / 10,
            "{scope:?}: {page_ins} page-ins for {} pages",
            RUNS * RUN
        );
        // By runs still: a window is a quarter of memory over 32 streams.
        assert!(
            reads <= RUNS * RUN / 8,
            "{scope:?}: {reads} cluster reads for {} pages",
            RUNS * RUN
        );
    }
}
