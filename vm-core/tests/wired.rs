//! Wired memory (`map_memory`): a memory object (here a `memfd`, and a
//! file on `/dev/shm` shared with another process) mapped into an interval
//! — its bytes the object's, seen by the object's other users both ways,
//! never paged under pressure; its protection; the calls that would page
//! or discard it refused; its interval the region's own memory again once
//! freed (in transparent mode too, where faults must work there again).

mod common;

use common::{PAGE, sim_vm};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use vm_core::{Advice, PageNumber, Protection, VAddr, Vm, VmError};

/// A memfd of `pages` pages whose page k holds k + 1 in every byte.
fn memfd(pages: usize) -> std::fs::File {
    let fd = rustix::fs::memfd_create("cedar-wired-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let file = std::fs::File::from(fd);
    let bytes: Vec<u8> = (0..pages * PAGE).map(|i| (i / PAGE + 1) as u8).collect();
    file.write_all_at(&bytes, 0).unwrap();
    file
}

fn at(vm: &Vm, page: PageNumber, offset: u64) -> VAddr {
    VAddr(vm.address_of(page).0 + offset)
}

#[test]
fn wired_memory_is_the_objects_both_ways_and_never_paged() {
    let object = memfd(16);
    let vm = sim_vm(1024, 8);
    let wired = vm
        .map_memory(object.as_fd(), 0, 16, Protection::ReadWrite)
        .unwrap();
    // What the object holds, through the VM.
    let mut page = vec![0u8; PAGE];
    vm.read(at(&vm, PageNumber(wired.page.0 + 3), 0), &mut page)
        .unwrap();
    assert!(page.iter().all(|&b| b == 4));
    // The VM's writes, in the object; the object's, in the VM.
    vm.write(at(&vm, wired.page, 10), b"from the vm").unwrap();
    let mut back = [0u8; 11];
    object.read_exact_at(&mut back, 10).unwrap();
    assert_eq!(&back, b"from the vm");
    object
        .write_all_at(b"from outside", 5 * PAGE as u64)
        .unwrap();
    let mut seen = [0u8; 12];
    vm.read(at(&vm, PageNumber(wired.page.0 + 5), 0), &mut seen)
        .unwrap();
    assert_eq!(&seen, b"from outside");
    // A second VM mapping the object shares it with the first.
    let other = sim_vm(256, 8);
    let shared = other
        .map_memory(object.as_fd(), 0, 16, Protection::ReadWrite)
        .unwrap();
    other
        .write(at(&other, PageNumber(shared.page.0 + 15), 0), b"second")
        .unwrap();
    let mut seen = [0u8; 6];
    vm.read(at(&vm, PageNumber(wired.page.0 + 15), 0), &mut seen)
        .unwrap();
    assert_eq!(&seen, b"second");
    // Pressure: eight frames, 64 anonymous pages written and read back.
    let before = vm.stats();
    let anon = vm.allocate(64).unwrap();
    for k in 0..64u64 {
        vm.write(at(&vm, PageNumber(anon.page.0 + k), 0), &k.to_le_bytes())
            .unwrap();
    }
    for k in 0..64u64 {
        let mut word = [0u8; 8];
        vm.read(at(&vm, PageNumber(anon.page.0 + k), 0), &mut word)
            .unwrap();
        assert_eq!(u64::from_le_bytes(word), k);
    }
    let after = vm.stats();
    assert!(after.evictions > before.evictions + 50, "{after:?}");
    // The wired pages were never paged: still the object's, and every
    // page the kernel holds of the object is mapped (resident).
    for k in 0..16u64 {
        let state = vm.state(PageNumber(wired.page.0 + k));
        assert!(state.has_real_memory, "page {k}: {state:?}");
    }
    vm.read(at(&vm, PageNumber(wired.page.0 + 3), 0), &mut page)
        .unwrap();
    assert!(page.iter().all(|&b| b == 4));
    // Changed (the object's bytes are), yet never written back.
    let outs = vm.stats().page_outs;
    vm.clean(wired).unwrap();
    vm.flush().unwrap();
    let anon_dirty_written = vm.stats().page_outs - outs;
    assert!(
        anon_dirty_written <= 8,
        "flush wrote more than the frames: {anon_dirty_written}"
    );
    let outs = vm.stats().page_outs;
    vm.clean(wired).unwrap();
    assert_eq!(vm.stats().page_outs, outs, "clean wrote wired pages");
}

#[test]
fn wired_memory_keeps_its_protection_and_refuses_paging_calls() {
    let object = memfd(4);
    let vm = sim_vm(256, 8);
    let read_only = vm
        .map_memory(object.as_fd(), 0, 4, Protection::Read)
        .unwrap();
    assert!(matches!(
        vm.write(at(&vm, read_only.page, 0), b"x"),
        Err(VmError::WriteProtect { .. })
    ));
    assert!(matches!(
        vm.make_read_write(read_only),
        Err(VmError::AboveMaximumProtection { .. })
    ));
    let writable = vm
        .map_memory(object.as_fd(), PAGE as u64, 2, Protection::ReadWrite)
        .unwrap();
    vm.write(at(&vm, writable.page, 0), b"ok").unwrap();
    vm.make_read_only(writable).unwrap();
    assert!(vm.write(at(&vm, writable.page, 0), b"no").is_err());
    vm.make_read_write(writable).unwrap();
    vm.write(at(&vm, writable.page, 0), b"ok again").unwrap();
    vm.restrict(writable).unwrap();
    assert!(vm.make_read_write(writable).is_err());
    // What would page, drop or discard it is refused; the bytes stay.
    let part = vm_core::Interval::new(writable.page.0, 1);
    for refused in [
        vm.kill(writable),
        vm.advise(writable, Advice::DontNeed),
        vm.make_unchanged(writable),
        vm.free(part),
    ] {
        let err = refused.unwrap_err();
        assert!(err.to_string().contains("wired"), "{err}");
    }
    let mut back = [0u8; 8];
    object.read_exact_at(&mut back, PAGE as u64).unwrap();
    assert_eq!(&back, b"ok again");
    // An offset not a multiple of the page size is refused, and so is a
    // range past the object's end (review: a SIGBUS on access).
    assert!(
        vm.map_memory(object.as_fd(), 100, 1, Protection::Read)
            .is_err()
    );
    let err = vm
        .map_memory(object.as_fd(), 2 * PAGE as u64, 3, Protection::Read)
        .unwrap_err();
    assert!(err.to_string().contains("fewer than"), "{err}");
}

/// Freed, the interval is the region's own memory again: reallocated at
/// the same pages it reads zeros and pages like any other; the object
/// keeps its bytes.
#[test]
fn freed_wired_memory_gives_the_region_back() {
    let object = memfd(8);
    let vm = sim_vm(256, 8);
    let wired = vm
        .map_memory(object.as_fd(), 0, 8, Protection::ReadWrite)
        .unwrap();
    vm.write(at(&vm, wired.page, 0), b"kept").unwrap();
    vm.free(wired).unwrap();
    let again = vm.allocate_at(wired.page, 8).unwrap();
    let mut page = vec![1u8; PAGE];
    vm.read(at(&vm, again.page, 0), &mut page).unwrap();
    assert!(
        page.iter().all(|&b| b == 0),
        "the region's page reads zeros"
    );
    let other = vm.allocate(32).unwrap();
    for k in 0..8u64 {
        vm.write(
            at(&vm, PageNumber(again.page.0 + k), 0),
            &[k as u8 + 10; 64],
        )
        .unwrap();
    }
    vm.write(at(&vm, other.page, 0), &vec![3u8; 32 * PAGE])
        .unwrap();
    for k in 0..8u64 {
        let mut back = [0u8; 64];
        vm.read(at(&vm, PageNumber(again.page.0 + k), 0), &mut back)
            .unwrap();
        assert_eq!(back, [k as u8 + 10; 64], "page {k} after eviction");
    }
    let mut back = [0u8; 4];
    object.read_exact_at(&mut back, 0).unwrap();
    assert_eq!(&back, b"kept");
}

/// Transparent mode: wired memory by plain stores through a view, seen in
/// the object; freed, its interval is paged by the VM again (the region
/// registered with the userfaultfd again: faults there are served).
#[test]
fn wired_memory_in_transparent_mode() {
    let Some(vm) = common::transparent_sim_vm(1024, 16) else {
        return;
    };
    let object = memfd(4);
    let wired = vm
        .map_memory(object.as_fd(), 0, 4, Protection::ReadWrite)
        .unwrap();
    {
        let mut view = vm.view_mut::<u8>(wired).unwrap();
        view[PAGE + 7] = 0xAB;
        assert_eq!(view[3 * PAGE], 4);
    }
    let mut byte = [0u8; 1];
    object.read_exact_at(&mut byte, PAGE as u64 + 7).unwrap();
    assert_eq!(byte[0], 0xAB);
    vm.free(wired).unwrap();
    // The same pages, paged by the VM again, under pressure.
    let again = vm.allocate_at(wired.page, 4).unwrap();
    let more = vm.allocate(64).unwrap();
    {
        let mut view = vm.view_mut::<u8>(again).unwrap();
        assert!(view.iter().all(|&b| b == 0));
        view[2 * PAGE] = 9;
    }
    // The VM served that store (a fault it saw): the page is its own again.
    let state = vm.state(PageNumber(again.page.0 + 2));
    assert!(state.has_real_memory && state.needs_cleaning, "{state:?}");
    {
        let mut view = vm.view_mut::<u8>(more).unwrap();
        for k in 0..64 {
            view[k * PAGE] = k as u8;
        }
    }
    let view = vm.view::<u8>(again).unwrap();
    assert_eq!(view[2 * PAGE], 9);
    drop(view);
    assert!(vm.stats().evictions > 40);
}

/// The two-page segment at `path` opened read-write and mapped as wired
/// memory into a fresh VM (the file is kept with it).
fn map_segment(path: &std::path::Path) -> (std::fs::File, Vm, vm_core::Interval) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let vm = sim_vm(256, 8);
    let wired = vm
        .map_memory(file.as_fd(), 0, 2, Protection::ReadWrite)
        .unwrap();
    (file, vm, wired)
}

