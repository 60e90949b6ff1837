//! The `Drive` trait: one device that moves whole pages, one request at a
//! time, with an optional seek-ahead hint.
//!
//! A drive has no queue: it serves the request in hand and nothing else (the
//! seed's "no queuing facilities at the disk level"). Overlap between drives
//! is the channel's business ([`crate::DiskChannel`]).
//!
//! A drive whose transfers need no state of their own — a file, read and
//! written with positioned calls — also offers a [`ParallelIo`]: the same
//! transfers through `&self`, so that several threads can have transfers in
//! flight on it at once and the device sees a queue depth above one. The
//! channel uses it when there is one; a simulated drive has none (its arm
//! is state), so its transfers stay one at a time, in a deterministic
//! order.

use crate::{DiskPage, DriveError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Transfers of a drive that several threads may run at once (see the
/// module doc). Same contract as [`Drive::read`] and [`Drive::write`].
pub trait ParallelIo: Send + Sync {
    /// Reads `buf.len() / page_size` pages starting at `page` into `buf`.
    fn read_at(
        &self,
        page: DiskPage,
        buf: &mut [u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError>;

    /// Writes `data.len() / page_size` pages starting at `page`.
    fn write_at(
        &self,
        page: DiskPage,
        data: &[u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError>;

    /// Runs every transfer of `batch`, in flight together where the drive
    /// can, and returns each one's outcome in order. The default runs them
    /// one after another.
    fn transfer_all(&self, batch: &mut [crate::Transfer<'_>]) -> Vec<Result<(), DriveError>> {
        batch.iter_mut().map(|t| t.run_through(self)).collect()
    }

    /// The descriptor and byte offset a direct read of `page` goes to, for
    /// a caller that issues the read itself and completes it later (see
    /// [`ChannelHandle::direct_target`](crate::ChannelHandle::direct_target));
    /// `None` (the default) where reads go through the drive only.
    fn direct_target(&self, page: DiskPage) -> Option<(std::os::fd::RawFd, u64)> {
        let _ = page;
        None
    }

    /// Counts a read of `pages` pages that a caller issued itself at a
    /// [`ParallelIo::direct_target`] and saw complete, in the drive's
    /// stats.
    fn count_direct_read(&self, pages: u64) {
        let _ = pages;
    }
}

/// Counters a drive keeps about its own work.
///
/// Times are nanoseconds: virtual ones for a simulated drive, wall-clock ones
/// for a file drive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveStats {
    /// Read operations served.
    pub reads: u64,
    /// Write operations served.
    pub writes: u64,
    /// Syncs served.
    pub syncs: u64,
    /// Pages read.
    pub pages_read: u64,
    /// Pages written.
    pub pages_written: u64,
    /// Cylinders the arm crossed (simulated rotating drives only).
    pub cylinders_crossed: u64,
    /// Time spent serving requests (seek, rotation, transfer), nanoseconds.
    pub busy_ns: u64,
    /// Requests that carried a seek-ahead hint.
    pub seek_aheads_issued: u64,
    /// Hints that the next request actually used (it went where the hint
    /// pointed: the same cylinder on a simulated disk, the same page on a
    /// file).
    pub seek_aheads_used: u64,
    /// What the disk model says the used hints saved (simulated rotating
    /// drives only): for each, the part of its seek that overlapped the
    /// time between the end of the hinting transfer and the issue of the
    /// next, `min(seek, gap)`. Nanoseconds.
    pub seek_ahead_overlap_ns: u64,
}

impl DriveStats {
    /// Sum of two sets of counters (for channel totals).
    pub fn plus(self, other: DriveStats) -> DriveStats {
        DriveStats {
            reads: self.reads + other.reads,
            writes: self.writes + other.writes,
            syncs: self.syncs + other.syncs,
            pages_read: self.pages_read + other.pages_read,
            pages_written: self.pages_written + other.pages_written,
            cylinders_crossed: self.cylinders_crossed + other.cylinders_crossed,
            busy_ns: self.busy_ns + other.busy_ns,
            seek_aheads_issued: self.seek_aheads_issued + other.seek_aheads_issued,
            seek_aheads_used: self.seek_aheads_used + other.seek_aheads_used,
            seek_ahead_overlap_ns: self.seek_ahead_overlap_ns + other.seek_ahead_overlap_ns,
        }
    }
}

/// A device that stores pages of one fixed size.
///
/// Every transfer moves one or more consecutive whole pages. `seek_ahead`
/// names the disk page the drive should move toward once this transfer is
/// done (the next request's page, when the caller knows it).
pub trait Drive: Send {
    /// A name for messages: the path of a file drive, `sim:<preset>` for a
    /// simulated one.
    fn name(&self) -> &str;

    /// Bytes per page.
    fn page_size(&self) -> usize;

    /// Pages on the drive.
    fn page_count(&self) -> u64;

    /// Reads `buf.len() / page_size` pages starting at `page` into `buf`,
    /// writing every byte of it on success (a page never written reads as
    /// zeros): the VM may hand a buffer that holds another page's old
    /// bytes.
    fn read(
        &mut self,
        page: DiskPage,
        buf: &mut [u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError>;

    /// Writes `data.len() / page_size` pages starting at `page`.
    fn write(
        &mut self,
        page: DiskPage,
        data: &[u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError>;

    /// Returns once everything written so far is on stable storage.
    fn sync(&mut self) -> Result<(), DriveError>;

    /// The drive's counters.
    fn stats(&self) -> DriveStats;

    /// Takes an exclusive lock on the drive so that no other process opens
    /// the same volume; drives that are not files have nothing to lock. A
    /// drive opened for reading only takes a shared lock instead: readers
    /// exclude writers, not each other.
    fn lock_exclusive(&self) -> Result<(), DriveError> {
        Ok(())
    }

    /// The drive's virtual clock (simulated drives only): the time at which
    /// its last request completed, or to which it was idled.
    fn virtual_time_ns(&self) -> Option<u64> {
        None
    }

    /// How a file drive uses the kernel's page cache (`None` for drives
    /// that are not files).
    fn cache_policy(&self) -> Option<crate::cache::CachePolicy> {
        None
    }

    /// The drive's transfers for several threads at once, if it can serve
    /// them (see the module doc). The default is `None`: one transfer at a
    /// time, under the channel's lock of the drive.
    fn parallel(&self) -> Option<Arc<dyn ParallelIo>> {
        None
    }

    /// Lets a simulated drive's clock run to `time_ns` with nothing to do
    /// (a deterministic driver uses this for think time). No effect on real
    /// drives, nor when the clock is already past `time_ns`.
    fn idle_until(&mut self, time_ns: u64) {
        let _ = time_ns;
    }
}

/// Running one transfer of a batch (here, beside the traits it runs on).
impl crate::Transfer<'_> {
    /// Runs it through `io`'s own read or write.
    pub fn run_through<I: ParallelIo + ?Sized>(&mut self, io: &I) -> Result<(), DriveError> {
        match self {
            crate::Transfer::Read { page, buf } => io.read_at(*page, buf, None),
            crate::Transfer::Write { page, data } => io.write_at(*page, data, None),
        }
    }

    /// Runs it on `drive` (which the caller has to itself).
    pub fn run_on<D: Drive + ?Sized>(&mut self, drive: &mut D) -> Result<(), DriveError> {
        match self {
            crate::Transfer::Read { page, buf } => drive.read(*page, buf, None),
            crate::Transfer::Write { page, data } => drive.write(*page, data, None),
        }
    }
}

/// Checks a transfer's shape and returns its length in pages.
///
/// A drive calls this first in `read` and `write`: a buffer must be a whole,
/// non-zero number of pages and the pages must lie on the drive.
pub fn check_transfer(drive: &dyn Drive, page: DiskPage, len: usize) -> Result<u64, DriveError> {
    check_shape(
        drive.name(),
        drive.page_size(),
        drive.page_count(),
        page,
        len,
    )
}

/// [`check_transfer`] from a drive's name, page size and page count.
pub(crate) fn check_shape(
    name: &str,
    page_size: usize,
    page_count: u64,
    page: DiskPage,
    len: usize,
) -> Result<u64, DriveError> {
    if len == 0 || !len.is_multiple_of(page_size) {
        return Err(DriveError::BadBuffer {
            drive: name.to_string(),
            len,
            page_size,
        });
    }
    let count = (len / page_size) as u64;
    let in_range = page
        .0
        .checked_add(count)
        .is_some_and(|end| end <= page_count);
    if !in_range {
        return Err(DriveError::OutOfRange {
            drive: name.to_string(),
            page,
            count,
            page_count,
        });
    }
    Ok(count)
}

impl<D: Drive + ?Sized> Drive for Box<D> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn page_size(&self) -> usize {
        (**self).page_size()
    }
    fn page_count(&self) -> u64 {
        (**self).page_count()
    }
    fn read(
        &mut self,
        page: DiskPage,
        buf: &mut [u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        (**self).read(page, buf, seek_ahead)
    }
    fn write(
        &mut self,
        page: DiskPage,
        data: &[u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        (**self).write(page, data, seek_ahead)
    }
    fn sync(&mut self) -> Result<(), DriveError> {
        (**self).sync()
    }
    fn stats(&self) -> DriveStats {
        (**self).stats()
    }
    fn lock_exclusive(&self) -> Result<(), DriveError> {
        (**self).lock_exclusive()
    }
    fn virtual_time_ns(&self) -> Option<u64> {
        (**self).virtual_time_ns()
    }
    fn cache_policy(&self) -> Option<crate::cache::CachePolicy> {
        (**self).cache_policy()
    }
    fn idle_until(&mut self, time_ns: u64) {
        (**self).idle_until(time_ns)
    }
    fn parallel(&self) -> Option<Arc<dyn ParallelIo>> {
        (**self).parallel()
    }
}
