//! `SimDrive`: a timed model of a moving-head disk (or of a solid-state
//! drive) on a virtual clock.
//!
//! # The model
//!
//! A rotating drive has `cylinders × heads × sectors_per_track` sectors of
//! `sector_bytes` each; a page of `P` bytes is `P / sector_bytes` consecutive
//! sectors, numbered cylinder-major (all tracks of cylinder 0, then of
//! cylinder 1, ...), so consecutive pages are consecutive on the medium.
//! A request is served as
//!
//! ```text
//!  issue = previous completion (or idle time) + software gap
//!  seek      t(d) = a + b·√d + c·d for d > 0 cylinders crossed, 0 for d = 0
//!  rotation  wait for the first sector to come under the head; the platter
//!            turns continuously: sector k of a track starts passing the
//!            head at k·rev/spt mod rev on the virtual clock
//!  transfer  one sector time per sector; a transfer that runs off the end
//!            of a cylinder seeks one cylinder and waits for sector 0
//! ```
//!
//! The seek curve is Ruemmler & Wilkes' square-root law ("An Introduction to
//! Disk Drive Modeling", IEEE Computer 27(3), 1994) with a linear term for
//! long seeks, so that a curve can be fitted to the three figures data
//! sheets give: single-cylinder (minimum), average and full-stroke
//! (maximum) seek. "Average" is the data-sheet definition: the mean over
//! all seeks of 1..=max cylinders weighted by how many start/end pairs have
//! that distance, `Σ (max+1-n)·t(n) / Σ (max+1-n)`. The design card's pure
//! square-root curve for the Diablo 31 (`15 + 8.6·√d`) cannot meet the
//! documented 15/70/135 ms at once (it gives 23.6/80/137), which is why the
//! curve has three terms and the Diablo 31 preset is fitted to its figures.
//!
//! # Software gap and seek-ahead
//!
//! Every request is issued a *software gap* after the drive last became
//! idle: the CPU work of restarting one faultee and taking the next fault.
//! With seek-ahead the arm starts moving to the hinted cylinder the moment
//! the transfer ends, so the gap overlaps the seek and a request saves about
//! `min(seek, gap)` (rotation then decides the rest). If the next request
//! goes elsewhere, the arm first finishes the hinted seek and then seeks
//! again — a wrong hint costs time, as it would on the hardware.
//!
//! Everything is integer nanoseconds and depends only on the requests, so
//! the same request sequence gives the same times on every run.

use crate::drive::check_transfer;
use crate::{DiskPage, Drive, DriveError, DriveStats};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

const NS_PER_MS: f64 = 1_000_000.0;

/// Seek time as a function of cylinders crossed: `a + b·√d + c·d` ms for
/// `d > 0`, zero for `d = 0`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeekCurve {
    /// `a`: the constant part (settle time), milliseconds.
    pub constant_ms: f64,
    /// `b`: the coefficient of `√d`, milliseconds.
    pub sqrt_ms: f64,
    /// `c`: the coefficient of `d`, milliseconds per cylinder.
    pub linear_ms: f64,
}

impl SeekCurve {
    /// A curve with no seek at all (solid-state drives).
    pub const NONE: SeekCurve = SeekCurve {
        constant_ms: 0.0,
        sqrt_ms: 0.0,
        linear_ms: 0.0,
    };

    /// Seek time in milliseconds for `distance` cylinders.
    pub fn seek_ms(&self, distance: u64) -> f64 {
        if distance == 0 {
            return 0.0;
        }
        let d = distance as f64;
        self.constant_ms + self.sqrt_ms * d.sqrt() + self.linear_ms * d
    }

    /// Seek time in whole nanoseconds for `distance` cylinders.
    pub fn seek_ns(&self, distance: u64) -> u64 {
        (self.seek_ms(distance) * NS_PER_MS).round() as u64
    }

    /// Single-cylinder seek, milliseconds.
    pub fn min_ms(&self) -> f64 {
        self.seek_ms(1)
    }

