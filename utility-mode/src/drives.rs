//! Opening a volume's drive files.

use crate::error::ToolError;
use disk_channel::{DiskChannel, Drive, FileDrive, FileDriveOptions};
use runtable::header::{self, RawHeader};
use runtable::{label, layout};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The page size of the volume whose drive `path` is: from its label, or
/// — the label unreadable — from a volume header in header slot 0 (where
/// drive 0 keeps it at every page size). `None` if neither is there.
pub fn probe_page_size(path: &Path) -> Option<usize> {
    label_page_size(path).or_else(|| slot_zero_page_sizes(path).first().copied())
}

/// The page sizes a volume on `paths` may have, most likely first: each
/// readable label's, then each page size `P` at which drive 0 holds a
/// header at byte `P` (header slot 0, whatever the page size). Several can
/// be plausible — a label copied from a volume of another page size, or a
/// volume formatted over an older one whose header survives in a data page
/// — and only the drives' headers can tell (the scavenger tries each).
pub fn page_size_candidates(paths: &[PathBuf]) -> Vec<usize> {
    let mut candidates: Vec<usize> = paths.iter().filter_map(|p| label_page_size(p)).collect();
    if let Some(first) = paths.first() {
        candidates.extend(slot_zero_page_sizes(first));
    }
    let mut seen = std::collections::BTreeSet::new();
    candidates.retain(|p| seen.insert(*p));
    candidates
}

/// A volume header found in a drive file by [`find_header`].
#[derive(Clone, Debug)]
pub struct FoundHeader {
    /// The volume's page size.
    pub page_size: usize,
    /// The header slot it was found in (0 or 1).
    pub slot: u64,
    /// The header.
    pub raw: RawHeader,
}

/// How far into a file [`find_header`] looks for header slot 1.
const HEADER_SCAN_BYTES: u64 = 1 << 30;

/// A drive file opened for looking for headers in it.
struct Looker {
    file: std::fs::File,
    bytes: u64,
    /// Bytes the search may still read as candidate headers: a file can
    /// plant any number of fake headers that each claim their place and
    /// 64 MiB; the search stops reading them past this budget.
    budget: std::cell::Cell<u64>,
}

impl Looker {
    fn open(path: &Path) -> Option<Looker> {
        use std::io::{Seek, SeekFrom};
        if !is_drive_kind(path) {
            return None;
        }
        let mut file = std::fs::File::open(path).ok()?;
        // The length by seeking: a block device's metadata says 0.
        let bytes = file.seek(SeekFrom::End(0)).ok()?;
        Some(Looker {
            file,
            bytes,
            budget: std::cell::Cell::new(2 * runtable::HEADER_BYTES_MAX as u64),
        })
    }

    fn read_at(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let len = usize::try_from(self.bytes.checked_sub(offset)?.min(len as u64)).ok()?;
        let mut bytes = vec![0u8; len];
        self.file.read_exact_at(&mut bytes, offset).ok()?;
        Some(bytes)
    }

    /// The header at `offset`, whose first bytes are `first`, if one is
    /// there and its own geometry puts a slot there (checked from `first`
    /// before the rest is read: a search meets many stray magics).
    fn header_at(&self, offset: u64, first: &[u8]) -> Option<FoundHeader> {
        let (page_size, slot_one) = header::claimed_place(first)?;
        let slot = if offset == page_size as u64 {
            0
        } else if offset == slot_one * page_size as u64 {
            1
        } else {
            return None;
        };
        let len = header::claimed_length(first)?;
        if len > runtable::HEADER_BYTES_MAX || len as u64 > self.budget.get() {
            return None;
        }
        self.budget.set(self.budget.get() - len as u64);
        let raw = header::decode(&self.read_at(offset, len)?).ok()?;
        (raw.geometry.page_size as usize == page_size).then_some(FoundHeader {
            page_size,
            slot,
            raw,
        })
    }
}

/// Every page size `P` at which the file at `path` holds a header at byte
/// `P` whose geometry says its page size is `P` (header slot 0).
fn slot_zero_page_sizes(path: &Path) -> Vec<usize> {
    let Some(looker) = Looker::open(path) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut page_size = layout::PAGE_SIZE_MIN;
    while page_size <= layout::PAGE_SIZE_MAX {
        if let Some(first) = looker.read_at(page_size as u64, header::FIXED_BYTES)
            && looker.header_at(page_size as u64, &first).is_some()
        {
            found.push(page_size);
        }
        page_size *= 2;
    }
    found
}

