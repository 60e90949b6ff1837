//! `info`: what a volume is, read from its labels and header.

use crate::drives::open_channel_read_only;
use crate::error::ToolError;
use runtable::{Layout, Volume};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// One drive of a volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveInfo {
    /// The file.
    pub path: PathBuf,
    /// Pages on the drive.
    pub pages: u64,
    /// Pages with storage allocated in the file system (a sparse drive has
    /// few).
    pub allocated_pages: u64,
    /// Bad spots on the drive.
    pub bad_spots: usize,
    /// How the tools (and a VM opened the same way) use the page cache on
    /// it: `direct`, `drop-behind` where the file system refuses `O_DIRECT`.
    pub cache: String,
}

/// What `info` prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// The volume id, hexadecimal.
    pub volume_id: String,
    /// Bytes per page.
    pub page_size: usize,
    /// Pages in the virtual space.
    pub virtual_pages: u64,
    /// The layout.
    pub layout: Layout,
    /// Whether the drives were left sparse.
    pub sparse: bool,
    /// The drives.
    pub drives: Vec<DriveInfo>,
    /// Runs in the run table.
    pub runs: usize,
    /// Entries of the bad-spot table.
    pub bad_spots: usize,
    /// Of those, pages remapped to spares after formatting.
    pub remapped: usize,
    /// Header generation.
    pub generation: u64,
    /// The header slot in use.
    pub header_slot: u64,
    /// Pages in each header slot: slot 0 is drive 0's pages `1 ..= n`, slot
    /// 1 the `n` pages after it (where to look, or aim `dd`).
    #[serde(default)]
    pub header_slot_pages: u32,
    /// Set when the other header slot cannot be read past generation 1 (a
    /// freshly formatted volume leaves one blank): what is wrong with it,
    /// and that the volume was read from an older generation than may
    /// have been written. `scavenge` tells more and repairs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_warning: Option<String>,
}

/// Reads the volume on `paths`.
pub fn info(paths: &[PathBuf]) -> Result<VolumeInfo, ToolError> {
    let volume = Volume::open(open_channel_read_only(paths, 4096)?)?;
    let g = volume.geometry();
    let caches = volume.channel().cache_policies();
    let drives = paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let blocks = std::fs::metadata(path)
                .map(|m| m.blocks() * 512)
                .unwrap_or(0);
            DriveInfo {
                path: path.clone(),
                pages: g.drive_pages[i],
                // (The file system's own blocks for the file's extents
                // count in `st_blocks` too: never more than the drive.)
                allocated_pages: (blocks / g.page_size as u64).min(g.drive_pages[i]),
                bad_spots: volume
                    .bad_spots()
                    .iter()
                    .filter(|s| s.addr.drive.index() == i)
                    .count(),
                cache: caches
                    .get(i)
                    .copied()
                    .flatten()
                    .map_or("n/a", |c| c.name())
                    .to_string(),
            }
        })
        .collect();
    Ok(VolumeInfo {
        volume_id: format!("{:032x}", g.volume_id),
        page_size: g.page_size,
        virtual_pages: g.virtual_pages,
        layout: g.layout,
        sparse: g.sparse,
        drives,
        runs: volume.run_table().len(),
        bad_spots: volume.bad_spots().len(),
        remapped: volume
            .bad_spots()
            .iter()
            .filter(|s| s.spare.is_some())
            .count(),
        generation: volume.generation(),
        header_slot: volume.header_choice().slot,
        header_slot_pages: g.header_slot_pages,
        header_warning: header_warning(volume.header_choice()),
    })
}

/// What `info` says about the header slot it did not use, if anything is
/// wrong with it (see [`VolumeInfo::header_warning`]).
fn header_warning(choice: &runtable::HeaderChoice) -> Option<String> {
    match &choice.other {
        Err(why) if choice.generation > 1 => Some(format!(
            "header slot {} is unusable ({why}); the volume was read from slot {} \
             (generation {}), and a newer generation may have been lost: run \
             `cedarvm scavenge` on these drives",
            1 - choice.slot,
            choice.slot,
            choice.generation
        )),
        _ => None,
    }
}

impl VolumeInfo {
    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let layout = match self.layout {
            Layout::Concatenate => "concatenate".to_string(),
            Layout::Stripe { unit: 1 } => "stripe, 1 page".to_string(),
            Layout::Stripe { unit } => format!("stripe, {unit} pages"),
        };
        let rows = [
            ("volume id", self.volume_id.clone()),
            ("page size", format!("{} bytes", self.page_size)),
            (
                "virtual size",
                format!(
                    "{} page{} ({})",
                    self.virtual_pages,
                    if self.virtual_pages == 1 { "" } else { "s" },
                    crate::units::human_bytes(self.virtual_pages * self.page_size as u64)
                ),
            ),
            ("layout", layout),
            (
                "backing",
                if self.sparse {
                    "sparse".into()
                } else {
                    "preallocated".into()
                },
            ),
            ("runs", self.runs.to_string()),
            (
                "bad spots",
                format!("{} ({} remapped)", self.bad_spots, self.remapped),
            ),
            (
                "generation",
                format!("{} (header slot {})", self.generation, self.header_slot),
            ),
            ("header slots", {
                let pages = |first: u32, count: u32| match count {
                    1 => format!("page {first}"),
                    n => format!("pages {first}-{}", first + n - 1),
                };
                format!(
                    "drive 0 {} (slot 0) and {} (slot 1); page 0 of each drive is its label",
                    pages(1, self.header_slot_pages),
                    pages(1 + self.header_slot_pages, self.header_slot_pages),
                )
            }),
        ];
        for (k, v) in rows {
            t.push_str(&format!("{k:<14} {v}\n"));
        }
        if let Some(warning) = &self.header_warning {
            t.push_str(&format!("{:<14} {warning}\n", "warning"));
        }
        for (i, d) in self.drives.iter().enumerate() {
            t.push_str(&format!(
                "drive {i:<8} {} — {} pages ({} with file-system blocks), {} bad, {} I/O\n",
                d.path.display(),
                d.pages,
                d.allocated_pages,
                d.bad_spots,
                d.cache
            ));
        }
        t
    }
}
