//! File mappings (`map_file`): shared and private under memory pressure,
//! checked against a model of the file and against the file itself read
//! with `std::fs`; current and maximum protection; errors of the file
//! (truncated under a mapping, refused writes) as values naming the file
//! and offset, with nothing lost.

mod common;

use common::sim_vm;
use std::io::Write;
use vm_core::{Interval, MapFile, PageNumber, Protection, Sharing, VAddr, Vm, VmError};

const PAGE: usize = 4096;

/// splitmix64: the tests' deterministic random numbers.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A file of `pages` pages whose bytes are a function of their offset.
fn patterned_file(
    dir: &std::path::Path,
    name: &str,
    pages: usize,
) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let bytes: Vec<u8> = (0..pages * PAGE)
        .map(|i| (i as u64).wrapping_mul(0x2545_F491) as u8 ^ (i / PAGE) as u8)
        .collect();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    (path, bytes)
}

fn open_rw(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

/// Random writes of 1 to 3 pages' worth at random offsets, mirrored into
/// `model`, with random reads compared with it on the way.
fn random_writes(vm: &Vm, base: VAddr, model: &mut [u8], seed: u64, writes: usize) {
    let mut rng = seed;
    for n in 0..writes {
        let len = 1 + (next(&mut rng) % (3 * PAGE as u64)) as usize;
        let at = (next(&mut rng) % (model.len() - len) as u64) as usize;
        let fill = next(&mut rng) as u8;
        let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
        vm.write(VAddr(base.0 + at as u64), &data).unwrap();
        model[at..at + len].copy_from_slice(&data);
        if n % 4 == 0 {
            let at = (next(&mut rng) % (model.len() - PAGE) as u64) as usize;
            let mut back = vec![0u8; PAGE];
            vm.read(VAddr(base.0 + at as u64), &mut back).unwrap();
            assert_eq!(back, &model[at..at + PAGE], "read at {at} after {n} writes");
        }
    }
}

/// Test 1 of the issue: a shared mapping of 256 pages in 16 pages of real
/// memory; random writes, `flush`; the file read with `std::fs` shows
/// every write, and a second VM mapping the file sees them.
#[test]
fn a_shared_mapping_under_pressure_reaches_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut model) = patterned_file(dir.path(), "shared.dat", 256);
    let vm = sim_vm(1024, 16);
    let interval = vm
        .map_file(open_rw(&path), &MapFile::new(&path, 256, Sharing::Shared))
        .unwrap();
    let base = vm.address_of(interval.page);
    // Before any write: the file's bytes.
    let mut all = vec![0u8; model.len()];
    vm.read(base, &mut all).unwrap();
    assert_eq!(all, model);
    random_writes(&vm, base, &mut model, 7, 600);
    let stats = vm.stats();
    assert!(stats.evictions > 200, "no pressure: {stats:?}");
    assert!(
        stats.file_page_outs > 0 && stats.page_outs == 0,
        "{stats:?}"
    );
    vm.flush().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), model, "the file after flush");
    // A second VM sees every write.
    let other = sim_vm(1024, 8);
    let file = std::fs::File::open(&path).unwrap();
    let how = MapFile {
        max_protection: Protection::Read,
        protection: Protection::Read,
        ..MapFile::new(&path, 256, Sharing::Shared)
    };
    let seen = other.map_file(file, &how).unwrap();
    let mut back = vec![0u8; model.len()];
    other.read(other.address_of(seen.page), &mut back).unwrap();
    assert_eq!(back, model, "the second VM");
    let files = other.file_stats();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].page_ins, 256, "{files:?}");
}

/// Test 2 of the issue: a private mapping under pressure; writes read back
/// through the VM after eviction, the file is unchanged (checksummed before
/// and after), and pages never written still come from the file.
#[test]
fn a_private_mapping_under_pressure_never_touches_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, original) = patterned_file(dir.path(), "private.dat", 256);
    let before = crc32c::crc32c(&std::fs::read(&path).unwrap());
    let vm = sim_vm(1024, 16);
    let interval = vm
        .map_file(open_rw(&path), &MapFile::new(&path, 256, Sharing::Private))
        .unwrap();
    let base = vm.address_of(interval.page);
    let mut model = original.clone();
    random_writes(&vm, base, &mut model, 11, 300);
    vm.flush().unwrap();
    let mut all = vec![0u8; model.len()];
    vm.read(base, &mut all).unwrap();
    assert_eq!(all, model, "the mapping after eviction");
    let stats = vm.stats();
    assert!(
        stats.page_outs > 0,
        "changed pages went to the volume: {stats:?}"
    );
    assert_eq!(stats.file_page_outs, 0, "{stats:?}");
    assert_eq!(crc32c::crc32c(&std::fs::read(&path).unwrap()), before);
    // The pages the writes never touched still equal the file's.
    let untouched = (0..256)
        .filter(|&k| model[k * PAGE..(k + 1) * PAGE] == original[k * PAGE..(k + 1) * PAGE])
        .count();
    assert!(untouched > 0, "every page was written");
    // Changing the file now shows through the pages never written back
    // (they come from the file), not through those the volume holds.
    let written_page = (0..256)
        .find(|&k| model[k * PAGE..(k + 1) * PAGE] != original[k * PAGE..(k + 1) * PAGE])
        .unwrap();
    let mut file = open_rw(&path);
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start((written_page * PAGE) as u64))
        .unwrap();
    file.write_all(&[0xEE; PAGE]).unwrap();
    // Evict everything: read another mapping's worth through a new interval.
    let other = vm.allocate(64).unwrap();
    vm.write(vm.address_of(other.page), &vec![1u8; 64 * PAGE])
        .unwrap();
    let mut page = vec![0u8; PAGE];
    vm.read(VAddr(base.0 + (written_page * PAGE) as u64), &mut page)
        .unwrap();
    assert_eq!(page, &model[written_page * PAGE..(written_page + 1) * PAGE]);
}

