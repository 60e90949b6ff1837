//! Fault service with the backing file in the OS page cache, against a bare
//! 4 KiB `pread` of the same file, in the same run, for both fault-service
//! modes. Every measured read misses: the real-memory budget is 1,024 pages
//! out of 16,384, so each fault also pays its share of replacement.

use criterion::{Criterion, criterion_group, criterion_main};
use disk_channel::rng::SplitMix64;
use disk_channel::{DiskChannel, FileDrive, FileDriveOptions};
use runtable::{FormatOptions, Volume};
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use vm_core::{Advice, Backing, FaultService, VAddr, Vm, VmConfig};

const PAGE: usize = 4096;
const PAGES: u64 = 16_384;
const BUDGET: u64 = 1024;

fn vm_on_file(dir: &std::path::Path, service: FaultService) -> Vm {
    let path = dir.join(format!("{service:?}"));
    // Faults with the file in the page cache: a buffered drive.
    let options = FileDriveOptions::create(PAGE, PAGES + 1024)
        .with_cache(disk_channel::CachePolicy::Buffered);
    let drive = FileDrive::open(&path, &options).unwrap();
    let channel = DiskChannel::new(vec![Box::new(drive)]).unwrap();
    let volume = Volume::format(channel, &FormatOptions::new(PAGE, PAGES)).unwrap();
    let config = VmConfig {
        fault_service: service,
        ..VmConfig::new(PAGES, BUDGET)
    };
    let vm = Vm::new(config, Backing::Volume(volume)).unwrap();
    let interval = vm.allocate(PAGES).unwrap();
    let page_bytes = vec![7u8; PAGE];
    for page in 0..PAGES {
        vm.write(VAddr(page * PAGE as u64), &page_bytes).unwrap();
    }
    vm.flush().unwrap();
    vm.advise(interval, Advice::DontNeed).unwrap();
    vm
}

fn fault_service(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(11);
    let pages: Vec<u64> = (0..4096).map(|_| rng.below(PAGES)).collect();
    let file_path = dir.path().join("plain");
    std::fs::write(&file_path, vec![7u8; PAGES as usize * PAGE]).unwrap();
    let file = std::fs::File::open(&file_path).unwrap();
    let mut group = c.benchmark_group("fault_service_page_cache");
    group.bench_function("baseline_pread_4k", |b| {
        let mut buf = vec![0u8; PAGE];
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            file.read_exact_at(&mut buf, pages[i] * PAGE as u64)
                .unwrap();
            black_box(buf[0])
        })
    });
    for service in [FaultService::InFaultingThread, FaultService::Worker] {
        let vm = vm_on_file(dir.path(), service);
        let before = vm.stats();
        let mut total = 0u64;
        group.bench_function(format!("vm_fault_{service:?}"), |b| {
            let mut word = [0u8; 8];
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & 4095;
                total += 1;
                vm.read(VAddr(black_box(pages[i]) * PAGE as u64), &mut word)
                    .unwrap();
                black_box(word[0])
            })
        });
        let after = vm.stats();
        // 1 - 1024/16384 of random reads miss: nearly all must have been
        // faults, or this measured hits.
        let faults = after.faults - before.faults;
        println!("{service:?}: {faults} faults in {total} reads");
        assert!(
            faults * 100 >= total * 90,
            "{faults} faults in {total} reads"
        );
    }
    group.finish();
}

/// Write-back of 64 dirty pages (`clean`, which writes them to the file
/// and keeps them resident) against 64 bare 4 KiB `pwrite`s of the same
/// bytes to a file, in the same run.
fn write_back(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let vm = vm_on_file(dir.path(), FaultService::InFaultingThread);
    // `vm_on_file` allocated every page; use the first 64.
    let interval = runtable::Interval::new(0, 64);
    let plain_path = dir.path().join("pwrite");
    let plain = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&plain_path)
        .unwrap();
    plain.set_len(64 * PAGE as u64).unwrap();
    let block = vec![3u8; PAGE];
    let mut group = c.benchmark_group("write_back_64_pages");
    group.bench_function("baseline_pwrite_64x4k", |b| {
        b.iter(|| {
            for p in 0..64u64 {
                plain.write_all_at(&block, p * PAGE as u64).unwrap();
            }
        })
    });
    group.bench_function("vm_make_changed_and_clean", |b| {
        vm.touch(interval).unwrap();
        b.iter(|| {
            vm.make_changed(interval).unwrap();
            vm.clean(interval).unwrap();
        })
    });
    group.finish();
}

/// `DontNeed` of 1,024 resident, clean pages (4 MiB; their memory given
/// back by runs, `process_madvise` for up to 64 at once, the first ones
/// moved into the frame pool) against the kernel's own cost of giving back
/// 4 MiB of committed anonymous memory — one `madvise` for all of it, and
/// one `madvise` a page, which is what `DontNeed` did before — in the same
/// run. Each iteration first makes the memory resident again (not timed).
fn drop_resident(c: &mut Criterion) {
    use criterion::BatchSize;
    let dir = tempfile::tempdir().unwrap();
    let vm = vm_on_file(dir.path(), FaultService::InFaultingThread);
    let interval = runtable::Interval::new(0, BUDGET);
    let len = BUDGET as usize * PAGE;
    // SAFETY: a fresh private anonymous mapping of our own, unmapped below.
    let anon = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::PRIVATE,
        )
    }
    .unwrap()
    .cast::<u8>();
    // SAFETY: the mapping is `len` bytes, ours, and nothing else refers to it.
    let commit = || unsafe { std::ptr::write_bytes(anon, 1, len) };
    let mut group = c.benchmark_group("drop_1024_resident_pages");
    group.bench_function("baseline_madvise_one_call", |b| {
        b.iter_batched(
            commit,
            |()| {
                // SAFETY: our own mapping; no reference into it is live.
                unsafe { rustix::mm::madvise(anon.cast(), len, rustix::mm::Advice::LinuxDontNeed) }
                    .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("baseline_madvise_a_page_each", |b| {
        b.iter_batched(
            commit,
            |()| {
                for page in 0..BUDGET as usize {
                    // SAFETY: as above, one page of it.
                    unsafe {
                        rustix::mm::madvise(
                            anon.add(page * PAGE).cast(),
                            PAGE,
                            rustix::mm::Advice::LinuxDontNeed,
                        )
                    }
                    .unwrap()
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("vm_dont_need", |b| {
        b.iter_batched(
            || vm.touch(interval).unwrap(),
            |()| vm.advise(interval, Advice::DontNeed).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
    // SAFETY: the mapping made above, no longer used.
    unsafe { rustix::mm::munmap(anon.cast(), len) }.unwrap();
}

criterion_group!(benches, fault_service, write_back, drop_resident);
criterion_main!(benches);
