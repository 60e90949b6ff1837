//! Benchmark runs: `cedarvm bench seek-ahead` and `cedarvm bench fault-path`.
//!
//! **seek-ahead.** On a simulated drive the run is the deterministic
//! simulation of [`vm_core::simulate`]: N faulting processes drive the VM's
//! real fault service on the virtual clock, once with seek-ahead off and
//! once on, for each N. Beside the measured figures stands the disk
//! model's: the time the model says the used hints saved, `Σ min(seek,
//! gap)` over the transfers that followed a hint (the drive computes it as
//! it serves the stream), so `off − Σ` is what the model predicts for the
//! seek-ahead run. On `--disk file` the run uses real threads on a real
//! file drive and reports wall time and faults per second (no model).
//!
//! **fault-path.** Same-run comparisons that say where a fault's time goes
//! on a real file: resident hit vs a `HashMap` lookup vs a slice read;
//! fault service (both modes) vs a bare 4 KiB `pread`; zero-fill vs the
//! kernel's anonymous first-touch fault; and the kernel's own page fault on
//! an `mmap` of the same file.

use crate::ToolError;
use disk_channel::rng::SplitMix64;
use disk_channel::{DiskChannel, Drive, FileDrive, FileDriveOptions, SimDrive, SimModel};
use runtable::{FormatOptions, Interval, Volume};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vm_core::simulate::{AccessPattern, Report, Workload};
use vm_core::{Advice, Backing, FaultService, VAddr, Vm, VmConfig};

const PAGE: u64 = 4096;

/// A `bench seek-ahead` request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeekAheadRequest {
    /// A simulated preset name, or `file`.
    pub disk: String,
    /// Access pattern.
    pub pattern: AccessPattern,
    /// Concurrent faulters to try.
    pub faulters: Vec<usize>,
    /// Pages the workload touches. On a simulated drive they are spread
    /// evenly over the whole drive (so seeks are the drive's, not those of
    /// its first cylinders); on `file` they are consecutive.
    pub working_set_pages: u64,
    /// Real-memory budget in pages.
    pub memory_pages: u64,
    /// Accesses per faulter.
    pub accesses: u64,
    /// Think time between accesses, nanoseconds (virtual on simulated
    /// drives; spun on `file`).
    pub think_ns: u64,
    /// Fraction of accesses that write.
    pub write_fraction: f64,
    /// Software gap per request on simulated drives (None: the preset's).
    pub gap_ns: Option<u64>,
    /// Where `file` puts its drive (None: a temporary directory).
    pub dir: Option<PathBuf>,
    /// Seed.
    pub seed: u64,
}

/// One faulter count's figures, seek-ahead off and on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeekAheadRow {
    /// Concurrent faulters.
    pub faulters: usize,
    /// With seek-ahead off.
    pub off: RunFigures,
    /// With seek-ahead on.
    pub on: RunFigures,
    /// What the disk model predicts for the seek-ahead run's time: `off −
    /// Σ min(seek, gap)` over the hints used (simulated drives).
    pub model_ns: Option<u64>,
    /// Measured saving over the model's saving (1.0 = exactly the model).
    pub saving_vs_model: Option<f64>,
}

/// The figures of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    /// Total time: virtual on a simulated drive, wall on `file`; ns.
    pub time_ns: u64,
    /// Faults served.
    pub faults: u64,
    /// Mean fault service time (queueing included), ns (simulated only).
    pub fault_mean_ns: u64,
    /// 99th percentile fault service time, ns (simulated only).
    pub fault_p99_ns: u64,
    /// Faults per second.
    pub faults_per_s: f64,
    /// Transfers that carried a hint.
    pub seek_aheads_issued: u64,
    /// Hints the next transfer used.
    pub seek_aheads_used: u64,
    /// The model's saving for the used hints, ns (simulated only).
    pub model_saving_ns: u64,
}

/// What `bench seek-ahead` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeekAheadReport {
    /// The request.
    pub request: SeekAheadRequest,
    /// Whether the drive was simulated (deterministic, virtual time).
    pub simulated: bool,
    /// One row per faulter count.
    pub rows: Vec<SeekAheadRow>,
}

fn figures_of(r: &Report) -> RunFigures {
    RunFigures {
        time_ns: r.virtual_ns,
        faults: r.faults,
        fault_mean_ns: r.fault_mean_ns,
        fault_p99_ns: r.fault_p99_ns,
        faults_per_s: if r.virtual_ns == 0 {
            0.0
        } else {
            r.faults as f64 * 1e9 / r.virtual_ns as f64
        },
        seek_aheads_issued: r.seek_aheads_issued,
        seek_aheads_used: r.seek_aheads_used,
        model_saving_ns: r.model_saving_ns,
    }
}

