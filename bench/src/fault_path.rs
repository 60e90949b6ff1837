//! `cedarvm bench fault-path`: same-run comparisons that say where a
//! fault's time goes on a real file: resident hit vs a `HashMap` lookup vs
//! a slice read; fault service (both modes) vs a bare 4 KiB `pread`;
//! zero-fill vs the kernel's anonymous first-touch fault; the kernel's
//! own page fault on an `mmap` of the same file; and fault throughput with
//! several threads faulting at once, the monitor held across I/O (the
//! seed) against held for decisions only, beside the kernel's own fault
//! throughput on the same file with as many threads.

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
use vm_core::{Advice, Backing, FaultService, MonitorScope, VAddr, Vm, VmConfig};

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

/// Fault throughput with `threads` threads faulting at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadRun {
    /// What the monitor is held for.
    pub scope: MonitorScope,
    /// Transparent mode: the threads read by plain loads through one
    /// shared view (faults served by each faulting thread from its SIGBUS
    /// handler), not through the copying API.
    #[serde(default)]
    pub transparent: bool,
    /// Threads reading at once.
    pub threads: usize,
    /// Faults served per second, all threads together (median of rounds).
    pub faults_per_s: f64,
    /// The share of the wall time the monitor was held (the run with the
    /// median throughput).
    pub monitor_busy: f64,
    /// The kernel's faults per second on an `mmap` of the same file, as
    /// many threads (same run).
    pub kernel_faults_per_s: f64,
    /// The VM's own system calls without the VM, as many threads (same
    /// run): `pread` of 4 KiB from the page cache into memory given back by
    /// `madvise` — the ceiling of a fault that reads into a released frame.
    pub syscalls_per_s: f64,
}

/// What `bench fault-path` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultPathReport {
    /// The comparisons, each with its ratio to the baseline.
    pub comparisons: Vec<Comparison>,
    /// Fault throughput by threads and monitor scope.
    pub threads: Vec<ThreadRun>,
}

/// A VM over a buffered file drive at `path` (page-cache-hot faults by
/// definition), `pages` pages written, flushed and dropped from real
/// memory, ready to fault.
fn hot_file_vm(
    path: &Path,
    pages: u64,
    memory_pages: u64,
    service: FaultService,
    scope: MonitorScope,
    transparent: bool,
) -> Result<Vm, ToolError> {
    let _ = std::fs::remove_file(path);
    let drive = FileDrive::open(
        path,
        &FileDriveOptions::create(PAGE as usize, pages + 1024)
            .with_cache(disk_channel::CachePolicy::Buffered),
    )?;
    let volume = Volume::format(
        DiskChannel::new(vec![Box::new(drive)])?,
        &FormatOptions::new(PAGE as usize, pages),
    )?;
    let config = VmConfig {
        fault_service: service,
        monitor_scope: scope,
        transparent,
        ..VmConfig::new(pages, memory_pages)
    };
    let vm = Vm::new(config, Backing::Volume(volume)).map_err(ToolError::Vm)?;
    let all = vm.allocate(pages).map_err(ToolError::Vm)?;
    let block = vec![7u8; PAGE as usize];
    for p in all.pages() {
        vm.write(vm.address_of(p), &block).map_err(ToolError::Vm)?;
    }
    vm.flush().map_err(ToolError::Vm)?;
    vm.advise(all, Advice::DontNeed).map_err(ToolError::Vm)?;
    Ok(vm)
}

