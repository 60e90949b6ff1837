//! `scavenge`: check a volume and, with `repair`, put it right — never by
//! making it something else.
//!
//! **The header is the authority.** When either header slot holds a valid
//! header (checksum, geometry, at its own place on drive 0), it says what
//! the volume is: its id, page size, drive count and shape. Labels are
//! judged against it:
//! - a label that cannot be read, or that disagrees with the header about
//!   the volume's shape (a changed geometry field, a wrong drive size), is
//!   rewritten from the header — and so is drive 0's label when it names
//!   another volume, since the header on that same drive says whose it is;
//! - a drive whose label names another volume (other than drive 0), drives
//!   given out of order, a missing or extra drive, a truncated drive: the
//!   volume is *unrecoverable as given*, and the finding names the drive
//!   and what to give instead. Nothing is reshaped to fit what was given.
//!
//! Only when neither slot is valid do the labels speak for the volume (all
//! of them readable and agreeing), and the run table is rebuilt from them.
//!
//! **One validation.** A header slot's run table is judged by
//! [`runtable::check::mapping_problems_with`], the same rules
//! `Volume::open` applies; the one check that needs memory in proportion
//! to the table (no disk page mapped twice) sorts the runs in the tool's
//! utility VM. And before saying "clean", the scavenger opens the volume as
//! `info` and a VM would: a volume it calls clean always opens.
//!
//! **Repairable means repair can do it.** The repaired run table and
//! bad-spot table are worked out while checking and checked by the same
//! rules; if they would not pass (no spare left for a page on a bad spot,
//! an impossible bad-spot entry in every copy), the finding is
//! unrecoverable, not repairable. What repair does:
//! - a slot that is torn, stale, of another volume or holds a bad run
//!   table, while the other slot is good: both slots are rewritten from the
//!   good one;
//! - no good slot, but the newest one is put right by sorting its runs or
//!   by dropping bad-spot entries for pages that are not on the volume (no
//!   page can live there): that table is written;
//! - no good slot, every label readable: the run table is re-derived from
//!   the labels (the format rule over the format-time bad spots, then the
//!   recorded remaps);
//! - a run that maps a page onto a bad spot: the page moves to a free spare
//!   (its contents copied if the bad page still reads) and the bad-spot
//!   entry records the spare;
//! - every label is rewritten from the header in force.
//!
//! After writing, the repaired volume must open, or the scavenger fails.
//! Exit status of the `cedarvm scavenge` command: 0 clean, 1 repaired or
//! repairable, 3 unrecoverable as given.

use crate::drives::{
    find_header, find_header_of, open_channel_at, page_size_candidates, volume_page_size,
};
use crate::error::ToolError;
use crate::utility_vm::{UtilityVm, sort_records};
use disk_channel::{DiskChannel, DiskPage, DriveId};
use runtable::check::mapping_problems_with;
use runtable::header::{self, Header, RawHeader};
use runtable::label::{self, RawLabel};
use runtable::layout::{self, BadSpot, Geometry};
use runtable::{DiskAddr, MappingProblem, PageNumber, Run, RunTable, RunTableError, Volume};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Worth knowing; nothing to repair.
    #[serde(alias = "Note")]
    Note,
    /// Wrong, and `--repair` can put it right.
    #[serde(alias = "Repairable")]
    Repairable,
    /// Wrong beyond what the scavenger can repair.
    #[serde(alias = "Unrecoverable")]
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
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Nothing wrong.
    #[serde(alias = "Clean")]
    Clean,
    /// Something wrong that `--repair` can put right.
    #[serde(alias = "Repairable")]
    Repairable,
    /// Something was wrong and has been put right.
    #[serde(alias = "Repaired")]
    Repaired,
    /// Something wrong beyond repair.
    #[serde(alias = "Unrecoverable")]
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
    /// Runs checked, over every header slot checked (a volume of 128 runs
    /// with both slots written: 256).
    pub runs_checked: u64,
    /// Header slots whose run table was checked (0, 1 or 2).
    #[serde(default)]
    pub slots_checked: u32,
    /// What was repaired, if anything.
    pub repairs: Vec<String>,
    /// Bytes of real memory the scavenger's utility VM took for its page
    /// map: what the run table needs (0 if no run table was checked).
    #[serde(default)]
    pub memory_bytes: u64,
}

/// One header slot as read from drive 0.
enum Slot {
    /// Never written: its first page is all zeros (slot 0 of a volume at
    /// generation 1).
    Blank,
    /// Not a usable header: why.
    Unusable(String),
    /// A header of a newer format version: not damage, and not this
    /// scavenger's to judge or overwrite.
    Newer(String),
    /// A header whose checksum and geometry check out, at the place its own
    /// geometry gives the slot.
    Read { raw: RawHeader, geometry: Geometry },
}

/// A header slot judged against the volume in force.
enum Judged {
    Blank,
    Unusable(String),
    Good(RawHeader),
    Bad {
        raw: RawHeader,
        problems: Vec<MappingProblem>,
    },
}

/// The run table and bad-spot table a repair would write, and how it gets
/// them.
struct Target {
    runs: Vec<Run>,
    bad: Vec<BadSpot>,
    /// Pages to move off bad spots first: (virtual page, bad spot, spare).
    moves: Vec<(PageNumber, DiskAddr, DiskAddr)>,
    /// What the repair does, in a sentence.
    what: String,
}

/// Why a drive's label page is unusable, and what is left of it.
#[derive(Clone, Debug, Default)]
struct UnusableLabel {
    /// The page holds no label at all (not even the magic).
    no_label: bool,
    /// Written by a newer format version: not damage, not ours to judge.
    newer: bool,
    /// The volume id bytes of a label whose checksum failed (they may be
    /// the damaged bytes themselves).
    volume_id: Option<u128>,
    /// The page holds a surface scan's pattern (`cedarvm scan` ran over
    /// the drive, and overwrote data pages with it).
    scanned: bool,
    /// Why, in words.
    reason: String,
}