/// A VM over `drive` whose address space covers `virtual_pages`, with the
/// pages `touched` written, flushed and dropped from memory so that every
/// first access reads.
fn prepared_vm(
    drive: Box<dyn Drive>,
    virtual_pages: u64,
    memory_pages: u64,
    seek_ahead: bool,
    touched: &Workload,
) -> Result<(Vm, Interval), ToolError> {
    let channel = DiskChannel::new(vec![drive])?;
    let volume = Volume::format(channel, &FormatOptions::new(PAGE as usize, virtual_pages))?;
    let config = VmConfig {
        seek_ahead,
        ..VmConfig::new(virtual_pages, memory_pages)
    };
    let vm = Vm::new(config, Backing::Volume(volume)).map_err(ToolError::Vm)?;
    let interval = vm.allocate(virtual_pages).map_err(ToolError::Vm)?;
    let pages: Vec<_> = touched.pages(interval).collect();
    for &page in &pages {
        vm.write(vm.address_of(page), &page.0.to_le_bytes())
            .map_err(ToolError::Vm)?;
    }
    vm.flush().map_err(ToolError::Vm)?;
    for &page in &pages {
        vm.advise(Interval::new(page.0, 1), Advice::DontNeed)
            .map_err(ToolError::Vm)?;
    }
    Ok((vm, interval))
}

fn workload(request: &SeekAheadRequest, faulters: usize, stride: u64) -> Workload {
    Workload {
        processes: faulters,
        accesses_per_process: request.accesses,
        think_ns: request.think_ns,
        pattern: request.pattern,
        write_fraction: request.write_fraction,
        seed: request.seed,
        stride,
    }
}

fn simulated_run(
    request: &SeekAheadRequest,
    faulters: usize,
    seek_ahead: bool,
) -> Result<Report, ToolError> {
    let mut model = SimModel::preset(&request.disk).ok_or_else(|| {
        ToolError::Usage(format!(
            "--disk {}: not one of {} or file",
            request.disk,
            SimModel::PRESETS.join(", ")
        ))
    })?;
    if let Some(gap) = request.gap_ns {
        model = model.with_software_gap_ns(gap);
    }
    let drive = SimDrive::new(model, PAGE as usize)?;
    // Room at the ends for labels, header slots and spares.
    let virtual_pages = drive.page_count().saturating_sub(64);
    if request.working_set_pages == 0 || request.working_set_pages > virtual_pages {
        return Err(ToolError::Usage(format!(
            "--working-set of {} pages does not fit the {} drive ({} pages)",
            request.working_set_pages,
            request.disk,
            drive.page_count()
        )));
    }
    let workload = workload(request, faulters, virtual_pages / request.working_set_pages);
    let (vm, interval) = prepared_vm(
        Box::new(drive),
        virtual_pages,
        request.memory_pages,
        seek_ahead,
        &workload,
    )?;
    vm.simulate(interval, &workload).map_err(ToolError::Vm)
}

