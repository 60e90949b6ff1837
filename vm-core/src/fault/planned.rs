//! The read-ahead thread's queue of planned cluster reads and cleanings
//! (see `read_ahead`): the handoff between the faulting threads that
//! plan them under the monitor and the thread that does them.

use crate::mapped::MappedFile;
use crate::state::Word;
use parking_lot::{Condvar, Mutex};
use runtable::DiskAddr;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

/// A sequential stream's reads planned or in flight at most (all reads,
/// its own and others'); a scan planning more waits for one to finish
/// instead (by faulting on it). A stream keeps up to this many clusters
/// in flight where the frame pool holds two more
/// (`AddressSpace::stream_reads_max`).
pub(crate) const PLANNED_MAX: usize = 6;

/// The reads of `touch` and the will-need thread planned or in flight at
/// most, beside the streams' (more, for the demo's check, made it slower:
/// see BENCHMARKS.md, "The monitor let go for `touch`"). So reads in
/// flight are at most `PLANNED_MAX + TOUCH_PLANNED_MAX`.
pub(crate) const TOUCH_PLANNED_MAX: usize = 2;

/// Clusters a sequential stream keeps in flight where the frame pool is
/// too small for more, or there is none (see
/// `AddressSpace::stream_reads_max`).
pub(crate) const STREAM_READS_MIN: usize = 2;

/// How long the read-ahead thread sleeps, where faulting threads start
/// their own reads, with no read in their ring and none planned: a read
/// entering the ring wakes it (`nudge`); a read planned and never started
/// (its planner unwound: the VM is poisoned) is started this late. (Waking
/// it for every read planned while it slept, instead, made the scan 20%
/// slower: 0.52 against 0.42 s, medians of eight pairs at 4×.)
const IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// One planned cluster read: pages `page..page + was.len()`, latched
/// absent → locked under the monitor (their words before, in `was`), their
/// frames taken.
pub(super) struct Planned {
    pub(super) page: u64,
    pub(super) from: PlannedFrom,
    pub(super) was: Vec<Word>,
    /// Where the faulting thread can start the read itself (see
    /// `inline`): the drive file's descriptor and byte offset.
    pub(super) direct: Option<(std::os::fd::RawFd, u64)>,
    /// When it was planned (the read-ahead thread starts a read a faulting
    /// thread should have started only once it has waited a tick).
    pub(super) at: std::time::Instant,
    /// Planned for a stream's read-ahead, not for `touch` (the counters a
    /// failed read takes back differ: see `plan_run`).
    pub(super) stream: bool,
    /// A fault's read-around into free memory (`plan_free_around`): its
    /// pages come in unreferenced — the accessor's own latch marks the
    /// page it asked for —, so that the clock keeps none of the guesses a
    /// round for nothing, and `read_stream` does not take a block of them
    /// for a stream.
    pub(super) guess: bool,
}

/// Where a planned read reads from.
pub(super) enum PlannedFrom {
    /// The volume, from this disk address on.
    Disk(DiskAddr),
    /// A mapped file, from this file page on (see `mapped`).
    File(std::sync::Arc<MappedFile>, u64),
}

/// One planned cleaning (write-behind): runs of dirty pages, each page
/// latched shared under the monitor (`try_share_unreferenced`: writers
/// wait, readers do not), written to their disk pages by the thread, which
/// then marks them clean and drops the latches — without the monitor.
pub(super) struct PlannedClean {
    /// Each run's first disk address, first page and page count (pages
    /// consecutive in the address space and on the drive).
    pub(super) runs: Vec<(DiskAddr, u64, u64)>,
}

impl PlannedClean {
    pub(super) fn pages(&self) -> u64 {
        self.runs.iter().map(|&(_, _, n)| n).sum()
    }
}

/// What the thread does next.
pub(super) enum Work {
    Read(Planned),
    Clean(PlannedClean),
}

#[derive(Default)]
struct Queue {
    planned: VecDeque<Planned>,
    /// The cleaning planned and not taken, and the runs `(first page,
    /// count)` of the one being written (at most one at a time).
    clean: Option<PlannedClean>,
    cleaning: Vec<(u64, u64)>,
    /// Reads taken by the thread and not finished.
    reading: Vec<Reading>,
    /// The runs of the mapped-file read-arounds in flight, read by the
    /// faulting threads themselves (`around`): not this thread's work, but
    /// latched pages `free` and `kill` wait for as for the others.
    around: Vec<(u64, u64)>,
    stopping: bool,
    /// Reads a faulting thread took to start itself (see `inline`) and
    /// has not yet handed to the ring: (first page, count).
    starting: Vec<(u64, u64)>,
}