    /// Full-stroke seek over `cylinders`, milliseconds.
    pub fn max_ms(&self, cylinders: u64) -> f64 {
        self.seek_ms(cylinders.saturating_sub(1))
    }

    /// Data-sheet average seek over `cylinders`: every seek of 1..=max
    /// cylinders weighted by the number of start/end pairs at that distance.
    pub fn average_ms(&self, cylinders: u64) -> f64 {
        let (mean_sqrt, mean_linear) = distance_moments(cylinders);
        self.constant_ms + self.sqrt_ms * mean_sqrt + self.linear_ms * mean_linear
    }

    /// The curve through a data sheet's minimum (1 cylinder), average (as
    /// [`SeekCurve::average_ms`] defines it) and maximum (full stroke).
    pub fn fit(min_ms: f64, average_ms: f64, max_ms: f64, cylinders: u64) -> SeekCurve {
        assert!(cylinders >= 4, "a seek curve needs at least 4 cylinders");
        let max_distance = (cylinders - 1) as f64;
        let (mean_sqrt, mean_linear) = distance_moments(cylinders);
        // Rows: [1, √d, d] · [a, b, c] = t for d = 1, the weighted mean, and
        // d = max. Subtracting the first row leaves a 2×2 system in b, c.
        let (r1_b, r1_c, r1_t) = (
            max_distance.sqrt() - 1.0,
            max_distance - 1.0,
            max_ms - min_ms,
        );
        let (r2_b, r2_c, r2_t) = (mean_sqrt - 1.0, mean_linear - 1.0, average_ms - min_ms);
        let determinant = r1_b * r2_c - r1_c * r2_b;
        assert!(
            determinant.abs() > f64::EPSILON,
            "seek curve fit is singular"
        );
        let sqrt_ms = (r1_t * r2_c - r1_c * r2_t) / determinant;
        let linear_ms = (r1_b * r2_t - r1_t * r2_b) / determinant;
        SeekCurve {
            constant_ms: min_ms - sqrt_ms - linear_ms,
            sqrt_ms,
            linear_ms,
        }
    }
}

/// Weighted means of `√d` and `d` over seeks of 1..=max cylinders, each
/// distance weighted by `max + 1 - d` (the number of start/end pairs).
fn distance_moments(cylinders: u64) -> (f64, f64) {
    let max = cylinders.saturating_sub(1);
    let (mut sum_weight, mut sum_sqrt, mut sum_linear) = (0.0, 0.0, 0.0);
    for d in 1..=max {
        let weight = (max + 1 - d) as f64;
        sum_weight += weight;
        sum_sqrt += weight * (d as f64).sqrt();
        sum_linear += weight * d as f64;
    }
    if sum_weight == 0.0 {
        return (0.0, 0.0);
    }
    (sum_sqrt / sum_weight, sum_linear / sum_weight)
}

/// How the drive moves data: a rotating disk with an arm, or a solid-state
/// device with a fixed latency.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanics {
    /// A moving-head disk.
    #[serde(alias = "Rotating")]
    Rotating {
        /// Cylinders (arm positions).
        cylinders: u64,
        /// Heads (tracks per cylinder).
        heads: u64,
        /// Sectors per track.
        sectors_per_track: u64,
        /// Time of one revolution, nanoseconds.
        revolution_ns: u64,
        /// Seek time against distance.
        seek: SeekCurve,
    },
    /// A device with no seek: fixed latency plus transfer time.
    #[serde(alias = "Solid")]
    Solid {
        /// Fixed time per request, nanoseconds.
        latency_ns: u64,
        /// Transfer rate.
        bytes_per_second: u64,
        /// Capacity in sectors.
        sectors: u64,
    },
}

/// A drive model: mechanics, sector size and the software gap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimModel {
    /// Preset or model name.
    pub name: String,
    /// Bytes per sector; the page size must be a multiple.
    pub sector_bytes: u64,
    /// How the drive moves data.
    pub mechanics: Mechanics,
    /// CPU time charged before each request (restart the faultee, take the
    /// next fault), nanoseconds.
    pub software_gap_ns: u64,
}