struct Scavenger<'a> {
    channel: DiskChannel,
    paths: &'a [PathBuf],
    /// The tool's real-memory limit (`None`: what the work needs).
    memory: Option<u64>,
    /// The utility VM that holds the page map, and its memory in bytes:
    /// made once the work's size is known.
    uvm: Option<(u64, UtilityVm)>,
    findings: Vec<Finding>,
    runs_checked: u64,
    slots_checked: u32,
    /// Rewrite the label of a drive that holds no label at all.
    force: bool,
    /// Per drive, why its label is unusable (and whether the page holds no
    /// label at all): `None` for a readable label.
    unusable_labels: Vec<Option<UnusableLabel>>,
    /// Drives whose label names another volume: said once, and not judged
    /// again by this volume's sizes.
    not_this_volume: Vec<usize>,
}

impl<'a> Scavenger<'a> {
    fn new(channel: DiskChannel, paths: &'a [PathBuf], options: &ScavengeOptions) -> Scavenger<'a> {
        Scavenger {
            channel,
            paths,
            memory: options.memory,
            uvm: None,
            findings: Vec::new(),
            runs_checked: 0,
            slots_checked: 0,
            force: options.force,
            unusable_labels: Vec::new(),
            not_this_volume: Vec::new(),
        }
    }

    fn note(&mut self, severity: Severity, message: String) {
        self.findings.push(Finding { severity, message });
    }

    fn memory_bytes(&self) -> u64 {
        self.uvm.as_ref().map_or(0, |(bytes, _)| *bytes)
    }

    fn unrecoverable(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Unrecoverable)
    }

    fn drive_name(&self, d: usize) -> String {
        format!("drive {d} ({})", self.paths[d].display())
    }

    fn read_labels(&mut self) -> Result<Vec<Option<RawLabel>>, ToolError> {
        let mut page = vec![0u8; self.channel.page_size()];
        let mut labels = Vec::new();
        for d in 0..self.channel.drive_count() {
            use runtable::envelope::StructError;
            let label = match self
                .channel
                .read(DriveId(d as u16), DiskPage(0), &mut page, None)
            {
                Ok(()) => label::decode(&page).map_err(|e| UnusableLabel {
                    no_label: matches!(e, StructError::WrongMagic { .. }),
                    newer: matches!(e, StructError::FutureVersion { .. }),
                    volume_id: page
                        .get(16..32)
                        .and_then(|b| b.try_into().ok())
                        .map(u128::from_le_bytes),
                    scanned: page.iter().any(|&b| b != 0)
                        && crate::scan::is_scan_leftover(
                            &page,
                            0,
                            std::fs::metadata(&self.paths[d]).map_or(0, |m| m.len()),
                        ),
                    reason: e.to_string(),
                }),
                Err(e) => Err(UnusableLabel {
                    reason: e.to_string(),
                    ..UnusableLabel::default()
                }),
            };
            match label {
                Ok(label) => {
                    labels.push(Some(label));
                    self.unusable_labels.push(None);
                }
                Err(unusable) => {
                    labels.push(None);
                    self.unusable_labels.push(Some(unusable));
                }
            }
        }
        Ok(labels)
    }

    /// The header in slot `slot` if it starts at page `start` of drive 0.
    fn read_header_at(&self, slot: u64, start: u64) -> Slot {
        let page_size = self.channel.page_size();
        let drive_pages = match self.channel.page_count(DriveId(0)) {
            Ok(pages) => pages,
            Err(e) => return Slot::Unusable(format!("unreadable: {e}")),
        };
        if start >= drive_pages {
            return Slot::Unusable(format!(
                "it would start at page {start}, past the end of drive 0"
            ));
        }
        let mut first = vec![0u8; page_size];
        if let Err(e) = self
            .channel
            .read(DriveId(0), DiskPage(start), &mut first, None)
        {
            return Slot::Unusable(format!("unreadable: {e}"));
        }
        if first.iter().all(|&b| b == 0) {
            return Slot::Blank;
        }
        let bytes = match header::claimed_length(&first) {
            Some(length) if length > runtable::HEADER_BYTES_MAX => {
                return Slot::Unusable(format!("it claims {length} bytes"));
            }
            Some(length) if length > page_size => {
                let pages = length.div_ceil(page_size) as u64;
                if start + pages > drive_pages {
                    return Slot::Unusable(format!(
                        "its {length} bytes would run past the end of drive 0"
                    ));
                }
                let mut bytes = vec![0u8; pages as usize * page_size];
                if let Err(e) = self
                    .channel
                    .read(DriveId(0), DiskPage(start), &mut bytes, None)
                {
                    return Slot::Unusable(format!("unreadable: {e}"));
                }
                bytes
            }
            _ => first,
        };
        let raw = match header::decode(&bytes) {
            Ok(raw) => raw,
            Err(e @ runtable::envelope::StructError::FutureVersion { .. }) => {
                return Slot::Newer(e.to_string());
            }
            Err(e) => return Slot::Unusable(e.to_string()),
        };
        if raw.generation == 0 {
            return Slot::Unusable("generation 0".into());
        }
        let geometry = match raw
            .geometry
            .to_geometry(raw.volume_id, raw.drive_pages.clone())
        {
            Ok(g) => g,
            Err(e) => return Slot::Unusable(format!("geometry: {e}")),
        };
        if let Err(e) = geometry.validate() {
            return Slot::Unusable(format!("geometry: {e}"));
        }
        if geometry.page_size != page_size {
            return Slot::Unusable(format!(
                "its page size {} is not the drives' {page_size}",
                geometry.page_size
            ));
        }
        // As `open` reads it: no more than the slot holds.
        let length = header::claimed_length(&bytes).unwrap_or(0);
        let slot_bytes = geometry.header_slot_pages as usize * page_size;
        if length > slot_bytes {
            return Slot::Unusable(format!(
                "its {length} bytes overflow its slot of {slot_bytes}"
            ));
        }
        // Commits count one at a time: no volume gets near 2^62, and a
        // repair must have room to count on.
        if raw.generation > runtable::GENERATION_MAX {
            return Slot::Unusable(format!("generation {} is impossible", raw.generation));
        }
        if geometry.header_slot_start(slot) != start {
            return Slot::Unusable(format!(
                "its geometry puts slot {slot} at page {}, not {start}",
                geometry.header_slot_start(slot)
            ));
        }
        Slot::Read { raw, geometry }
    }