/// A read taken from the queue and not finished: its pages, and whether
/// it is a stream's (`touch` and the will-need thread have a most of
/// their own: `TOUCH_PLANNED_MAX`).
struct Reading {
    page: u64,
    count: u64,
    stream: bool,
}

impl Queue {
    /// `planned`, just taken from `planned`, is being read.
    fn start_reading(&mut self, planned: &Planned) {
        self.reading.push(Reading {
            page: planned.page,
            count: planned.was.len() as u64,
            stream: planned.stream,
        });
    }
}

/// The read-ahead thread's queue (q): planned reads, oldest first.
pub(crate) struct ReadAheadQueue {
    queue: Mutex<Queue>,
    /// Signalled when a read for the thread is planned, when a read enters
    /// an empty inline ring (`nudge`), or when the thread must stop.
    work: Condvar,
    /// Signalled when a cleaning ends.
    cleaning_over: Condvar,
    /// Signalled when a read (planned, or a read-around) ends.
    reading_over: Condvar,
    /// Pages the thread has cleaned (written and marked clean).
    pub(crate) cleaned: AtomicU64,
    /// Planned reads the faulting thread can start itself, in `planned`
    /// (so that a fault with none looks at no lock).
    direct_planned: std::sync::atomic::AtomicUsize,
    /// The process whose threads read and finish the reads queued: a child
    /// made by `fork` has a copy of the queue, reads in flight included,
    /// and nothing that will ever finish them.
    owner: u32,
}

impl Default for ReadAheadQueue {
    fn default() -> ReadAheadQueue {
        ReadAheadQueue {
            queue: Mutex::default(),
            work: Condvar::new(),
            cleaning_over: Condvar::new(),
            reading_over: Condvar::new(),
            cleaned: AtomicU64::new(0),
            direct_planned: std::sync::atomic::AtomicUsize::new(0),
            owner: crate::sys::futex::current_pid(),
        }
    }
}

impl ReadAheadQueue {
    /// Whether this is the process whose reads the queue holds (not a
    /// child made by `fork`: see `owner`).
    pub(crate) fn is_owners(&self) -> bool {
        crate::sys::futex::current_pid() == self.owner
    }

    /// Asks the thread to stop once every planned read is done.
    pub(crate) fn stop(&self) {
        self.queue.lock().stopping = true;
        self.work.notify_all();
    }

    /// Reads planned or in flight, and their pages (one look at the queue).
    pub(crate) fn pending(&self) -> (usize, u64) {
        let queue = self.queue.lock();
        let pages = queue
            .planned
            .iter()
            .map(|p| p.was.len() as u64)
            .sum::<u64>()
            + queue.reading.iter().map(|r| r.count).sum::<u64>();
        (queue.planned.len() + queue.reading.len(), pages)
    }

    /// Reads of `touch` and the will-need thread planned or in flight.
    pub(crate) fn touches_pending(&self) -> usize {
        let queue = self.queue.lock();
        queue.planned.iter().filter(|p| !p.stream).count()
            + queue.reading.iter().filter(|r| !r.stream).count()
    }

    /// Whether `page` belongs to a read planned or in flight, or to a
    /// read-around in flight (its latch is the read's: it ends without the
    /// monitor).
    pub(crate) fn covers(&self, page: u64) -> bool {
        Self::covering(&self.queue.lock(), page)
    }

    fn covering(queue: &Queue, page: u64) -> bool {
        let inside = |start: u64, count: u64| (start..start + count).contains(&page);
        queue
            .planned
            .iter()
            .any(|p| inside(p.page, p.was.len() as u64))
            || queue.reading.iter().any(|r| inside(r.page, r.count))
            || queue
                .around
                .iter()
                .any(|&(start, count)| inside(start, count))
    }

    /// Waits until no read planned or in flight covers `page` — for the
    /// read, not for the page's latch, which others (a guard of the caller
    /// itself, even) may take as soon as the read lets go of it.
    pub(crate) fn wait_uncovered(&self, page: u64) {
        let mut queue = self.queue.lock();
        while Self::covering(&queue, page) {
            self.reading_over.wait(&mut queue);
        }
    }