impl SimModel {
    /// Alto Diablo Model 31 cartridge disk: 203 cylinders, 2 heads, 12
    /// sectors of 512 data bytes, 1500 rpm (40 ms per revolution); seek
    /// 15 ms minimum, 70 ms average, 135 ms maximum. Source: Alto Hardware
    /// Manual (Xerox PARC, 1979), disk section. The curve is fitted to those
    /// three figures (see the module doc). The software gap (2 ms: a Mesa
    /// fault, process switch and restart on the Alto) is assumed.
    pub fn diablo31() -> SimModel {
        SimModel {
            name: "diablo31".into(),
            sector_bytes: 512,
            mechanics: Mechanics::Rotating {
                cylinders: 203,
                heads: 2,
                sectors_per_track: 12,
                revolution_ns: 40_000_000,
                seek: SeekCurve::fit(15.0, 70.0, 135.0, 203),
            },
            software_gap_ns: 2_000_000,
        }
    }

    /// Alto Diablo Model 44 (and the Dorado's Trident formatted to look like
    /// two of them): 406 cylinders, 2 heads, 12 sectors of 512 bytes, 25 ms
    /// per revolution, seek `8 + 3·√d` ms. Source: the design card's figures
    /// from the Alto Hardware Manual; we found no independent data sheet, so
    /// the curve is taken as given. The software gap (2 ms) is assumed.
    pub fn diablo44() -> SimModel {
        SimModel {
            name: "diablo44".into(),
            sector_bytes: 512,
            mechanics: Mechanics::Rotating {
                cylinders: 406,
                heads: 2,
                sectors_per_track: 12,
                revolution_ns: 25_000_000,
                seek: SeekCurve {
                    constant_ms: 8.0,
                    sqrt_ms: 3.0,
                    linear_ms: 0.0,
                },
            },
            software_gap_ns: 2_000_000,
        }
    }

    /// The Dorado's Trident T-300: 815 cylinders, 19 heads, 9 sectors of
    /// 2048 bytes. Source: Alto Tfs (Trident file system) documentation.
    /// Its rotation speed and seek curve are not documented anywhere we
    /// found: **3600 rpm and the `diablo44` seek curve are assumed**, as is
    /// the software gap (200 µs: the Dorado is about ten times an Alto).
    pub fn trident_t300() -> SimModel {
        SimModel {
            name: "trident-t300".into(),
            sector_bytes: 2048,
            mechanics: Mechanics::Rotating {
                cylinders: 815,
                heads: 19,
                sectors_per_track: 9,
                revolution_ns: 16_666_667,
                seek: SeekCurve {
                    constant_ms: 8.0,
                    sqrt_ms: 3.0,
                    linear_ms: 0.0,
                },
            },
            software_gap_ns: 200_000,
        }
    }

    /// A modern 7200 rpm desktop disk: 4 KiB sectors, 100,000 cylinders,
    /// 4 heads, 500 sectors per track (about 820 GB; real drives are zoned,
    /// this one is not); seek 1.0 ms single-track, 8.5 ms average, 17 ms
    /// full stroke (typical data-sheet figures, e.g. Hitachi Deskstar
    /// 7K1000.C: 8.5 ms average read seek). The geometry and the software
    /// gap (5 µs) are assumed.
    pub fn modern_hdd() -> SimModel {
        SimModel {
            name: "modern-hdd".into(),
            sector_bytes: 4096,
            mechanics: Mechanics::Rotating {
                cylinders: 100_000,
                heads: 4,
                sectors_per_track: 500,
                revolution_ns: 8_333_333,
                seek: SeekCurve::fit(1.0, 8.5, 17.0, 100_000),
            },
            software_gap_ns: 5_000,
        }
    }

    /// A solid-state drive: no seek, 50 µs per request, 2 GB/s, 256 GiB.
    /// Figures are assumed (a typical SATA/NVMe read latency), as is the
    /// software gap (2 µs).
    pub fn ssd() -> SimModel {
        SimModel {
            name: "ssd".into(),
            sector_bytes: 4096,
            mechanics: Mechanics::Solid {
                latency_ns: 50_000,
                bytes_per_second: 2_000_000_000,
                sectors: 64 * 1024 * 1024,
            },
            software_gap_ns: 2_000,
        }
    }

