//! The drive layer's errors: every variant names the drive and, where there
//! is one, the disk page.

use crate::DiskPage;
use std::io;
use std::path::PathBuf;

/// What went wrong with a drive operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriveError {
    /// The operating system refused or failed a transfer.
    #[error("{drive}: I/O error at {page}: {source}")]
    Io {
        /// The drive's name (its path for a file drive).
        drive: String,
        /// First page of the failed transfer.
        page: DiskPage,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Opening, creating, sizing or syncing the drive's file failed.
    #[error("{path}: {action}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What we were doing ("open", "preallocate", "sync", ...).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A transfer reached past the last page of the drive.
    #[error("{drive}: pages {first}..{end} are outside the drive's {page_count} pages", first = page.0, end = page.0 + count)]
    OutOfRange {
        /// The drive's name.
        drive: String,
        /// First page of the transfer.
        page: DiskPage,
        /// Pages in the transfer.
        count: u64,
        /// Pages on the drive.
        page_count: u64,
    },
    /// A buffer is not a whole, non-zero number of pages.
    #[error("{drive}: buffer of {len} bytes is not a whole number of {page_size}-byte pages")]
    BadBuffer {
        /// The drive's name.
        drive: String,
        /// The buffer's length in bytes.
        len: usize,
        /// The drive's page size.
        page_size: usize,
    },
    /// The drive ran out of space while writing (`ENOSPC`).
    #[error("{drive}: no space left on the device while writing {page}")]
    NoSpace {
        /// The drive's name.
        drive: String,
        /// The page being written.
        page: DiskPage,
    },
    /// The operating system accepted fewer bytes than asked and then none.
    #[error("{drive}: short write at {page}: {written} of {wanted} bytes")]
    ShortWrite {
        /// The drive's name.
        drive: String,
        /// First page of the transfer.
        page: DiskPage,
        /// Bytes written.
        written: usize,
        /// Bytes asked for.
        wanted: usize,
    },
    /// The page is a bad spot of the medium (persistent).
    #[error("{drive}: {page} is a bad spot")]
    BadPage {
        /// The drive's name.
        drive: String,
        /// The bad page.
        page: DiskPage,
    },
    /// An error injected by a fault-injecting drive (transient).
    #[error("{drive}: injected {op} failure at {page}")]
    Injected {
        /// The drive's name.
        drive: String,
        /// First page of the transfer ( page 0 for a sync).
        page: DiskPage,
        /// "read", "write" or "sync".
        op: &'static str,
    },
    /// Another process (or another open handle) holds the drive's lock.
    #[error(
        "{path}: volume in use: another process, or another open handle in this one, has this drive open"
    )]
    InUse {
        /// The drive file.
        path: PathBuf,
    },
    /// A drive's configuration is not usable.
    #[error("{drive}: bad configuration: {reason}")]
    Config {
        /// The drive's name.
        drive: String,
        /// Why.
        reason: String,
    },
    /// A channel request named a drive the channel does not have.
    #[error("no drive {drive} on this channel ({count} drives)")]
    NoSuchDrive {
        /// The drive index asked for.
        drive: u16,
        /// Drives on the channel.
        count: usize,
    },
}

impl DriveError {
    /// Whether the error says the medium under the page is bad — a bad
    /// spot, or the operating system's `EIO` on a transfer — so that moving
    /// the page to a spare may help. Transient and configuration errors
    /// (an injected failure, no space, a short write) are not: remapping
    /// for them would only use up the spares.
    pub fn is_media_error(&self) -> bool {
        match self {
            DriveError::BadPage { .. } => true,
            DriveError::Io { source, .. } => source.raw_os_error() == Some(libc_eio()),
            _ => false,
        }
    }

    /// The disk page the error is about, if it is about one.
    pub fn page(&self) -> Option<DiskPage> {
        match self {
            DriveError::Io { page, .. }
            | DriveError::OutOfRange { page, .. }
            | DriveError::NoSpace { page, .. }
            | DriveError::ShortWrite { page, .. }
            | DriveError::BadPage { page, .. }
            | DriveError::Injected { page, .. } => Some(*page),
            _ => None,
        }
    }
}

/// `EIO` on Linux.
const fn libc_eio() -> i32 {
    5
}
