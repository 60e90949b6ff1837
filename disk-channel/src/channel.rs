//! `DiskChannel`: several drives, with transfers to different drives
//! overlapping.
//!
//! Each drive sits behind its own lock and, once work is submitted to it,
//! has one worker thread. There are two ways in:
//!
//! - the **blocking** calls ([`DiskChannel::read`], [`DiskChannel::write`])
//!   run the transfer in the caller's thread under the drive's lock: no
//!   thread handoff, which matters on the fault path, where waking a thread
//!   on the other core costs more than a page read from the page cache;
//! - **submit/wait** ([`DiskChannel::submit`], [`Ticket::wait`]) hands the
//!   request to the drive's worker and returns at once, so a caller can have
//!   one transfer in flight on every drive.
//!
//! A drive that offers [`ParallelIo`] (a file) is not locked for the
//! blocking calls: each caller's transfer goes to the device at once, so
//! several threads have several transfers in flight on one drive. Other
//! drives (simulated ones) serve one request at a time, in arrival order;
//! there is no queueing or reordering inside a drive (the seed's "no
//! queuing facilities at the disk level").
//!
//! A [`ChannelHandle`] is the blocking calls, detached from the channel:
//! a layer above that keeps the channel under its own lock (the VM's
//! monitor) clones a handle once and transfers through it without that
//! lock.
//!
//! Locking: `Slot::drive` guards the drive; `Slot::worker` guards the lazily
//! started worker. No lock is held while another is taken.

use crate::{DiskPage, Drive, DriveError, DriveId, DriveStats, ParallelIo};
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

/// Direction of a submitted transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Fill the buffer from the drive.
    Read,
    /// Write the buffer to the drive.
    Write,
}

/// A transfer handed to a drive's worker. The buffer travels with the
/// request and comes back in the [`Completion`], so no copy is made.
#[derive(Debug)]
pub struct Request {
    /// Which drive.
    pub drive: DriveId,
    /// First disk page.
    pub page: DiskPage,
    /// Read or write.
    pub op: Op,
    /// Whole pages: the destination of a read, the source of a write.
    pub buffer: Vec<u8>,
    /// Where the drive should move when this transfer is done.
    pub seek_ahead: Option<DiskPage>,
}

/// A finished request: the request (with its buffer) and how it went.
#[derive(Debug)]
pub struct Completion {
    /// The request, buffer included.
    pub request: Request,
    /// The outcome.
    pub result: Result<(), DriveError>,
}

#[derive(Default)]
struct TicketState {
    done: Mutex<Option<Completion>>,
    signal: Condvar,
}

/// The claim on a submitted request.
#[must_use = "a submitted request's outcome must be waited for"]
pub struct Ticket {
    state: Arc<TicketState>,
}

impl Ticket {
    /// Blocks until the request is done and returns it.
    pub fn wait(self) -> Completion {
        let mut done = self.state.done.lock();
        loop {
            if let Some(completion) = done.take() {
                return completion;
            }
            self.state.signal.wait(&mut done);
        }
    }

    /// Whether the request is done (`wait` would not block).
    pub fn is_done(&self) -> bool {
        self.state.done.lock().is_some()
    }
}

struct Job {
    request: Request,
    ticket: Arc<TicketState>,
}

struct Worker {
    sender: mpsc::Sender<Job>,
    thread: thread::JoinHandle<()>,
}

struct Slot {
    drive: Arc<Mutex<Box<dyn Drive>>>,
    /// The drive's lock-free transfers, if it has them.
    parallel: Option<Arc<dyn ParallelIo>>,
    name: String,
    page_size: usize,
    page_count: u64,
    worker: Mutex<Option<Worker>>,
}

/// The drives of a volume, with one worker per drive.
pub struct DiskChannel {
    slots: Vec<Slot>,
}

impl std::fmt::Debug for DiskChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.slots.iter().map(|s| &s.name))
            .finish()
    }
}

fn perform(drive: &mut dyn Drive, request: &mut Request) -> Result<(), DriveError> {
    match request.op {
        Op::Read => drive.read(request.page, &mut request.buffer, request.seek_ahead),
        Op::Write => drive.write(request.page, &request.buffer, request.seek_ahead),
    }
}