/// Shared memory between processes: a file on `/dev/shm` mapped by this
/// process's VM and by a child's; the child's stores are this process's
/// loads, and the other way round.
#[test]
fn wired_memory_is_shared_with_another_process() {
    if let Ok(path) = std::env::var("CEDAR_WIRED_CHILD") {
        let (_file, vm, wired) = map_segment(std::path::Path::new(&path));
        let mut seen = [0u8; 6];
        vm.read(at(&vm, wired.page, 0), &mut seen).unwrap();
        assert_eq!(&seen, b"parent");
        vm.write(at(&vm, PageNumber(wired.page.0 + 1), 0), b"child")
            .unwrap();
        return;
    }
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        println!("skipped: no /dev/shm here");
        return;
    };
    let path = dir.path().join("segment");
    std::fs::File::create_new(&path)
        .unwrap()
        .set_len(2 * PAGE as u64)
        .unwrap();
    let (_file, vm, wired) = map_segment(&path);
    vm.write(at(&vm, wired.page, 0), b"parent").unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "wired_memory_is_shared_with_another_process",
            "--nocapture",
        ])
        .env("CEDAR_WIRED_CHILD", &path)
        .status()
        .unwrap();
    assert!(status.success());
    let mut seen = [0u8; 5];
    vm.read(at(&vm, PageNumber(wired.page.0 + 1), 0), &mut seen)
        .unwrap();
    assert_eq!(&seen, b"child");
}

