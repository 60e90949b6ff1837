//! The handoff between faulting threads and the PageFault worker, and the
//! hit counter. Both are tuned for this machine's costs: waking a thread
//! that sleeps on the other core costs about 25–30 µs (an idle virtual CPU
//! halts), against about 0.2 µs for a handoff to a thread that is spinning.
//! So both sides spin briefly before they park.
//!
//! Wake-ups cannot be lost: the worker announces `idle` (SeqCst) and then
//! looks at the queue once more before parking; a submitter pushes (under
//! the queue's lock) and then reads `idle` (SeqCst) — one of the two sees
//! the other. `thread::park` keeps an unpark that comes early.

use crate::VmError;
use crate::state::Word;
use crate::vm::Latch;
use parking_lot::Mutex;
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, Thread};

/// Spins of a faulting thread before it parks to wait for the worker.
const WAITER_SPINS: u32 = 4_000;
/// Spins of the worker on an empty queue before it parks.
const WORKER_SPINS: u32 = 8_000;

/// The outcome of a served fault: the latch taken for the accessor, `None`
/// if the page was busy (retry), or the error.
pub(crate) type FaultOutcome = Result<Option<Word>, VmError>;

/// One fault handed to the worker.
pub(crate) struct FaultTicket {
    pub(crate) page: u64,
    pub(crate) latch: Latch,
    done: AtomicBool,
    outcome: Mutex<Option<FaultOutcome>>,
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

/// The PageFault worker's queue.
#[derive(Default)]
pub(crate) struct FaultQueue {
    requests: Mutex<VecDeque<Arc<FaultTicket>>>,
    queued: AtomicUsize,
    idle: AtomicBool,
    stopping: AtomicBool,
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

const HIT_SHARDS: usize = 64;

#[repr(align(128))]
#[derive(Default)]
struct Shard(AtomicU64);

/// Counts resident hits without a contended read-modify-write: each live
/// thread (up to 64 at once) owns a cache-line-sized shard that only it
/// writes (a plain load and store); threads beyond that share one atomic.
pub(crate) struct HitCounter {
    shards: [Shard; HIT_SHARDS],
    shared: AtomicU64,
}

impl Default for HitCounter {
    fn default() -> HitCounter {
        HitCounter {
            shards: std::array::from_fn(|_| Shard::default()),
            shared: AtomicU64::new(0),
        }
    }
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
/// Slots of threads that have exited, for reuse (the lock orders the old
/// owner's last store before the new owner's first load).
static FREE_SLOTS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// A thread's claim on a shard slot, given back when the thread exits, so
/// that a program that keeps starting short-lived threads does not run out
/// of shards.
struct Slot(usize);

impl Slot {
    fn claim() -> Slot {
        if let Some(slot) = FREE_SLOTS.lock().pop() {
            return Slot(slot);
        }
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        Slot(if slot < HIT_SHARDS { slot } else { usize::MAX })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.0 < HIT_SHARDS {
            FREE_SLOTS.lock().push(self.0);
        }
    }
}

const UNCLAIMED: usize = usize::MAX - 1;

thread_local! {
    /// The claim, with the destructor that gives it back.
    static CLAIM: Slot = Slot::claim();
    /// The claimed slot, cached where reading it costs no lazy-init check.
    static SLOT: Cell<usize> = const { Cell::new(UNCLAIMED) };
}

/// This thread's slot (claimed on first use).
#[inline]
fn slot() -> usize {
    let slot = SLOT.with(Cell::get);
    if slot != UNCLAIMED {
        return slot;
    }
    // During thread teardown the claim may be gone: count in the shared
    // word then.
    let claimed = CLAIM.try_with(|c| c.0).unwrap_or(usize::MAX);
    SLOT.with(|s| s.set(claimed));
    claimed
}

impl HitCounter {
    #[inline]
    pub(crate) fn add(&self) {
        let slot = slot();
        match self.shards.get(slot) {
            // Only this thread writes this shard while it holds the slot, so
            // load + store loses nothing; readers may see a slightly old
            // total.
            Some(shard) => shard
                .0
                .store(shard.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed),
            None => {
                self.shared.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.shared.load(Ordering::Relaxed)
    }
}
