//! The handoff between faulting threads and the PageFault worker, and what
//! a served fault hands back ([`Latch`], [`Latched`]). It is tuned for this machine's costs: waking a thread
//! that sleeps on the other core costs about 25–30 µs (an idle virtual CPU
//! halts), against about 0.2 µs for a handoff to a thread that is spinning.
//! So both sides spin briefly before they park.
//!
//! Wake-ups cannot be lost: the worker announces `idle` (SeqCst) and then
//! looks at the queue once more before parking; a submitter pushes (under
//! the queue's lock) and then reads `idle` (SeqCst) — one of the two sees
//! the other. `thread::park` keeps an unpark that comes early.

use crate::error::VmError;
use crate::state::Word;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, Thread};

/// Spins of a faulting thread before it parks to wait for the worker.
const WAITER_SPINS: u32 = 4_000;
/// Spins of the worker on an empty queue before it parks.
const WORKER_SPINS: u32 = 8_000;

/// The latch an accessor takes once its fault is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Latch {
    /// A shared latch (a reader, a [`crate::PageRef`]).
    Shared,
    /// The exclusive latch (a writer, a [`crate::PageMut`]).
    Exclusive,
    /// The exclusive latch for an access that overwrites the whole page: a
    /// fault brings the page in without reading it.
    Overwrite,
}

impl Latch {
    /// Whether a fault for this latch may skip reading the page.
    pub(crate) fn overwrites(self) -> bool {
        self == Latch::Overwrite
    }
}

/// What a served fault hands back to the accessor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Latched {
    /// The page is resident and the accessor's latch is taken (taken under
    /// the monitor, so no other fault replaced the page in between); the
    /// word as it was before the latch.
    Taken(Word),
    /// The page is latched by someone else, or it was served and lost its
    /// frame again before the accessor could latch it: try again.
    Retry,
    /// An overwrite of a read-only page (checked under the monitor): no
    /// latch taken.
    WriteProtected,
}

/// The outcome of a fault: the latch, or the error.
pub(crate) type FaultOutcome = Result<Latched, VmError>;

/// One fault handed to the worker.
pub(crate) struct FaultTicket {
    /// (c) The page that faulted.
    pub(crate) page: u64,
    /// (c) The latch the accessor wants once the page is in.
    pub(crate) latch: Latch,
    /// (a) Set (release) once `outcome` is written; the waiter spins on it.
    /// Not padded to a cache line of its own: that made every ticket a
    /// 128-byte-aligned allocation and the waiter read two lines instead of
    /// one. Criterion, same session, against the code before issue 10
    /// (bc0ee01): the worker's fault took 1.10–1.12× as long padded, and
    /// 1.065–1.075× unpadded (paired runs).
    done: AtomicBool,
    /// (q) The outcome, written by the worker, taken by the waiter.
    outcome: Mutex<Option<FaultOutcome>>,
    /// (c) The faulting thread, to unpark.
    waiter: Thread,
}

impl FaultTicket {
    /// Hands the outcome back and wakes the faulting thread.
    pub(crate) fn complete(&self, outcome: FaultOutcome) {
        *self.outcome.lock() = Some(outcome);
        self.done.store(true, Ordering::Release);
        self.waiter.unpark();
    }
}

/// The PageFault worker's queue, on cache lines of its own (the worker
/// spins on it while the faulting threads write it).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct FaultQueue {
    /// (q) Queued faults, oldest first.
    requests: Mutex<VecDeque<Arc<FaultTicket>>>,
    /// (a) How many are queued (read without the lock by the spinning
    /// worker).
    queued: AtomicUsize,
    /// (a) The worker is about to park or parked (SeqCst; see the module
    /// doc for why no wake-up is lost).
    idle: AtomicBool,
    /// (a) The VM is closing: the worker finishes.
    stopping: AtomicBool,
    /// (c once set) The worker thread, to unpark.
    worker: OnceLock<Thread>,
}

impl FaultQueue {
    /// Called by the worker thread when it starts.
    pub(crate) fn register_worker(&self) {
        let _ = self.worker.set(thread::current());
    }

    /// Queues a fault on `page` and waits for the worker to serve it.
    pub(crate) fn submit_and_wait(&self, page: u64, latch: Latch) -> FaultOutcome {
        let ticket = Arc::new(FaultTicket {
            page,
            latch,
            done: AtomicBool::new(false),
            outcome: Mutex::new(None),
            waiter: thread::current(),
        });
        self.requests.lock().push_back(Arc::clone(&ticket));
        self.queued.fetch_add(1, Ordering::SeqCst);
        if self.idle.load(Ordering::SeqCst)
            && let Some(worker) = self.worker.get()
        {
            worker.unpark();
        }
        let mut spins = 0;
        while !ticket.done.load(Ordering::Acquire) {
            if spins < WAITER_SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                thread::park();
            }
        }
        ticket
            .outcome
            .lock()
            .take()
            .expect("a completed ticket has an outcome")
    }

    /// The next fault to serve, oldest first; `None` once stopping. Spins
    /// on an empty queue for a while, then parks.
    pub(crate) fn next(&self) -> Option<Arc<FaultTicket>> {
        let mut spins = 0;
        loop {
            if self.queued.load(Ordering::SeqCst) > 0
                && let Some(ticket) = self.requests.lock().pop_front()
            {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                return Some(ticket);
            }
            if self.stopping.load(Ordering::SeqCst) {
                return None;
            }
            if spins < WORKER_SPINS {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            self.idle.store(true, Ordering::SeqCst);
            if self.queued.load(Ordering::SeqCst) == 0 && !self.stopping.load(Ordering::SeqCst) {
                thread::park();
            }
            self.idle.store(false, Ordering::SeqCst);
            spins = 0;
        }
    }

    /// The page of the next queued fault on a page other than `page` (the
    /// seek-ahead target: a fault on the same page costs no transfer).
    pub(crate) fn peek_page_other_than(&self, page: u64) -> Option<u64> {
        self.requests
            .lock()
            .iter()
            .map(|t| t.page)
            .find(|&p| p != page)
    }

    /// Asks the worker to finish (after the requests already queued).
    pub(crate) fn stop(&self, worker: &Thread) {
        self.stopping.store(true, Ordering::SeqCst);
        worker.unpark();
    }
}
