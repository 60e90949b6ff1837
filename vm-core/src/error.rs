//! The VM's errors: values with the address, page or disk page they are
//! about. A caller's mistake is one of these, never a panic.

use crate::vocabulary::VAddr;
use disk_channel::DriveError;
use runtable::{DiskAddr, Interval, PageNumber, VolumeError};

/// What went wrong with a VM operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VmError {
    /// The address lies in no allocated interval.
    #[error("address fault at {addr} ({page} is not allocated)")]
    AddressFault {
        /// The address.
        addr: VAddr,
        /// Its page.
        page: PageNumber,
    },
    /// The address (or the access's last byte) lies past the end of the
    /// address space; for an interval that reaches past it, `addr` is the
    /// first page past the end.
    #[error(
        "address fault at {addr}: past the end of the address space ({pages} virtual pages of {page_size} bytes)"
    )]
    OutsideAddressSpace {
        /// The address.
        addr: VAddr,
        /// The address space's size in pages.
        pages: u64,
        /// Its page size.
        page_size: usize,
    },
    /// A write to a read-only page.
    #[error("write-protect fault at {page}")]
    WriteProtect {
        /// The page.
        page: PageNumber,
    },
    /// No free interval of the size asked.
    #[error("can't allocate {pages} pages of virtual memory")]
    CantAllocateVirtual {
        /// Pages asked.
        pages: u64,
    },
    /// Real-memory-only mode: the allocation would exceed real memory.
    #[error(
        "can't allocate {pages} pages of real memory: {allocated} of {budget} pages already allocated"
    )]
    CantAllocateReal {
        /// Pages asked.
        pages: u64,
        /// Pages already allocated.
        allocated: u64,
        /// The real-memory budget in pages.
        budget: u64,
    },
    /// A transfer to or from the backing store failed; nothing was lost
    /// (a page being written back stays resident and dirty).
    #[error("I/O error on {page} at {disk}: {source}")]
    Io {
        /// The virtual page.
        page: PageNumber,
        /// Its disk address.
        disk: DiskAddr,
        /// The drive's error.
        #[source]
        source: DriveError,
    },
    /// Every page of real memory is pinned: nothing can be replaced.
    #[error("all {budget} pages of real memory are pinned; cannot serve a fault on {page}")]
    AllPinned {
        /// The page whose fault could not be served.
        page: PageNumber,
        /// The real-memory budget in pages.
        budget: u64,
    },
    /// A page held by a guard, or by another thread's copy in or out of
    /// it, blocks the operation. (`kill`, `free` and `copy` wait briefly
    /// for a copy to end, and wait for a page being brought in — a fault,
    /// a read-ahead, a read-around — before they report it.)
    #[error("{page} is in use: a guard, or a copy in progress, holds it")]
    PageBusy {
        /// The page.
        page: PageNumber,
    },
    /// The interval is not (wholly) allocated (one that reaches past the
    /// end of the address space is [`VmError::OutsideAddressSpace`]).
    #[error("{interval} is not allocated")]
    NotAllocated {
        /// The interval.
        interval: Interval,
    },
    /// The calling thread holds a guard on the page, and the access would
    /// wait for that guard forever.
    #[error("{page} is held by a guard of this thread: drop it first")]
    PageHeldByThisThread {
        /// The page.
        page: PageNumber,
    },
    /// A write-back during replacement failed, even after the page was
    /// moved to a spare: the page stays resident and changed (nothing is
    /// lost), and no other frame could be freed for the fault on
    /// `touched`.
    #[error("no frame for {touched}: writing back {failed} at {disk} failed: {source}")]
    WriteBackFailed {
        /// The page whose fault needed a frame.
        touched: PageNumber,
        /// The page whose write failed.
        failed: PageNumber,
        /// Where it was written.
        disk: DiskAddr,
        /// The drive's error.
        #[source]
        source: DriveError,
    },
    /// Writing back a victim of a shared file mapping to its file failed
    /// during replacement: it stays resident and changed; the error names
    /// `touched`, the page whose fault needed a frame.
    #[error("no frame for {touched}: writing back {failed} to its file failed: {source}")]
    FileWriteBackFailed {
        /// The page whose fault needed a frame.
        touched: PageNumber,
        /// The (first) page whose write failed.
        failed: PageNumber,
        /// The file's error ([`VmError::File`] or [`VmError::FileTruncated`]).
        #[source]
        source: Box<VmError>,
    },
    /// Every unpinned page of real memory is held by a guard or being
    /// transferred, and stayed so: no frame for the fault on `page`.
    #[error("no frame for a fault on {page}: the {latched} unpinned resident pages are all held")]
    FramesBusy {
        /// The page that faulted.
        page: PageNumber,
        /// Unpinned resident pages, all latched.
        latched: u64,
    },
    /// `kill` of a pinned page.
    #[error("{page} is pinned: unpin it before killing it")]
    Pinned {
        /// The page.
        page: PageNumber,
    },
    /// `unpin` of a page that is not pinned.
    #[error("{page} is not pinned")]
    NotPinned {
        /// The page.
        page: PageNumber,
    },
    /// A panic unwound through the fault service (a drive that panicked,
    /// say); the VM's structures may be half-changed, so every fault and
    /// I/O operation fails from then on. Resident pages can still be read.
    #[error("the VM is unusable: a panic interrupted its fault service")]
    Poisoned,
    /// An index past the end of a [`crate::VmArray`].
    #[error("elements {index}..{index}+{count} are outside an array of {len}")]
    OutOfBounds {
        /// The first element asked for.
        index: u64,
        /// Elements asked for.
        count: u64,
        /// The array's length.
        len: u64,
    },
    /// A call's argument is unusable (an offset not on a page, intervals
    /// of different sizes, an interval that holds no `VmFile`, no pages):
    /// a mistake of the caller's, as [`VmError::Config`] is of the
    /// configuration's.
    #[error("{call}: {reason}")]
    BadArgument {
        /// The call, or the argument.
        call: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration field is unusable.
    #[error("bad VM configuration: {field}: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A mapping call failed.
    #[error("{what} of {bytes} bytes failed: {source}")]
    Map {
        /// What was being mapped or released.
        what: &'static str,
        /// Its size.
        bytes: usize,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Transparent mode was asked for, and the kernel (or the process)
    /// refused what it needs; the reason says what was tried and how to
    /// enable it. The copying API works without it.
    #[error("transparent mode is unavailable: {reason}")]
    TransparentUnavailable {
        /// What was refused, and what to do about it.
        reason: String,
    },
    /// A view of an interval ([`AddressSpace::view`](crate::AddressSpace::view)
    /// or `view_mut`) conflicts with this access: a write, a guard, or a
    /// change of the pages while a shared view lives, or any access while
    /// an exclusive view lives.
    #[error("{page} is in {interval}, which {kind} view holds")]
    ViewConflict {
        /// The page of the refused access.
        page: PageNumber,
        /// The view's interval.
        interval: Interval,
        /// "a shared" or "an exclusive".
        kind: &'static str,
    },
    /// The backing volume failed.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// Syncing the drives failed.
    #[error("sync failed: {0}")]
    Sync(#[source] DriveError),
    /// Reading, writing or syncing a mapped file failed.
    #[error("{what} of {path} at byte {offset} failed: {source}")]
    File {
        /// "reading", "writing" or "syncing".
        what: &'static str,
        /// The file, as named when it was mapped.
        path: std::path::PathBuf,
        /// Where in the file.
        offset: u64,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A mapped file became shorter than a page of its mapping needs: the
    /// page (within the file when it was mapped) is past its end now.
    #[error(
        "{path} was truncated under its mapping: byte {offset} (within the file when mapped) \
         is past its end ({len} bytes) now"
    )]
    FileTruncated {
        /// The file.
        path: std::path::PathBuf,
        /// The page's offset in the file.
        offset: u64,
        /// The file's length now.
        len: u64,
    },
    /// A change of protection above an interval's maximum protection.
    #[error("{interval} cannot be made writable: its maximum protection is read ({why})")]
    AboveMaximumProtection {
        /// The interval (or the part of it) whose maximum is read.
        interval: Interval,
        /// Why the maximum is read.
        why: String,
    },
}

impl From<VmError> for std::io::Error {
    /// The nearest [`std::io::ErrorKind`], with the VM's error (and its
    /// context: the address, page or drive) as the source.
    fn from(e: VmError) -> std::io::Error {
        use std::io::ErrorKind;
        let kind = match &e {
            VmError::AddressFault { .. }
            | VmError::OutsideAddressSpace { .. }
            | VmError::OutOfBounds { .. } => ErrorKind::InvalidInput,
            VmError::NotAllocated { .. } => ErrorKind::InvalidInput,
            VmError::WriteProtect { .. } => ErrorKind::PermissionDenied,
            VmError::CantAllocateVirtual { .. } | VmError::CantAllocateReal { .. } => {
                ErrorKind::OutOfMemory
            }
            VmError::AllPinned { .. } | VmError::FramesBusy { .. } => ErrorKind::OutOfMemory,
            VmError::PageBusy { .. } | VmError::Pinned { .. } => ErrorKind::ResourceBusy,
            VmError::ViewConflict { .. } => ErrorKind::ResourceBusy,
            VmError::TransparentUnavailable { .. } => ErrorKind::Unsupported,
            VmError::PageHeldByThisThread { .. } => ErrorKind::Deadlock,
            VmError::Config { .. } | VmError::BadArgument { .. } | VmError::NotPinned { .. } => {
                ErrorKind::InvalidInput
            }
            VmError::AboveMaximumProtection { .. } => ErrorKind::PermissionDenied,
            VmError::FileTruncated { .. } => ErrorKind::UnexpectedEof,
            VmError::File { source, .. } => source.kind(),
            _ => ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}