impl DiskChannel {
    /// A channel over `drives`, which must share one page size.
    pub fn new(drives: Vec<Box<dyn Drive>>) -> Result<DiskChannel, DriveError> {
        let Some(first) = drives.first() else {
            return Err(DriveError::Config {
                drive: "channel".into(),
                reason: "a channel needs at least one drive".into(),
            });
        };
        let page_size = first.page_size();
        if drives.len() > usize::from(u16::MAX) {
            return Err(DriveError::Config {
                drive: "channel".into(),
                reason: format!("{} drives; at most {}", drives.len(), u16::MAX),
            });
        }
        if let Some(odd) = drives.iter().find(|d| d.page_size() != page_size) {
            return Err(DriveError::Config {
                drive: odd.name().to_string(),
                reason: format!(
                    "page size {} differs from the first drive's {page_size}",
                    odd.page_size()
                ),
            });
        }
        let slots = drives
            .into_iter()
            .map(|drive| Slot {
                parallel: drive.parallel(),
                name: drive.name().to_string(),
                page_size: drive.page_size(),
                page_count: drive.page_count(),
                drive: Arc::new(Mutex::new(drive)),
                worker: Mutex::new(None),
            })
            .collect();
        Ok(DiskChannel { slots })
    }

    /// Drives on the channel.
    pub fn drive_count(&self) -> usize {
        self.slots.len()
    }

    /// The page size every drive shares.
    pub fn page_size(&self) -> usize {
        self.slots[0].page_size
    }

    fn slot(&self, drive: DriveId) -> Result<&Slot, DriveError> {
        self.slots
            .get(drive.index())
            .ok_or(DriveError::NoSuchDrive {
                drive: drive.0,
                count: self.slots.len(),
            })
    }

    /// Pages on `drive`.
    pub fn page_count(&self, drive: DriveId) -> Result<u64, DriveError> {
        Ok(self.slot(drive)?.page_count)
    }

    /// The name of `drive`.
    pub fn name(&self, drive: DriveId) -> Result<&str, DriveError> {
        Ok(&self.slot(drive)?.name)
    }

