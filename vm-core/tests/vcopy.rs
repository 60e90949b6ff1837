//! Virtual copy (`copy`, Mach's `vm_copy`) against a model: random copies
//! between areas (copies of copies included), writes on either side,
//! reads, evictions, write-backs and kills, in 6 pages of real memory;
//! every read equals the model. And the point of it: pages neither side
//! writes are never copied.

mod common;

use common::{PAGE, sim_vm, sim_vm_served_by};
use proptest::prelude::*;
use std::io::Write;
use vm_core::{Advice, FaultService, Interval, MapFile, PageNumber, Sharing, VAddr, Vm};

/// Areas of `AREA` pages: three anonymous ones, and a shared file mapping
/// (a source only: a copy's destination is anonymous).
const AREA: u64 = 12;
const AREAS: usize = 4;
const FILE_AREA: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    /// (area, byte offset, length, fill)
    Write(usize, usize, usize, u8),
    /// (from area, from page, to area, to page, pages)
    Copy(usize, u64, usize, u64, u64),
    /// (area, page)
    Read(usize, u64),
    Evict(usize),
    Clean(usize),
    /// (area, page)
    Kill(usize, u64),
    /// (area, sequential): advice (sequential faults read ahead).
    Advise(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let area_bytes = AREA as usize * PAGE;
    prop_oneof![
        3 => (0..AREAS, 0..area_bytes, 1usize..3 * PAGE, any::<u8>())
            .prop_map(|(a, at, len, b)| Op::Write(a, at, len, b)),
        3 => (0..AREAS, 0..AREA, 0..FILE_AREA, 0..AREA, 1..AREA)
            .prop_map(|(a, p, b, q, n)| Op::Copy(a, p, b, q, n)),
        3 => (0..AREAS, 0..AREA).prop_map(|(a, p)| Op::Read(a, p)),
        1 => (0..AREAS).prop_map(Op::Evict),
        1 => (0..AREAS).prop_map(Op::Clean),
        1 => (0..FILE_AREA, 0..AREA).prop_map(|(a, p)| Op::Kill(a, p)),
        1 => (0..AREAS, any::<bool>()).prop_map(|(a, q)| Op::Advise(a, q)),
    ]
}

struct Setup {
    vm: Vm,
    areas: Vec<Interval>,
    model: Vec<Vec<u8>>,
    _dir: tempfile::TempDir,
}