    /// The preset called `name` (`diablo31`, `diablo44`, `trident-t300`,
    /// `modern-hdd`, `ssd`; as the command line writes them — the names
    /// with `_`, which reports used before, are read too).
    pub fn preset(name: &str) -> Option<SimModel> {
        match name {
            "diablo31" => Some(SimModel::diablo31()),
            "diablo44" => Some(SimModel::diablo44()),
            "trident-t300" | "trident_t300" => Some(SimModel::trident_t300()),
            "modern-hdd" | "modern_hdd" => Some(SimModel::modern_hdd()),
            "ssd" => Some(SimModel::ssd()),
            _ => None,
        }
    }

    /// The names [`SimModel::preset`] knows.
    pub const PRESETS: [&'static str; 5] =
        ["diablo31", "diablo44", "trident-t300", "modern-hdd", "ssd"];

    /// The same model with another software gap.
    pub fn with_software_gap_ns(mut self, gap_ns: u64) -> SimModel {
        self.software_gap_ns = gap_ns;
        self
    }

    /// Sectors on the drive.
    pub fn sectors(&self) -> u64 {
        match self.mechanics {
            Mechanics::Rotating {
                cylinders,
                heads,
                sectors_per_track,
                ..
            } => cylinders * heads * sectors_per_track,
            Mechanics::Solid { sectors, .. } => sectors,
        }
    }

    /// The seek curve (none for a solid-state drive).
    pub fn seek_curve(&self) -> SeekCurve {
        match self.mechanics {
            Mechanics::Rotating { seek, .. } => seek,
            Mechanics::Solid { .. } => SeekCurve::NONE,
        }
    }

    /// Cylinder of the sector `sector` (0 on a solid-state drive).
    pub fn cylinder_of_sector(&self, sector: u64) -> u64 {
        match self.mechanics {
            Mechanics::Rotating {
                heads,
                sectors_per_track,
                ..
            } => sector / (heads * sectors_per_track),
            Mechanics::Solid { .. } => 0,
        }
    }
}

/// A seek the arm started on a hint and may still be making.
#[derive(Clone, Copy, Debug)]
struct HintedSeek {
    /// The hinted page.
    page: DiskPage,
    /// When the arm started moving (the hinting transfer's end).
    start_ns: u64,
    /// Cylinder the arm is moving to.
    cylinder: u64,
    /// When it gets there.
    arrive_ns: u64,
}

type Media = Arc<Mutex<HashMap<u64, Box<[u8]>>>>;

/// A simulated drive: the timing model above plus the data, kept in memory
/// page by page (pages never written read as zeros).
pub struct SimDrive {
    name: String,
    model: SimModel,
    page_size: usize,
    page_count: u64,
    sectors_per_page: u64,
    media: Media,
    /// Virtual time at which the drive last became idle.
    now_ns: u64,
    /// Cylinder under the heads (once any hinted seek is done).
    arm_cylinder: u64,
    hinted: Option<HintedSeek>,
    stats: DriveStats,
}

impl std::fmt::Debug for SimDrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDrive")
            .field("name", &self.name)
            .field("page_size", &self.page_size)
            .field("page_count", &self.page_count)
            .field("now_ns", &self.now_ns)
            .finish_non_exhaustive()
    }
}

impl SimDrive {
    /// A drive of the given model with pages of `page_size` bytes, using the
    /// whole medium.
    pub fn new(model: SimModel, page_size: usize) -> Result<SimDrive, DriveError> {
        let name = format!("sim:{}", model.name);
        if page_size == 0 || !(page_size as u64).is_multiple_of(model.sector_bytes) {
            return Err(DriveError::Config {
                drive: name,
                reason: format!(
                    "page size {page_size} is not a multiple of the {}-byte sector",
                    model.sector_bytes
                ),
            });
        }
        let sectors_per_page = page_size as u64 / model.sector_bytes;
        let page_count = model.sectors() / sectors_per_page;
        if page_count == 0 {
            return Err(DriveError::Config {
                drive: name,
                reason: format!("a {page_size}-byte page is larger than the whole medium"),
            });
        }
        Ok(SimDrive {
            name,
            model,
            page_size,
            page_count,
            sectors_per_page,
            media: Arc::new(Mutex::new(HashMap::new())),
            now_ns: 0,
            arm_cylinder: 0,
            hinted: None,
            stats: DriveStats::default(),
        })
    }

