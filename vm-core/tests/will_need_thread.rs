//! The will-need thread is made at the first `WillNeed` queued, not with
//! the VM, and goes with it: counted as the kernel sees the process's
//! threads (`/proc/self/task/*/comm`). One test in this file, so that no
//! other test's VM is counted.

mod common;
use common::*;
use vm_core::{Advice, Interval, Vm, VmConfig};

/// The process's threads named `will-need`, once those joined have left
/// `/proc` (a joined thread is listed for a moment after `pthread_join`
/// returns: the kernel clears its tid before it is released). Waits for at
/// most ten seconds for them to go, a bound on a liveness check (a thread
/// never joined stays), not on speed.
fn will_need_threads_settled(expected: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let count = will_need_threads();
        if count <= expected || std::time::Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The process's threads named `will-need`.
fn will_need_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == "will-need")
        .count()
}

#[test]
fn the_will_need_thread_is_made_at_the_first_advice_and_goes_with_the_vm() {
    assert_eq!(will_need_threads(), 0);
    // No volume, no thread ever: the advice is brought in at once.
    let memory_only = Vm::new(VmConfig::new(64, 16), vm_core::Backing::RealMemoryOnly).unwrap();
    let i = memory_only.allocate(4).unwrap();
    memory_only.advise(i, Advice::WillNeed).unwrap();
    assert_eq!(will_need_threads(), 0);
    drop(memory_only);
    assert_eq!(will_need_threads_settled(0), 0);

    let vm = sim_vm(256, 64);
    let data = vm.allocate(32).unwrap();
    write_out(&vm, data, 7);
    // Reads, writes, faults and other advice make no will-need thread.
    let mut byte = [0u8; 1];
    vm.read(vm.address_of(data.page), &mut byte).unwrap();
    vm.advise(data, Advice::Sequential).unwrap();
    vm.advise(data, Advice::DontNeed).unwrap();
    assert_eq!(will_need_threads(), 0, "made before any WillNeed");

    let before = vm.stats().page_ins;
    vm.advise(data, Advice::WillNeed).unwrap();
    // (Counted once it has run: a thread names itself as it starts.)
    vm.settle();
    assert_eq!(will_need_threads(), 1, "made at the first WillNeed");
    assert_eq!(vm.stats().page_ins - before, 32, "the thread brought it in");
    for page in data.pages() {
        assert!(vm.state(page).has_real_memory, "page {page:?}");
    }
    // The data is what was written.
    let mut page = vec![0u8; PAGE];
    for p in data.pages() {
        let addr = vm.address_of(p);
        vm.read(addr, &mut page).unwrap();
        for (k, b) in page.iter().enumerate() {
            assert_eq!(*b, pattern(7, addr.0 + k as u64), "page {p:?} byte {k}");
        }
    }
    // Later advice uses the same thread.
    let more = Interval::new(data.page.0, 8);
    vm.advise(more, Advice::DontNeed).unwrap();
    vm.advise(more, Advice::WillNeed).unwrap();
    vm.settle();
    assert_eq!(will_need_threads(), 1);
    drop(vm);
    assert_eq!(will_need_threads_settled(0), 0, "joined when the VM goes");

    // A VM closed while its thread waits for work: joined too.
    let vm = sim_vm(256, 64);
    let data = vm.allocate(8).unwrap();
    write_out(&vm, data, 9);
    vm.advise(data, Advice::WillNeed).unwrap();
    vm.settle();
    assert_eq!(will_need_threads(), 1);
    vm.close().unwrap();
    assert_eq!(will_need_threads_settled(0), 0, "joined at close");
}
