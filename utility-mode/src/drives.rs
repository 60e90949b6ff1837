//! Opening a volume's drive files.

use crate::error::ToolError;
use disk_channel::{DiskChannel, Drive, FileDrive, FileDriveOptions};
use runtable::label;
use std::io::Read;
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