/// Test 3 of the issue: current and maximum protection against the file's
/// open mode and the sharing.
#[test]
fn protection_follows_the_maximum_and_the_open_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = patterned_file(dir.path(), "p.dat", 4);
    let vm = sim_vm(256, 16);
    let read_only = || std::fs::File::open(&path).unwrap();
    let with = |sharing, protection, max_protection| MapFile {
        protection,
        max_protection,
        ..MapFile::new(&path, 4, sharing)
    };
    use Protection::{Read, ReadWrite};
    // A file open read-only: shared only with maximum read.
    for protection in [Read, ReadWrite] {
        let err = vm
            .map_file(read_only(), &with(Sharing::Shared, protection, ReadWrite))
            .unwrap_err();
        assert!(matches!(err, VmError::BadArgument { .. }), "{err}");
        assert!(err.to_string().contains("p.dat"), "{err}");
    }
    let shared_ro = vm
        .map_file(read_only(), &with(Sharing::Shared, Read, Read))
        .unwrap();
    let at = vm.address_of(shared_ro.page);
    assert!(matches!(
        vm.write(at, b"x"),
        Err(VmError::WriteProtect { .. })
    ));
    assert!(matches!(
        vm.make_read_write(shared_ro),
        Err(VmError::AboveMaximumProtection { .. })
    ));
    assert_eq!(vm.max_protection(shared_ro.page), Read);
    // Private of a read-only file: writable (changes never reach the file).
    let private = vm
        .map_file(read_only(), &with(Sharing::Private, ReadWrite, ReadWrite))
        .unwrap();
    vm.write(vm.address_of(private.page), b"changed").unwrap();
    // Private, maximum read: read-only for good.
    let private_ro = vm
        .map_file(read_only(), &with(Sharing::Private, Read, Read))
        .unwrap();
    assert!(vm.make_read_write(private_ro).is_err());
    // Current above maximum is refused.
    assert!(
        vm.map_file(open_rw(&path), &with(Sharing::Shared, ReadWrite, Read))
            .is_err()
    );
    // Shared read-write of a file open read-write: current read can be
    // raised to the maximum, and lowered for good by restrict.
    let shared = vm
        .map_file(open_rw(&path), &with(Sharing::Shared, Read, ReadWrite))
        .unwrap();
    let at = vm.address_of(shared.page);
    assert!(vm.write(at, b"y").is_err());
    vm.make_read_write(shared).unwrap();
    vm.write(at, b"y").unwrap();
    vm.restrict(shared).unwrap();
    assert!(matches!(
        vm.write(at, b"z"),
        Err(VmError::WriteProtect { .. })
    ));
    assert!(vm.make_read_write(shared).is_err());
    // Anonymous intervals too.
    let anon = vm.allocate(2).unwrap();
    vm.restrict(anon).unwrap();
    assert!(matches!(
        vm.make_read_write(anon),
        Err(VmError::AboveMaximumProtection { .. })
    ));
    // A freed interval's maximum goes with it.
    vm.free(anon).unwrap();
    let again = vm.allocate_at(anon.page, 2).unwrap();
    vm.make_read_write(again).unwrap();
    // What was read through the read-only mappings is the file.
    let mut back = vec![0u8; 4 * PAGE];
    vm.read(vm.address_of(shared_ro.page), &mut back).unwrap();
    assert_eq!(back[1..], bytes[1..]);
}

/// Test 7 of the issue: a file truncated under a shared mapping gives an
/// error value on access (never a signal); a write-back that cannot reach
/// its file is a value naming the file and offset, the page stays changed,
/// and nothing is lost once the file is whole again.
#[test]
fn a_truncated_file_is_an_error_value_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut model) = patterned_file(dir.path(), "t.dat", 32);
    let vm = sim_vm(256, 8);
    let interval = vm
        .map_file(open_rw(&path), &MapFile::new(&path, 32, Sharing::Shared))
        .unwrap();
    let base = vm.address_of(interval.page);
    vm.write(VAddr(base.0 + 5), b"kept").unwrap();
    model[5..9].copy_from_slice(b"kept");
    // Another process (here: another handle) truncates the file.
    open_rw(&path).set_len(0).unwrap();
    let err = vm.flush().unwrap_err();
    match &err {
        VmError::FileTruncated {
            path: p, offset, ..
        } => {
            assert_eq!(p, &path);
            assert_eq!(*offset, 0);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("t.dat"), "{err}");
    // A page not resident, within the file when mapped: an error, no signal.
    let mut page = vec![0u8; PAGE];
    let err = vm
        .read(VAddr(base.0 + 20 * PAGE as u64), &mut page)
        .unwrap_err();
    assert!(
        matches!(err, VmError::FileTruncated { offset, .. } if offset == 20 * PAGE as u64),
        "{err}"
    );
    // The change is still there, and reaches the file once it is whole.
    let mut back = [0u8; 4];
    vm.read(VAddr(base.0 + 5), &mut back).unwrap();
    assert_eq!(&back, b"kept");
    std::fs::write(&path, &model).unwrap();
    vm.flush().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), model);
    let _ = PageNumber(0);
}

