//! `scavenge`: check a volume and, with `repair`, put it right.
//!
//! What is checked, in order: every drive's label (readable, same volume,
//! right position, drive not shorter than its label says); both header
//! slots (checksum, volume, geometry); the run table of each readable slot
//! against the volume — through a page map kept in the utility VM: the runs
//! are copied into a VM array, sorted there by disk address to find pages
//! mapped twice and by virtual page to find gaps and overlaps, and each run
//! is checked against the label/header pages, the spare pools and the bad
//! spots.
//!
//! What is repaired (only with `repair`):
//! - a slot that is torn, stale or holds a bad run table, while the other
//!   slot is good: both slots are rewritten from the good one;
//! - both slots unusable, labels intact: the run table is re-derived from
//!   the labels (the format rule over the format-time bad spots, then the
//!   recorded remaps), and both slots are written;
//! - a run that maps a page onto a bad spot: the page moves to a free spare
//!   (its contents copied if the bad page still reads) and the bad-spot
//!   entry records the spare;
//! - a missing, damaged or stale label: rewritten from the header.
//!
//! A truncated drive, a drive of another volume or in the wrong position,
//! and a volume with neither a readable label nor a readable header are
//! unrecoverable. Exit status of the `cedarvm scavenge` command: 0 clean,
//! 1 repaired or repairable, 2 unrecoverable.

use crate::drives::{open_channel, open_channel_read_only};
use crate::error::ToolError;
use crate::utility_vm::{UtilityVm, sort_records};
use disk_channel::{DiskChannel, DiskPage, DriveId};
use runtable::check::PlacementRules;
use runtable::header::{self, Header, RawHeader};
use runtable::label::{self, RawLabel};
use runtable::layout::{self, BadSpot, Geometry};
use runtable::{DiskAddr, MappingProblem, PageNumber, Run, RunTable, RunTableError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    /// Worth knowing; nothing to repair.
    Note,
    /// Wrong, and `--repair` can put it right.
    Repairable,
    /// Wrong beyond what the scavenger can repair.
    Unrecoverable,
}

/// One thing the scavenger found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// What, in a sentence naming the drive, slot or page.
    pub message: String,
}

/// The verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Nothing wrong.
    Clean,
    /// Something wrong that `--repair` can put right.
    Repairable,
    /// Something was wrong and has been put right.
    Repaired,
    /// Something wrong beyond repair.
    Unrecoverable,
}

impl Status {
    /// The `cedarvm scavenge` exit status, in the table every command
    /// shares: 0 clean, 1 repaired or repairable, 3 unrecoverable (2 is a
    /// usage error, 4 a check that could not be made).
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Clean => 0,
            Status::Repairable | Status::Repaired => 1,
            Status::Unrecoverable => 3,
        }
    }
}

/// What `scavenge` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScavengeReport {
    /// The verdict.
    pub status: Status,
    /// What was found, in the order checked.
    pub findings: Vec<Finding>,
    /// The header generation in force after the run.
    pub generation: Option<u64>,
    /// Runs checked (over both slots).
    pub runs_checked: u64,
    /// What was repaired, if anything.
    pub repairs: Vec<String>,
}

/// One header slot as found.
enum Slot {
    /// Never written: all zeros (slot 0 of a volume at generation 1).
    Blank,
    Unusable(String),
    Read {
        raw: RawHeader,
        problems: Vec<MappingProblem>,
    },
}

/// How to repair.
enum Plan {
    Rewrite {
        runs: Vec<Run>,
        bad: Vec<BadSpot>,
    },
    Rebuild,
    RemapBadSpots {
        runs: Vec<Run>,
        bad: Vec<BadSpot>,
        pages: Vec<(PageNumber, DiskAddr)>,
    },
}

struct Scavenger<'a> {
    channel: DiskChannel,
    paths: &'a [PathBuf],
    uvm: &'a UtilityVm,
    findings: Vec<Finding>,
    runs_checked: u64,
}