fn setup(service: FaultService) -> Setup {
    let vm = sim_vm_served_by(256, 6, service);
    let mut areas: Vec<Interval> = (0..FILE_AREA).map(|_| vm.allocate(AREA).unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("source.dat");
    let bytes: Vec<u8> = (0..AREA as usize * PAGE).map(|i| (i / 7) as u8).collect();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    areas.push(
        vm.map_file(file, &MapFile::new(&path, AREA, Sharing::Shared))
            .unwrap(),
    );
    let mut model = vec![vec![0u8; AREA as usize * PAGE]; FILE_AREA];
    model.push(bytes);
    Setup {
        vm,
        areas,
        model,
        _dir: dir,
    }
}

fn addr(s: &Setup, area: usize, at: usize) -> VAddr {
    VAddr(s.vm.address_of(s.areas[area].page).0 + at as u64)
}

fn check_page(s: &Setup, area: usize, page: u64) {
    let mut back = vec![0u8; PAGE];
    s.vm.read(addr(s, area, page as usize * PAGE), &mut back)
        .unwrap();
    let at = page as usize * PAGE;
    let want = &s.model[area][at..at + PAGE];
    if let Some(i) = (0..PAGE).find(|&i| back[i] != want[i]) {
        panic!(
            "area {area} page {page}: byte {i} is {}, the model says {} ({} bytes differ)",
            back[i],
            want[i],
            (0..PAGE).filter(|&j| back[j] != want[j]).count()
        );
    }
}

fn run(ops: &[Op], service: FaultService) {
    let mut s = setup(service);
    for op in ops {
        match *op {
            Op::Write(area, at, len, fill) => {
                let len = len.min(AREA as usize * PAGE - at);
                let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
                s.vm.write(addr(&s, area, at), &data).unwrap();
                s.model[area][at..at + len].copy_from_slice(&data);
            }
            Op::Copy(from, p, to, q, n) => {
                let n = n.min(AREA - p).min(AREA - q);
                if from == to && p < q + n && q < p + n {
                    continue;
                }
                let source = Interval::new(s.areas[from].page.0 + p, n);
                let destination = Interval::new(s.areas[to].page.0 + q, n);
                s.vm.copy(source, destination).unwrap();
                let bytes = s.model[from][p as usize * PAGE..(p + n) as usize * PAGE].to_vec();
                s.model[to][q as usize * PAGE..(q + n) as usize * PAGE].copy_from_slice(&bytes);
            }
            Op::Read(area, page) => check_page(&s, area, page),
            Op::Evict(area) => s.vm.advise(s.areas[area], Advice::DontNeed).unwrap(),
            Op::Clean(area) => s.vm.clean(s.areas[area]).unwrap(),
            Op::Advise(area, sequential) => {
                let advice = if sequential {
                    Advice::Sequential
                } else {
                    Advice::Normal
                };
                s.vm.advise(s.areas[area], advice).unwrap();
            }
            Op::Kill(area, page) => {
                s.vm.kill(Interval::new(s.areas[area].page.0 + page, 1))
                    .unwrap();
                let at = page as usize * PAGE;
                s.model[area][at..at + PAGE].fill(0);
            }
        }
    }
    for area in 0..AREAS {
        for page in 0..AREA {
            check_page(&s, area, page);
        }
    }
    // What the file holds is what the model says of the shared mapping.
    s.vm.flush().unwrap();
    let path = s._dir.path().join("source.dat");
    assert_eq!(std::fs::read(path).unwrap(), s.model[FILE_AREA]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn copies_read_as_their_source_did_and_writes_stay_on_their_side(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        run(&ops, FaultService::InFaultingThread);
    }

    #[test]
    fn the_same_under_the_pagefault_worker(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops, FaultService::Worker);
    }
}

/// Two pages each linked to the other's slot, and one of them changed and
/// written back: a page of area 1 that area 0 reads is overwritten by a
/// copy of a page of area 2, which is then overwritten by a copy of area
/// 0's page (still linked: it links to the same place, area 1's slot); area
/// 1's page now reads area 2's slot and area 2's page area 1's. Writing
/// area 2's page back materialized area 1's, whose slot area 2's page
/// still read, and so on round the loop until the VM was poisoned (the
/// property test found it).
#[test]
fn pages_linked_to_each_others_slots_are_written_back() {
    use Op::{Copy, Write};
    let ops = [
        Write(1, 14672, 9905, 0),
        Copy(1, 2, 0, 0, 5),
        Write(2, 23869, 8900, 0),
        Copy(2, 7, 1, 3, 2),
        Copy(0, 1, 2, 7, 2),
        Write(2, 19725, 8948, 0),
    ];
    for service in [FaultService::InFaultingThread, FaultService::Worker] {
        run(&ops, service);
    }
}

/// A page of a copy changed in memory (resident and dirty) when its
/// source's slot is about to be overwritten is not materialized: its frame
/// holds what it reads and its own write-back puts that in its slot; only
/// its link ends. The source's write-back writes one page, and both read
/// right, before and after they leave memory.
#[test]
fn a_changed_copy_page_is_only_unlinked_when_its_source_is_written_back() {
    let vm = sim_vm(64, 16);
    let source = vm.allocate(1).unwrap();
    let copy = vm.allocate(1).unwrap();
    vm.write(vm.address_of(source.page), &[1; PAGE]).unwrap();
    vm.flush().unwrap();
    vm.copy(source, copy).unwrap();
    // The copy's page comes in from its source's slot and changes.
    vm.write(vm.address_of(copy.page), &[2; 8]).unwrap();
    vm.write(vm.address_of(source.page), &[3; PAGE]).unwrap();
    let before = vm.stats();
    vm.clean(source).unwrap();
    let after = vm.stats();
    assert_eq!(
        after.copies_materialized - before.copies_materialized,
        0,
        "the changed copy was materialized"
    );
    assert_eq!(
        after.disk_pages_written - before.disk_pages_written,
        1,
        "the source's write-back wrote more than the source"
    );
    let check = |vm: &Vm| {
        let mut page = vec![0u8; PAGE];
        vm.read(vm.address_of(copy.page), &mut page).unwrap();
        assert!(page[..8].iter().all(|&b| b == 2) && page[8..].iter().all(|&b| b == 1));
        vm.read(vm.address_of(source.page), &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 3));
    };
    check(&vm);
    vm.flush().unwrap();
    vm.advise(source, Advice::DontNeed).unwrap();
    vm.advise(copy, Advice::DontNeed).unwrap();
    check(&vm);
}