/// Pages past the file's end read as zeros; a shared mapping writes only up
/// to the end unless it may grow the file.
#[test]
fn past_the_end_reads_zeros_and_grows_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.dat");
    std::fs::write(&path, vec![9u8; PAGE + 100]).unwrap();
    let vm = sim_vm(256, 16);
    for allow_grow in [false, true] {
        std::fs::write(&path, vec![9u8; PAGE + 100]).unwrap();
        let how = MapFile {
            allow_grow,
            ..MapFile::new(&path, 4, Sharing::Shared)
        };
        let interval = vm.map_file(open_rw(&path), &how).unwrap();
        let base = vm.address_of(interval.page);
        let mut all = vec![1u8; 4 * PAGE];
        vm.read(base, &mut all).unwrap();
        assert!(all[..PAGE + 100].iter().all(|&b| b == 9));
        assert!(all[PAGE + 100..].iter().all(|&b| b == 0));
        vm.write(VAddr(base.0 + PAGE as u64 + 50), &[7u8; 200])
            .unwrap();
        let past = vm.write(VAddr(base.0 + 3 * PAGE as u64), &[5u8; 10]);
        let past_end = Interval::new(interval.page.0 + 2, 2);
        if allow_grow {
            past.unwrap();
        } else {
            // Refused, not accepted and lost (an embedder's trial: the
            // write succeeded and read back as zeros after an eviction);
            // the protection cannot be raised, and says why.
            assert!(
                matches!(past, Err(VmError::WriteProtect { page }) if page.0 == interval.page.0 + 3),
                "{past:?}"
            );
            let err = vm.make_read_write(past_end).unwrap_err();
            assert!(err.to_string().contains("allow_grow"), "{err}");
            // The page within the file (its last, partly past the end)
            // stays writable.
            vm.write(VAddr(base.0 + PAGE as u64 + 150), &[7u8; 100])
                .unwrap();
        }
        vm.flush().unwrap();
        let file = std::fs::read(&path).unwrap();
        if allow_grow {
            assert_eq!(file.len(), 4 * PAGE);
            assert_eq!(&file[3 * PAGE..3 * PAGE + 10], &[5u8; 10]);
        } else {
            assert_eq!(file.len(), PAGE + 100, "grew without leave");
        }
        assert!(file[PAGE + 50..PAGE + 100].iter().all(|&b| b == 7));
        vm.free(interval).unwrap();
    }
}

/// Both mappings under every way of serving faults (the worker, the seed's
/// monitor scope, sequential advice's path), against the model and the
/// file.
#[test]
fn mappings_work_under_every_fault_service() {
    use common::vm_scoped;
    use disk_channel::{Drive, SimDrive};
    use vm_core::{Advice, FaultService, MonitorScope};
    let dir = tempfile::tempdir().unwrap();
    let ways = [
        (
            FaultService::Worker,
            MonitorScope::HeldAcrossIo,
            Advice::Normal,
        ),
        (
            FaultService::InFaultingThread,
            MonitorScope::HeldAcrossIo,
            Advice::Normal,
        ),
        (
            FaultService::InFaultingThread,
            MonitorScope::Decisions,
            Advice::Sequential,
        ),
    ];
    for (n, (service, scope, advice)) in ways.into_iter().enumerate() {
        for sharing in [Sharing::Shared, Sharing::Private] {
            let name = format!("way{n}-{sharing:?}.dat");
            let (path, original) = patterned_file(dir.path(), &name, 96);
            let drive = SimDrive::preset("ssd", PAGE)
                .unwrap()
                .with_page_count(2048)
                .unwrap();
            let vm = vm_scoped(
                vec![Box::new(drive) as Box<dyn Drive>],
                1024,
                12,
                service,
                scope,
            );
            let interval = vm
                .map_file(open_rw(&path), &MapFile::new(&path, 96, sharing))
                .unwrap();
            vm.advise(interval, advice).unwrap();
            let base = vm.address_of(interval.page);
            let mut model = original.clone();
            random_writes(&vm, base, &mut model, n as u64 * 31 + 5, 200);
            vm.flush().unwrap();
            let mut all = vec![0u8; model.len()];
            vm.read(base, &mut all).unwrap();
            assert_eq!(all, model, "{name}");
            let file = std::fs::read(&path).unwrap();
            match sharing {
                Sharing::Shared => assert_eq!(file, model, "{name}: the file"),
                Sharing::Private => assert_eq!(file, original, "{name}: the file"),
            }
        }
    }
}

/// Transparent mode: a mapped file is reached by plain loads and stores,
/// evicted and written back like any interval.
#[test]
fn a_mapped_file_takes_plain_loads_and_stores_in_transparent_mode() {
    let Some(vm) = common::transparent_sim_vm(1024, 16) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (shared_path, mut shared_model) = patterned_file(dir.path(), "ts.dat", 128);
    let (private_path, private_original) = patterned_file(dir.path(), "tp.dat", 128);
    let shared = vm
        .map_file(
            open_rw(&shared_path),
            &MapFile::new(&shared_path, 128, Sharing::Shared),
        )
        .unwrap();
    let private = vm
        .map_file(
            open_rw(&private_path),
            &MapFile::new(&private_path, 128, Sharing::Private),
        )
        .unwrap();
    {
        let mut view = vm.view_mut::<u8>(shared).unwrap();
        for k in (0..128 * PAGE).step_by(PAGE / 2 + 7) {
            view[k] = view[k].wrapping_add(1);
            shared_model[k] = shared_model[k].wrapping_add(1);
        }
    }
    let mut private_model = private_original.clone();
    {
        let mut view = vm.view_mut::<u8>(private).unwrap();
        for k in (0..128 * PAGE).step_by(3 * PAGE + 11) {
            view[k] ^= 0xFF;
            private_model[k] ^= 0xFF;
        }
    }
    {
        let view = vm.view::<u8>(shared).unwrap();
        assert!(view.iter().eq(shared_model.iter()), "shared, read back");
        let view = vm.view::<u8>(private).unwrap();
        assert!(view.iter().eq(private_model.iter()), "private, read back");
    }
    vm.flush().unwrap();
    assert_eq!(std::fs::read(&shared_path).unwrap(), shared_model);
    assert_eq!(std::fs::read(&private_path).unwrap(), private_original);
    let stats = vm.stats();
    assert!(
        stats.evictions > 100 && stats.file_page_outs > 0,
        "{stats:?}"
    );
}