impl Scavenger<'_> {
    fn note(&mut self, severity: Severity, message: String) {
        self.findings.push(Finding { severity, message });
    }

    fn drive_name(&self, d: usize) -> String {
        format!("drive {d} ({})", self.paths[d].display())
    }

    fn read_labels(&mut self) -> Result<Vec<Option<RawLabel>>, ToolError> {
        let mut page = vec![0u8; self.channel.page_size()];
        let mut labels = Vec::new();
        for d in 0..self.channel.drive_count() {
            let label = match self
                .channel
                .read(DriveId(d as u16), DiskPage(0), &mut page, None)
            {
                Ok(()) => label::decode(&page).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match label {
                Ok(label) => labels.push(Some(label)),
                Err(reason) => {
                    let name = self.drive_name(d);
                    self.note(
                        Severity::Repairable,
                        format!("{name}: label unusable: {reason}"),
                    );
                    labels.push(None);
                }
            }
        }
        Ok(labels)
    }

    /// The volume's geometry: from a label, or failing all labels from
    /// header slot 0.
    fn geometry(&mut self, labels: &[Option<RawLabel>]) -> Option<Geometry> {
        let drives = self.channel.drive_count();
        if let Some(first) = labels.iter().flatten().next() {
            let drive_pages = (0..drives)
                .map(|d| match &labels[d] {
                    Some(l) => l.drive_pages,
                    None => self.channel.page_count(DriveId(d as u16)).unwrap_or(0),
                })
                .collect();
            for (d, l) in labels.iter().enumerate() {
                let Some(l) = l else { continue };
                if l.volume_id != first.volume_id || l.geometry != first.geometry {
                    let name = self.drive_name(d);
                    self.note(
                        Severity::Unrecoverable,
                        format!("{name}: belongs to another volume"),
                    );
                } else if usize::from(l.drive_index) != d {
                    let name = self.drive_name(d);
                    self.note(
                        Severity::Unrecoverable,
                        format!("{name}: is drive {} of its volume", l.drive_index),
                    );
                }
            }
            return match first.geometry.to_geometry(first.volume_id, drive_pages) {
                Ok(g) => Some(g),
                Err(e) => {
                    self.note(Severity::Unrecoverable, format!("label geometry: {e}"));
                    None
                }
            };
        }
        // No label: slot 0 starts at page 1 whatever the slot size.
        let page_size = self.channel.page_size();
        let pages = self
            .channel
            .page_count(DriveId(0))
            .ok()?
            .saturating_sub(1)
            .min(4096);
        let mut bytes = vec![0u8; pages as usize * page_size];
        self.channel
            .read(DriveId(0), DiskPage(1), &mut bytes, None)
            .ok()?;
        let raw = header::decode(&bytes).ok()?;
        raw.geometry
            .to_geometry(raw.volume_id, raw.drive_pages)
            .ok()
    }

    fn read_slot(&mut self, g: &Geometry, slot: u64) -> Result<Slot, ToolError> {
        let mut bytes = vec![0u8; g.header_slot_pages as usize * g.page_size];
        if let Err(e) = self.channel.read(
            DriveId(0),
            DiskPage(g.header_slot_start(slot)),
            &mut bytes,
            None,
        ) {
            return Ok(Slot::Unusable(format!("unreadable: {e}")));
        }
        if bytes.iter().all(|&b| b == 0) {
            return Ok(Slot::Blank);
        }
        let raw = match header::decode(&bytes) {
            Ok(raw) => raw,
            Err(e) => return Ok(Slot::Unusable(e.to_string())),
        };
        if raw.volume_id != g.volume_id {
            return Ok(Slot::Unusable("left over from another volume".into()));
        }
        match raw
            .geometry
            .to_geometry(raw.volume_id, raw.drive_pages.clone())
        {
            Ok(hg) if hg == *g => {}
            _ => {
                return Ok(Slot::Unusable(
                    "its geometry differs from the labels'".into(),
                ));
            }
        }
        let problems = self.check_runs(g, &raw.runs, &raw.bad_spots)?;
        Ok(Slot::Read { raw, problems })
    }

    /// Checks `runs` through a page map in the utility VM.
    fn check_runs(
        &mut self,
        g: &Geometry,
        runs: &[Run],
        bad: &[BadSpot],
    ) -> Result<Vec<MappingProblem>, ToolError> {
        self.runs_checked += runs.len() as u64;
        let mut problems = Vec::new();
        let rules = PlacementRules::new(bad);
        let map = self.uvm.array(runs.len() as u64 * 4)?;
        for (i, run) in runs.iter().enumerate() {
            if run.count.0 == 0 {
                problems.push(MappingProblem::Runs(RunTableError::EmptyRun {
                    index: i,
                    page: run.page,
                }));
                continue;
            }
            rules.run_problems(g, run, &mut problems);
            map.write_slice(
                i as u64 * 4,
                &[
                    u64::from(run.disk.drive.0),
                    run.disk.page.0,
                    run.count.0,
                    run.page.0,
                ],
            )?;
        }
        // Pages mapped twice: sort by (drive, disk page).
        sort_records(&map, 4, 2)?;
        let mut record = [0u64; 4];
        let mut previous: Option<[u64; 4]> = None;
        for i in 0..runs.len() as u64 {
            map.read_slice(i * 4, &mut record)?;
            if record[2] == 0 {
                continue;
            }
            if let Some(p) = previous
                && p[0] == record[0]
                && p[1].saturating_add(p[2]) > record[1]
            {
                problems.push(MappingProblem::OverlappingRuns {
                    first: PageNumber(p[3] + (record[1] - p[1])),
                    second: PageNumber(record[3]),
                    disk: DiskAddr::new(record[0] as u16, record[1]),
                });
            }
            previous = Some(record);
            // Reorder the record as (virtual page, count, drive, disk page)
            // for the second sort.
            map.write_slice(i * 4, &[record[3], record[2], record[0], record[1]])?;
        }
        // Coverage: sort by virtual page.
        sort_records(&map, 4, 1)?;
        let mut expected = 0u64;
        for i in 0..runs.len() as u64 {
            map.read_slice(i * 4, &mut record)?;
            if record[1] == 0 {
                continue;
            }
            if record[0] < expected {
                problems.push(MappingProblem::Runs(RunTableError::Overlap {
                    first: i as usize - 1,
                    second: i as usize,
                    page: PageNumber(record[0]),
                }));
            } else if record[0] > expected {
                problems.push(MappingProblem::Unmapped {
                    page: PageNumber(expected),
                    virtual_pages: g.virtual_pages,
                });
            }
            expected = expected.max(record[0].saturating_add(record[1]));
        }
        if expected < g.virtual_pages {
            problems.push(MappingProblem::Unmapped {
                page: PageNumber(expected),
                virtual_pages: g.virtual_pages,
            });
        }
        Ok(problems)
    }

    /// A spare page that is not bad and not yet assigned, preferring `drive`.
    fn free_spare(g: &Geometry, bad: &[BadSpot], drive: DriveId) -> Option<DiskAddr> {
        let taken: BTreeSet<DiskAddr> = bad
            .iter()
            .flat_map(|s| [Some(s.addr), s.spare])
            .flatten()
            .collect();
        let n = g.drive_count();
        (0..n)
            .map(|k| DriveId(((drive.index() + k) % n) as u16))
            .find_map(|d| {
                let (start, end) = g.spare_range(d);
                (start..end)
                    .map(|p| DiskAddr::new(d.0, p))
                    .find(|a| !taken.contains(a))
            })
    }

    /// Writes the header into both slots (generations `generation` and
    /// `generation + 1`) and every label, then syncs.
    fn write_everything(
        &self,
        g: &Geometry,
        runs: &[Run],
        bad: &[BadSpot],
        generation: u64,
    ) -> Result<(), ToolError> {
        for k in 0..2 {
            let h = Header {
                generation: generation + k,
                geometry: g.clone(),
                runs: runs.to_vec(),
                bad_spots: bad.to_vec(),
            };
            let mut bytes = header::encode(&h);
            let slot_bytes = g.header_slot_pages as usize * g.page_size;
            if bytes.len() > slot_bytes {
                return Err(ToolError::Check(format!(
                    "the repaired header needs {} bytes; the slot holds {slot_bytes}",
                    bytes.len()
                )));
            }
            bytes.resize(bytes.len().next_multiple_of(g.page_size), 0);
            let slot = (generation + k) % 2;
            self.channel.write(
                DriveId(0),
                DiskPage(g.header_slot_start(slot)),
                &bytes,
                None,
            )?;
            self.channel.sync(DriveId(0))?;
        }
        for d in 0..g.drive_count() {
            let spots: Vec<BadSpot> = bad
                .iter()
                .filter(|s| s.addr.drive.index() == d)
                .copied()
                .collect();
            let page = label::encode(g, d as u16, &spots);
            self.channel
                .write(DriveId(d as u16), DiskPage(0), &page, None)?;
            self.channel.sync(DriveId(d as u16))?;
        }
        Ok(())
    }
}