    /// The preset called `name` with pages of `page_size` bytes.
    pub fn preset(name: &str, page_size: usize) -> Result<SimDrive, DriveError> {
        let model = SimModel::preset(name).ok_or_else(|| DriveError::Config {
            drive: format!("sim:{name}"),
            reason: format!("no such preset; known: {}", SimModel::PRESETS.join(", ")),
        })?;
        SimDrive::new(model, page_size)
    }

    /// Uses only the first `page_count` pages of the medium (a small drive
    /// for tests; the timing of those pages is unchanged).
    pub fn with_page_count(mut self, page_count: u64) -> Result<SimDrive, DriveError> {
        if page_count == 0 || page_count > self.page_count {
            return Err(DriveError::Config {
                drive: self.name,
                reason: format!(
                    "page count {page_count} is not within 1..={}",
                    self.page_count
                ),
            });
        }
        self.page_count = page_count;
        Ok(self)
    }

    /// Renames the drive (for messages).
    pub fn with_name(mut self, name: impl Into<String>) -> SimDrive {
        self.name = name.into();
        self
    }

    /// Another drive over the same medium, with a fresh clock, arm and
    /// counters: the pack moved to another spindle. Tests use it to look at
    /// what reached the medium, e.g. after a simulated crash.
    pub fn share_media(&self) -> SimDrive {
        SimDrive {
            name: self.name.clone(),
            model: self.model.clone(),
            page_size: self.page_size,
            page_count: self.page_count,
            sectors_per_page: self.sectors_per_page,
            media: Arc::clone(&self.media),
            now_ns: 0,
            arm_cylinder: 0,
            hinted: None,
            stats: DriveStats::default(),
        }
    }

    /// The drive's model.
    pub fn model(&self) -> &SimModel {
        &self.model
    }

    /// The cylinder a page starts on (0 on a solid-state drive).
    pub fn cylinder_of(&self, page: DiskPage) -> u64 {
        self.model
            .cylinder_of_sector(page.0 * self.sectors_per_page)
    }

    /// Pages that have been written at least once (the sparse medium's
    /// allocated pages).
    pub fn pages_stored(&self) -> usize {
        self.media.lock().len()
    }