/// Test 5 of the issue: with the swap cache, a second fault of an evicted
/// clean page reads the volume, not the file (the file's own read counter
/// says so); a page written through the mapping, or a file changed by
/// someone else, is never served from a stale copy.
#[test]
fn the_swap_cache_spares_the_file_and_never_serves_a_stale_page() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut model) = patterned_file(dir.path(), "slow.dat", 64);
    let pass = |vm: &Vm, base: VAddr, model: &[u8]| {
        let mut page = vec![0u8; PAGE];
        for k in 0..64 {
            vm.read(VAddr(base.0 + (k * PAGE) as u64), &mut page)
                .unwrap();
            assert_eq!(page, &model[k * PAGE..(k + 1) * PAGE], "page {k}");
        }
    };
    let file_reads = |vm: &Vm| vm.file_stats()[0].page_ins;
    for swap_cache in [false, true] {
        let vm = sim_vm(1024, 8);
        let how = MapFile {
            swap_cache,
            ..MapFile::new(&path, 64, Sharing::Shared)
        };
        let interval = vm.map_file(open_rw(&path), &how).unwrap();
        let base = vm.address_of(interval.page);
        pass(&vm, base, &model);
        assert_eq!(file_reads(&vm), 64);
        pass(&vm, base, &model);
        if !swap_cache {
            assert_eq!(file_reads(&vm), 128, "without the cache, the file again");
            continue;
        }
        assert_eq!(file_reads(&vm), 64, "the second pass read the file");
        assert!(vm.stats().page_ins >= 56, "{:?}", vm.stats());
        // A write through the mapping: written back to the file, its cached
        // copy (the page before the write) is stale.
        vm.write(VAddr(base.0 + 3 * PAGE as u64), &[0xAB; 100])
            .unwrap();
        model[3 * PAGE..3 * PAGE + 100].fill(0xAB);
        pass(&vm, base, &model);
        pass(&vm, base, &model);
        assert_eq!(std::fs::read(&path).unwrap(), model);
        // Only that page came from the file again: the VM's own write left
        // the cache on.
        assert!(file_reads(&vm) <= 64 + 2, "{} file reads", file_reads(&vm));
        // Someone else changes the file (its size kept; its modification
        // time set apart, as a slow remote writer's would be).
        let before = file_reads(&vm);
        {
            use std::io::{Seek, SeekFrom};
            let mut other = open_rw(&path);
            other.seek(SeekFrom::Start(5 * PAGE as u64)).unwrap();
            other.write_all(&[0xCD; PAGE]).unwrap();
            let then =
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
            other.set_modified(then).unwrap();
        }
        model[5 * PAGE..6 * PAGE].fill(0xCD);
        // Review: a cluster read (here `touch`'s) took volume copies without
        // asking whether the cache was still valid.
        vm.touch(vm_core::Interval::new(interval.page.0 + 4, 2))
            .unwrap();
        let mut page = vec![0u8; PAGE];
        vm.read(VAddr(base.0 + 5 * PAGE as u64), &mut page).unwrap();
        assert_eq!(page, &model[5 * PAGE..6 * PAGE], "touched page 5");
        pass(&vm, base, &model);
        assert!(
            file_reads(&vm) >= before + 56,
            "the cache stayed on after the change"
        );
        // A new mapping of the changed file reads what it holds now.
        let again = vm.map_file(open_rw(&path), &how).unwrap();
        pass(&vm, vm.address_of(again.page), &model);
    }
    // Review: another writer's change, then this VM's own write-back before
    // any fault looked — the write must not take the other's change for its
    // own (the stamp is compared before the write).
    let vm = sim_vm(1024, 8);
    let how = MapFile {
        swap_cache: true,
        ..MapFile::new(&path, 64, Sharing::Shared)
    };
    let interval = vm.map_file(open_rw(&path), &how).unwrap();
    let base = vm.address_of(interval.page);
    pass(&vm, base, &model);
    pass(&vm, base, &model);
    {
        use std::io::{Seek, SeekFrom};
        let mut other = open_rw(&path);
        other.seek(SeekFrom::Start(9 * PAGE as u64)).unwrap();
        other.write_all(&[0x5A; PAGE]).unwrap();
        let then = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000);
        other.set_modified(then).unwrap();
    }
    model[9 * PAGE..10 * PAGE].fill(0x5A);
    // Page 63 is resident (the pass ended there): this write faults nothing
    // that would look at the file's times.
    vm.write(VAddr(base.0 + 63 * PAGE as u64), &[1u8; 8])
        .unwrap();
    model[63 * PAGE..63 * PAGE + 8].fill(1);
    vm.flush().unwrap();
    pass(&vm, base, &model);
}

