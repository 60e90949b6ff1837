//! `FileDrive` 4 KiB random reads against a bare `pread` on the same file
//! (in the page cache), in the same run.

use criterion::{Criterion, criterion_group, criterion_main};
use disk_channel::rng::SplitMix64;
use disk_channel::{DiskPage, Drive, FileDrive, FileDriveOptions};
use std::hint::black_box;
use std::os::unix::fs::FileExt;

const PAGE: usize = 4096;
const PAGES: u64 = 16_384; // 64 MiB

fn random_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drive");
    // The page-cache read path: a buffered drive.
    let options =
        FileDriveOptions::create(PAGE, PAGES).with_cache(disk_channel::CachePolicy::Buffered);
    let mut drive = FileDrive::open(&path, &options).unwrap();
    let fill: Vec<u8> = (0..PAGE).map(|i| i as u8).collect();
    for page in 0..PAGES {
        drive.write(DiskPage(page), &fill, None).unwrap();
    }
    // The baseline reads through the drive's own file description, so the
    // two differ only by the drive's code.
    let file = drive.file().try_clone().unwrap();
    let mut rng = SplitMix64::new(3);
    let pages: Vec<u64> = (0..4096).map(|_| rng.below(PAGES)).collect();
    let mut buf = vec![0u8; PAGE];
    let mut group = c.benchmark_group("random_read_4k_page_cache");
    group.bench_function("baseline_pread", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            file.read_exact_at(&mut buf, pages[i] * PAGE as u64)
                .unwrap();
            black_box(buf[0])
        })
    });
    group.bench_function("file_drive_read", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            drive.read(DiskPage(pages[i]), &mut buf, None).unwrap();
            black_box(buf[0])
        })
    });
    group.finish();
}

criterion_group!(benches, random_read);
criterion_main!(benches);