    /// Both header slots. Slot 0 starts at page 1; where slot 1 starts
    /// (after slot 0's pages) comes from slot 0's header, else from the
    /// labels, else from a search of drive 0 for a header.
    ///
    /// A header no readable label names is not taken for the volume's when
    /// it was found by searching drive 0, or at a page size no label has
    /// (without `--force`): a volume formatted over an older one of
    /// another page size keeps the old header in a data page, and a file's
    /// data can hold anything.
    fn read_slots(&self, labels: &[Option<RawLabel>]) -> [Slot; 2] {
        let (slot0, slot1, searched) = self.find_slots(labels);
        let page_size = self.channel.page_size();
        let ids: BTreeSet<u128> = labels.iter().flatten().map(|l| l.volume_id).collect();
        let at_labels_page_size = labels
            .iter()
            .flatten()
            .any(|l| l.geometry.page_size as usize == page_size);
        let trust = |slot: Slot, searched: bool| match slot {
            Slot::Read { raw, .. }
                if !self.force
                    && !ids.is_empty()
                    && !ids.contains(&raw.volume_id)
                    && (searched || !at_labels_page_size) =>
            {
                Slot::Unusable(format!(
                    "a header of volume {:032x}, which no label names, found {}: not taken \
                     for this volume's (--repair --force takes it)",
                    raw.volume_id,
                    if searched {
                        "by searching drive 0"
                    } else {
                        "at a page size no label has"
                    }
                ))
            }
            other => other,
        };
        [trust(slot0, false), trust(slot1, searched)]
    }

    /// Both slots as found, and whether slot 1 was found by a search.
    fn find_slots(&self, labels: &[Option<RawLabel>]) -> (Slot, Slot, bool) {
        let slot0 = self.read_header_at(0, 1);
        let mut starts = Vec::new();
        if let Slot::Read { geometry, .. } = &slot0 {
            starts.push(geometry.header_slot_start(1));
        }
        for l in labels.iter().flatten() {
            starts.push(1 + u64::from(l.geometry.header_slot_pages));
        }
        let mut slot1 = Slot::Unusable(
            "where it starts is unknown: neither a label nor header slot 0 says".into(),
        );
        let mut seen = BTreeSet::new();
        let mut searched = false;
        loop {
            for &start in &starts {
                if !seen.insert(start) {
                    continue;
                }
                match self.read_header_at(1, start) {
                    found @ Slot::Read { .. } => return (slot0, found, searched),
                    Slot::Blank => slot1 = Slot::Blank,
                    other => {
                        if !matches!(slot1, Slot::Blank) {
                            slot1 = other;
                        }
                    }
                }
            }
            // Not where the labels say (a label's slot size may be what is
            // damaged): where a search of drive 0 finds a header, once.
            if searched || matches!(slot0, Slot::Read { .. }) {
                break;
            }
            searched = true;
            match find_header_of(&self.paths[0], self.channel.page_size()) {
                Some(found) if found.slot == 1 => {
                    starts = vec![1 + u64::from(found.raw.geometry.header_slot_pages)];
                }
                _ => break,
            }
        }
        (slot0, slot1, false)
    }