/// Review: dropping a VM writes its shared mappings back (as `munmap` at
/// exit does); a file open for appending is refused for a writable shared
/// mapping (its `pwrite` would append); `make_changed` on a read-only
/// shared mapping does not wedge `flush`.
#[test]
fn drop_writes_back_and_unwritable_files_are_refused_or_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut model) = patterned_file(dir.path(), "d.dat", 16);
    let vm = sim_vm(256, 8);
    let interval = vm
        .map_file(open_rw(&path), &MapFile::new(&path, 16, Sharing::Shared))
        .unwrap();
    vm.write(VAddr(vm.address_of(interval.page).0 + 100), b"dropped")
        .unwrap();
    model[100..107].copy_from_slice(b"dropped");
    drop(vm);
    assert_eq!(std::fs::read(&path).unwrap(), model);
    let vm = sim_vm(256, 8);
    let append = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(&path)
        .unwrap();
    let err = vm
        .map_file(append, &MapFile::new(&path, 16, Sharing::Shared))
        .unwrap_err();
    assert!(err.to_string().contains("appending"), "{err}");
    let read_only = MapFile {
        protection: Protection::Read,
        max_protection: Protection::Read,
        ..MapFile::new(&path, 16, Sharing::Shared)
    };
    let ro = vm
        .map_file(std::fs::File::open(&path).unwrap(), &read_only)
        .unwrap();
    vm.touch(ro).unwrap();
    vm.make_changed(ro).unwrap();
    vm.flush().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), model);
}

/// Review: victims of a shared mapping whose file cannot take them back
/// (truncated) stay resident and changed, and the clock passes over them:
/// faults elsewhere still get frames.
#[test]
fn pages_that_cannot_go_back_to_their_file_do_not_block_other_faults() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = patterned_file(dir.path(), "x.dat", 16);
    let vm = sim_vm(256, 8);
    let mapped = vm
        .map_file(open_rw(&path), &MapFile::new(&path, 16, Sharing::Shared))
        .unwrap();
    let base = vm.address_of(mapped.page);
    for k in 0..3u64 {
        vm.write(VAddr(base.0 + k * PAGE as u64), &[7u8; 8])
            .unwrap();
    }
    open_rw(&path).set_len(0).unwrap();
    let anon = vm.allocate(64).unwrap();
    for k in 0..64u64 {
        let at = VAddr(vm.address_of(anon.page).0 + k * PAGE as u64);
        vm.write(at, &k.to_le_bytes()).unwrap();
    }
    for k in 0..64u64 {
        let mut back = [0u8; 8];
        vm.read(
            VAddr(vm.address_of(anon.page).0 + k * PAGE as u64),
            &mut back,
        )
        .unwrap();
        assert_eq!(u64::from_le_bytes(back), k);
    }
    // The mapped pages kept their changes.
    let mut back = [0u8; 8];
    vm.read(base, &mut back).unwrap();
    assert_eq!(back, [7u8; 8]);
    assert!(vm.stats().write_back_failures > 0);
}

/// Read-around under `Normal` advice: on while the pages it brings in get
/// used (a working set that fits: few faults, each reading a run), off
/// when they do not (random reads over far more than real memory: a page
/// read per fault, give or take the probes).
#[test]
fn read_around_pays_on_a_dense_working_set_and_turns_itself_off_on_sparse_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (path, model) = patterned_file(dir.path(), "around.dat", 1024);
    let read_page = |vm: &Vm, base: VAddr, k: u64| {
        let mut word = [0u8; 8];
        let at = k as usize * PAGE + 8;
        vm.read(VAddr(base.0 + at as u64), &mut word).unwrap();
        assert_eq!(word, model[at..at + 8], "page {k}");
    };
    // Dense: 48 pages read at random in 64 pages of real memory.
    let vm = sim_vm(2048, 64);
    let mapping = vm
        .map_file(open_rw(&path), &MapFile::new(&path, 1024, Sharing::Shared))
        .unwrap();
    let base = vm.address_of(mapping.page);
    let mut rng = 3u64;
    for _ in 0..500 {
        read_page(&vm, base, next(&mut rng) % 48);
    }
    let stats = vm.stats();
    assert!(stats.faults <= 12, "a fault per page or so: {stats:?}");
    assert!(stats.cluster_reads > 0, "{stats:?}");
    drop(vm);
    // Sparse: uniform over 1024 pages in 16 pages of real memory.
    let vm = sim_vm(2048, 16);
    let mapping = vm
        .map_file(open_rw(&path), &MapFile::new(&path, 1024, Sharing::Shared))
        .unwrap();
    let base = vm.address_of(mapping.page);
    for _ in 0..3000 {
        read_page(&vm, base, next(&mut rng) % 1024);
    }
    let stats = vm.stats();
    assert!(
        stats.file_page_ins < 2 * stats.faults,
        "read-around kept reading what was not used: {stats:?}"
    );
}

/// Pages 100 and 104 of a 256-page shared mapping resident, read alone,
/// and 102 resident and changed, in a VM with 64 pages of real memory (a
/// 16-page read-around window, 8 before the fault); the file's bytes.
fn mapping_with_resident_pages(vm: &Vm, dir: &std::path::Path) -> (VAddr, Vec<u8>) {
    let (path, model) = patterned_file(dir, "holes.dat", 256);
    let mapping = vm
        .map_file(open_rw(&path), &MapFile::new(&path, 256, Sharing::Shared))
        .unwrap();
    let base = vm.address_of(mapping.page);
    vm.advise(mapping, vm_core::Advice::Random).unwrap();
    for k in [100u64, 104] {
        vm.read(VAddr(base.0 + k * PAGE as u64), &mut [0u8; 8])
            .unwrap();
    }
    vm.write(VAddr(base.0 + 102 * PAGE as u64), &[0xab; 16])
        .unwrap();
    vm.advise(mapping, vm_core::Advice::Normal).unwrap();
    assert_eq!(vm.stats().cluster_reads, 0);
    (base, model)
}

/// Whether pages `pages` from `base` are resident — reading them faults
/// no more — and hold the file's bytes (page 102 its change).
fn assert_read_in(vm: &Vm, base: VAddr, model: &[u8], pages: std::ops::Range<u64>) {
    let faults = vm.stats().faults;
    for k in pages {
        let mut page = vec![0u8; PAGE];
        vm.read(VAddr(base.0 + k * PAGE as u64), &mut page).unwrap();
        let mut want = model[k as usize * PAGE..(k as usize + 1) * PAGE].to_vec();
        if k == 102 {
            want[..16].fill(0xab);
        }
        assert!(page == want, "page {k}");
    }
    assert_eq!(vm.stats().faults, faults, "no fault among those pages");
}