/// Looks for a volume header in the file at `path` — drive 0 of a volume
/// whose label cannot be read, so that neither the page size nor where
/// header slot 1 starts is known. Slot 0 starts at page 1 at every page
/// size, so it is looked for there at each page size a volume may have;
/// with `deep`, and nothing valid in slot 0 (blank until a volume's second
/// commit, or damaged), every 4 KiB step of the file's first GiB that
/// holds data and starts with the header's magic is tried. A header counts
/// only where its own geometry puts one of its slots, so a stray copy of a
/// header elsewhere in the data is not taken for the volume's (and is
/// passed over without being read in full).
pub fn find_header(path: &Path, deep: bool) -> Option<FoundHeader> {
    search(path, deep, |_| true)
}

/// [`find_header`] for a volume of `page_size`-byte pages: headers of other
/// page sizes (a stale one in a data page) are passed over.
pub fn find_header_of(path: &Path, page_size: usize) -> Option<FoundHeader> {
    search(path, true, |found| found.page_size == page_size)
}

fn search(path: &Path, deep: bool, accept: impl Fn(&FoundHeader) -> bool) -> Option<FoundHeader> {
    let looker = Looker::open(path)?;
    let mut page_size = layout::PAGE_SIZE_MIN;
    while page_size <= layout::PAGE_SIZE_MAX {
        if let Some(first) = looker.read_at(page_size as u64, header::FIXED_BYTES)
            && let Some(found) = looker.header_at(page_size as u64, &first)
            && accept(&found)
        {
            return Some(found);
        }
        page_size *= 2;
    }
    if !deep {
        return None;
    }
    const STEP: u64 = layout::PAGE_SIZE_MIN as u64;
    const CHUNK: usize = 1 << 20;
    let end = looker.bytes.min(HEADER_SCAN_BYTES);
    let mut offset = 2 * STEP;
    while offset < end {
        // Holes hold no header: skip to the next data.
        offset = match rustix::fs::seek(&looker.file, rustix::fs::SeekFrom::Data(offset)) {
            Ok(data) => data / STEP * STEP,
            Err(_) => break,
        };
        let chunk = looker.read_at(offset, CHUNK)?;
        for (k, first) in chunk.chunks(STEP as usize).enumerate() {
            if let Some(found) = looker.header_at(offset + k as u64 * STEP, first)
                && accept(&found)
            {
                return Some(found);
            }
        }
        offset += CHUNK as u64;
    }
    None
}

/// The page size recorded in the label at the start of `path`, if it holds
/// a readable label.
fn label_page_size(path: &Path) -> Option<usize> {
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
    // A page size no volume may have (a damaged field with a valid
    // checksum) is not a candidate: it would size buffers by it.
    label::decode(&head[..filled])
        .ok()
        .map(|l| l.geometry.page_size as usize)
        .filter(|p| {
            p.is_power_of_two() && (layout::PAGE_SIZE_MIN..=layout::PAGE_SIZE_MAX).contains(p)
        })
}

/// The size of the file at `path` if it holds data a tool would destroy:
/// it exists, is not empty, and some byte of its first data (the first
/// 64 KiB after `SEEK_DATA`: a fresh sparse or zeroed file holds none) is
/// not zero — and those bytes are not what a scan leaves. `None` for a
/// missing file, an empty one, one of zeros, one only scanned.
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
    let head = &head[..filled];
    // What a scan leaves is not data (the scan destroyed whatever was).
    (head.iter().any(|&b| b != 0) && !crate::scan::is_scan_leftover(head, start, bytes))
        .then_some(bytes)
}

/// Refuses (without `force`) to let a tool overwrite any of `paths` that
/// holds a volume or other data; with `force`, returns what would be
/// destroyed, one line per file, for the tool to say (on standard error,
/// [`announce`]) once every other check has passed — not before a refusal
/// that leaves the file as it was.
pub fn check_overwrite(paths: &[PathBuf], force: bool) -> Result<Vec<String>, ToolError> {
    let mut notices = Vec::new();
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
            (true, _, true) => {
                notices.push(format!("{}: overwriting a cedar-vm volume", path.display()))
            }
            (false, Some(bytes), true) => notices.push(format!(
                "{}: overwriting a file of {bytes} bytes that is not a cedar-vm volume",
                path.display()
            )),
            (false, None, _) => {}
        }
    }
    Ok(notices)
}

