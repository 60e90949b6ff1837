//! Opening a volume's drive files, and progress bars that show only on a
//! terminal.

use crate::ToolError;
use disk_channel::{DiskChannel, Drive, FileDrive, FileDriveOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use runtable::label;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

/// The page size recorded in the label at the start of `path`, if it holds
/// a readable label.
pub fn probe_page_size(path: &Path) -> Option<usize> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut head = vec![0u8; 1 << 20];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return None,
        }
    }
    label::decode(&head[..filled])
        .ok()
        .map(|l| l.geometry.page_size as usize)
}

/// Opens existing drive files as a channel. The page size comes from the
/// first readable label (`fallback` when none is readable).
pub fn open_channel(paths: &[PathBuf], fallback: usize) -> Result<DiskChannel, ToolError> {
    if paths.is_empty() {
        return Err(ToolError::Usage(
            "name at least one drive with --drive".into(),
        ));
    }
    let page_size = paths
        .iter()
        .find_map(|p| probe_page_size(p))
        .unwrap_or(fallback);
    let page_size = if page_size.is_power_of_two() && page_size >= 4096 {
        page_size
    } else {
        fallback
    };
    let drives = paths
        .iter()
        .map(|path| {
            if !path.exists() {
                return Err(ToolError::File {
                    path: path.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such drive file"),
                });
            }
            Ok(
                Box::new(FileDrive::open(path, &FileDriveOptions::open(page_size))?)
                    as Box<dyn Drive>,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DiskChannel::new(drives)?)
}

/// A progress bar over `len` steps, drawn only when standard error is a
/// terminal.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta})")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// A progress bar that clears itself when dropped, on every return path.
pub struct ClearingBar(pub ProgressBar);

impl Drop for ClearingBar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