/// Read-around over pages already resident: the absent pages of the
/// window, on both sides of the fault and between resident ones, come in
/// with one read; the resident pages keep what they hold (a changed one
/// its change, not the file's older bytes read with the rest).
#[test]
fn read_around_reads_past_resident_pages_with_one_read_and_leaves_them_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let vm = sim_vm(2048, 64);
    if vm.stats().frame_pool_pages == 0 {
        eprintln!("skipped: no frame pool here (UFFDIO_MOVE refused): read-around reads one run");
        return;
    }
    let (base, model) = mapping_with_resident_pages(&vm, dir.path());
    let before = vm.stats();
    vm.read(VAddr(base.0 + 101 * PAGE as u64), &mut [0u8; 8])
        .unwrap();
    let after = vm.stats();
    assert_eq!(after.faults, before.faults + 1, "{after:?}");
    assert_eq!(after.cluster_reads, 1, "one read for the window: {after:?}");
    // The window is 93..109.
    assert_read_in(&vm, base, &model, 93..109);
    // Page 102's change reaches the file, not the bytes read around it.
    vm.flush().unwrap();
    let file = std::fs::read(dir.path().join("holes.dat")).unwrap();
    assert_eq!(&file[102 * PAGE..102 * PAGE + 16], &[0xab; 16]);
}

/// Without the frame pool (`move_frames` off) read-around reads the run of
/// absent pages that holds the fault, before and after it, straight into
/// its frames; the pages past the resident ones stay absent.
#[test]
fn read_around_without_the_frame_pool_reads_the_fault_s_own_run() {
    let dir = tempfile::tempdir().unwrap();
    let vm = common::sim_vm_with(vm_core::VmConfig {
        move_frames: false,
        ..vm_core::VmConfig::new(2048, 64)
    });
    assert_eq!(vm.stats().frame_pool_pages, 0);
    let (base, model) = mapping_with_resident_pages(&vm, dir.path());
    // The window of 107 is 99..115; its runs 99, 101, 103 and 105..115:
    // the own run, not the first, is read (from its own file page).
    vm.read(VAddr(base.0 + 107 * PAGE as u64), &mut [0u8; 8])
        .unwrap();
    assert_eq!(vm.stats().cluster_reads, 1, "{:?}", vm.stats());
    assert_read_in(&vm, base, &model, 104..115);
    // The window of 98 is 90..106: its own run is 90..100.
    vm.read(VAddr(base.0 + 98 * PAGE as u64), &mut [0u8; 8])
        .unwrap();
    assert_eq!(vm.stats().cluster_reads, 2, "{:?}", vm.stats());
    assert_read_in(&vm, base, &model, 90..101);
    // 101 and 103 were not read: each faults.
    let faults = vm.stats().faults;
    assert_read_in_faulting(&vm, base, &model, &[101, 103], faults + 2);
}

/// Reads pages `pages` and checks them against the file; `faults` is what
/// the VM's fault count must be afterwards.
fn assert_read_in_faulting(vm: &Vm, base: VAddr, model: &[u8], pages: &[u64], faults: u64) {
    for &k in pages {
        let mut page = vec![0u8; PAGE];
        vm.read(VAddr(base.0 + k * PAGE as u64), &mut page).unwrap();
        assert!(
            page == model[k as usize * PAGE..(k as usize + 1) * PAGE],
            "page {k}"
        );
    }
    assert_eq!(vm.stats().faults, faults);
}

/// A read-around whose read fails (the file was truncated under the
/// mapping) is undone: its pages are absent again, their frames free, its
/// counts taken back, and the page alone meets the error (naming its own
/// offset). Read-around then stops for the file (a fault near the end would
/// otherwise evict a window's worth each time) until new advice. With the
/// frame pool (the span read into it) and without (the fault's own run read
/// straight into its pages, which the failed read leaves uncommitted).
#[test]
fn a_failed_read_around_is_undone_and_the_page_meets_the_error_alone() {
    for pool in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (path, model) = patterned_file(dir.path(), "gone.dat", 64);
        let vm = common::sim_vm_with(vm_core::VmConfig {
            move_frames: pool,
            ..vm_core::VmConfig::new(256, 64)
        });
        if pool && vm.stats().frame_pool_pages == 0 {
            eprintln!("skipped the pooled case: no frame pool here (UFFDIO_MOVE refused)");
            continue;
        }
        let interval = vm
            .map_file(open_rw(&path), &MapFile::new(&path, 64, Sharing::Shared))
            .unwrap();
        let base = vm.address_of(interval.page);
        open_rw(&path).set_len(0).unwrap();
        let before = vm.stats();
        let err = vm
            .read(VAddr(base.0 + 40 * PAGE as u64), &mut [0u8; 8])
            .unwrap_err();
        assert!(
            matches!(err, VmError::FileTruncated { offset, .. } if offset == 40 * PAGE as u64),
            "{err}"
        );
        let after = vm.stats();
        assert_eq!(after.faults, before.faults + 1, "counted once: {after:?}");
        assert_eq!(after.resident_pages, 0, "{after:?}");
        assert_eq!(after.cluster_reads, before.cluster_reads, "{after:?}");
        assert_eq!(after.read_aheads, before.read_aheads, "{after:?}");
        assert_eq!(vm.kernel_resident_pages().unwrap(), 0, "pool {pool}");
        for p in interval.pages() {
            assert!(!vm.state(p).has_real_memory, "{p:?}");
        }
        // Whole again, but read-around is off after the failure: the page
        // comes in alone.
        std::fs::write(&path, &model).unwrap();
        vm.read(VAddr(base.0 + 40 * PAGE as u64), &mut [0u8; 8])
            .unwrap();
        let alone = vm.stats();
        assert_eq!(alone.cluster_reads, before.cluster_reads, "{alone:?}");
        assert_eq!(alone.resident_pages, 1, "{alone:?}");
        // New advice, a new phase: the window of 41 (16 pages, a quarter of
        // the budget: 33..49, page 40 resident) comes in with one read —
        // without the pool, its own run 41..49 — and holds the file's bytes.
        vm.advise(interval, vm_core::Advice::Normal).unwrap();
        vm.read(VAddr(base.0 + 41 * PAGE as u64), &mut [0u8; 8])
            .unwrap();
        let whole = vm.stats();
        let window = if pool { 33..49 } else { 40..49 };
        assert_eq!(whole.cluster_reads, before.cluster_reads + 1, "{whole:?}");
        assert_eq!(whole.resident_pages, window.end - window.start, "{whole:?}");
        let faults = whole.faults;
        assert_read_in_faulting(&vm, base, &model, &window.collect::<Vec<_>>(), faults);
    }
}