    /// The volume's geometry from its header: the valid slot, or of two
    /// that disagree about the volume, the one more labels agree with (then
    /// the newer).
    fn header_geometry(slots: &[Slot; 2], labels: &[Option<RawLabel>]) -> Option<Geometry> {
        let agreeing = |g: &Geometry| {
            (0..labels.len())
                .filter(|&d| {
                    d < g.drive_count()
                        && labels[d]
                            .as_ref()
                            .is_some_and(|l| label_disagreement(l, g, d).is_none())
                })
                .count()
        };
        slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Read { raw, geometry } => {
                    Some((agreeing(geometry), raw.generation, geometry))
                }
                _ => None,
            })
            .max_by_key(|(agree, generation, _)| (*agree, *generation))
            .map(|(_, _, g)| g.clone())
    }

    /// Judges every label against the header's geometry `g`.
    fn check_labels_against(&mut self, g: &Geometry, labels: &[Option<RawLabel>]) {
        for (d, l) in labels.iter().enumerate() {
            if d >= g.drive_count() {
                continue;
            }
            let name = self.drive_name(d);
            let Some(l) = l else {
                let unusable = self.unusable_labels[d].clone().unwrap_or_default();
                let reason = &unusable.reason;
                // A damaged label, or drive 0's (the header on the same
                // drive says whose it is), is rewritten from the header.
                // A page with no label at all on another drive — or a
                // damaged label whose volume id bytes name another volume
                // — may be a file that is not this volume's drive: only
                // --force makes it one. A newer format is not damage.
                let foreign = unusable.volume_id.is_some_and(|id| id != g.volume_id);
                if unusable.scanned {
                    self.note(
                        Severity::Note,
                        format!(
                            "{name}: its label page holds a surface scan's pattern: \
                             `cedarvm scan` ran over this drive after the volume was written, \
                             and overwrote data pages with it too (every 61st page in a quick \
                             scan, every page in a full one): a repair brings back the \
                             volume's structure, not what those pages held"
                        ),
                    );
                }
                if unusable.newer {
                    self.note(
                        Severity::Unrecoverable,
                        format!(
                            "{name}: its label was written by a newer cedar-vm ({reason}): \
                             this one cannot judge or repair it"
                        ),
                    );
                } else if d == 0 || (!unusable.no_label && !foreign) {
                    self.note(
                        Severity::Repairable,
                        format!("{name}: label unusable ({reason}): the repair rewrites it from the header"),
                    );
                } else if self.force {
                    self.note(
                        Severity::Repairable,
                        format!(
                            "{name}: holds no label of this volume ({reason}): the repair \
                             rewrites it from the header, as --force asks"
                        ),
                    );
                } else if foreign && !unusable.no_label {
                    self.note(
                        Severity::Unrecoverable,
                        format!(
                            "{name}: its damaged label names another volume ({:032x}; this \
                             volume is {:032x}): give this volume's drive {d}; if this file is \
                             that drive, --repair --force rewrites the label from the header",
                            unusable.volume_id.unwrap_or_default(),
                            g.volume_id
                        ),
                    );
                    self.not_this_volume.push(d);
                } else {
                    self.note(
                        Severity::Unrecoverable,
                        format!(
                            "{name}: holds no cedar-vm label ({reason}): give this volume's \
                             drive {d}; if this file is that drive and only its label page was \
                             overwritten, --repair --force rewrites the label from the header"
                        ),
                    );
                }
                continue;
            };
            if l.volume_id != g.volume_id {
                if d == 0 {
                    self.note(
                        Severity::Repairable,
                        format!(
                            "{name}: its label names volume {:032x}, but the header on the \
                             same drive is volume {:032x}'s: the repair rewrites the label from the header",
                            l.volume_id, g.volume_id
                        ),
                    );
                } else {
                    self.note(
                        Severity::Unrecoverable,
                        format!(
                            "{name}: belongs to another volume ({:032x}; this volume is \
                             {:032x}): give this volume's drive {d}",
                            l.volume_id, g.volume_id
                        ),
                    );
                    self.not_this_volume.push(d);
                }
            } else if usize::from(l.drive_index) != d {
                self.note(
                    Severity::Unrecoverable,
                    format!(
                        "{name}: is drive {} of this volume, given as drive {d}: give the \
                         drives in their order",
                        l.drive_index
                    ),
                );
            } else if let Some(what) = label_disagreement(l, g, d) {
                self.note(
                    Severity::Repairable,
                    format!(
                        "{name}: its label disagrees with the header ({what}): the repair \
                         rewrites the label from the header"
                    ),
                );
            }
        }
    }

    /// The volume's geometry from its labels, when no header slot is valid:
    /// the first readable label's, every other label agreeing.
    fn label_geometry(&mut self, labels: &[Option<RawLabel>]) -> Option<Geometry> {
        for d in 0..labels.len() {
            if let Some(UnusableLabel {
                reason, scanned, ..
            }) = self.unusable_labels[d].clone()
            {
                let name = self.drive_name(d);
                let what = if scanned {
                    "its label page holds a surface scan's pattern (`cedarvm scan` wrote over \
                     this drive)"
                        .to_string()
                } else {
                    format!("label unusable ({reason})")
                };
                // Why the other drives' labels are not enough: each label
                // lists its own drive's bad spots, which the run table
                // needs, and only a header holds them all.
                let others = if labels.iter().flatten().next().is_some() {
                    ": the other drives' labels give the volume's shape, but only this \
                     drive's label or a header lists its bad spots, which the run table needs"
                } else {
                    ""
                };
                self.note(
                    Severity::Unrecoverable,
                    format!("{name}: {what}, and no readable header to rewrite it from{others}"),
                );
            }
        }
        let Some(first) = labels.iter().flatten().next() else {
            self.note(
                Severity::Unrecoverable,
                "no readable label and no readable header: nothing to rebuild from".into(),
            );
            return None;
        };
        let drive_pages = (0..labels.len())
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
                    format!(
                        "{name}: its label belongs to another volume than the first \
                         readable label's, and no header says which is right"
                    ),
                );
            } else if usize::from(l.drive_index) != d {
                let name = self.drive_name(d);
                self.note(
                    Severity::Unrecoverable,
                    format!(
                        "{name}: is drive {} of its volume, given as drive {d}: give the \
                         drives in their order",
                        l.drive_index
                    ),
                );
            }
        }
        if usize::from(first.geometry.drive_count) != labels.len() {
            self.note(
                Severity::Unrecoverable,
                format!(
                    "the labels say the volume has {} drive{}, but {} {} given",
                    first.geometry.drive_count,
                    if first.geometry.drive_count == 1 {
                        ""
                    } else {
                        "s"
                    },
                    labels.len(),
                    if labels.len() == 1 { "was" } else { "were" }
                ),
            );
            return None;
        }
        match first.geometry.to_geometry(first.volume_id, drive_pages) {
            Ok(g) => Some(g),
            Err(e) => {
                self.note(Severity::Unrecoverable, format!("label geometry: {e}"));
                None
            }
        }
    }

    /// What was given against what the volume is: drive count, page size,
    /// drive sizes.
    fn check_shape(&mut self, g: &Geometry) -> Result<(), ToolError> {
        let given = self.channel.drive_count();
        if g.drive_count() > given {
            self.note(
                Severity::Unrecoverable,
                format!(
                    "the volume has {} but {} given: drive {} and on are missing \
                     (give every drive, in order)",
                    count(g.drive_count(), "drive"),
                    given_drives(given),
                    given
                ),
            );
        } else if g.drive_count() < given {
            let extra: Vec<String> = (g.drive_count()..given)
                .map(|d| self.drive_name(d))
                .collect();
            self.note(
                Severity::Unrecoverable,
                format!(
                    "the volume has {} but {} given: {} not part of it",
                    count(g.drive_count(), "drive"),
                    given_drives(given),
                    extra.join(", ")
                ),
            );
        }
        if g.page_size != self.channel.page_size() {
            self.note(
                Severity::Unrecoverable,
                format!(
                    "page size {} is not the drives' {}",
                    g.page_size,
                    self.channel.page_size()
                ),
            );
        }
        if let Err(e) = g.validate() {
            self.note(Severity::Unrecoverable, format!("geometry: {e}"));
        }
        for d in 0..g.drive_count().min(given) {
            let actual = self.channel.page_count(DriveId(d as u16))?;
            if actual < g.drive_pages[d] && !self.not_this_volume.contains(&d) {
                let name = self.drive_name(d);
                self.note(
                    Severity::Unrecoverable,
                    format!(
                        "{name}: truncated: the volume says {} pages, the drive has {actual} \
                         (if it was cut short by mistake, `truncate -s {}` puts its length back, \
                         and what was cut off reads as zeros)",
                        g.drive_pages[d],
                        g.drive_pages[d] * g.page_size as u64
                    ),
                );
            }
        }
        Ok(())
    }

    /// Every problem of `runs` and `bad` on the volume `g`: the rules
    /// `open` applies, the one-to-one check done in the utility VM.
    fn problems(
        &mut self,
        g: &Geometry,
        runs: &[Run],
        bad: &[BadSpot],
    ) -> Result<Vec<MappingProblem>, ToolError> {
        self.runs_checked += runs.len() as u64;
        let uvm = self.page_map_memory(runs.len())?;
        mapping_problems_with(g, runs, bad, |table| one_to_one(uvm, table))
    }

    /// The utility VM, with room for a page map of `runs` runs (four words
    /// a run): as much memory as the work needs, made when the work's size
    /// is known; refused before any work if the tool's limit is less.
    fn page_map_memory(&mut self, runs: usize) -> Result<&UtilityVm, ToolError> {
        let needed = (runs as u64 * 32).next_multiple_of(4096) + 4096;
        if let Some(limit) = self.memory
            && limit < needed
        {
            return Err(ToolError::NotEnoughRealMemory {
                needed_bytes: needed,
                used_bytes: 0,
                budget_bytes: limit,
            });
        }
        if self.uvm.as_ref().is_none_or(|(bytes, _)| *bytes < needed) {
            self.uvm = None;
            self.uvm = Some((needed, UtilityVm::new(needed)?));
        }
        self.uvm
            .as_ref()
            .map(|(_, uvm)| uvm)
            .ok_or_else(|| ToolError::Check("no memory for the page map".into()))
    }

    fn judge(&mut self, g: &Geometry, slot: Slot) -> Result<Judged, ToolError> {
        Ok(match slot {
            Slot::Blank => Judged::Blank,
            Slot::Unusable(reason) | Slot::Newer(reason) => Judged::Unusable(reason),
            Slot::Read { raw, .. } if raw.volume_id != g.volume_id => {
                Judged::Unusable("left over from another volume".into())
            }
            Slot::Read { geometry, .. } if geometry != *g => {
                Judged::Unusable("its geometry differs from the volume's".into())
            }
            Slot::Read { raw, .. } => {
                let problems = self.problems(g, &raw.runs, &raw.bad_spots)?;
                self.slots_checked += 1;
                if problems.is_empty() {
                    Judged::Good(raw)
                } else {
                    Judged::Bad { raw, problems }
                }
            }
        })
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

    /// Moves every page mapped onto a bad spot to a free spare, in `runs`
    /// and `bad`; `None` when the spares run out.
    ///
    /// The pages to move come from the bad-spot table, not from the list of
    /// problems (which names one bad spot a run, and at most a few dozen).
    fn plan_moves(g: &Geometry, raw: &RawHeader) -> Option<Result<Target, String>> {
        let mut table = match RunTable::new(raw.runs.clone()) {
            Ok(table) => table,
            Err(e) => return Some(Err(e.to_string())),
        };
        let mut bad = raw.bad_spots.clone();
        let mut moves = Vec::new();
        let unmoved: Vec<DiskAddr> = raw
            .bad_spots
            .iter()
            .filter(|b| b.spare.is_none())
            .map(|b| b.addr)
            .collect();
        for disk in unmoved {
            let Some(page) = layout::find_virtual(&table, disk) else {
                continue;
            };
            let spare = Scavenger::free_spare(g, &bad, disk.drive)?;
            if let Err(e) = table.remap(page, spare) {
                return Some(Err(e.to_string()));
            }
            for entry in bad
                .iter_mut()
                .filter(|b| b.addr == disk && b.spare.is_none())
            {
                entry.spare = Some(spare);
            }
            moves.push((page, disk, spare));
        }
        Some(Ok(Target {
            runs: table.runs().to_vec(),
            bad,
            what: format!(
                "moved {} page(s) off bad spots to spares and rewrote both header slots \
                 and every label",
                moves.len()
            ),
            moves,
        }))
    }

    /// Checks that a repair writing `target` would leave a volume that
    /// passes every check, and fits in its header slots and labels.
    fn target_problem(
        &mut self,
        g: &Geometry,
        target: &Target,
    ) -> Result<Option<String>, ToolError> {
        // Not counted as runs checked: these are the repair's, not the
        // volume's.
        let counted = self.runs_checked;
        let problems = self.problems(g, &target.runs, &target.bad)?;
        self.runs_checked = counted;
        if let Some(p) = problems.first() {
            return Ok(Some(p.to_string()));
        }
        let bytes = header::header_bytes(g.drive_count(), target.runs.len(), target.bad.len());
        let slot_bytes = g.header_slot_pages as usize * g.page_size;
        if bytes > slot_bytes {
            return Ok(Some(format!(
                "the repaired header needs {bytes} bytes; a header slot holds {slot_bytes}"
            )));
        }
        let max = label::max_bad_spots(g.page_size);
        for d in 0..g.drive_count() {
            let count = target
                .bad
                .iter()
                .filter(|b| b.addr.drive.index() == d)
                .count();
            if count > max {
                return Ok(Some(format!(
                    "drive {d} would have {count} bad spots; its label holds {max}"
                )));
            }
        }
        Ok(None)
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

/// A run table derived from `bad` (the format rule over its format-time
/// entries, then its remaps in order) as a repair target, if such a table
/// could fit the header slots and can be derived (checked first: labels
/// can claim huge sparse drives), or why not; entries for pages not on the
/// volume without a spare are dropped (no page can live there).
fn rebuilt_from(g: &Geometry, bad: &[BadSpot], source: &str) -> Result<Target, String> {
    let mut bad: Vec<BadSpot> = bad
        .iter()
        .copied()
        .filter(|b| on_volume(g, b.addr) || b.spare.is_some())
        .collect();
    bad.sort_by_key(|b| b.spare.is_some());
    let format_bad = bad.iter().filter(|b| b.spare.is_none()).count();
    let runs_bound =
        layout::run_count_bound(g, format_bad).saturating_add(2 * (bad.len() - format_bad));
    let slot_bytes = g.header_slot_pages as usize * g.page_size;
    if header::header_bytes(g.drive_count(), runs_bound, bad.len()) > slot_bytes {
        return Err(format!(
            "its run table ({runs_bound} runs at most) could not fit the header slots \
             ({slot_bytes} bytes)"
        ));
    }
    let table = layout::derive_run_table(g, &bad).map_err(|e| e.to_string())?;
    Ok(Target {
        what: format!(
            "rebuilt the run table ({} runs) from {source} and rewrote both header slots \
             and every label",
            table.len()
        ),
        runs: table.runs().to_vec(),
        bad,
        moves: Vec::new(),
    })
}

/// Whether `a` is a page of the volume `g`.
fn on_volume(g: &Geometry, a: DiskAddr) -> bool {
    a.drive.index() < g.drive_count() && a.page.0 < g.drive_pages[a.drive.index()]
}

/// "1 drive", "3 drives".
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// "1 was", "3 were".
fn given_drives(n: usize) -> String {
    if n == 1 {
        "1 was".into()
    } else {
        format!("{n} were")
    }
}

/// How label `l`, on drive `d`, differs from what the header's geometry
/// `g` says it should hold; `None` if it agrees (bad spots aside).
fn label_disagreement(l: &RawLabel, g: &Geometry, d: usize) -> Option<String> {
    let Ok(want) = label::decode(&label::encode(g, d as u16, &[])) else {
        return Some("the header's geometry makes no label".into());
    };
    let mut what = Vec::new();
    if l.volume_id != want.volume_id {
        what.push("volume id".to_string());
    }
    if l.drive_index != want.drive_index {
        what.push(format!("drive index {}", l.drive_index));
    }
    if l.drive_pages != want.drive_pages {
        what.push(format!(
            "drive size {} pages, the header says {}",
            l.drive_pages, want.drive_pages
        ));
    }
    let (a, b) = (&l.geometry, &want.geometry);
    for (field, differs) in [
        ("page size", a.page_size != b.page_size),
        ("drive count", a.drive_count != b.drive_count),
        (
            "layout",
            a.layout != b.layout || a.stripe_unit != b.stripe_unit,
        ),
        ("flags", a.flags != b.flags),
        ("virtual size", a.virtual_pages != b.virtual_pages),
        (
            "spare pages",
            a.spare_pages_per_drive != b.spare_pages_per_drive,
        ),
        (
            "header slot pages",
            a.header_slot_pages != b.header_slot_pages,
        ),
        ("reserved remaps", a.reserve_remaps != b.reserve_remaps),
    ] {
        if differs {
            what.push(field.to_string());
        }
    }
    (!what.is_empty()).then(|| what.join(", "))
}

/// No disk page mapped twice: the runs, as (drive, disk page, count,
/// virtual page) records in the utility VM, sorted by disk address there.
fn one_to_one(uvm: &UtilityVm, table: &RunTable) -> Result<Result<(), RunTableError>, ToolError> {
    let runs = table.runs();
    let map = uvm.array(runs.len() as u64 * 4)?;
    for (i, run) in runs.iter().enumerate() {
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
    sort_records(&map, 4, 2)?;
    let mut record = [0u64; 4];
    let mut previous: Option<[u64; 4]> = None;
    for i in 0..runs.len() as u64 {
        map.read_slice(i * 4, &mut record)?;
        if let Some(p) = previous
            && p[0] == record[0]
            && p[1].saturating_add(p[2]) > record[1]
        {
            return Ok(Err(RunTableError::DiskOverlap {
                first: PageNumber(p[3] + (record[1] - p[1])),
                second: PageNumber(record[3]),
                disk: DiskAddr::new(record[0] as u16, record[1]),
            }));
        }
        previous = Some(record);
    }
    Ok(Ok(()))
}

/// `raw`'s tables put right where that loses nothing: runs sorted by
/// virtual page, and bad-spot entries for pages that are not on the volume
/// (and were never given a spare) dropped — no page can live there.
fn mended(g: &Geometry, raw: &RawHeader) -> Target {
    let mut runs = raw.runs.clone();
    runs.sort_by_key(|r| r.page);
    let bad: Vec<BadSpot> = raw
        .bad_spots
        .iter()
        .filter(|b| on_volume(g, b.addr) || b.spare.is_some())
        .copied()
        .collect();
    let mut what = Vec::new();
    if runs != raw.runs {
        what.push("sorted the runs".to_string());
    }
    if bad.len() != raw.bad_spots.len() {
        what.push(format!(
            "dropped {} bad-spot entries for pages not on the volume",
            raw.bad_spots.len() - bad.len()
        ));
    }
    Target {
        runs,
        bad,
        moves: Vec::new(),
        what: format!(
            "{} of generation {}'s header and rewrote both slots and every label",
            what.join(" and "),
            raw.generation
        ),
    }
}

/// How to scavenge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScavengeOptions {
    /// Repair what can be repaired.
    pub repair: bool,
    /// With `repair`, also rewrite from the header the label of a drive
    /// whose label page holds no label at all (not even its magic): only
    /// for a file known to be that drive, since any file would do.
    pub force: bool,
    /// Most real memory for the page map (`None`: what the work needs).
    pub memory: Option<u64>,
}

/// How well the drives read at one page size: a valid header that a
/// readable label agrees with beats a valid header alone, which beats
/// labels alone.
fn plausibility(labels: &[Option<RawLabel>], slots: &[Slot; 2]) -> (bool, bool, usize) {
    let headers: Vec<&RawHeader> = slots
        .iter()
        .filter_map(|slot| match slot {
            Slot::Read { raw, .. } => Some(raw),
            _ => None,
        })
        .collect();
    let agreed = headers
        .iter()
        .any(|h| labels.iter().flatten().any(|l| l.volume_id == h.volume_id));
    (agreed, !headers.is_empty(), labels.iter().flatten().count())
}

/// Checks the volume on `paths` and repairs it if `options.repair` is set.
/// The scavenger's page map lives in a utility VM of the memory the
/// volume's run table needs (`options.memory`, if given, is a limit: a
/// volume that needs more is refused up front, saying how much to give).
///
/// The page size is not taken on trust from the first label: a label
/// copied from a volume of another page size, or a header left in a data
/// page by a volume formatted over, would make the drives read as another
/// volume. Each page size the labels or a header suggest is tried, and the
/// one at which a valid header agrees with the labels wins.
pub fn scavenge(paths: &[PathBuf], options: &ScavengeOptions) -> Result<ScavengeReport, ToolError> {
    let mut candidates = page_size_candidates(paths);
    let mut best: Option<((bool, bool, usize), usize)> = None;
    let mut deep_tried = false;
    loop {
        for &page_size in &candidates {
            // A page size some drive cannot even be opened at (shorter than
            // a page) is not the volume's.
            let Ok(channel) = open_channel_at(paths, page_size, true) else {
                continue;
            };
            channel.lock_all()?;
            let mut s = Scavenger::new(channel, paths, options);
            let labels = s.read_labels()?;
            let slots = s.read_slots(&labels);
            let score = plausibility(&labels, &slots);
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, page_size));
            }
        }
        // No valid header at any of them: search drive 0 for one, once.
        if deep_tried || best.is_some_and(|((_, header, _), _)| header) {
            break;
        }
        deep_tried = true;
        match paths.first().and_then(|p| find_header(p, true)) {
            Some(found) if !candidates.contains(&found.page_size) => {
                candidates = vec![found.page_size]
            }
            _ => break,
        }
    }
    let page_size = best.map_or_else(|| volume_page_size(paths, 4096), |(_, p)| p);
    // Checking only reads: read-only files, shared locks. A drive too short
    // to hold a page is a finding, not a failure to check.
    let channel = match open_channel_at(paths, page_size, !options.repair) {
        Ok(channel) => channel,
        Err(ToolError::Drive(e @ disk_channel::DriveError::Config { .. })) => {
            // A regular file shorter than a page: say what may bring it
            // back (a user trial: restoring the size let it check clean).
            let short = paths.iter().any(|p| {
                std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() < page_size as u64)
            });
            let hint = if short {
                " (a drive shorter than a page: if it was cut short, give it back its size \
                 — `truncate -s` to the size the other drives or `info` of a copy say — and \
                 scavenge again)"
            } else {
                ""
            };
            return Ok(ScavengeReport {
                status: Status::Unrecoverable,
                findings: vec![Finding {
                    severity: Severity::Unrecoverable,
                    message: format!("{e}{hint}"),
                }],
                generation: None,
                runs_checked: 0,
                slots_checked: 0,
                repairs: Vec::new(),
                memory_bytes: 0,
            });
        }
        Err(e) => return Err(e),
    };
    channel.lock_all()?;
    let mut s = Scavenger::new(channel, paths, options);
    let repair = options.repair;
    // Four steps: labels, header slots, run tables, verdict (and repair).
    let bar = crate::progress::progress(4, "scavenge");
    let labels = s.read_labels()?;
    bar.inc(1);
    let slots = s.read_slots(&labels);
    bar.inc(1);
    let unrecoverable = |s: Scavenger<'_>| ScavengeReport {
        memory_bytes: s.memory_bytes(),
        status: Status::Unrecoverable,
        findings: s.findings,
        generation: None,
        runs_checked: s.runs_checked,
        slots_checked: s.slots_checked,
        repairs: Vec::new(),
    };
    for (i, slot) in slots.iter().enumerate() {
        if let Slot::Newer(reason) = slot {
            s.note(
                Severity::Unrecoverable,
                format!(
                    "header slot {i} was written by a newer cedar-vm ({reason}): this one \
                     cannot judge or repair the volume"
                ),
            );
        }
    }
    if s.unrecoverable() {
        return Ok(unrecoverable(s));
    }
    let from_header = Scavenger::header_geometry(&slots, &labels);
    let g = match &from_header {
        Some(g) => {
            s.check_labels_against(g, &labels);
            g.clone()
        }
        None => {
            let g = s.label_geometry(&labels);
            if s.unrecoverable() {
                // Why no header could be read, slot by slot (where a
                // rebuild from the labels goes on, the slots are judged
                // and said below).
                for (i, slot) in slots.iter().enumerate() {
                    let why = match slot {
                        Slot::Blank => "blank (never written, or zeroed)".to_string(),
                        Slot::Unusable(reason) => reason.clone(),
                        Slot::Newer(_) | Slot::Read { .. } => continue,
                    };
                    s.note(Severity::Unrecoverable, format!("header slot {i}: {why}"));
                }
            }
            match g {
                Some(g) if !s.unrecoverable() => g,
                _ => return Ok(unrecoverable(s)),
            }
        }
    };
    s.check_shape(&g)?;
    if s.unrecoverable() {
        return Ok(unrecoverable(s));
    }
    let [slot0, slot1] = slots;
    let judged = [s.judge(&g, slot0)?, s.judge(&g, slot1)?];
    bar.inc(1);

    let mut newest_generation = 0;
    let mut best: Option<&RawHeader> = None;
    let mut best_slot: Option<u64> = None;
    for (i, slot) in judged.iter().enumerate() {
        match slot {
            Judged::Blank => {}
            Judged::Unusable(reason) => {
                s.note(Severity::Repairable, format!("header slot {i}: {reason}"))
            }
            Judged::Bad { raw, problems } => {
                newest_generation = newest_generation.max(raw.generation);
                let more = if problems.len() > 1 {
                    format!(" (and {} more)", problems.len() - 1)
                } else {
                    String::new()
                };
                s.note(
                    Severity::Repairable,
                    format!(
                        "header slot {i} (generation {}): {}{more}",
                        raw.generation, problems[0]
                    ),
                );
            }
            Judged::Good(raw) => {
                newest_generation = newest_generation.max(raw.generation);
                if best.is_none_or(|b| raw.generation > b.generation) {
                    best = Some(raw);
                    best_slot = Some(i as u64);
                }
            }
        }
    }
    // Format leaves slot 0 blank until the second commit; at any later
    // generation a blank slot was lost.
    for (i, slot) in judged.iter().enumerate() {
        if matches!(slot, Judged::Blank) {
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
    // The newest slot with problems, if newer than the good one (or there
    // is no good one).
    let newest_bad = judged
        .iter()
        .filter_map(|slot| match slot {
            Judged::Bad { raw, problems } if best.is_none_or(|b| raw.generation > b.generation) => {
                Some((raw, problems))
            }
            _ => None,
        })
        .max_by_key(|(raw, _)| raw.generation);

    // What a repair would write, worked out now and checked by the same
    // rules: what repair cannot do is not "repairable".
    let mut target: Option<Target> = None;
    if let Some((raw, problems)) = newest_bad
        && problems
            .iter()
            .all(|p| matches!(p, MappingProblem::OnBadSpot { .. }))
    {
        match Scavenger::plan_moves(&g, raw) {
            Some(Ok(t)) => target = Some(t),
            Some(Err(e)) => s.note(
                Severity::Note,
                format!(
                    "generation {}: its pages cannot be moved off bad spots: {e}",
                    raw.generation
                ),
            ),
            None if best.is_some() => s.note(
                Severity::Note,
                format!(
                    "no spare page left to move generation {}'s pages off bad spots: \
                     repair goes back to generation {}",
                    raw.generation,
                    best.map_or(0, |b| b.generation)
                ),
            ),
            None => s.note(
                Severity::Unrecoverable,
                format!(
                    "generation {} maps pages onto bad spots and no spare page is left to \
                     move them to",
                    raw.generation
                ),
            ),
        }
    }
    if target.is_none()
        && let Some(good) = best
    {
        target = Some(Target {
            runs: good.runs.clone(),
            bad: good.bad_spots.clone(),
            moves: Vec::new(),
            what: "rewrote both header slots and every label from the good header".into(),
        });
    }
    if target.is_none()
        && !s.unrecoverable()
        && let Some((raw, _)) = newest_bad
    {
        let t = mended(&g, raw);
        if s.target_problem(&g, &t)?.is_none() {
            target = Some(t);
        }
    }
    if target.is_none() && !s.unrecoverable() {
        // The newest header's own bad-spot table first: it is newer than
        // the labels' lists (which lag until a commit rewrites them), so a
        // rebuild from it keeps the remaps made since.
        if let Some((raw, _)) = newest_bad
            && let Ok(t) = rebuilt_from(
                &g,
                &raw.bad_spots,
                &format!("generation {}'s bad-spot table", raw.generation),
            )
            && s.target_problem(&g, &t)?.is_none()
        {
            target = Some(t);
        }
    }
    if target.is_none() && !s.unrecoverable() {
        if labels.iter().all(Option::is_some) && from_header.is_none() {
            s.note(
                Severity::Repairable,
                "no usable header slot: the run table can be rebuilt from the labels".into(),
            );
        }
        if labels.iter().all(Option::is_some) {
            let bad: Vec<BadSpot> = labels
                .iter()
                .flatten()
                .flat_map(|l| l.bad_spots.iter().copied())
                .collect();
            match rebuilt_from(&g, &bad, "the labels") {
                Ok(t) => target = Some(t),
                Err(why) => s.note(
                    Severity::Unrecoverable,
                    format!("the run table cannot be rebuilt from the labels: {why}"),
                ),
            }
        } else {
            s.note(
                Severity::Unrecoverable,
                "no usable header slot and not every label is readable".into(),
            );
        }
    }
    if let Some(t) = &target
        && let Some(problem) = s.target_problem(&g, t)?
    {
        s.note(
            Severity::Unrecoverable,
            format!("repair cannot put it right: {problem}"),
        );
    }
    if s.unrecoverable() {
        return Ok(unrecoverable(s));
    }
    let Some(target) = target else {
        s.note(Severity::Unrecoverable, "nothing to repair from".into());
        return Ok(unrecoverable(s));
    };
    // Labels whose bad-spot list differs from the table repair would write.
    for (d, l) in labels.iter().enumerate() {
        let Some(l) = l else { continue };
        let want: BTreeSet<BadSpot> = target
            .bad
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
    let wrong = s
        .findings
        .iter()
        .any(|f| f.severity == Severity::Repairable);
    let current_generation = best.map(|b| b.generation);
    if !wrong {
        // Clean by every check here; it must open as `info` and a VM open
        // it, or the two disagree — say so rather than "clean".
        let memory_bytes = s.memory_bytes();
        let Scavenger {
            channel,
            mut findings,
            runs_checked,
            slots_checked,
            ..
        } = s;
        let status = match Volume::open(channel) {
            Ok(_) => Status::Clean,
            Err(e) => {
                findings.push(Finding {
                    severity: Severity::Unrecoverable,
                    message: format!("the volume passes every check but does not open: {e}"),
                });
                Status::Unrecoverable
            }
        };
        return Ok(ScavengeReport {
            status,
            findings,
            generation: current_generation,
            runs_checked,
            slots_checked,
            repairs: Vec::new(),
            memory_bytes,
        });
    }
    if !repair {
        return Ok(ScavengeReport {
            memory_bytes: s.memory_bytes(),
            status: Status::Repairable,
            findings: s.findings,
            generation: current_generation,
            runs_checked: s.runs_checked,
            slots_checked: s.slots_checked,
            repairs: Vec::new(),
        });
    }
    let mut repairs = Vec::new();
    let mut buf = vec![0u8; g.page_size];
    for &(page, disk, spare) in &target.moves {
        let copied = s
            .channel
            .read(disk.drive, disk.page, &mut buf, None)
            .is_ok();
        if !copied {
            buf.fill(0);
        }
        s.channel.write(spare.drive, spare.page, &buf, None)?;
        repairs.push(format!(
            "moved {page} off bad spot {disk} to spare {spare} ({})",
            if copied {
                "contents copied"
            } else {
                "contents unreadable, zeroed"
            }
        ));
    }
    repairs.push(target.what.clone());
    // Moved pages reach their spares before any header names the spares.
    for d in 0..g.drive_count() {
        s.channel.sync(DriveId(d as u16))?;
    }
    // The first header written goes into the slot that does not hold the
    // good one, so that a torn write leaves the good one (generations count
    // up: newest + 1, or + 2 to land in the other slot).
    let mut generation = newest_generation + 1;
    if best_slot == Some(generation % 2) {
        generation += 1;
    }
    s.write_everything(&g, &target.runs, &target.bad, generation)?;
    let memory_bytes = s.memory_bytes();
    let Scavenger {
        channel,
        findings,
        runs_checked,
        slots_checked,
        ..
    } = s;
    Volume::open(channel)
        .map_err(|e| ToolError::Check(format!("the repaired volume does not open: {e}")))?;
    Ok(ScavengeReport {
        status: Status::Repaired,
        findings,
        generation: Some(generation + 1),
        runs_checked,
        slots_checked,
        repairs,
        memory_bytes,
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
        t.push_str(&format!("{:<14} {verdict}", "verdict"));
        let runs = |n: u64| match n {
            1 => "1 run".to_string(),
            n => format!("{n} runs"),
        };
        match self.slots_checked {
            0 => {}
            1 => t.push_str(&format!(
                "; {} checked in one header slot",
                runs(self.runs_checked)
            )),
            n => t.push_str(&format!(
                "; {n} header slots checked, {} in all (each slot holds a run table of its own)",
                runs(self.runs_checked)
            )),
        }
        if let Some(g) = self.generation {
            t.push_str(&format!("; header generation {g}"));
        }
        t.push('\n');
        t
    }
}