/// Checks the volume on `paths` and repairs it if `repair` is set. The
/// scavenger's page map lives in `uvm`.
pub fn scavenge(
    paths: &[PathBuf],
    repair: bool,
    uvm: &UtilityVm,
) -> Result<ScavengeReport, ToolError> {
    // Checking only reads: read-only files, shared locks.
    let channel = if repair {
        open_channel(paths, 4096)?
    } else {
        open_channel_read_only(paths, 4096)?
    };
    channel.lock_all()?;
    let mut s = Scavenger {
        channel,
        paths,
        uvm,
        findings: Vec::new(),
        runs_checked: 0,
    };
    // Four steps: labels, two header slots, verdict (and repair).
    let bar = crate::progress::progress(4, "scavenge");
    let labels = s.read_labels()?;
    bar.inc(1);
    let geometry = s.geometry(&labels);
    let unrecoverable = |s: Scavenger<'_>| ScavengeReport {
        status: Status::Unrecoverable,
        findings: s.findings,
        generation: None,
        runs_checked: s.runs_checked,
        repairs: Vec::new(),
    };
    let Some(g) = geometry else {
        s.note(
            Severity::Unrecoverable,
            "no readable label and no readable header: nothing to rebuild from".into(),
        );
        return Ok(unrecoverable(s));
    };
    if g.drive_count() != s.channel.drive_count() {
        s.note(
            Severity::Unrecoverable,
            format!(
                "the volume has {} drives but {} were given",
                g.drive_count(),
                s.channel.drive_count()
            ),
        );
        return Ok(unrecoverable(s));
    }
    if g.page_size != s.channel.page_size() {
        s.note(
            Severity::Unrecoverable,
            format!(
                "page size {} is not the drives' {}",
                g.page_size,
                s.channel.page_size()
            ),
        );
        return Ok(unrecoverable(s));
    }
    if let Err(e) = g.validate() {
        s.note(Severity::Unrecoverable, format!("geometry: {e}"));
        return Ok(unrecoverable(s));
    }
    for d in 0..g.drive_count() {
        let actual = s.channel.page_count(DriveId(d as u16))?;
        if actual < g.drive_pages[d] {
            let name = s.drive_name(d);
            s.note(
                Severity::Unrecoverable,
                format!(
                    "{name}: truncated: the label says {} pages, the drive has {actual}",
                    g.drive_pages[d]
                ),
            );
        }
    }
    if s.findings
        .iter()
        .any(|f| f.severity == Severity::Unrecoverable)
    {
        return Ok(unrecoverable(s));
    }

    let slot0 = s.read_slot(&g, 0)?;
    bar.inc(1);
    let slots = [slot0, s.read_slot(&g, 1)?];
    bar.inc(1);
    let mut newest_generation = 0;
    let mut best: Option<&RawHeader> = None;
    for (i, slot) in slots.iter().enumerate() {
        match slot {
            Slot::Blank => {}
            Slot::Unusable(reason) => {
                s.note(Severity::Repairable, format!("header slot {i}: {reason}"))
            }
            Slot::Read { raw, problems } => {
                newest_generation = newest_generation.max(raw.generation);
                if let Some(first) = problems.first() {
                    let more = if problems.len() > 1 {
                        format!(" (and {} more)", problems.len() - 1)
                    } else {
                        String::new()
                    };
                    s.note(
                        Severity::Repairable,
                        format!(
                            "header slot {i} (generation {}): {first}{more}",
                            raw.generation
                        ),
                    );
                } else if best.is_none_or(|b| raw.generation > b.generation) {
                    best = Some(raw);
                }
            }
        }
    }
    // Format leaves slot 0 blank until the second commit; at any later
    // generation a blank slot was lost.
    for (i, slot) in slots.iter().enumerate() {
        if matches!(slot, Slot::Blank) {
            if best.is_some_and(|b| b.generation == 1) {
                s.note(
                    Severity::Note,
                    format!("header slot {i}: not written yet (a freshly formatted volume)"),
                );
            } else {
                s.note(Severity::Repairable, format!("header slot {i}: blank"));
            }
        }
    }
    // A newer slot with problems than the good one: its changes are lost.
    let newest_bad = slots.iter().find_map(|slot| match slot {
        Slot::Read { raw, problems }
            if !problems.is_empty() && best.is_none_or(|b| raw.generation > b.generation) =>
        {
            Some((raw, problems))
        }
        _ => None,
    });
    let plan = match (best, newest_bad) {
        (_, Some((raw, problems)))
            if problems
                .iter()
                .all(|p| matches!(p, MappingProblem::OnBadSpot { .. })) =>
        {
            let pages = problems
                .iter()
                .filter_map(|p| match p {
                    MappingProblem::OnBadSpot { page, disk } => Some((*page, *disk)),
                    _ => None,
                })
                .collect();
            Plan::RemapBadSpots {
                runs: raw.runs.clone(),
                bad: raw.bad_spots.clone(),
                pages,
            }
        }
        (Some(good), _) => Plan::Rewrite {
            runs: good.runs.clone(),
            bad: good.bad_spots.clone(),
        },
        (None, _) if labels.iter().all(Option::is_some) => {
            s.note(
                Severity::Repairable,
                "no usable header slot: the run table can be rebuilt from the labels".into(),
            );
            Plan::Rebuild
        }
        (None, _) => {
            s.note(
                Severity::Unrecoverable,
                "no usable header slot and not every label is readable".into(),
            );
            return Ok(unrecoverable(s));
        }
    };
    // Labels whose bad-spot list differs from the table in force.
    if let Plan::Rewrite { bad, .. } = &plan {
        for (d, l) in labels.iter().enumerate() {
            let Some(l) = l else { continue };
            let want: BTreeSet<BadSpot> = bad
                .iter()
                .filter(|b| b.addr.drive.index() == d)
                .copied()
                .collect();
            let have: BTreeSet<BadSpot> = l.bad_spots.iter().copied().collect();
            if want != have {
                let name = s.drive_name(d);
                s.note(
                    Severity::Repairable,
                    format!("{name}: the label's bad-spot list is stale"),
                );
            }
        }
    }
    let wrong = s
        .findings
        .iter()
        .any(|f| f.severity == Severity::Repairable);
    let current_generation = best.map(|b| b.generation);
    if !wrong {
        return Ok(ScavengeReport {
            status: Status::Clean,
            findings: s.findings,
            generation: current_generation,
            runs_checked: s.runs_checked,
            repairs: Vec::new(),
        });
    }
    if !repair {
        return Ok(ScavengeReport {
            status: Status::Repairable,
            findings: s.findings,
            generation: current_generation,
            runs_checked: s.runs_checked,
            repairs: Vec::new(),
        });
    }
    let mut repairs = Vec::new();
    let (runs, bad) = match plan {
        Plan::Rewrite { runs, bad } => {
            repairs
                .push("rewrote both header slots and every label from the good header".to_string());
            (runs, bad)
        }
        Plan::Rebuild => {
            let mut bad: Vec<BadSpot> = labels
                .iter()
                .flatten()
                .flat_map(|l| l.bad_spots.iter().copied())
                .collect();
            bad.sort_by_key(|b| b.spare.is_some());
            let table = layout::derive_run_table(&g, &bad)?;
            repairs.push(format!(
                "rebuilt the run table ({} runs) from the labels",
                table.len()
            ));
            (table.runs().to_vec(), bad)
        }
        Plan::RemapBadSpots {
            runs,
            mut bad,
            pages,
        } => {
            let mut table = RunTable::new(runs).map_err(|e| ToolError::Check(e.to_string()))?;
            let mut buf = vec![0u8; g.page_size];
            for (page, disk) in pages {
                let spare = Scavenger::free_spare(&g, &bad, disk.drive).ok_or_else(|| {
                    ToolError::Check(format!("no spare page left to replace {disk}"))
                })?;
                let copied = s
                    .channel
                    .read(disk.drive, disk.page, &mut buf, None)
                    .is_ok();
                if !copied {
                    buf.fill(0);
                }
                s.channel.write(spare.drive, spare.page, &buf, None)?;
                table
                    .remap(page, spare)
                    .map_err(|e| ToolError::Check(e.to_string()))?;
                for entry in bad
                    .iter_mut()
                    .filter(|b| b.addr == disk && b.spare.is_none())
                {
                    entry.spare = Some(spare);
                }
                repairs.push(format!(
                    "moved {page} off bad spot {disk} to spare {spare} ({})",
                    if copied {
                        "contents copied"
                    } else {
                        "contents unreadable, zeroed"
                    }
                ));
            }
            (table.runs().to_vec(), bad)
        }
    };
    let problems = s.check_runs(&g, &runs, &bad)?;
    if let Some(p) = problems.first() {
        return Err(ToolError::Check(format!(
            "the repaired run table is still wrong: {p}"
        )));
    }
    let generation = newest_generation + 1;
    s.write_everything(&g, &runs, &bad, generation)?;
    Ok(ScavengeReport {
        status: Status::Repaired,
        findings: s.findings,
        generation: Some(generation + 1),
        runs_checked: s.runs_checked,
        repairs,
    })
}

impl ScavengeReport {
    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let mut t = String::new();
        for f in &self.findings {
            let tag = match f.severity {
                Severity::Note => "note",
                Severity::Repairable => "REPAIRABLE",
                Severity::Unrecoverable => "UNRECOVERABLE",
            };
            t.push_str(&format!("{tag:<14} {}\n", f.message));
        }
        for r in &self.repairs {
            t.push_str(&format!("{:<14} {r}\n", "repaired"));
        }
        let verdict = match self.status {
            Status::Clean => "clean",
            Status::Repairable => "repairable (run again with --repair)",
            Status::Repaired => "repaired",
            Status::Unrecoverable => "unrecoverable",
        };
        t.push_str(&format!(
            "{:<14} {verdict}; {} runs checked",
            "verdict", self.runs_checked
        ));
        if let Some(g) = self.generation {
            t.push_str(&format!("; header generation {g}"));
        }
        t.push('\n');
        t
    }
}
