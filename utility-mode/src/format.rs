//! `format`: lay a new volume on one or more drive files.

use crate::error::ToolError;
use crate::progress::progress;
use crate::scan::{ScanMode, ScanReport, scan};
use crate::utility_vm::UtilityVm;
use disk_channel::{DiskChannel, Drive, FileDrive, FileDriveOptions};
use runtable::{DiskAddr, FormatOptions, Layout, Volume};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What to format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatRequest {
    /// The drive files (created if missing).
    pub drives: Vec<PathBuf>,
    /// Bytes per page.
    pub page_size: usize,
    /// Pages per drive file.
    pub drive_pages: u64,
    /// Pages in the virtual space; `None`: as many as the drives hold
    /// (after the labels, header slots, spares and bad spots found by the
    /// scan).
    pub virtual_pages: Option<u64>,
    /// Concatenate or stripe.
    pub layout: Layout,
    /// Spare pages per drive.
    pub spare_pages: u32,
    /// Allocate every block now instead of leaving the files sparse.
    pub preallocate: bool,
    /// Overwrite an existing volume.
    pub force: bool,
    /// Scan the surface first and keep the bad pages out of the layout.
    pub scan: Option<ScanMode>,
}

impl FormatRequest {
    /// Whether the volume asked for fits the drives asked for (what
    /// `Volume::format` would refuse: [`Volume::check_format`]), checked
    /// before any file is touched. Bad spots a scan would find are not
    /// known yet: only fewer data pages can come of them.
    pub fn check_layout(&self) -> Result<(), ToolError> {
        if let Layout::Stripe { unit } = self.layout
            && u64::from(unit) >= self.drive_pages
        {
            return Err(ToolError::Usage(format!(
                "--stripe {unit} pages is a drive's whole size ({} pages) or more: nothing \
                 would be striped; give a smaller unit, or leave --stripe out to concatenate",
                self.drive_pages
            )));
        }
        let mut options = FormatOptions::new(self.page_size, 0);
        options.layout = self.layout;
        options.spare_pages_per_drive = self.spare_pages;
        options.sparse = !self.preallocate;
        let drive_pages = vec![self.drive_pages; self.drives.len()];
        options.virtual_pages = match self.virtual_pages {
            Some(pages) => pages,
            None => Volume::fit_virtual_pages(&options, &drive_pages)?,
        };
        Volume::check_format(&options, &drive_pages)?;
        Ok(())
    }

    /// The drive files that do not exist yet: what a format creates, and
    /// what goes again if it fails or is interrupted.
    pub fn files_to_create(&self) -> Vec<PathBuf> {
        self.drives
            .iter()
            .filter(|p| !p.exists())
            .cloned()
            .collect()
    }
}

/// What `format` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatReport {
    /// The scan, if one ran.
    pub scan: Option<ScanReport>,
    /// Runs in the new run table.
    pub runs: usize,
    /// Bad spots kept out.
    pub bad_spots: usize,
}

/// Formats the drives of `request`, using `uvm` for the scan's memory.
pub fn format(request: &FormatRequest, uvm: &UtilityVm) -> Result<FormatReport, ToolError> {
    crate::drives::check_distinct(&request.drives)?;
    if request.drives.is_empty() {
        return Err(ToolError::Usage(
            "name at least one drive with --drive".into(),
        ));
    }
    // Everything that can be checked before a drive is touched is checked
    // first: a request that fails here leaves every file as it was (the
    // layout, the files' kinds, folders, permissions and locks).
    request.check_layout()?;
    // A full scan writes every page: its files need their whole size in
    // blocks, as preallocated ones do (it used to run out of space part
    // way, after an old volume was overwritten).
    crate::drives::check_writable(
        &request.drives,
        request.drive_pages.saturating_mul(request.page_size as u64),
        if request.preallocate {
            Some("--preallocate")
        } else if request.scan == Some(ScanMode::Full) {
            Some("--scan full")
        } else {
            None
        },
    )?;
    let notices = crate::drives::check_overwrite(&request.drives, request.force)?;
    // The files this call creates, removed again if it fails: a failed
    // format leaves nothing behind that was not there before.
    let created = request.files_to_create();
    let result = format_drives(request, uvm, &notices);
    if result.is_err() {
        for path in &created {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

/// `format` once the request has been checked.
fn format_drives(
    request: &FormatRequest,
    uvm: &UtilityVm,
    notices: &[String],
) -> Result<FormatReport, ToolError> {
    // The files there before this run (an old file formatted over gives its
    // blocks back; one made now has none).
    let fresh = request.files_to_create();
    // Every drive file opened — created where missing — and its lock
    // checked before any is resized or written: one that cannot be (in use,
    // no inode left, a path under /proc) fails the format with every file
    // as it was (the ones made here are removed by `format`).
    for path in &request.drives {
        crate::drives::open_unlocked(path)?;
    }
    // From here on the drives change: say what is being overwritten.
    crate::drives::announce(notices);
    let bar = progress(request.drives.len() as u64, "create");
    let drives = request
        .drives
        .iter()
        .map(|path| {
            let mut options = FileDriveOptions::create(request.page_size, request.drive_pages);
            options.preallocate = request.preallocate;
            let drive = FileDrive::open(path, &options)?;
            bar.inc(1);
            Ok(Box::new(drive) as Box<dyn Drive>)
        })
        .collect::<Result<Vec<_>, ToolError>>()?;
    bar.finish_and_clear();
    // A sparse volume formatted over an old file: the old blocks go (the
    // old contents with them), so the new volume is as sparse as a fresh
    // one and nothing of the old one can be read. Once every drive is
    // open and sized: a drive that fails to open leaves the others'
    // contents where they were.
    if !request.preallocate {
        for path in request.drives.iter().filter(|p| !fresh.contains(p)) {
            if is_regular(path) {
                punch_out(path)?;
            }
        }
    }
    let channel = DiskChannel::new(drives)?;
    let scan_report = match request.scan {
        Some(mode) => Some(scan(&channel, mode, uvm)?),
        None => None,
    };
    let bad_spots: Vec<DiskAddr> = scan_report
        .as_ref()
        .map(|r| r.bad.clone())
        .unwrap_or_default();
    let mut options = FormatOptions::new(request.page_size, 0);
    options.layout = request.layout;
    options.spare_pages_per_drive = request.spare_pages;
    options.sparse = !request.preallocate;
    options.bad_spots = bad_spots.clone();
    options.virtual_pages = match request.virtual_pages {
        Some(pages) => pages,
        None => {
            let drive_pages: Vec<u64> = (0..channel.drive_count())
                .map(|d| channel.page_count(disk_channel::DriveId(d as u16)))
                .collect::<Result<_, _>>()?;
            Volume::fit_virtual_pages(&options, &drive_pages)?
        }
    };
    let volume = Volume::format(channel, &options)?;
    Ok(FormatReport {
        scan: scan_report,
        runs: volume.run_table().len(),
        bad_spots: bad_spots.len(),
    })
}

fn is_regular(path: &std::path::Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// Gives back every block of the regular file at `path`, keeping its size
/// (`FALLOC_FL_PUNCH_HOLE`): it reads as zeros afterwards. Where the file
/// system cannot punch holes, the file is left as it is (the format
/// overwrites what it needs).
fn punch_out(path: &std::path::Path) -> Result<(), ToolError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| ToolError::File {
            path: path.to_path_buf(),
            source,
        })?;
    let len = file
        .metadata()
        .map_err(|source| ToolError::File {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    if len > 0 {
        let _ = rustix::fs::fallocate(
            &file,
            rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
            0,
            len,
        );
    }
    Ok(())
}
