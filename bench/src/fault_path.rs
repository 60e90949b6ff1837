//! `cedarvm bench fault-path`: same-run comparisons that say where a
//! fault's time goes on a real file: resident hit vs a `HashMap` lookup vs
//! a slice read; fault service (both modes) vs a bare 4 KiB `pread`;
//! zero-fill vs the kernel's anonymous first-touch fault; and the kernel's
//! own page fault on an `mmap` of the same file.

use disk_channel::rng::SplitMix64;
use disk_channel::{DiskChannel, FileDrive, FileDriveOptions};
use runtable::{FormatOptions, Volume};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;
use utility_mode::ToolError;
use utility_mode::progress::progress;
use vm_core::{Advice, Backing, FaultService, VAddr, Vm, VmConfig};

/// Bytes per page in these runs.
const PAGE: u64 = 4096;

/// One same-run comparison: a measured path and its baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// What was measured.
    pub name: String,
    /// Its median time per operation, ns.
    pub ns: f64,
    /// The baseline.
    pub baseline: String,
    /// The baseline's median time per operation, ns.
    pub baseline_ns: f64,
}

/// What `bench fault-path` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultPathReport {
    /// The comparisons, each with its ratio to the baseline.
    pub comparisons: Vec<Comparison>,
}

/// The median over `rounds` of the time per operation of `f(ops)`.
fn median_ns(rounds: usize, ops: u64, mut f: impl FnMut(u64)) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f(ops);
            t.elapsed().as_nanos() as f64 / ops as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Runs `bench fault-path` with a working set of `pages` pages through a