    /// A read-around's runs, latched, are being read (see `around`).
    pub(super) fn around(&self, runs: &[(u64, u64)]) {
        self.queue.lock().around.extend_from_slice(runs);
    }

    /// A read-around's runs are read (or undone), their latches released.
    pub(super) fn around_done(&self, runs: &[(u64, u64)]) {
        let mut queue = self.queue.lock();
        for run in runs {
            if let Some(at) = queue.around.iter().position(|r| r == run) {
                queue.around.swap_remove(at);
            }
        }
        drop(queue);
        self.reading_over.notify_all();
    }

    /// Whether `page` belongs to the cleaning planned or being written (its
    /// shared latch is the thread's: it ends without the monitor).
    pub(crate) fn cleans(&self, page: u64) -> bool {
        let queue = self.queue.lock();
        let inside = |&(start, count): &(u64, u64)| (start..start + count).contains(&page);
        queue
            .clean
            .iter()
            .flat_map(|c| c.runs.iter().map(|&(_, first, count)| (first, count)))
            .any(|run| inside(&run))
            || queue.cleaning.iter().any(inside)
    }

    /// Queues a planned read and wakes the thread.
    pub(super) fn plan(&self, planned: Planned) {
        // (A read the faulting thread starts itself wakes no one.)
        let wake = planned.direct.is_none();
        let mut queue = self.queue.lock();
        queue.planned.push_back(planned);
        if !wake {
            self.direct_planned.fetch_add(1, Ordering::Relaxed);
        }
        drop(queue);
        if wake {
            self.work.notify_one();
        }
    }

    /// The oldest planned read the faulting thread can start itself (see
    /// `inline`), now counted as being read; `None` if there is none
    /// (never waits).
    pub(super) fn take_planned(&self) -> Option<Planned> {
        if self.direct_planned.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut queue = self.queue.lock();
        let at = queue.planned.iter().position(|p| p.direct.is_some())?;
        let planned = queue.planned.remove(at)?;
        self.direct_planned.fetch_sub(1, Ordering::Relaxed);
        queue.start_reading(&planned);
        queue
            .starting
            .push((planned.page, planned.was.len() as u64));
        Some(planned)
    }

    /// A read taken by `take_planned` is in the ring, or was read another
    /// way.
    pub(super) fn started(&self, page: u64, count: u64) {
        let mut queue = self.queue.lock();
        if let Some(at) = queue.starting.iter().position(|&run| run == (page, count)) {
            queue.starting.swap_remove(at);
        }
    }

    /// Whether a read a faulting thread is to start, or is starting,
    /// covers `page` (it is not yet in the ring).
    pub(crate) fn to_start_covers(&self, page: u64) -> bool {
        let queue = self.queue.lock();
        let inside = |start: u64, count: u64| (start..start + count).contains(&page);
        queue
            .planned
            .iter()
            .any(|p| p.direct.is_some() && inside(p.page, p.was.len() as u64))
            || queue
                .starting
                .iter()
                .any(|&(start, count)| inside(start, count))
    }

    /// Whether reads are planned and not yet started.
    pub(super) fn has_planned(&self) -> bool {
        !self.queue.lock().planned.is_empty()
    }

    /// Whether the queue is stopping.
    pub(super) fn stopping(&self) -> bool {
        self.queue.lock().stopping
    }

    /// The read-ahead thread's wait where faulting threads start their own
    /// reads (`inline`): work to clean, a read for the thread, or, a tick
    /// after it was planned, a read nobody started; `None` after a wait
    /// with nothing to do — a tick, or with no read in the ring
    /// (`ring_empty`) and none planned, until woken or for [`IDLE`] at
    /// most — or when stopping with nothing left planned.
    pub(super) fn next_inline(
        &self,
        tick: std::time::Duration,
        ring_empty: impl Fn() -> bool,
    ) -> Option<Work> {
        let mut queue = self.queue.lock();
        if let Some(work) = Self::ready_inline(&mut queue, tick, &self.direct_planned) {
            return Some(work);
        }
        if !queue.stopping {
            // (A read planned while this thread was busy was notified to
            // no one: it was looked for just above.) With no read in the
            // ring and none planned, nothing needs a tick: sleep until
            // woken (a stream's read entering a ring that holds none wakes
            // it, under this lock, after counting itself in: see `nudge`;
            // other reads are waited for by their planners at once).
            if queue.planned.is_empty() && ring_empty() {
                self.work.wait_for(&mut queue, IDLE);
            } else {
                self.work.wait_for(&mut queue, tick);
            }
        }
        Self::ready_inline(&mut queue, tick, &self.direct_planned)
    }

