//! Opening a volume's drive files.

use crate::error::ToolError;
use disk_channel::{DiskChannel, Drive, FileDrive, FileDriveOptions};
use runtable::label;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The page size recorded in the label at the start of `path`, if it holds
/// a readable label.
pub fn probe_page_size(path: &Path) -> Option<usize> {
    if !is_drive_kind(path) {
        return None;
    }
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

/// The size of the file at `path` if it holds data a tool would destroy:
/// it exists, is not empty, and some byte of its first data (the first
/// 64 KiB after `SEEK_DATA`: a fresh sparse or zeroed file holds none) is
/// not zero. `None` for a missing file, an empty one, one of zeros.
pub fn holds_data(path: &Path) -> Option<u64> {
    use std::io::{Seek, SeekFrom};
    // Opening a FIFO would block: only files a drive can be are looked into
    // (the drive's own open refuses the others, in one line).
    if !is_drive_kind(path) {
        return None;
    }
    let mut file = std::fs::File::open(path).ok()?;
    let bytes = file.metadata().ok()?.len();
    if bytes == 0 {
        return None;
    }
    let start = rustix::fs::seek(&file, rustix::fs::SeekFrom::Data(0)).unwrap_or(0);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut head = vec![0u8; 64 * 1024];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => break,
        }
    }
    head[..filled].iter().any(|&b| b != 0).then_some(bytes)
}

/// Refuses (without `force`) to let a tool overwrite any of `paths` that
/// holds a volume or other data; with `force`, says on standard error what
/// is being destroyed.
pub fn check_overwrite(paths: &[PathBuf], force: bool) -> Result<(), ToolError> {
    for path in paths {
        let volume = probe_page_size(path).is_some();
        let data = holds_data(path);
        match (volume, data, force) {
            (true, _, false) => return Err(ToolError::ExistingVolume { path: path.clone() }),
            (false, Some(bytes), false) => {
                return Err(ToolError::ExistingData {
                    path: path.clone(),
                    bytes,
                });
            }
            (true, _, true) => eprintln!("{}: overwriting a cedar-vm volume", path.display()),
            (false, Some(bytes), true) => eprintln!(
                "{}: overwriting {bytes} bytes that are not a cedar-vm volume",
                path.display()
            ),
            (false, None, _) => {}
        }
    }
    Ok(())
}

/// Opens existing drive files as a channel. The page size comes from the
/// first readable label (`fallback` when none is readable).
pub fn open_channel(paths: &[PathBuf], fallback: usize) -> Result<DiskChannel, ToolError> {
    open_channel_as(paths, fallback, false)
}

/// [`open_channel`] for reading only: the files opened read-only, the
/// drives' locks shared (a tool that only looks works on a read-only file
/// or file system, and beside another that only looks).
pub fn open_channel_read_only(
    paths: &[PathBuf],
    fallback: usize,
) -> Result<DiskChannel, ToolError> {
    open_channel_as(paths, fallback, true)
}

fn open_channel_as(
    paths: &[PathBuf],
    fallback: usize,
    read_only: bool,
) -> Result<DiskChannel, ToolError> {
    if paths.is_empty() {
        return Err(ToolError::Usage(
            "name at least one drive with --drive".into(),
        ));
    }
    check_distinct(paths)?;
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
            Ok(Box::new(FileDrive::open(
                path,
                &FileDriveOptions {
                    read_only,
                    ..FileDriveOptions::open(page_size)
                },
            )?) as Box<dyn Drive>)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DiskChannel::new(drives)?)
}

/// Refuses a list of drives that names the same file twice (by two spellings
/// too: `a.vol` and `./a.vol`), which would otherwise fail later as "volume
/// in use" — the drive's own lock held by the first of the two.
pub fn check_distinct(paths: &[PathBuf]) -> Result<(), ToolError> {
    let identity = |p: &PathBuf| {
        std::fs::canonicalize(p).unwrap_or_else(|_| {
            // A file to be created: its folder's real path and its name.
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
            let folder = parent.map_or_else(
                || std::env::current_dir().unwrap_or_default(),
                |d| std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf()),
            );
            folder.join(p.file_name().unwrap_or_default())
        })
    };
    let mut seen: Vec<(PathBuf, &PathBuf)> = Vec::with_capacity(paths.len());
    for path in paths {
        let id = identity(path);
        if let Some((_, first)) = seen.iter().find(|(other, _)| *other == id) {
            return Err(ToolError::Usage(format!(
                "{} and {} are the same drive file; name each drive once",
                first.display(),
                path.display()
            )));
        }
        seen.push((id, path));
    }
    Ok(())
}

/// Whether `path` is something a drive can be: a regular file or a block
/// device (opening a FIFO to look inside would block; the drive refuses
/// anything else with a clear error).
pub fn is_drive_kind(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path)
        .is_ok_and(|m| m.file_type().is_file() || m.file_type().is_block_device())
}