/// Real threads on a real file drive.
fn file_run(
    request: &SeekAheadRequest,
    faulters: usize,
    seek_ahead: bool,
    dir: &Path,
) -> Result<RunFigures, ToolError> {
    let path = dir.join(format!("seek-ahead-{faulters}-{seek_ahead}.vol"));
    let _ = std::fs::remove_file(&path);
    let pages = request.working_set_pages;
    let drive = FileDrive::open(
        &path,
        &FileDriveOptions::create(PAGE as usize, pages + 1024),
    )?;
    let (vm, interval) = prepared_vm(
        Box::new(drive),
        pages,
        request.memory_pages,
        seek_ahead,
        &workload(request, faulters, 1),
    )?;
    let before = vm.stats();
    let base = vm.address_of(interval.page).0;
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..faulters {
            let vm = &vm;
            s.spawn(move || {
                let mut rng = SplitMix64::new(request.seed ^ t as u64);
                let mut word = [0u8; 8];
                for _ in 0..request.accesses {
                    let page = rng.below(pages);
                    let addr = VAddr(base + page * PAGE);
                    if rng.unit() < request.write_fraction {
                        let _ = vm.write(addr, &word);
                    } else {
                        let _ = vm.read(addr, &mut word);
                    }
                    let spin_until =
                        Instant::now() + std::time::Duration::from_nanos(request.think_ns);
                    while Instant::now() < spin_until {
                        std::hint::spin_loop();
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_nanos() as u64;
    let after = vm.stats();
    drop(vm);
    let _ = std::fs::remove_file(&path);
    let faults = after.faults - before.faults;
    Ok(RunFigures {
        time_ns: elapsed,
        faults,
        faults_per_s: faults as f64 * 1e9 / elapsed.max(1) as f64,
        seek_aheads_issued: after.seek_aheads_issued - before.seek_aheads_issued,
        seek_aheads_used: after.seek_aheads_used - before.seek_aheads_used,
        ..RunFigures::default()
    })
}

/// Runs `bench seek-ahead`.
pub fn seek_ahead(request: &SeekAheadRequest) -> Result<SeekAheadReport, ToolError> {
    let simulated = request.disk != "file";
    let temp = tempfile::tempdir().map_err(|source| ToolError::File {
        path: std::env::temp_dir(),
        source,
    })?;
    let dir = request
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let bar = crate::drives::progress(2 * request.faulters.len() as u64, "seek-ahead");
    let mut rows = Vec::new();
    for &faulters in &request.faulters {
        if faulters == 0 {
            return Err(ToolError::Usage("a run needs at least one faulter".into()));
        }
        let row = if simulated {
            let off = simulated_run(request, faulters, false)?;
            bar.inc(1);
            let on = simulated_run(request, faulters, true)?;
            bar.inc(1);
            let model_ns = off.virtual_ns.saturating_sub(on.model_saving_ns);
            let saving = off.virtual_ns as f64 - on.virtual_ns as f64;
            SeekAheadRow {
                faulters,
                off: figures_of(&off),
                on: figures_of(&on),
                model_ns: Some(model_ns),
                saving_vs_model: (on.model_saving_ns > 0)
                    .then(|| saving / on.model_saving_ns as f64),
            }
        } else {
            let off = file_run(request, faulters, false, &dir)?;
            bar.inc(1);
            let on = file_run(request, faulters, true, &dir)?;
            bar.inc(1);
            SeekAheadRow {
                faulters,
                off,
                on,
                model_ns: None,
                saving_vs_model: None,
            }
        };
        rows.push(row);
    }
    bar.finish_and_clear();
    Ok(SeekAheadReport {
        request: request.clone(),
        simulated,
        rows,
    })
}

fn ms(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e6)
}

impl SeekAheadReport {
    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let r = &self.request;
        let mut t = format!(
            "seek-ahead on {} ({}), {:?}, {} pages through {} pages of real memory, {} accesses per faulter\n",
            r.disk,
            if self.simulated {
                "simulated, virtual time"
            } else {
                "real file, wall time"
            },
            r.pattern,
            r.working_set_pages,
            r.memory_pages,
            r.accesses
        );
        if self.simulated {
            t.push_str(&format!(
                "{:>8} {:>10} {:>10} {:>10} {:>7} {:>17} {:>13} {:>13} {:>11}\n",
                "faulters",
                "off ms",
                "on ms",
                "model ms",
                "saved",
                "saved/model ms",
                "mean off/on",
                "p99 off/on",
                "used/hints"
            ));
            for row in &self.rows {
                let saved = 1.0 - row.on.time_ns as f64 / row.off.time_ns.max(1) as f64;
                t.push_str(&format!(
                    "{:>8} {:>10} {:>10} {:>10} {:>6.1}% {:>17} {:>13} {:>13} {:>11}\n",
                    row.faulters,
                    ms(row.off.time_ns),
                    ms(row.on.time_ns),
                    row.model_ns.map_or("-".into(), ms),
                    saved * 100.0,
                    format!(
                        "{}/{}",
                        ms(row.off.time_ns.saturating_sub(row.on.time_ns)),
                        ms(row.on.model_saving_ns)
                    ),
                    format!("{}/{}", ms(row.off.fault_mean_ns), ms(row.on.fault_mean_ns)),
                    format!("{}/{}", ms(row.off.fault_p99_ns), ms(row.on.fault_p99_ns)),
                    format!("{}/{}", row.on.seek_aheads_used, row.on.seek_aheads_issued),
                ));
            }
        } else {
            t.push_str(&format!(
                "{:>8} {:>12} {:>12} {:>14} {:>14} {:>10}\n",
                "faulters", "off ms", "on ms", "faults/s off", "faults/s on", "used/hint"
            ));
            for row in &self.rows {
                t.push_str(&format!(
                    "{:>8} {:>12} {:>12} {:>14.0} {:>14.0} {:>10}\n",
                    row.faulters,
                    ms(row.off.time_ns),
                    ms(row.on.time_ns),
                    row.off.faults_per_s,
                    row.on.faults_per_s,
                    format!("{}/{}", row.on.seek_aheads_used, row.on.seek_aheads_issued),
                ));
            }
        }
        t
    }

    /// Draws mean fault service time against concurrent faulters (off, on,
    /// and the model's prediction) as an SVG file.
    pub fn plot(&self, path: &Path) -> Result<(), ToolError> {
        use plotters::prelude::*;
        let plot_error =
            |e: String| ToolError::Check(format!("{}: plotting failed: {e}", path.display()));
        type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);
        let series: Vec<Series<'_>> = {
            let mean = |f: &RunFigures| {
                if self.simulated {
                    f.fault_mean_ns as f64 / 1e6
                } else {
                    1e3 / f.faults_per_s.max(1e-9)
                }
            };
            let mut s = vec![
                (
                    "seek-ahead off",
                    RGBColor(200, 60, 40),
                    self.rows
                        .iter()
                        .map(|r| (r.faulters as f64, mean(&r.off)))
                        .collect(),
                ),
                (
                    "seek-ahead on",
                    RGBColor(40, 110, 200),
                    self.rows
                        .iter()
                        .map(|r| (r.faulters as f64, mean(&r.on)))
                        .collect(),
                ),
            ];
            if self.simulated {
                // In a saturated single-server queue a fault's waiting time
                // scales with the server's total time; the model's line
                // scales the off run's mean by the model's predicted time.
                s.push((
                    "disk model",
                    RGBColor(60, 150, 60),
                    self.rows
                        .iter()
                        .map(|r| {
                            let scale = r.model_ns.unwrap_or(r.off.time_ns) as f64
                                / r.off.time_ns.max(1) as f64;
                            (r.faulters as f64, mean(&r.off) * scale)
                        })
                        .collect(),
                ));
            }
            s
        };
        let x_max = self.rows.iter().map(|r| r.faulters).max().unwrap_or(1) as f64;
        let y_max = series
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|q| q.1))
            .fold(0.0, f64::max)
            * 1.1
            + 1e-9;
        let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(e.to_string()))?;
        let y_label = if self.simulated {
            "mean fault service time, ms (virtual)"
        } else {
            "wall time per fault, µs"
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "seek-ahead on {} — {:?} pages",
                    self.request.disk, self.request.pattern
                ),
                ("sans-serif", 22),
            )
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5..x_max + 0.5, 0.0..y_max)
            .map_err(|e| plot_error(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("concurrent faulters")
            .y_desc(y_label)
            .draw()
            .map_err(|e| plot_error(e.to_string()))?;
        for (name, color, points) in series {
            // The model is drawn dashed and on top, so a measured line that
            // meets it still shows.
            let style = color.stroke_width(2);
            let drawn = if name == "disk model" {
                chart.draw_series(DashedLineSeries::new(points.clone(), 8, 6, style))
            } else {
                chart.draw_series(LineSeries::new(points.clone(), style))
            };
            drawn
                .map_err(|e| plot_error(e.to_string()))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| plot_error(e.to_string()))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| plot_error(e.to_string()))?;
        root.present().map_err(|e| plot_error(e.to_string()))?;
        Ok(())
    }
}

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
    let bar = crate::drives::progress(5, "fault-path");
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
            &FileDriveOptions::create(PAGE as usize, pages + 1024),
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
    let anon = vm_core::kernel_reference::anonymous_first_touch_ns(zero_pages / 5, 5)
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
        vm_core::kernel_reference::file_mmap_fault_ns(&file, pages, 5).map_err(ToolError::Vm)?;
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

