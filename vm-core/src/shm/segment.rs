//! A shared segment: a checked header, then the data (see the module doc
//! of [`crate::shm`] for the layout).

use crate::error::VmError;
use crate::sys::futex::current_pid;
use crate::sys::shared_mapping::SharedMapping;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Bytes of the segment header.
pub const HEADER_BYTES: usize = 64;
const MAGIC: &[u8; 8] = b"CEDARSHM";
const VERSION: u32 = 1;

/// What went wrong with a segment or a structure in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShmError {
    /// Creating, opening or sizing the segment's file failed.
    #[error("{path}: {action}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What we were doing.
        action: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Mapping failed.
    #[error(transparent)]
    Map(#[from] VmError),
    /// The file is not a cedar-vm segment.
    #[error("{path}: not a cedar-vm shared segment ({reason})")]
    NotASegment {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The segment was made by a newer version of this software.
    #[error("{path}: segment version {version} is newer than this software's {VERSION}")]
    FutureVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        version: u32,
    },
    /// The segment is not the size the opener expects.
    #[error("{path}: segment holds {actual} bytes, expected {expected}")]
    WrongSize {
        /// The file.
        path: PathBuf,
        /// What it holds.
        actual: u64,
        /// What was expected.
        expected: u64,
    },
    /// A structure placed off the segment or misaligned.
    #[error(
        "a {what} of {bytes} bytes at offset {offset} does not fit a {size}-byte segment 4-aligned"
    )]
    Placement {
        /// The structure.
        what: &'static str,
        /// Its offset.
        offset: usize,
        /// Its size.
        bytes: usize,
        /// The segment's data size.
        size: usize,
    },
}

/// A shared segment.
#[derive(Debug)]
pub struct Segment {
    mapping: SharedMapping,
    path: Option<PathBuf>,
}

fn header_bytes(data: u64) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
    h[16..24].copy_from_slice(&data.to_le_bytes());
    h[24..28].copy_from_slice(&current_pid().to_le_bytes());
    let crc = crc32c::crc32c(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    h
}

impl Segment {
    fn write_header(&self, data: u64) {
        let h = header_bytes(data);
        for (i, chunk) in h.chunks_exact(4).enumerate() {
            self.mapping.words()[i].store(
                u32::from_le_bytes(chunk.try_into().expect("4")),
                Ordering::SeqCst,
            );
        }
    }

    fn read_header(&self) -> [u8; HEADER_BYTES] {
        let mut h = [0u8; HEADER_BYTES];
        for (i, chunk) in h.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&self.mapping.words()[i].load(Ordering::SeqCst).to_le_bytes());
        }
        h
    }

    /// Creates a named segment of `size` usable bytes at `path` with
    /// permissions `mode` (e.g. `0o600`); fails if the file exists.
    pub fn create(path: impl AsRef<Path>, size: usize, mode: u32) -> Result<Segment, ShmError> {
        let path = path.as_ref().to_path_buf();
        let file_error = |action, source| ShmError::File {
            path: path.clone(),
            action,
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| file_error("create", e))?;
        let len = HEADER_BYTES + size.next_multiple_of(4);
        file.set_len(len as u64)
            .map_err(|e| file_error("size", e))?;
        let segment = Segment {
            mapping: SharedMapping::of_file(&file, len)?,
            path: Some(path),
        };
        segment.write_header(size as u64);
        Ok(segment)
    }

    /// Opens the named segment at `path`, checking its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Segment, ShmError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| ShmError::File {
                path: path.clone(),
                action: "open",
                source,
            })?;
        let len = file
            .metadata()
            .map_err(|source| ShmError::File {
                path: path.clone(),
                action: "measure",
                source,
            })?
            .len() as usize;
        let not = |reason: String| ShmError::NotASegment {
            path: path.clone(),
            reason,
        };
        if len < HEADER_BYTES {
            return Err(not(format!("{len} bytes is shorter than a segment header")));
        }
        let segment = Segment {
            mapping: SharedMapping::of_file(&file, len)?,
            path: Some(path.clone()),
        };
        let h = segment.read_header();
        if &h[0..8] != MAGIC {
            return Err(not("wrong magic".into()));
        }
        let version = u32::from_le_bytes(h[8..12].try_into().expect("4"));
        if version > VERSION {
            return Err(ShmError::FutureVersion { path, version });
        }
        if u32::from_le_bytes(h[60..64].try_into().expect("4")) != crc32c::crc32c(&h[..60])
            || version == 0
        {
            return Err(not("header checksum mismatch".into()));
        }
        let data = u64::from_le_bytes(h[16..24].try_into().expect("8"));
        let expected = (len - HEADER_BYTES) as u64;
        if data.next_multiple_of(4) != expected {
            return Err(ShmError::WrongSize {
                path,
                actual: expected,
                expected: data,
            });
        }
        Ok(segment)
    }

    /// Opens the named segment at `path` and checks it holds `size` bytes.
    pub fn open_sized(path: impl AsRef<Path>, size: usize) -> Result<Segment, ShmError> {
        let segment = Segment::open(path.as_ref())?;
        if segment.size() != size {
            return Err(ShmError::WrongSize {
                path: path.as_ref().to_path_buf(),
                actual: segment.size() as u64,
                expected: size as u64,
            });
        }
        Ok(segment)
    }

    /// An anonymous segment of `size` zeroed bytes, shared with children
    /// made by `fork` after this call; its memory goes when the last
    /// process unmaps it.
    pub fn anonymous(size: usize) -> Result<Segment, ShmError> {
        let segment = Segment {
            mapping: SharedMapping::anonymous(HEADER_BYTES + size.next_multiple_of(4))?,
            path: None,
        };
        segment.write_header(size as u64);
        Ok(segment)
    }

    /// Usable bytes.
    pub fn size(&self) -> usize {
        let h = self.read_header();
        u64::from_le_bytes(h[16..24].try_into().expect("8")) as usize
    }

    /// The file of a named segment.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// `count` words at byte `offset` of the data, for a structure `what`.
    pub(crate) fn words(
        &self,
        what: &'static str,
        offset: usize,
        count: usize,
    ) -> Result<&[AtomicU32], ShmError> {
        let size = self.size().min(self.mapping.len() - HEADER_BYTES);
        let bytes = count * 4;
        if !offset.is_multiple_of(4) || offset.checked_add(bytes).is_none_or(|end| end > size) {
            return Err(ShmError::Placement {
                what,
                offset,
                bytes,
                size,
            });
        }
        let first = (HEADER_BYTES + offset) / 4;
        Ok(&self.mapping.words()[first..first + count])
    }

    /// The 32-bit word at byte `offset` of the data (for the BSD primitives
    /// and for data shared beside them).
    pub fn word(&self, offset: usize) -> Result<&AtomicU32, ShmError> {
        Ok(&self.words("word", offset, 1)?[0])
    }
}
