//! The VM keeps every byte right while its working set is many times its
//! real memory, on simulated and on file drives, with several threads.

mod common;
use common::*;
use disk_channel::rng::SplitMix64;
use runtable::PageNumber;
use std::sync::Arc;
use vm_core::{VAddr, Vm};

const BUDGET: u64 = 64;
const PAGES: u64 = 8 * BUDGET;

fn write_then_read_back(vm: Vm) {
    let vm = Arc::new(vm);
    let interval = vm.allocate(PAGES).unwrap();
    let base = vm.address_of(interval.page).0;
    let bytes = PAGES * PAGE as u64;
    let chunk = 1000u64; // not page aligned, so writes cross pages
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let vm = Arc::clone(&vm);
            s.spawn(move || {
                let mut at = t * chunk;
                while at < bytes {
                    let len = chunk.min(bytes - at);
                    let data: Vec<u8> = (at..at + len).map(|a| pattern(1, a)).collect();
                    vm.write(VAddr(base + at), &data).unwrap();
                    at += 2 * chunk;
                }
            });
        }
    });
    vm.check_invariants();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let vm = Arc::clone(&vm);
            s.spawn(move || {
                let mut rng = SplitMix64::new(100 + t);
                let mut buf = vec![0u8; 777];
                for _ in 0..2000 {
                    let at = rng.below(bytes - buf.len() as u64);
                    vm.read(VAddr(base + at), &mut buf).unwrap();
                    for (i, &b) in buf.iter().enumerate() {
                        assert_eq!(b, pattern(1, at + i as u64), "byte at {}", at + i as u64);
                    }
                }
            });
        }
    });
    vm.check_invariants();
    let stats = vm.stats();
    assert!(stats.resident_high_water <= BUDGET, "{stats:?}");
    assert!(stats.page_outs > 0 && stats.page_ins > 0, "{stats:?}");
    // A written page is changed while resident and dirty, unchanged once
    // written back; never undefined.
    let data = vm.state(PageNumber(interval.page.0)).data;
    assert!(
        matches!(
            data,
            vm_core::DataState::Changed | vm_core::DataState::Unchanged
        ),
        "{data:?}"
    );
}

#[test]
fn eight_times_real_memory_on_a_simulated_drive_reads_back_exactly() {
    write_then_read_back(sim_vm(PAGES, BUDGET));
}

#[test]
fn eight_times_real_memory_on_file_drives_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    write_then_read_back(file_vm(dir.path(), 2, PAGES, BUDGET));
}

#[test]
fn after_flush_the_drives_hold_the_written_bytes() {
    let vm = sim_vm(256, 16);
    let interval = vm.allocate(40).unwrap();
    let base = vm.address_of(interval.page).0;
    let data: Vec<u8> = (0..40 * PAGE as u64).map(|a| pattern(7, a)).collect();
    vm.write(VAddr(base), &data).unwrap();
    vm.flush().unwrap();
    vm.with_volume(|volume| {
        let mut page = vec![0u8; PAGE];
        for (i, p) in Vm::pages(interval).enumerate() {
            let disk = volume.translate(p).unwrap();
            volume
                .channel()
                .read(disk.drive, disk.page, &mut page, None)
                .unwrap();
            assert_eq!(&page[..], &data[i * PAGE..(i + 1) * PAGE], "{p}");
        }
    })
    .unwrap();
    let state = vm.state(interval.page);
    assert!(!state.needs_cleaning);
}