    /// Wakes the read-ahead thread (a stream's read entered a ring holding
    /// none).
    pub(super) fn nudge(&self) {
        let _queue = self.queue.lock();
        self.work.notify_one();
    }

    /// `next_inline`'s look: the cleaning; else a read for this thread, or
    /// one a faulting thread planned to start and has not, a tick later (or
    /// at the stop).
    fn ready_inline(
        queue: &mut Queue,
        tick: std::time::Duration,
        direct_planned: &std::sync::atomic::AtomicUsize,
    ) -> Option<Work> {
        if let Some(clean) = queue.clean.take() {
            queue.cleaning = clean.runs.iter().map(|&(_, first, n)| (first, n)).collect();
            return Some(Work::Clean(clean));
        }
        let stopping = queue.stopping;
        let at = queue
            .planned
            .iter()
            .position(|p| p.direct.is_none() || stopping || p.at.elapsed() >= tick)?;
        let planned = queue.planned.remove(at)?;
        if planned.direct.is_some() {
            direct_planned.fetch_sub(1, Ordering::Relaxed);
        }
        queue.start_reading(&planned);
        Some(Work::Read(planned))
    }

    /// Whether a cleaning is planned or in flight.
    pub(super) fn cleaning(&self) -> bool {
        let queue = self.queue.lock();
        queue.clean.is_some() || !queue.cleaning.is_empty()
    }

    /// Queues a planned cleaning (the caller checked `cleaning` first,
    /// under the monitor) and wakes the thread.
    pub(super) fn plan_clean(&self, clean: PlannedClean) {
        let mut queue = self.queue.lock();
        debug_assert!(queue.clean.is_none());
        queue.clean = Some(clean);
        drop(queue);
        self.work.notify_one();
    }

    /// The planned cleaning, else the oldest planned read, counted as
    /// being read; `None` once stopped with nothing left. Blocks while
    /// there is nothing to do. (The cleaning first: its latches are held
    /// from the moment it is planned, and writers of its pages wait.)
    pub(super) fn next(&self) -> Option<Work> {
        let mut queue = self.queue.lock();
        loop {
            if let Some(clean) = queue.clean.take() {
                queue.cleaning = clean.runs.iter().map(|&(_, first, n)| (first, n)).collect();
                return Some(Work::Clean(clean));
            }
            if let Some(planned) = queue.planned.pop_front() {
                queue.start_reading(&planned);
                return Some(Work::Read(planned));
            }
            if queue.stopping {
                return None;
            }
            self.work.wait(&mut queue);
        }
    }

    /// The cleaning taken by `next` is finished.
    pub(super) fn cleaned(&self) {
        self.queue.lock().cleaning.clear();
        self.cleaning_over.notify_all();
    }

    /// Waits until no cleaning is planned or being written (the thread
    /// takes a planned one first, and needs no monitor to finish it, so
    /// this may be called with the monitor held): `clean`, `flush` and
    /// `sync` then write what is still dirty themselves, and no write of
    /// the cleaner's lands after they return.
    pub(crate) fn wait_cleaned(&self) {
        let mut queue = self.queue.lock();
        while queue.clean.is_some() || !queue.cleaning.is_empty() {
            self.cleaning_over.wait(&mut queue);
        }
    }

    /// The read of the `count` pages from `page` taken by `next` is
    /// finished. (Both match: with the finisher, a run made resident can be
    /// evicted and planned again from the same page before its own read is
    /// heard to be done.)
    pub(super) fn done(&self, page: u64, count: u64) {
        let mut queue = self.queue.lock();
        if let Some(at) = queue
            .reading
            .iter()
            .position(|r| (r.page, r.count) == (page, count))
        {
            queue.reading.swap_remove(at);
        }
        drop(queue);
        self.reading_over.notify_all();
    }
}