    /// Serves the timing of one request of `count` pages at `page`; returns
    /// nothing but moves the clock, the arm and the counters.
    fn serve(&mut self, page: DiskPage, count: u64, seek_ahead: Option<DiskPage>) {
        let issue_ns = self.now_ns + self.model.software_gap_ns;
        let mut t = issue_ns;
        let hinted = self.hinted.take();
        if let Some(hint) = hinted {
            // The arm finishes the hinted seek whatever comes next.
            t = t.max(hint.arrive_ns);
            self.arm_cylinder = hint.cylinder;
            let used = match self.model.mechanics {
                Mechanics::Rotating { .. } => hint.cylinder == self.cylinder_of(page),
                Mechanics::Solid { .. } => hint.page == page,
            };
            if used {
                self.stats.seek_aheads_used += 1;
                let seek_ns = hint.arrive_ns - hint.start_ns;
                self.stats.seek_ahead_overlap_ns += seek_ns.min(issue_ns - hint.start_ns);
            }
        }
        match self.model.mechanics {
            Mechanics::Rotating {
                heads,
                sectors_per_track,
                revolution_ns,
                seek,
                ..
            } => {
                let sectors_per_cylinder = heads * sectors_per_track;
                let mut sector = page.0 * self.sectors_per_page;
                let mut remaining = count * self.sectors_per_page;
                while remaining > 0 {
                    let cylinder = sector / sectors_per_cylinder;
                    let in_cylinder = sector % sectors_per_cylinder;
                    if cylinder != self.arm_cylinder {
                        let distance = cylinder.abs_diff(self.arm_cylinder);
                        t += seek.seek_ns(distance);
                        self.stats.cylinders_crossed += distance;
                        self.arm_cylinder = cylinder;
                    }
                    // Rotational position: sector k of every track passes
                    // the head at sector_offset(k) mod revolution.
                    let first = in_cylinder % sectors_per_track;
                    let start = sector_offset_ns(first, sectors_per_track, revolution_ns);
                    let angle = t % revolution_ns;
                    t += (start + revolution_ns - angle) % revolution_ns;
                    let chunk = remaining.min(sectors_per_cylinder - in_cylinder);
                    t += sector_offset_ns(first + chunk, sectors_per_track, revolution_ns) - start;
                    sector += chunk;
                    remaining -= chunk;
                }
                if let Some(hint) = seek_ahead {
                    let cylinder = self.cylinder_of(hint);
                    let distance = cylinder.abs_diff(self.arm_cylinder);
                    self.stats.seek_aheads_issued += 1;
                    self.stats.cylinders_crossed += distance;
                    self.hinted = Some(HintedSeek {
                        page: hint,
                        start_ns: t,
                        cylinder,
                        arrive_ns: t + seek.seek_ns(distance),
                    });
                }
            }
            Mechanics::Solid {
                latency_ns,
                bytes_per_second,
                ..
            } => {
                let bytes = u128::from(count) * self.page_size as u128;
                t += latency_ns + (bytes * 1_000_000_000 / u128::from(bytes_per_second)) as u64;
                if let Some(hint) = seek_ahead {
                    self.stats.seek_aheads_issued += 1;
                    self.hinted = Some(HintedSeek {
                        page: hint,
                        start_ns: t,
                        cylinder: 0,
                        arrive_ns: t,
                    });
                }
            }
        }
        self.stats.busy_ns += t - issue_ns;
        self.now_ns = t;
    }
}

/// Time from the start of a track's sector 0 to the start of sector `k`
/// (`k` may run past the track: whole revolutions are added).
fn sector_offset_ns(k: u64, sectors_per_track: u64, revolution_ns: u64) -> u64 {
    (k / sectors_per_track) * revolution_ns
        + (k % sectors_per_track) * revolution_ns / sectors_per_track
}

impl Drive for SimDrive {
    fn name(&self) -> &str {
        &self.name
    }

    fn page_size(&self) -> usize {
        self.page_size
    }

    fn page_count(&self) -> u64 {
        self.page_count
    }

    fn read(
        &mut self,
        page: DiskPage,
        buf: &mut [u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        let count = check_transfer(self, page, buf.len())?;
        self.serve(page, count, seek_ahead);
        self.stats.reads += 1;
        self.stats.pages_read += count;
        let media = self.media.lock();
        for (i, chunk) in buf.chunks_exact_mut(self.page_size).enumerate() {
            match media.get(&(page.0 + i as u64)) {
                Some(data) => chunk.copy_from_slice(data),
                None => chunk.fill(0),
            }
        }
        Ok(())
    }

    fn write(
        &mut self,
        page: DiskPage,
        data: &[u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        let count = check_transfer(self, page, data.len())?;
        self.serve(page, count, seek_ahead);
        self.stats.writes += 1;
        self.stats.pages_written += count;
        let mut media = self.media.lock();
        for (i, chunk) in data.chunks_exact(self.page_size).enumerate() {
            media.insert(page.0 + i as u64, chunk.into());
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), DriveError> {
        self.stats.syncs += 1;
        Ok(())
    }

    fn stats(&self) -> DriveStats {
        self.stats
    }

    fn virtual_time_ns(&self) -> Option<u64> {
        Some(self.now_ns)
    }

    fn idle_until(&mut self, time_ns: u64) {
        self.now_ns = self.now_ns.max(time_ns);
    }
}
