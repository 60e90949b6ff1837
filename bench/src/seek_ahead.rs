//! `cedarvm bench seek-ahead`. On a simulated drive the run is the
//! deterministic simulation of [`vm_core::simulate`]: N faulting processes
//! drive the VM's real fault service on the virtual clock, once with
//! seek-ahead off and once on, for each N. Beside the measured figures
//! stands the disk model's: the time the model says the used hints saved,
//! `Σ min(seek, gap)` over the transfers that followed a hint (the drive
//! computes it as it serves the stream), so `off − Σ` is what the model
//! predicts for the seek-ahead run. On `--disk file` the run uses real
//! threads on a real file drive and reports wall time and faults per
//! second (no model). Tables, JSON and SVG plots (`plotters`).

use disk_channel::rng::SplitMix64;
use disk_channel::{DiskChannel, Drive, FileDrive, FileDriveOptions, SimDrive, SimModel};
use runtable::{FormatOptions, Interval, Volume};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use utility_mode::ToolError;
use utility_mode::progress::progress;
use vm_core::simulate::{AccessPattern, Report, Workload};
use vm_core::{Advice, Backing, VAddr, Vm, VmConfig};

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
        // The seed's experiment: the monitor held across I/O, faults
        // queued behind it naming the next transfer.
        monitor_scope: vm_core::MonitorScope::HeldAcrossIo,
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
        // The hint is page-cache read-ahead on a file: a buffered drive.
        &FileDriveOptions::create(PAGE as usize, pages + 1024)
            .with_cache(disk_channel::CachePolicy::Buffered),
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
    let bar = progress(2 * request.faulters.len() as u64, "seek-ahead");
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

/// An access pattern as the command line writes it (`random`,
/// `sequential`, `zipf 0.99`).
fn pattern_name(pattern: AccessPattern) -> String {
    match pattern {
        AccessPattern::Random => "random".into(),
        AccessPattern::Sequential => "sequential".into(),
        AccessPattern::Zipf { s } => format!("zipf {s}"),
    }
}

impl SeekAheadReport {
    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let r = &self.request;
        let mut t = format!(
            "seek-ahead on {} ({}), {}, {} pages through {} pages of real memory, {} accesses per faulter\n",
            r.disk,
            if self.simulated {
                "simulated, virtual time"
            } else {
                "real file, wall time"
            },
            pattern_name(r.pattern),
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
                    "seek-ahead on {} — {} pages",
                    self.request.disk,
                    pattern_name(self.request.pattern)
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