    /// Reads whole pages from `drive` in the caller's thread.
    pub fn read(
        &self,
        drive: DriveId,
        page: DiskPage,
        buf: &mut [u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        let slot = self.slot(drive)?;
        read_through(&slot.drive, slot.parallel.as_deref(), page, buf, seek_ahead)
    }

    /// Writes whole pages to `drive` in the caller's thread.
    pub fn write(
        &self,
        drive: DriveId,
        page: DiskPage,
        data: &[u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        let slot = self.slot(drive)?;
        write_through(
            &slot.drive,
            slot.parallel.as_deref(),
            page,
            data,
            seek_ahead,
        )
    }

    /// Runs every transfer of `batch` on `drive` in the caller's thread,
    /// in flight together where the drive can
    /// ([`ParallelIo::transfer_all`]), one after another under the drive's
    /// lock where it cannot; each one's outcome, in order.
    pub fn transfer_all(
        &self,
        drive: DriveId,
        batch: &mut [crate::Transfer<'_>],
    ) -> Result<Vec<Result<(), DriveError>>, DriveError> {
        let slot = self.slot(drive)?;
        Ok(transfer_all_through(
            &slot.drive,
            slot.parallel.as_deref(),
            batch,
        ))
    }

    /// The blocking calls, detached from the channel (see the module doc).
    pub fn handle(&self) -> ChannelHandle {
        ChannelHandle {
            drives: self
                .slots
                .iter()
                .map(|s| (Arc::clone(&s.drive), s.parallel.clone()))
                .collect(),
        }
    }

    /// Syncs one drive: everything written to it by transfers that ended
    /// before this call is on stable storage when it returns. (A drive with
    /// [`ParallelIo`] takes writes without the channel's lock, so a write
    /// still in flight on another thread may or may not be covered: order
    /// writes before the sync that must cover them, as the VM does by
    /// issuing both under its monitor.)
    pub fn sync(&self, drive: DriveId) -> Result<(), DriveError> {
        self.slot(drive)?.drive.lock().sync()
    }

    /// Syncs every drive; stops at the first failure.
    pub fn sync_all(&self) -> Result<(), DriveError> {
        for slot in &self.slots {
            slot.drive.lock().sync()?;
        }
        Ok(())
    }

    /// Hands `request` to its drive's worker (started on first use) and
    /// returns at once.
    pub fn submit(&self, request: Request) -> Result<Ticket, DriveError> {
        let slot = self.slot(request.drive)?;
        let ticket = Arc::new(TicketState::default());
        let mut worker = slot.worker.lock();
        let worker = worker.get_or_insert_with(|| {
            let (sender, receiver) = mpsc::channel::<Job>();
            let drive = Arc::clone(&slot.drive);
            let thread = thread::Builder::new()
                .name(format!("drive-{}", request.drive.0))
                .spawn(move || {
                    for mut job in receiver {
                        let result = perform(drive.lock().as_mut(), &mut job.request);
                        *job.ticket.done.lock() = Some(Completion {
                            request: job.request,
                            result,
                        });
                        job.ticket.signal.notify_all();
                    }
                })
                .expect("spawning a drive worker thread");
            Worker { sender, thread }
        });
        worker
            .sender
            .send(Job {
                request,
                ticket: Arc::clone(&ticket),
            })
            .expect("drive worker is alive while the channel is");
        Ok(Ticket { state: ticket })
    }

    /// Runs `f` on one drive under its lock (tools and tests).
    pub fn with_drive<R>(
        &self,
        drive: DriveId,
        f: impl FnOnce(&mut dyn Drive) -> R,
    ) -> Result<R, DriveError> {
        Ok(f(self.slot(drive)?.drive.lock().as_mut()))
    }

    /// Counters of one drive.
    pub fn stats(&self, drive: DriveId) -> Result<DriveStats, DriveError> {
        Ok(self.slot(drive)?.drive.lock().stats())
    }

    /// Counters of every drive, in drive order.
    pub fn all_stats(&self) -> Vec<DriveStats> {
        self.slots.iter().map(|s| s.drive.lock().stats()).collect()
    }

    /// Counters summed over the drives.
    pub fn total_stats(&self) -> DriveStats {
        self.all_stats()
            .into_iter()
            .fold(DriveStats::default(), DriveStats::plus)
    }

    /// The latest virtual time over the drives, if every drive is simulated.
    pub fn virtual_time_ns(&self) -> Option<u64> {
        self.slots
            .iter()
            .map(|s| s.drive.lock().virtual_time_ns())
            .try_fold(0u64, |latest, t| t.map(|t| latest.max(t)))
    }

    /// Lets every simulated drive's clock run to `time_ns`.
    pub fn idle_until(&self, time_ns: u64) {
        for slot in &self.slots {
            slot.drive.lock().idle_until(time_ns);
        }
    }

    /// Each drive's page-cache policy, in drive order (`None` for drives
    /// that are not files).
    pub fn cache_policies(&self) -> Vec<Option<crate::cache::CachePolicy>> {
        self.slots
            .iter()
            .map(|s| s.drive.lock().cache_policy())
            .collect()
    }

    /// Takes every drive's exclusive lock (see [`Drive::lock_exclusive`]).
    pub fn lock_all(&self) -> Result<(), DriveError> {
        for slot in &self.slots {
            slot.drive.lock().lock_exclusive()?;
        }
        Ok(())
    }

    /// Stops the workers and gives the drives back. Fails, giving the
    /// channel back, while a [`ChannelHandle`] of it is alive.
    pub fn into_drives(mut self) -> Result<Vec<Box<dyn Drive>>, DiskChannel> {
        self.stop_workers();
        if self.slots.iter().any(|s| Arc::strong_count(&s.drive) > 1) {
            return Err(self);
        }
        Ok(std::mem::take(&mut self.slots)
            .into_iter()
            .map(|slot| match Arc::try_unwrap(slot.drive) {
                Ok(drive) => drive.into_inner(),
                Err(_) => unreachable!("counted above: the channel holds the only reference"),
            })
            .collect())
    }

    fn stop_workers(&mut self) {
        for slot in &self.slots {
            if let Some(worker) = slot.worker.lock().take() {
                drop(worker.sender);
                // A worker that panicked has already reported it; the
                // channel is going away either way.
                let _ = worker.thread.join();
            }
        }
    }
}

impl Drop for DiskChannel {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// A read: lock-free through `parallel` if the drive has it, else under the
/// drive's lock.
fn read_through(
    drive: &Mutex<Box<dyn Drive>>,
    parallel: Option<&dyn ParallelIo>,
    page: DiskPage,
    buf: &mut [u8],
    seek_ahead: Option<DiskPage>,
) -> Result<(), DriveError> {
    match parallel {
        Some(io) => io.read_at(page, buf, seek_ahead),
        None => drive.lock().read(page, buf, seek_ahead),
    }
}

/// A batch: through `parallel` if the drive has it, else one by one under
/// the drive's lock.
fn transfer_all_through(
    drive: &Mutex<Box<dyn Drive>>,
    parallel: Option<&dyn ParallelIo>,
    batch: &mut [crate::Transfer<'_>],
) -> Vec<Result<(), DriveError>> {
    match parallel {
        Some(io) => io.transfer_all(batch),
        None => {
            let mut drive = drive.lock();
            batch.iter_mut().map(|t| t.run_on(drive.as_mut())).collect()
        }
    }
}

/// A write, as [`read_through`].
fn write_through(
    drive: &Mutex<Box<dyn Drive>>,
    parallel: Option<&dyn ParallelIo>,
    page: DiskPage,
    data: &[u8],
    seek_ahead: Option<DiskPage>,
) -> Result<(), DriveError> {
    match parallel {
        Some(io) => io.write_at(page, data, seek_ahead),
        None => drive.lock().write(page, data, seek_ahead),
    }
}

/// One drive as a [`ChannelHandle`] reaches it: behind the channel's lock,
/// and lock-free if it has a [`ParallelIo`].
type HandleDrive = (Arc<Mutex<Box<dyn Drive>>>, Option<Arc<dyn ParallelIo>>);

/// The blocking transfers of a [`DiskChannel`], usable without it: cheap
/// to clone, `Send + Sync`. While one is alive,
/// [`DiskChannel::into_drives`] refuses.
#[derive(Clone)]
pub struct ChannelHandle {
    drives: Vec<HandleDrive>,
}

impl std::fmt::Debug for ChannelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelHandle")
            .field("drives", &self.drives.len())
            .finish()
    }
}

impl ChannelHandle {
    fn drive(&self, drive: DriveId) -> Result<&HandleDrive, DriveError> {
        self.drives
            .get(drive.index())
            .ok_or(DriveError::NoSuchDrive {
                drive: drive.0,
                count: self.drives.len(),
            })
    }

    /// [`DiskChannel::read`].
    pub fn read(
        &self,
        drive: DriveId,
        page: DiskPage,
        buf: &mut [u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        let (locked, parallel) = self.drive(drive)?;
        read_through(locked, parallel.as_deref(), page, buf, seek_ahead)
    }

    /// Where a direct read of `page` on `drive` goes (descriptor, byte
    /// offset), for a caller that starts the read itself and completes it
    /// later; `None` where the drive's reads go through it only (simulated
    /// drives, a cache policy other than `Direct`).
    pub fn direct_target(
        &self,
        drive: DriveId,
        page: DiskPage,
    ) -> Option<(std::os::fd::RawFd, u64)> {
        let (_, parallel) = self.drive(drive).ok()?;
        parallel.as_deref()?.direct_target(page)
    }

    /// Counts in `drive`'s stats a read of `pages` pages its caller issued
    /// itself at a [`ChannelHandle::direct_target`] and saw complete.
    pub fn count_direct_read(&self, drive: DriveId, pages: u64) {
        if let Ok((_, Some(parallel))) = self.drive(drive) {
            parallel.count_direct_read(pages);
        }
    }

    /// [`DiskChannel::transfer_all`].
    pub fn transfer_all(
        &self,
        drive: DriveId,
        batch: &mut [crate::Transfer<'_>],
    ) -> Result<Vec<Result<(), DriveError>>, DriveError> {
        let (locked, parallel) = self.drive(drive)?;
        Ok(transfer_all_through(locked, parallel.as_deref(), batch))
    }

    /// [`DiskChannel::write`].
    pub fn write(
        &self,
        drive: DriveId,
        page: DiskPage,
        data: &[u8],
        seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        let (locked, parallel) = self.drive(drive)?;
        write_through(locked, parallel.as_deref(), page, data, seek_ahead)
    }
}