/// Random 8-byte reads by `threads` threads at once over the VM's pages
/// (each thread its own sequence, `reads` reads each): faults per second
/// and the monitor's busy share, median of `rounds` rounds.
fn thread_run(vm: &Vm, pages: u64, threads: usize, reads: u64, rounds: usize) -> (f64, f64) {
    // In transparent mode the threads load through one shared view.
    let view = vm.is_transparent().then(|| {
        vm.view::<u64>(runtable::Interval::new(0, pages))
            .expect("a view")
    });
    let view = view.as_ref();
    let mut samples: Vec<(f64, f64)> = (0..rounds)
        .map(|round| {
            let before = vm.stats();
            let t = Instant::now();
            std::thread::scope(|s| {
                for k in 0..threads {
                    s.spawn(move || {
                        let mut rng = SplitMix64::new(1000 * round as u64 + k as u64);
                        let mut word = [0u8; 8];
                        for _ in 0..reads {
                            let at = rng.below(pages) * PAGE + rng.below(PAGE / 8) * 8;
                            match view {
                                Some(view) => {
                                    black_box(view[(at / 8) as usize]);
                                }
                                None => {
                                    vm.read(VAddr(at), &mut word).expect("fault");
                                    black_box(word);
                                }
                            }
                        }
                    });
                }
            });
            let wall = t.elapsed();
            let after = vm.stats();
            let faults = (after.faults - before.faults) as f64;
            let held = (after.monitor_held_ns - before.monitor_held_ns) as f64;
            (faults / wall.as_secs_f64(), held / wall.as_nanos() as f64)
        })
        .collect();
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    samples[samples.len() / 2]
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

/// Transparent mode's rows: plain loads of a resident 16 MiB interval
/// against a slice; the raw `userfaultfd` mechanisms against each other
/// (SIGBUS self-service, a handler thread spinning or sleeping in `poll`)
/// and the two ways to install zeros; the VM's transparent fault (a load
/// through a view, the file in the page cache) against the best raw round
/// trip, against the smallest raw pager of the same file under the same
/// budget (SIGBUS, `pread`, `UFFDIO_COPY`, the oldest page released), and
/// against the copying API's fault measured just before.
fn transparent_rows(
    dir: &Path,
    file: &std::fs::File,
    pages: u64,
    memory_pages: u64,
    picks: &[u64],
    copying_fault: f64,
    pread: f64,
) -> Result<Vec<Comparison>, ToolError> {
    let mut rows = Vec::new();
    // Resident: 16 MiB, every page in.
    let hot_pages = 4096u64;
    let vm = Vm::new(
        VmConfig::new(hot_pages, hot_pages).transparent(),
        Backing::RealMemoryOnly,
    )
    .map_err(ToolError::Vm)?;
    let hot = vm.allocate(hot_pages).map_err(ToolError::Vm)?;
    let words = (hot_pages * PAGE / 8) as usize;
    let mut slice = vec![0u64; words];
    {
        let mut view = vm.view_mut::<u64>(hot).map_err(ToolError::Vm)?;
        for (w, x) in view.iter_mut().enumerate() {
            *x = w as u64;
            slice[w] = w as u64;
        }
    }
    let mut rng = SplitMix64::new(11);
    let word_picks: Vec<usize> = (0..8192)
        .map(|_| rng.below(words as u64) as usize)
        .collect();
    let view = vm.view::<u64>(hot).map_err(ToolError::Vm)?;
    let through_view = median_ns(9, 1 << 22, |ops| {
        for i in 0..ops {
            black_box(view[word_picks[(i & 8191) as usize]]);
        }
    });
    let plain = median_ns(9, 1 << 22, |ops| {
        for i in 0..ops {
            black_box(slice[word_picks[(i & 8191) as usize]]);
        }
    });
    drop(view);
    drop(vm);
    rows.push(Comparison {
        name: "transparent: resident read of 8 bytes (View<u64>)".into(),
        ns: through_view,
        baseline: "slice read (Vec<u64>)".into(),
        baseline_ns: plain,
    });

    // The raw mechanisms, without the VM.
    let raw = 4096usize;
    let sigbus = vm_core::sys::uffd_probe::sigbus_round_trip_ns(raw, 9).map_err(ToolError::Vm)?;
    let spinning = vm_core::sys::uffd_probe::handler_thread_round_trip_ns(raw, 9, true)
        .map_err(ToolError::Vm)?;
    let sleeping = vm_core::sys::uffd_probe::handler_thread_round_trip_ns(raw, 9, false)
        .map_err(ToolError::Vm)?;
    for (name, ns) in [
        ("raw uffd: handler thread, spinning", spinning),
        ("raw uffd: handler thread, poll", sleeping),
    ] {
        rows.push(Comparison {
            name: name.into(),
            ns,
            baseline: "raw uffd: SIGBUS, thread serves itself".into(),
            baseline_ns: sigbus,
        });
    }
    let zeros_by_copy =
        vm_core::sys::uffd_probe::zero_install_ns(raw, 9, true).map_err(ToolError::Vm)?;
    let zeros_by_zeropage =
        vm_core::sys::uffd_probe::zero_install_ns(raw, 9, false).map_err(ToolError::Vm)?;
    rows.push(Comparison {
        name: "install zeros: ZEROPAGE + WRITEPROTECT".into(),
        ns: zeros_by_zeropage,
        baseline: "install zeros: COPY (mode WP)".into(),
        baseline_ns: zeros_by_copy,
    });

    // The VM's transparent fault on a page-cache-hot file.
    let path = dir.join("fault-path-transparent.vol");
    let vm = hot_file_vm(
        &path,
        pages,
        memory_pages,
        FaultService::InFaultingThread,
        MonitorScope::Decisions,
        true,
    )?;
    let all = runtable::Interval::new(0, pages);
    let before = vm.stats();
    let mut loads = 0u64;
    let fault = {
        let view = vm.view::<u64>(all).map_err(ToolError::Vm)?;
        let per_page = (PAGE / 8) as usize;
        median_ns(9, 20_000, |ops| {
            for i in 0..ops {
                black_box(view[picks[(i & 8191) as usize] as usize * per_page]);
            }
            loads += ops;
        })
    };
    let faults = vm.stats().faults - before.faults;
    drop(vm);
    let _ = std::fs::remove_file(&path);
    let best_raw = sigbus.min(spinning).min(sleeping);
    let pager = vm_core::sys::uffd_probe::pager_round_trip_ns(
        file,
        pages as usize,
        memory_pages as usize,
        5,
    )
    .map_err(ToolError::Vm)?;
    let name = format!(
        "transparent fault, load ({:.0}% faulted)",
        faults as f64 * 100.0 / loads as f64
    );
    rows.push(Comparison {
        name: name.clone(),
        ns: fault,
        baseline: "best raw uffd round trip".into(),
        baseline_ns: best_raw,
    });
    rows.push(Comparison {
        name: name.clone(),
        ns: fault,
        baseline: "raw uffd pager: pread+COPY+release".into(),
        baseline_ns: pager,
    });
    rows.push(Comparison {
        name: name.clone(),
        ns: fault,
        baseline: "copying-API fault (same file)".into(),
        baseline_ns: copying_fault,
    });
    rows.push(Comparison {
        name,
        ns: fault,
        baseline: "pread of 4 KiB (page cache)".into(),
        baseline_ns: pread,
    });
    Ok(rows)
}

/// Runs `bench fault-path` with a working set of `pages` pages through a
/// budget of `memory_pages`, in `dir` (or a temporary directory).
pub fn fault_path(
    pages: u64,
    memory_pages: u64,
    threads: &[usize],
    dir: Option<&Path>,
) -> Result<FaultPathReport, ToolError> {
    let temp = tempfile::tempdir().map_err(|source| ToolError::File {
        path: std::env::temp_dir(),
        source,
    })?;
    let dir = dir.unwrap_or(temp.path());
    let bar = progress(7 + threads.len() as u64, "fault-path");
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
    let mut copying_fault = f64::NAN;
    let services = [
        (FaultService::InFaultingThread, MonitorScope::Decisions),
        (FaultService::InFaultingThread, MonitorScope::HeldAcrossIo),
        (FaultService::Worker, MonitorScope::HeldAcrossIo),
    ];
    for (service, scope) in services {
        let path = dir.join(format!("fault-path-{service:?}-{scope:?}.vol"));
        let vm = hot_file_vm(&path, pages, memory_pages, service, scope, false)?;
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
        let who = match (service, scope) {
            (FaultService::Worker, _) => "PageFault worker".to_string(),
            (_, scope) => format!("faulting thread, {}", scope.name()),
        };
        comparisons.push(Comparison {
            name: format!(
                "fault, {who} ({:.0}% faulted)",
                faults as f64 * 100.0 / reads as f64
            ),
            ns: fault,
            baseline: "pread of 4 KiB (page cache)".into(),
            baseline_ns: pread,
        });
        if scope == MonitorScope::Decisions {
            copying_fault = fault;
        }
        bar.inc(1);
    }
    match transparent_rows(
        dir,
        &file,
        pages,
        memory_pages,
        &picks,
        copying_fault,
        pread,
    ) {
        Ok(rows) => comparisons.extend(rows),
        Err(ToolError::Vm(vm_core::VmError::TransparentUnavailable { reason })) => {
            eprintln!("transparent rows skipped: {reason}");
        }
        Err(e) => return Err(e),
    }
    bar.inc(1);

    // Throughput with threads faulting at once, one scope against the other.
    // About a dozen faults per page per round (200,000 at the default
    // working set), shared among the threads.
    let total_reads = (pages * 12).min(200_000);
    let mut runs = Vec::new();
    for &count in threads {
        let kernel = crate::sys::kernel_reference::file_mmap_fault_rate(&file, pages, count, 5)
            .map_err(ToolError::Vm)?;
        let syscalls = crate::sys::kernel_reference::pread_into_released_rate(
            &file,
            pages,
            count,
            total_reads / count as u64,
            5,
        )
        .map_err(ToolError::Vm)?;
        for (scope, transparent) in [
            (MonitorScope::HeldAcrossIo, false),
            (MonitorScope::Decisions, false),
            (MonitorScope::Decisions, true),
        ] {
            let path = dir.join(format!("fault-path-threads-{scope:?}-{transparent}.vol"));
            let vm = match hot_file_vm(
                &path,
                pages,
                memory_pages,
                FaultService::InFaultingThread,
                scope,
                transparent,
            ) {
                Ok(vm) => vm,
                // Where the kernel refuses it, no transparent row (the
                // comparisons said why already).
                Err(ToolError::Vm(vm_core::VmError::TransparentUnavailable { .. })) => continue,
                Err(e) => return Err(e),
            };
            let (faults_per_s, monitor_busy) =
                thread_run(&vm, pages, count, total_reads / count as u64, 5);
            drop(vm);
            let _ = std::fs::remove_file(&path);
            runs.push(ThreadRun {
                scope,
                transparent,
                threads: count,
                faults_per_s,
                monitor_busy,
                kernel_faults_per_s: kernel,
                syscalls_per_s: syscalls,
            });
        }
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
        name: "zero-fill fault, copying API (first write)".into(),
        ns: zero,
        baseline: "kernel anonymous first-touch fault".into(),
        baseline_ns: anon,
    });
    bar.inc(1);

    // The kernel's own file-mmap fault on the same file.
    let (mmap_fault, pages_per_fault) =
        crate::sys::kernel_reference::file_mmap_fault_ns(&file, pages, 5).map_err(ToolError::Vm)?;
    comparisons.push(Comparison {
        name: format!("kernel mmap fault ({pages_per_fault:.0} pages mapped each)"),
        ns: mmap_fault,
        baseline: "pread of 4 KiB (page cache)".into(),
        baseline_ns: pread,
    });
    bar.inc(1);
    bar.finish_and_clear();
    let _ = std::fs::remove_file(&plain_path);
    Ok(FaultPathReport {
        comparisons,
        threads: runs,
    })
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
        if !self.threads.is_empty() {
            t.push_str(&format!(
                "\n{:<14} {:>7} {:>10} {:>9} {:>13} {:>12} {:>10} {:>11} {:>10}\n",
                "monitor scope",
                "threads",
                "faults/s",
                "vs 1 thr",
                "monitor busy",
                "syscalls/s",
                "vs 1 thr",
                "mmap faults",
                "vs mmap"
            ));
            for r in &self.threads {
                let one = self
                    .threads
                    .iter()
                    .find(|o| {
                        o.scope == r.scope && o.transparent == r.transparent && o.threads == 1
                    })
                    .map(|o| {
                        (
                            r.faults_per_s / o.faults_per_s,
                            r.syscalls_per_s / o.syscalls_per_s,
                        )
                    });
                let (one, syscalls_one) = one.unwrap_or((f64::NAN, f64::NAN));
                t.push_str(&format!(
                    "{:<14} {:>7} {:>10.0} {:>8.2}× {:>12.0}% {:>12.0} {:>9.2}× {:>11.0} {:>9.2}×\n",
                    if r.transparent {
                        "transparent".to_string()
                    } else {
                        r.scope.name().to_string()
                    },
                    r.threads,
                    r.faults_per_s,
                    one,
                    r.monitor_busy * 100.0,
                    r.syscalls_per_s,
                    syscalls_one,
                    r.kernel_faults_per_s,
                    r.faults_per_s / r.kernel_faults_per_s
                ));
            }
            t.push_str(
                "transparent: the decisions scope in transparent mode, loads through a shared view.\n\
                 syscalls/s: the fault's own pread into memory given back by madvise, no VM.\n\
                 mmap faults/s: the kernel's faults on the same file as it counts them; each maps\n\
                 up to 16 pages already cached (fault-around), where a VM fault brings in one.\n",
            );
        }
        t
    }
}