/// What `bench ipc` reports: message throughput between two processes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IpcReport {
    /// Messages sent per transport.
    pub messages: u64,
    /// Bytes per message.
    pub message_bytes: usize,
    /// Messages per second through the shared ring guarded by counting
    /// semaphores.
    pub ring_per_s: f64,
    /// Messages per second through a pipe, one `write` per message
    /// (baseline, same run).
    pub pipe_per_s: f64,
    /// Messages per second through a Unix stream socket, one `write` per
    /// message (baseline, same run).
    pub socket_per_s: f64,
    /// Messages per second through a pipe written in 64 KiB batches (the
    /// receiver sees a message only when its batch is written).
    pub pipe_batched_per_s: f64,
    /// Messages per second through a Unix socket written in 64 KiB batches.
    pub socket_batched_per_s: f64,
}

/// Message size of `bench ipc`.
pub const IPC_MESSAGE_BYTES: usize = 64;
const IPC_SLOTS: usize = 256;
const IPC_EMPTY: usize = 0;
const IPC_FULL: usize = 8;
const IPC_GO: usize = 16;
const IPC_RING: usize = 64;

/// Which transport an `ipc-peer` process sends through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpcTransport {
    /// The shared ring in the segment at this path.
    Ring(PathBuf),
    /// Standard output (a pipe to the parent); waits for a byte on
    /// standard input first. `true`: write in 64 KiB batches.
    Pipe(bool),
    /// A Unix socket at this path; `true`: write in 64 KiB batches.
    Socket(PathBuf, bool),
}