/// The point of a virtual copy: 48 pages copied, half of them read
/// through the copy, neither side written — nothing is written to the
/// volume for the copy; then a write-back of the whole source materializes
/// the 48 pages of the copy (all still linked), which read as before.
#[test]
fn pages_neither_side_writes_are_never_copied() {
    let vm = sim_vm(512, 8);
    let source = vm.allocate(48).unwrap();
    let destination = vm.allocate(48).unwrap();
    for k in 0..48u64 {
        vm.write(
            VAddr(vm.address_of(PageNumber(source.page.0 + k)).0),
            &[k as u8 + 1; PAGE],
        )
        .unwrap();
    }
    vm.flush().unwrap();
    let before = vm.stats();
    vm.copy(source, destination).unwrap();
    let mut page = vec![0u8; PAGE];
    for k in 0..24u64 {
        vm.read(vm.address_of(PageNumber(destination.page.0 + k)), &mut page)
            .unwrap();
        assert!(page.iter().all(|&b| b == k as u8 + 1), "page {k}");
    }
    let after = vm.stats();
    assert_eq!(after.copy_links - before.copy_links, 48);
    assert_eq!(after.copies_materialized, 0);
    // Reading the copy, through 8 frames, wrote nothing: its pages stay
    // clean and linked, dropped when evicted.
    assert_eq!(after.page_outs, before.page_outs, "{after:?}");
    assert!(after.evictions >= before.evictions + 16, "{after:?}");
    // Now the source changes and is written back: the 24 pages of the copy
    // still linked get theirs first, and still read the old contents.
    for k in 0..48u64 {
        vm.write(
            VAddr(vm.address_of(PageNumber(source.page.0 + k)).0),
            &[0xEE; 16],
        )
        .unwrap();
    }
    vm.flush().unwrap();
    assert_eq!(vm.stats().copies_materialized, 48);
    for k in 0..48u64 {
        vm.read(vm.address_of(PageNumber(destination.page.0 + k)), &mut page)
            .unwrap();
        assert!(page.iter().all(|&b| b == k as u8 + 1), "page {k} after");
    }
}

/// Review: sequential read-ahead past a fault zero-filled the copy's pages
/// still linked (they have no copy of their own to read ahead).
#[test]
fn read_ahead_does_not_zero_a_copy() {
    let vm = sim_vm(256, 16);
    let source = vm.allocate(2).unwrap();
    vm.write(vm.address_of(PageNumber(source.page.0 + 1)), &[0xAB; PAGE])
        .unwrap();
    vm.flush().unwrap();
    let destination = vm.allocate(2).unwrap();
    vm.copy(source, destination).unwrap();
    vm.advise(destination, Advice::Sequential).unwrap();
    let mut page = vec![0u8; PAGE];
    vm.read(vm.address_of(destination.page), &mut page).unwrap();
    assert!(page.iter().all(|&b| b == 0));
    vm.read(vm.address_of(PageNumber(destination.page.0 + 1)), &mut page)
        .unwrap();
    assert!(page.iter().all(|&b| b == 0xAB), "read ahead as zeros");
}

/// Transparent mode: a copy read and written by plain loads and stores
/// through views, under pressure; the source's stores after the copy stay
/// on its side.
#[test]
fn a_copy_in_transparent_mode() {
    let Some(vm) = common::transparent_sim_vm(1024, 16) else {
        return;
    };
    let source = vm.allocate(64).unwrap();
    let destination = vm.allocate(64).unwrap();
    {
        let mut view = vm.view_mut::<u64>(source).unwrap();
        for (i, x) in view.iter_mut().enumerate() {
            *x = i as u64;
        }
    }
    vm.copy(source, destination).unwrap();
    {
        let mut view = vm.view_mut::<u64>(source).unwrap();
        for x in view.iter_mut().step_by(3) {
            *x = u64::MAX;
        }
    }
    {
        let mut view = vm.view_mut::<u64>(destination).unwrap();
        for (i, x) in view.iter_mut().enumerate().step_by(5) {
            assert_eq!(*x, i as u64);
            *x += 1_000_000;
        }
    }
    vm.flush().unwrap();
    let view = vm.view::<u64>(destination).unwrap();
    for (i, &x) in view.iter().enumerate() {
        let want = if i % 5 == 0 {
            i as u64 + 1_000_000
        } else {
            i as u64
        };
        assert_eq!(x, want, "destination word {i}");
    }
    drop(view);
    let view = vm.view::<u64>(source).unwrap();
    for (i, &x) in view.iter().enumerate() {
        let want = if i % 3 == 0 { u64::MAX } else { i as u64 };
        assert_eq!(x, want, "source word {i}");
    }
    drop(view);
    assert!(vm.stats().evictions > 64);
}
