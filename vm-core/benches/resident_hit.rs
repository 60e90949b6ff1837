//! Resident-hit `read` of 8 bytes against a `HashMap<u64, u64>` lookup and
//! a plain slice read, in the same run.

use criterion::{Criterion, criterion_group, criterion_main};
use disk_channel::rng::SplitMix64;
use std::collections::HashMap;
use std::hint::black_box;
use vm_core::{Backing, VAddr, Vm, VmConfig};

const PAGES: u64 = 1024;

fn resident_hit(c: &mut Criterion) {
    let vm = Vm::new(VmConfig::new(PAGES, PAGES), Backing::RealMemoryOnly).unwrap();
    let interval = vm.allocate(PAGES).unwrap();
    let bytes = PAGES * 4096;
    let base = vm.address_of(interval.page).0;
    let mut slice = vec![0u8; bytes as usize];
    let mut map = HashMap::new();
    for word in 0..bytes / 8 {
        vm.write(VAddr(base + word * 8), &word.to_le_bytes())
            .unwrap();
        slice[word as usize * 8..word as usize * 8 + 8].copy_from_slice(&word.to_le_bytes());
        map.insert(word, word);
    }
    let mut rng = SplitMix64::new(9);
    let words: Vec<u64> = (0..4096).map(|_| rng.below(bytes / 8)).collect();
    let mut group = c.benchmark_group("resident_hit_8_bytes");
    group.bench_function("vm_read", |b| {
        let mut i = 0;
        let mut buf = [0u8; 8];
        b.iter(|| {
            i = (i + 1) & 4095;
            vm.read(VAddr(base + black_box(words[i]) * 8), &mut buf)
                .unwrap();
            black_box(u64::from_le_bytes(buf))
        })
    });
    group.bench_function("baseline_hashmap_get", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(map.get(&black_box(words[i])).copied())
        })
    });
    group.bench_function("baseline_slice_read", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            let at = black_box(words[i]) as usize * 8;
            black_box(u64::from_le_bytes(slice[at..at + 8].try_into().unwrap()))
        })
    });
    group.finish();
}

/// Resident-hit reads by one thread and by two threads at once: the time
/// for each thread to do `iters` reads. Equal times mean throughput doubled.
fn two_thread_throughput(c: &mut Criterion) {
    let vm = Vm::new(VmConfig::new(PAGES, PAGES), Backing::RealMemoryOnly).unwrap();
    let interval = vm.allocate(PAGES).unwrap();
    let base = vm.address_of(interval.page).0;
    for page in 0..PAGES {
        vm.write(VAddr(base + page * 4096), &page.to_le_bytes())
            .unwrap();
    }
    let mut rng = SplitMix64::new(10);
    let words: Vec<u64> = (0..4096).map(|_| rng.below(PAGES * 512)).collect();
    let reads = |iters: u64| {
        let mut buf = [0u8; 8];
        for i in 0..iters {
            let word = words[(i & 4095) as usize];
            vm.read(VAddr(base + word * 8), &mut buf).unwrap();
            black_box(buf);
        }
    };
    let mut group = c.benchmark_group("resident_hit_throughput");
    group.bench_function("one_thread", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            reads(iters);
            start.elapsed()
        })
    });
    group.bench_function("two_threads", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                s.spawn(|| reads(iters));
                reads(iters);
            });
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, resident_hit, two_thread_throughput);
criterion_main!(benches);