/// `free` of a wired interval withdraws the `WillNeed` advised for it, as
/// `free` of any interval does: its pages, allocated again at once, are
/// not brought in by the will-need thread for their new owner. (An
/// interval on disk advised first keeps the thread busy, so that the wired
/// one is usually still waiting at the free: not always — the simulated
/// drive takes no real time — so the test takes twelve rounds; with the
/// withdrawal taken out it failed in its first round in every try.)
#[test]
fn freeing_wired_memory_withdraws_its_will_need() {
    let object = memfd(64);
    let vm = sim_vm(4096, 512);
    let ahead = vm.allocate(256).unwrap();
    common::write_out(&vm, ahead, 5);
    for round in 0..12 {
        vm.advise(ahead, Advice::WillNeed).unwrap();
        let wired = vm
            .map_memory(object.as_fd(), 0, 64, Protection::ReadWrite)
            .unwrap();
        vm.advise(wired, Advice::WillNeed).unwrap();
        vm.free(wired).unwrap();
        let again = vm.allocate(64).unwrap();
        assert_eq!(again, wired, "round {round}: the same pages again");
        vm.settle();
        for p in again.pages() {
            assert!(!vm.state(p).has_real_memory, "round {round}: {p}");
        }
        vm.free(again).unwrap();
        vm.advise(ahead, Advice::DontNeed).unwrap();
    }
    vm.check_invariants();
}