/// Opens (creating it if missing) the drive file at `path` for writing,
/// and checks that no other process holds its lock — without taking it,
/// and without changing the file. A tool about to write several drives
/// opens them all so first: one that cannot be written fails the tool
/// before any other is touched.
pub fn open_unlocked(path: &Path) -> Result<(), ToolError> {
    let file_error = |source| ToolError::File {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(file_error)?;
    // (Retried for a moment, as the drive's own lock is: a process that
    // just closed the file may hold it still.)
    Ok(disk_channel::lock_drive_file(&file, path, false)?)
}

/// Says on standard error what [`check_overwrite`] found a tool is about
/// to destroy.
pub fn announce(notices: &[String]) {
    for notice in notices {
        eprintln!("{notice}");
    }
}

/// Checks, before a tool creates or writes any of `paths`, that it can
/// write every one as a drive of `bytes` bytes: an existing file is a
/// regular file or a block device; a missing one has an existing folder
/// to be created in
/// (not a dangling link); the file system lets a file be that large (a
/// sparse file of that size is made and removed beside it) and, with
/// `all_blocks` (the option that writes every block: `--preallocate`, a
/// full scan), has room for all of them. So that a mistake in the
/// second drive's name, or a size its file system refuses, is found before
/// the first drive is resized or overwritten.
pub fn check_writable(
    paths: &[PathBuf],
    bytes: u64,
    all_blocks: Option<&str>,
) -> Result<(), ToolError> {
    let file_error = |path: &Path, kind, what: &str| ToolError::File {
        path: path.to_path_buf(),
        source: std::io::Error::new(kind, what.to_string()),
    };
    let mut needed: Vec<(std::path::PathBuf, u64)> = Vec::new();
    for path in paths {
        if std::fs::metadata(path).is_err() && std::fs::symlink_metadata(path).is_ok() {
            return Err(file_error(
                path,
                std::io::ErrorKind::NotFound,
                "a link to nothing: name the drive file itself",
            ));
        }
        // The folder the file is (or will be) in: a link's target's, not
        // the link's.
        let real = std::fs::canonicalize(path).ok();
        let folder = real
            .as_deref()
            .unwrap_or(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // A regular file's size limit, checked beside it (block devices
        // have the size they have; a file already that large needs none).
        let metadata = std::fs::metadata(path).ok();
        let regular = metadata.as_ref().is_none_or(|m| m.is_file());
        let large_enough = metadata.as_ref().is_some_and(|m| m.len() >= bytes);
        if regular && !large_enough && folder.is_dir() {
            let probe = folder.join(format!(
                ".{}.cedarvm-size-check",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            // Only a probe this call made is removed (a file of that name
            // that was there is left alone, and the check skipped).
            let sized = match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)
            {
                Ok(file) => {
                    let sized = file.set_len(bytes);
                    drop(file);
                    let _ = std::fs::remove_file(&probe);
                    sized
                }
                Err(_) => Ok(()),
            };
            if let Err(source) = sized {
                return Err(ToolError::Drive(disk_channel::DriveError::File {
                    path: path.clone(),
                    action: "set length",
                    source,
                }));
            }
        }
        // Every block written: what the file holds in blocks now (a sparse
        // old volume holds few, whatever its length: a full-length one
        // too, its blocks punched out and then all written), not its
        // length, is what it grows by.
        if all_blocks.is_some() && regular && folder.is_dir() {
            let grown = metadata.as_ref().map_or(bytes, |m| {
                use std::os::unix::fs::MetadataExt;
                bytes.saturating_sub(m.blocks() * 512)
            });
            match needed.iter_mut().find(|(f, _)| f == folder) {
                Some((_, n)) => *n += grown,
                None => needed.push((folder.to_path_buf(), grown)),
            }
        }
        if std::fs::metadata(path).is_ok() {
            if let Some(e) = wrong_kind(path) {
                return Err(e);
            }
            // (Whether it opens for writing, and its lock, `open_unlocked`
            // tells, as the tool opens it.)
            continue;
        }
        if !folder.is_dir() {
            let what = if folder.exists() {
                format!("{} is not a folder", folder.display())
            } else {
                format!("no folder {} to create it in", folder.display())
            };
            return Err(file_error(path, std::io::ErrorKind::NotFound, &what));
        }
        if rustix::fs::access(
            folder,
            rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
        )
        .is_err()
        {
            return Err(file_error(
                path,
                std::io::ErrorKind::PermissionDenied,
                &format!("the folder {} is not writable", folder.display()),
            ));
        }
    }
    // Preallocated drives need their blocks now: room for all of them on
    // each file system (folders of one file system counted together).
    let mut by_device: Vec<(u64, u64, PathBuf)> = Vec::new();
    for (folder, bytes) in &needed {
        use std::os::unix::fs::MetadataExt;
        let device = std::fs::metadata(folder).map_or(0, |m| m.dev());
        match by_device.iter_mut().find(|(d, ..)| *d == device) {
            Some((_, n, _)) => *n += bytes,
            None => by_device.push((device, *bytes, folder.clone())),
        }
    }
    for (_, bytes, folder) in by_device {
        if let Some(free) = free_bytes(&folder)
            && free < bytes
        {
            return Err(ToolError::Usage(format!(
                "{} writes every block: it needs {} in {} and its file system has {} free",
                all_blocks.unwrap_or("--preallocate"),
                space_bytes(bytes),
                std::fs::canonicalize(&folder)
                    .unwrap_or_else(|_| folder.clone())
                    .display(),
                space_bytes(free)
            )));
        }
    }
    Ok(())
}

/// Bytes free to a writer on the file system of `folder` (`None` where it
/// does not say).
pub fn free_bytes(folder: &Path) -> Option<u64> {
    rustix::fs::statvfs(folder)
        .ok()
        .map(|stat| stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Bytes of disk space as a person reads them: GiB or MiB to a tenth
/// (free space is seldom a whole number of units).
pub fn space_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
    }
}

/// Opens existing drive files as a channel, at the volume's page size (see
/// [`volume_page_size`]; `fallback` when nothing on the drives says).
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
    open_channel_at(paths, volume_page_size(paths, fallback), read_only)
}

/// The page size of the volume on `paths`: from the first readable label,
/// else from a header on the first drive (see [`find_header`]), else
/// `fallback`.
pub fn volume_page_size(paths: &[PathBuf], fallback: usize) -> usize {
    let page_size = paths
        .iter()
        .find_map(|p| probe_page_size(p))
        .or_else(|| {
            paths
                .first()
                .and_then(|p| find_header(p, true))
                .map(|h| h.page_size)
        })
        .unwrap_or(fallback);
    if page_size.is_power_of_two() && page_size >= layout::PAGE_SIZE_MIN {
        page_size
    } else {
        fallback
    }
}

/// Opens existing drive files as a channel of `page_size` pages; with
/// `read_only`, the files read-only and the locks shared.
pub fn open_channel_at(
    paths: &[PathBuf],
    page_size: usize,
    read_only: bool,
) -> Result<DiskChannel, ToolError> {
    if paths.is_empty() {
        return Err(ToolError::Usage(
            "name at least one drive with --drive".into(),
        ));
    }
    check_distinct(paths)?;
    if let Some(e) = paths.iter().find_map(|path| wrong_kind(path)) {
        return Err(e);
    }
    let drives = paths
        .iter()
        .map(|path| {
            // (`exists` says no for a file it may not look at: the
            // metadata's own error tells the two apart.)
            match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ToolError::File {
                        path: path.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no such drive file",
                        ),
                    });
                }
                Err(source) => {
                    return Err(ToolError::File {
                        path: path.clone(),
                        source,
                    });
                }
                Ok(_) => {}
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
    // Two names of one file (a hard link) are the same drive too.
    let inode = |p: &PathBuf| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
    };
    /// A file's device and inode, if it exists.
    type Node = Option<(u64, u64)>;
    let mut seen: Vec<(PathBuf, Node, &PathBuf)> = Vec::with_capacity(paths.len());
    for path in paths {
        let id = identity(path);
        let node = inode(path);
        if let Some((_, _, first)) = seen
            .iter()
            .find(|(other, other_node, _)| *other == id || (node.is_some() && *other_node == node))
        {
            return Err(ToolError::Usage(format!(
                "{} and {} are the same drive file; name each drive once",
                first.display(),
                path.display()
            )));
        }
        seen.push((id, node, path));
    }
    Ok(())
}

/// The error for a `path` that exists and is no kind of drive (a folder,
/// a FIFO, a socket): said in the user's words, the same by every tool.
fn wrong_kind(path: &Path) -> Option<ToolError> {
    let metadata = std::fs::metadata(path).ok()?;
    if is_drive_kind(path) {
        return None;
    }
    let what = if metadata.is_dir() {
        "a folder, not a drive file"
    } else {
        "not a regular file or a block device"
    };
    Some(ToolError::File {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, what),
    })
}

/// Whether `path` is something a drive can be: a regular file or a block
/// device (opening a FIFO to look inside would block; the drive refuses
/// anything else with a clear error).
pub fn is_drive_kind(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path)
        .is_ok_and(|m| m.file_type().is_file() || m.file_type().is_block_device())
}