/// `kill` of pages that another thread's read-around has latched waits
/// for the read, which ends without the monitor, instead of refusing them
/// as busy (as it refuses a page a guard holds). One thread faults on a
/// mapping whose window is all of it and drops it again, over and over;
/// the other kills pages of it that the first never reads itself.
#[test]
fn kill_waits_for_a_read_around_in_flight_on_its_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (path, model) = patterned_file(dir.path(), "k.dat", 64);
    // A budget of 256 pages: a window of 64, the whole mapping.
    let vm = sim_vm(1024, 256);
    let interval = vm
        .map_file(open_rw(&path), &MapFile::new(&path, 64, Sharing::Shared))
        .unwrap();
    let base = vm.address_of(interval.page);
    let killed = vm_core::Interval::new(interval.page.0 + 40, 8);
    let rounds = 6000;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut page = vec![0u8; PAGE];
            for _ in 0..rounds {
                vm.read(VAddr(base.0 + 5 * PAGE as u64), &mut page).unwrap();
                assert!(page == model[5 * PAGE..6 * PAGE]);
                vm.advise(interval, vm_core::Advice::DontNeed).unwrap();
            }
        });
        for k in 0..rounds {
            if let Err(e) = vm.kill(killed) {
                panic!("kill {k}: {e}");
            }
        }
    });
    assert!(vm.stats().cluster_reads > 0);
}

/// Threads faulting at once on one shared mapping, their read-arounds read
/// without the monitor and in flight together: three threads read runs of
/// pages that no one writes, checked against the file; a fourth writes and
/// reads its own pages, checked against its model; all under pressure (a
/// budget of an eighth of the mapping), so that windows overlap pages being
/// evicted, written back and read by others. The file then holds the
/// model.
#[test]
fn threads_reading_around_one_mapping_at_once_read_the_file_s_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut model) = patterned_file(dir.path(), "shared.dat", 512);
    let vm = sim_vm(1024, 64);
    let interval = vm
        .map_file(open_rw(&path), &MapFile::new(&path, 512, Sharing::Shared))
        .unwrap();
    let base = vm.address_of(interval.page);
    let (read_only, written) = (0..384u64, 384..512u64);
    let original = model.clone();
    let written_model = std::thread::scope(|s| {
        for t in 0..3u64 {
            let (vm, original, read_only) = (&vm, &original, read_only.clone());
            s.spawn(move || {
                let mut rng = 77 + t;
                let mut page = vec![0u8; PAGE];
                for _ in 0..60 {
                    // A run of 8 pages from a random one: dense enough for
                    // read-around to keep paying.
                    let first = read_only.start + next(&mut rng) % (read_only.end - 8);
                    for k in first..first + 8 {
                        vm.read(VAddr(base.0 + k * PAGE as u64), &mut page).unwrap();
                        let at = k as usize * PAGE;
                        assert!(page == original[at..at + PAGE], "thread {t}, page {k}");
                    }
                }
            });
        }
        let writer = s.spawn(|| write_and_read_back(&vm, base, written.clone(), &model, 400));
        writer.join().unwrap()
    });
    model[written.start as usize * PAGE..].copy_from_slice(&written_model);
    let stats = vm.stats();
    assert!(stats.cluster_reads > 10, "read-around was used: {stats:?}");
    vm.flush().unwrap();
    assert!(
        std::fs::read(&path).unwrap() == model,
        "the file holds the model"
    );
}

