//! `translate` on a 10,000-run table against indexing a `Vec` of disk
//! addresses (the cheapest possible map), in the same run.

use criterion::{Criterion, criterion_group, criterion_main};
use disk_channel::rng::SplitMix64;
use runtable::{DiskAddr, PageCount, PageNumber, Run, RunTable};
use std::hint::black_box;

fn table_and_vector() -> (RunTable, Vec<DiskAddr>) {
    let mut rng = SplitMix64::new(1);
    let mut runs = Vec::with_capacity(10_000);
    let mut flat = Vec::new();
    let (mut page, mut disk) = (0u64, 0u64);
    for i in 0..10_000u64 {
        let count = 1 + rng.below(100);
        let drive = (i % 4) as u16;
        disk += 1 + rng.below(3); // a gap, so runs never merge
        runs.push(Run {
            page: PageNumber(page),
            disk: DiskAddr::new(drive, disk),
            count: PageCount(count),
        });
        for k in 0..count {
            flat.push(DiskAddr::new(drive, disk + k));
        }
        page += count;
        disk += count;
    }
    let table = RunTable::new(runs).unwrap();
    assert_eq!(table.len(), 10_000);
    (table, flat)
}

fn translate(c: &mut Criterion) {
    let (table, flat) = table_and_vector();
    let mut rng = SplitMix64::new(2);
    let pages: Vec<u64> = (0..4096).map(|_| rng.below(flat.len() as u64)).collect();
    let mut group = c.benchmark_group("translate_10000_runs");
    group.bench_function("run_table_translate", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(table.translate(PageNumber(black_box(pages[i]))))
        })
    });
    group.bench_function("baseline_vec_index", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(flat.get(black_box(pages[i]) as usize).copied())
        })
    });
    group.finish();
}

criterion_group!(benches, translate);
criterion_main!(benches);
