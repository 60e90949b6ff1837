//! The ring of the reads faulting threads start themselves, and what is
//! in flight in it (see `inline`, which starts and finishes them).

use super::planned::Planned;
use crate::sys::region::PooledRun;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How often, at most, the read-ahead thread finishes the reads nobody
/// waited for (those complete for a tick), and starts the planned reads
/// nobody started. (Finishing every completed read, every 2 ms, finished
/// reads before their reader met them, which then planned nothing: see
/// the module docs.)
pub(super) const TICK: std::time::Duration = std::time::Duration::from_millis(20);

/// Ring entries: reads in flight at once are at most `PLANNED_MAX +
/// TOUCH_PLANNED_MAX` (a read the ring does not take is read another way).
const RING_ENTRIES: u32 = 8;
const _: () = assert!(
    super::planned::PLANNED_MAX + super::planned::TOUCH_PLANNED_MAX <= RING_ENTRIES as usize
);

/// The reads in flight that faulting threads started, and their ring.
pub(crate) struct InlineReads {
    pub(super) state: Mutex<State>,
    /// The pages of the reads in `state`, for `covers` — a look that must
    /// not wait while a reader holds `state` across its wait.
    pub(super) runs: Mutex<Vec<(u64, u64)>>,
    /// Reads started (for `VmStats::inline_reads`).
    pub(super) started: AtomicU64,
    /// Reads nobody met: finished by the read-ahead thread (for
    /// `VmStats::inline_reads_unmet`).
    pub(super) unmet: AtomicU64,
    /// Reads in the ring (entries), for the read-ahead thread: with none,
    /// and nothing planned, it sleeps until woken (by a stream's read:
    /// see `start_one`).
    pub(super) in_ring: std::sync::atomic::AtomicUsize,
    /// The most reads in the ring at once (for
    /// `VmStats::inline_reads_in_flight_high`).
    pub(super) in_ring_high: std::sync::atomic::AtomicUsize,
    /// The process whose ring and pool these are: a child made by `fork`
    /// shares the ring's memory with its parent and must not touch it.
    pub(super) owner: u32,
}

pub(super) struct State {
    pub(super) ring: io_uring::IoUring,
    pub(super) next_id: u64,
    pub(super) entries: Vec<Entry>,
}

pub(super) struct Entry {
    pub(super) id: u64,
    pub(super) planned: Planned,
    /// The pool's slots the read goes into (`None`: it goes straight into
    /// the pages). The lease borrows the space's region, which outlives
    /// the entry: the field `inline` is declared before `region` in
    /// `AddressSpace`, so it is dropped first, and its drop waits for
    /// every read in flight (see `Drop for InlineReads`).
    pub(super) run: Option<PooledRun<'static>>,
    pub(super) len: usize,
    /// The read's outcome once its completion is seen (all of it read),
    /// and when it was seen.
    pub(super) read: Option<(bool, Instant)>,
}

impl Entry {
    pub(super) fn covers(&self, page: u64) -> bool {
        (self.planned.page..self.planned.page + self.planned.was.len() as u64).contains(&page)
    }
}

impl InlineReads {
    /// A ring for the reads; `None` where the kernel gives none (reads
    /// then all go to the read-ahead thread).
    pub(crate) fn new() -> Option<Self> {
        let ring = io_uring::IoUring::new(RING_ENTRIES).ok()?;
        Some(Self {
            state: Mutex::new(State {
                ring,
                next_id: 0,
                entries: Vec::new(),
            }),
            runs: Mutex::new(Vec::new()),
            started: AtomicU64::new(0),
            unmet: AtomicU64::new(0),
            in_ring: std::sync::atomic::AtomicUsize::new(0),
            in_ring_high: std::sync::atomic::AtomicUsize::new(0),
            owner: crate::sys::futex::current_pid(),
        })
    }

    /// Whether reads may be started here: in the process that made the
    /// ring (see `owner`).
    pub(crate) fn usable(&self) -> bool {
        crate::sys::futex::current_pid() == self.owner
    }

    /// Whether a read in the ring (in flight, or completed and not yet
    /// finished) covers `page`.
    pub(crate) fn covers(&self, page: u64) -> bool {
        self.usable()
            && self
                .runs
                .lock()
                .iter()
                .any(|&(start, count)| (start..start + count).contains(&page))
    }

    /// Whether no read is in the ring.
    pub(crate) fn is_empty(&self) -> bool {
        self.in_ring.load(Ordering::Acquire) == 0
    }

    /// Reads finished by the read-ahead thread, nobody having met them.
    pub(crate) fn unmet(&self) -> u64 {
        self.unmet.load(Ordering::Relaxed)
    }

    /// The most reads that were in the ring at once.
    pub(crate) fn in_flight_high(&self) -> u64 {
        self.in_ring_high.load(Ordering::Relaxed) as u64
    }

    /// Reads started so far.
    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

impl State {
    /// Records the completions the kernel has posted.
    pub(super) fn collect(&mut self) {
        let completed: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        let now = Instant::now();
        for (id, result) in completed {
            if let Some(entry) = self.entries.iter_mut().find(|e| e.id == id) {
                let all = usize::try_from(result).is_ok_and(|n| n == entry.len);
                entry.read = Some((all, now));
            }
        }
    }

    /// Submits what is queued and waits for at least one completion (an
    /// interrupted wait returns early: the caller looks again).
    pub(super) fn wait(&mut self) {
        if let Err(e) = self.ring.submit_and_wait(1)
            && !retryable(&e)
        {
            // Reads the kernel still owes cannot be waited for, and it may
            // still write into the pool's slots or the pages: neither
            // returning nor unwinding is safe. (Waiting with valid
            // arguments fails only with the retryable errors.)
            eprintln!("io_uring: cannot wait for read-ahead in flight: {e}");
            std::process::abort();
        }
    }
}

/// Errors of `io_uring_enter` that only ask to try again.
fn retryable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::INTR.raw_os_error()
            || code == rustix::io::Errno::AGAIN.raw_os_error()
            || code == rustix::io::Errno::BUSY.raw_os_error()
    )
}

impl Drop for InlineReads {
    /// Waits for every read in flight, so that no read lands in the pool's
    /// slots after they are gone, and gives the runs back. (In a child made
    /// by `fork`, the reads are the parent's: the entries are forgotten.)
    fn drop(&mut self) {
        let usable = self.usable();
        let state = self.state.get_mut();
        if !usable {
            std::mem::forget(std::mem::take(&mut state.entries));
            return;
        }
        state.collect();
        while state.entries.iter().any(|e| e.read.is_none()) {
            state.wait();
            state.collect();
        }
    }
}