/// A read-around of an `O_DIRECT` file into pages not committed yet goes
/// in pieces kept in flight, each committed while the ones before it are
/// read (`disk_channel::read_in_pieces`): the pages hold the file's bytes,
/// with the frame pool and without, under pressure, and up to the file's
/// end (zeros past it, where the piece holding the end comes back short).
#[test]
fn read_around_of_a_direct_file_goes_in_pieces_and_reads_the_file_s_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // 3,000 pages of file in a mapping of 3,200, through 2,048 pages of
    // real memory (read-around windows of 511 pages).
    let (path, mut model) = patterned_file(dir.path(), "direct.dat", 3000);
    model.resize(3200 * PAGE, 0);
    let direct = || open_direct(&path);
    if let Err(e) = direct() {
        eprintln!("skipped: the file system refuses O_DIRECT here ({e})");
        return;
    }
    for move_frames in [false, true] {
        let vm = common::sim_vm_with(vm_core::VmConfig {
            move_frames,
            ..vm_core::VmConfig::new(8192, 2048)
        });
        let mapping = vm
            .map_file(
                direct().unwrap(),
                &MapFile::new(&path, 3200, Sharing::Shared),
            )
            .unwrap();
        let base = vm.address_of(mapping.page);
        let mut rng = 11u64;
        let mut page = vec![0u8; PAGE];
        // The end of the file first (a window across it), then at random.
        let pages = [2990u64, 3100]
            .into_iter()
            .chain((0..600).map(|_| next(&mut rng) % 3200));
        for k in pages {
            vm.read(VAddr(base.0 + k * PAGE as u64), &mut page).unwrap();
            assert!(
                page == model[k as usize * PAGE..(k as usize + 1) * PAGE],
                "page {k} (frame pool {move_frames})"
            );
        }
        let stats = &vm.file_stats()[0];
        assert!(
            stats.reads_in_pieces > 0,
            "no read went in pieces (frame pool {move_frames}): {stats:?}"
        );
        // Every page, once more, after all that eviction.
        for k in 0..3200u64 {
            vm.read(VAddr(base.0 + k * PAGE as u64), &mut page).unwrap();
            assert!(
                page == model[k as usize * PAGE..(k as usize + 1) * PAGE],
                "page {k}"
            );
        }
    }
}

/// Threads reading around one `O_DIRECT` mapping at once, in pieces, while
/// another drops pages of it (`DontNeed`) and one writes to its last
/// quarter: every read holds the file's bytes or the writer's, and the
/// file holds the model after a flush.
#[test]
fn threads_reading_around_a_direct_mapping_in_pieces_under_dont_need() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut model) = patterned_file(dir.path(), "direct-threads.dat", 4096);
    let file = match open_direct(&path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("skipped: the file system refuses O_DIRECT here ({e})");
            return;
        }
    };
    // 2,048 pages of real memory: windows of 511 pages, read in pieces.
    let vm = common::sim_vm_with(vm_core::VmConfig {
        move_frames: false,
        ..vm_core::VmConfig::new(8192, 2048)
    });
    let interval = vm
        .map_file(file, &MapFile::new(&path, 4096, Sharing::Shared))
        .unwrap();
    let base = vm.address_of(interval.page);
    let (read_only, written) = (0..3072u64, 3072..4096u64);
    let original = model.clone();
    let stop = std::sync::atomic::AtomicBool::new(false);
    // The dropper stops once the others have ended, however they end (a
    // failed check must fail the test, not leave it waiting).
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let written_model = std::thread::scope(|s| {
        let readers: Vec<_> = (0..3u64)
            .map(|t| {
                let (vm, original, read_only) = (&vm, &original, read_only.clone());
                s.spawn(move || {
                    let mut rng = 31 + t;
                    let mut page = vec![0u8; PAGE];
                    for _ in 0..300 {
                        let k = read_only.start + next(&mut rng) % read_only.end;
                        vm.read(VAddr(base.0 + k * PAGE as u64), &mut page).unwrap();
                        let at = k as usize * PAGE;
                        assert!(page == original[at..at + PAGE], "thread {t}, page {k}");
                    }
                })
            })
            .collect();
        let dropper = s.spawn(|| {
            let mut rng = 9;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let first = next(&mut rng) % (4096 - 64);
                vm.advise(
                    vm_core::Interval::new(interval.page.0 + first, 64),
                    vm_core::Advice::DontNeed,
                )
                .unwrap();
                std::thread::yield_now();
            }
        });
        let _stop = StopOnDrop(&stop);
        let writer = s.spawn(|| write_and_read_back(&vm, base, written.clone(), &model, 300));
        let readers: Vec<_> = readers.into_iter().map(|r| r.join()).collect();
        let mine = writer.join();
        drop(_stop);
        dropper.join().unwrap();
        for reader in readers {
            reader.unwrap();
        }
        mine.unwrap()
    });
    model[written.start as usize * PAGE..].copy_from_slice(&written_model);
    let stats = &vm.file_stats()[0];
    assert!(
        stats.reads_in_pieces > 0,
        "no read went in pieces: {stats:?}"
    );
    vm.flush().unwrap();
    assert!(
        std::fs::read(&path).unwrap() == model,
        "the file holds the model"
    );
}

/// A writer thread's work: `rounds` stamps written at random into pages
/// `written` of the mapping at `base`, each followed by a read of a random
/// page of them checked against what it wrote; returns those pages' bytes
/// as it left them (`model` holds them as they were before).
fn write_and_read_back(
    vm: &Vm,
    base: VAddr,
    written: std::ops::Range<u64>,
    model: &[u8],
    rounds: u64,
) -> Vec<u8> {
    let mut mine = model[written.start as usize * PAGE..written.end as usize * PAGE].to_vec();
    let mut rng = 5;
    let mut page = vec![0u8; PAGE];
    for n in 0..rounds {
        let k = next(&mut rng) % (written.end - written.start);
        let at = k as usize * PAGE + (next(&mut rng) % (PAGE as u64 - 8)) as usize;
        let stamp = (n + 1).to_le_bytes();
        vm.write(
            VAddr(base.0 + written.start * PAGE as u64 + at as u64),
            &stamp,
        )
        .unwrap();
        mine[at..at + 8].copy_from_slice(&stamp);
        let k = next(&mut rng) % (written.end - written.start);
        vm.read(VAddr(base.0 + (written.start + k) * PAGE as u64), &mut page)
            .unwrap();
        let at = k as usize * PAGE;
        assert!(page == mine[at..at + PAGE], "writer, page {k}");
    }
    mine
}

/// `path` opened read-write with `O_DIRECT`, or why the file system
/// refuses it.
fn open_direct(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
}