/// Writes `messages` messages to `out`, in batches or one `write` each.
fn send_stream(out: impl std::io::Write, messages: u64, batched: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(if batched { 64 * 1024 } else { 0 }, out);
    let mut message = [0u8; IPC_MESSAGE_BYTES];
    for i in 0..messages {
        message[..8].copy_from_slice(&i.to_le_bytes());
        out.write_all(&message)?;
    }
    out.flush()
}

/// Reads `messages` messages from `from`; returns the seconds taken.
fn receive_stream(mut from: impl std::io::Read, messages: u64) -> Result<f64, ToolError> {
    let mut buf = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let mut left = messages as usize * IPC_MESSAGE_BYTES;
    while left > 0 {
        let n = from
            .read(&mut buf[..left.min(64 * 1024)])
            .map_err(|source| ToolError::File {
                path: PathBuf::from("ipc stream"),
                source,
            })?;
        if n == 0 {
            return Err(ToolError::Check("the stream closed early".into()));
        }
        left -= n;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The sending side of `bench ipc`, run as a child process.
pub fn ipc_peer(transport: &IpcTransport, messages: u64) -> Result<(), ToolError> {
    use std::io::Read;
    let io = |source: std::io::Error| ToolError::File {
        path: PathBuf::from("ipc peer"),
        source,
    };
    match transport {
        IpcTransport::Ring(path) => {
            let segment =
                vm_core::shm::Segment::open(path).map_err(|e| ToolError::Check(e.to_string()))?;
            let shm = |e: vm_core::shm::ShmError| ToolError::Check(e.to_string());
            let empty = vm_core::shm::Semaphore::at(&segment, IPC_EMPTY).map_err(shm)?;
            let full = vm_core::shm::Semaphore::at(&segment, IPC_FULL).map_err(shm)?;
            let go = segment.word(IPC_GO).map_err(shm)?;
            while go.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                std::hint::spin_loop();
            }
            for i in 0..messages {
                empty.p();
                let slot = IPC_RING + (i as usize % IPC_SLOTS) * IPC_MESSAGE_BYTES;
                for w in 0..IPC_MESSAGE_BYTES / 4 {
                    segment
                        .word(slot + w * 4)
                        .map_err(shm)?
                        .store(i as u32 ^ w as u32, std::sync::atomic::Ordering::Relaxed);
                }
                full.v();
            }
        }
        IpcTransport::Pipe(batched) => {
            let mut go = [0u8; 1];
            std::io::stdin().read_exact(&mut go).map_err(io)?;
            // Standard output itself is line-buffered; write to its file
            // descriptor directly so that "one write per message" is one.
            let fd = std::os::fd::AsFd::as_fd(&std::io::stdout())
                .try_clone_to_owned()
                .map_err(io)?;
            send_stream(std::fs::File::from(fd), messages, *batched).map_err(io)?;
        }
        IpcTransport::Socket(path, batched) => {
            let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(io)?;
            let mut go = [0u8; 1];
            stream.read_exact(&mut go).map_err(io)?;
            send_stream(stream, messages, *batched).map_err(io)?;
        }
    }
    Ok(())
}

/// Runs `bench ipc`: `messages` messages of 64 bytes from a child process
/// to this one through the shared ring, a pipe and a Unix socket. The
/// child is `program` (the `cedarvm` binary) run as `bench ipc-peer`.
pub fn ipc(program: &Path, messages: u64) -> Result<IpcReport, ToolError> {
    use std::process::{Command, Stdio};
    let temp = tempfile::tempdir().map_err(|source| ToolError::File {
        path: std::env::temp_dir(),
        source,
    })?;
    let io = |source: std::io::Error| ToolError::File {
        path: program.to_path_buf(),
        source,
    };
    let shm = |e: vm_core::shm::ShmError| ToolError::Check(e.to_string());
    let peer = |transport: &[&str]| {
        let mut c = Command::new(program);
        c.args(["bench", "ipc-peer", "--messages", &messages.to_string()])
            .args(transport);
        c
    };
    let bar = crate::drives::progress(3, "ipc");
    use std::io::Write;

    // The shared ring.
    let path = temp.path().join("ring");
    let size = IPC_RING + IPC_SLOTS * IPC_MESSAGE_BYTES;
    let segment = vm_core::shm::Segment::create(&path, size, 0o600).map_err(shm)?;
    let empty = vm_core::shm::Semaphore::at(&segment, IPC_EMPTY).map_err(shm)?;
    let full = vm_core::shm::Semaphore::at(&segment, IPC_FULL).map_err(shm)?;
    empty.init(IPC_SLOTS as u32);
    let mut child = peer(&["--ring", path.to_str().expect("a UTF-8 temp path")])
        .spawn()
        .map_err(io)?;
    let started = Instant::now();
    segment
        .word(IPC_GO)
        .map_err(shm)?
        .store(1, std::sync::atomic::Ordering::SeqCst);
    for i in 0..messages {
        full.p();
        let slot = IPC_RING + (i as usize % IPC_SLOTS) * IPC_MESSAGE_BYTES;
        let first = segment
            .word(slot)
            .map_err(shm)?
            .load(std::sync::atomic::Ordering::Relaxed);
        if first != i as u32 {
            return Err(ToolError::Check(format!(
                "ring message {i} arrived as {first}"
            )));
        }
        black_box(
            segment
                .word(slot + IPC_MESSAGE_BYTES - 4)
                .map_err(shm)?
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        empty.v();
    }
    let ring_s = started.elapsed().as_secs_f64();
    child.wait().map_err(io)?;
    bar.inc(1);

    // A pipe and a Unix socket, one write per message and in batches.
    let mut stream_rates = Vec::new();
    for batched in [false, true] {
        let flag: &[&str] = if batched {
            &["--pipe", "--batched"]
        } else {
            &["--pipe"]
        };
        let mut child = peer(flag)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(io)?;
        let from = child.stdout.take().expect("piped");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(b"g")
            .map_err(io)?;
        stream_rates.push(messages as f64 / receive_stream(from, messages)?);
        child.wait().map_err(io)?;
        let socket = temp.path().join(format!("socket-{batched}"));
        let listener = std::os::unix::net::UnixListener::bind(&socket).map_err(io)?;
        let path = socket.to_str().expect("a UTF-8 temp path");
        let flag: &[&str] = if batched {
            &["--socket", path, "--batched"]
        } else {
            &["--socket", path]
        };
        let mut child = peer(flag).spawn().map_err(io)?;
        let (mut stream, _) = listener.accept().map_err(io)?;
        stream.write_all(b"g").map_err(io)?;
        stream_rates.push(messages as f64 / receive_stream(stream, messages)?);
        child.wait().map_err(io)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(IpcReport {
        messages,
        message_bytes: IPC_MESSAGE_BYTES,
        ring_per_s: messages as f64 / ring_s,
        pipe_per_s: stream_rates[0],
        socket_per_s: stream_rates[1],
        pipe_batched_per_s: stream_rates[2],
        socket_batched_per_s: stream_rates[3],
    })
}

impl IpcReport {
    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        format!(
            "{} messages of {} bytes from one process to another\n\
             {:<48} {:>12.0} msg/s\n\
             {:<48} {:>12.0} msg/s  (ring {:.2}×)\n\
             {:<48} {:>12.0} msg/s  (ring {:.2}×)\n\
             {:<48} {:>12.0} msg/s  (ring {:.2}×)\n\
             {:<48} {:>12.0} msg/s  (ring {:.2}×)\n",
            self.messages,
            self.message_bytes,
            "shared ring, counting semaphores",
            self.ring_per_s,
            "pipe, one write per message",
            self.pipe_per_s,
            self.ring_per_s / self.pipe_per_s,
            "Unix socket, one write per message",
            self.socket_per_s,
            self.ring_per_s / self.socket_per_s,
            "pipe, 64 KiB batches",
            self.pipe_batched_per_s,
            self.ring_per_s / self.pipe_batched_per_s,
            "Unix socket, 64 KiB batches",
            self.socket_batched_per_s,
            self.ring_per_s / self.socket_batched_per_s,
        )
    }
}