/// budget of `memory_pages`, in `dir` (or a temporary directory).
pub fn fault_path(
    pages: u64,
    memory_pages: u64,
    dir: Option<&Path>,
) -> Result<FaultPathReport, ToolError> {
    let temp = tempfile::tempdir().map_err(|source| ToolError::File {
        path: std::env::temp_dir(),
        source,
    })?;
    let dir = dir.unwrap_or(temp.path());
    let bar = progress(5, "fault-path");
    let mut comparisons = Vec::new();
    let mut rng = SplitMix64::new(7);
    let picks: Vec<u64> = (0..8192).map(|_| rng.below(pages)).collect();

    // Resident hit vs HashMap vs slice.
    let hot_pages = memory_pages.min(pages);
    let vm = Vm::new(VmConfig::new(hot_pages, hot_pages), Backing::RealMemoryOnly)
        .map_err(ToolError::Vm)?;
    let hot = vm.allocate(hot_pages).map_err(ToolError::Vm)?;
    let base = vm.address_of(hot.page).0;
    let words = hot_pages * PAGE / 8;
    let mut map = HashMap::with_capacity(words as usize);
    let mut slice = vec![0u64; words as usize];
    for w in 0..words {
        vm.write(VAddr(base + w * 8), &w.to_le_bytes())
            .map_err(ToolError::Vm)?;
        map.insert(w, w);
        slice[w as usize] = w;
    }
    let word_picks: Vec<u64> = (0..8192).map(|_| rng.below(words)).collect();
    let hit = median_ns(9, 1 << 20, |ops| {
        let mut buf = [0u8; 8];
        for i in 0..ops {
            vm.read(VAddr(base + word_picks[(i & 8191) as usize] * 8), &mut buf)
                .expect("resident");
            black_box(buf);
        }
    });
    let hash = median_ns(9, 1 << 20, |ops| {
        for i in 0..ops {
            black_box(map.get(&word_picks[(i & 8191) as usize]));
        }
    });
    let plain = median_ns(9, 1 << 20, |ops| {
        for i in 0..ops {
            black_box(slice[word_picks[(i & 8191) as usize] as usize]);
        }
    });
    drop(vm);
    comparisons.push(Comparison {
        name: "resident-hit read of 8 bytes".into(),
        ns: hit,
        baseline: "HashMap<u64,u64> get".into(),
        baseline_ns: hash,
    });
    comparisons.push(Comparison {
        name: "resident-hit read of 8 bytes".into(),
        ns: hit,
        baseline: "slice read".into(),
        baseline_ns: plain,
    });
    bar.inc(1);

    // Fault service vs pread, both modes.
    let plain_path = dir.join("fault-path-pread.bin");
    let block = vec![7u8; PAGE as usize];
    {
        let file = std::fs::File::create(&plain_path).map_err(|source| ToolError::File {
            path: plain_path.clone(),
            source,
        })?;
        for p in 0..pages {
            file.write_all_at(&block, p * PAGE)
                .map_err(|source| ToolError::File {
                    path: plain_path.clone(),
                    source,
                })?;
        }
    }
    let file = std::fs::File::open(&plain_path).map_err(|source| ToolError::File {
        path: plain_path.clone(),
        source,
    })?;
    let mut buf = vec![0u8; PAGE as usize];
    let pread = median_ns(9, 20_000, |ops| {
        for i in 0..ops {
            file.read_exact_at(&mut buf, picks[(i & 8191) as usize] * PAGE)
                .expect("pread");
            black_box(buf[0]);
        }
    });
    for service in [FaultService::InFaultingThread, FaultService::Worker] {
        let path = dir.join(format!("fault-path-{service:?}.vol"));
        let _ = std::fs::remove_file(&path);
        let drive = FileDrive::open(
            &path,
            // Page-cache-hot faults by definition: a buffered drive.
            &FileDriveOptions::create(PAGE as usize, pages + 1024)
                .with_cache(disk_channel::CachePolicy::Buffered),
        )?;
        let volume = Volume::format(
            DiskChannel::new(vec![Box::new(drive)])?,
            &FormatOptions::new(PAGE as usize, pages),
        )?;
        let config = VmConfig {
            fault_service: service,
            ..VmConfig::new(pages, memory_pages)
        };
        let vm = Vm::new(config, Backing::Volume(volume)).map_err(ToolError::Vm)?;
        let all = vm.allocate(pages).map_err(ToolError::Vm)?;
        for p in all.pages() {
            vm.write(vm.address_of(p), &block).map_err(ToolError::Vm)?;
        }
        vm.flush().map_err(ToolError::Vm)?;
        vm.advise(all, Advice::DontNeed).map_err(ToolError::Vm)?;
        let before = vm.stats();
        let mut reads = 0u64;
        let fault = median_ns(9, 20_000, |ops| {
            let mut word = [0u8; 8];
            for i in 0..ops {
                vm.read(VAddr(picks[(i & 8191) as usize] * PAGE), &mut word)
                    .expect("fault");
                black_box(word);
            }
            reads += ops;
        });
        let faults = vm.stats().faults - before.faults;
        drop(vm);
        let _ = std::fs::remove_file(&path);
        comparisons.push(Comparison {
            name: format!(
                "fault service, {service:?} ({:.0}% of reads faulted)",
                faults as f64 * 100.0 / reads as f64
            ),
            ns: fault,
            baseline: "pread of 4 KiB (page cache)".into(),
            baseline_ns: pread,
        });
        bar.inc(1);
    }

    // Zero-fill vs the kernel's anonymous first touch.
    let zero_pages = 16_384u64;
    let vm = Vm::new(
        VmConfig::new(zero_pages, zero_pages),
        Backing::RealMemoryOnly,
    )
    .map_err(ToolError::Vm)?;
    let zero = median_ns(5, zero_pages / 5, |ops| {
        let interval = vm.allocate(ops).expect("budget");
        for p in interval.pages() {
            vm.write(vm.address_of(p), &[1]).expect("zero-fill");
        }
        vm.free(interval).expect("free");
    });
    let anon = crate::sys::kernel_reference::anonymous_first_touch_ns(zero_pages / 5, 5)
        .map_err(ToolError::Vm)?;
    comparisons.push(Comparison {
        name: "zero-fill fault (first write)".into(),
        ns: zero,
        baseline: "kernel anonymous first-touch fault".into(),
        baseline_ns: anon,
    });
    bar.inc(1);

    // The kernel's own file-mmap fault on the same file.
    let mmap_fault =
        crate::sys::kernel_reference::file_mmap_fault_ns(&file, pages, 5).map_err(ToolError::Vm)?;
    comparisons.push(Comparison {
        name: "kernel mmap page fault (page cache)".into(),
        ns: mmap_fault,
        baseline: "pread of 4 KiB (page cache)".into(),
        baseline_ns: pread,
    });
    bar.inc(1);
    bar.finish_and_clear();
    let _ = std::fs::remove_file(&plain_path);
    Ok(FaultPathReport { comparisons })
}

impl FaultPathReport {
    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let mut t = format!(
            "{:<52} {:>10}   {:<36} {:>10} {:>8}\n",
            "measured", "ns/op", "baseline (same run)", "ns/op", "ratio"
        );
        for c in &self.comparisons {
            t.push_str(&format!(
                "{:<52} {:>10.1}   {:<36} {:>10.1} {:>7.2}×\n",
                c.name,
                c.ns,
                c.baseline,
                c.baseline_ns,
                c.ns / c.baseline_ns
            ));
        }
        t
    }
}
