//! The fault service: what happens when an accessor finds its page absent.
//!
//! | file | owns |
//! |---|---|
//! | [`queue`] | the handoff to the PageFault worker; [`queue::Latch`] and [`queue::Latched`] |
//! | `decided` | service by the faulting thread, the monitor held for the decisions only (the default) |
//! | `around` | a mapped file's read-around, decided under the monitor and read without it |
//! | [`planned`] | the read-ahead thread's queue of planned reads |
//! | `read_ahead` | asynchronous read-ahead under sequential advice: clusters planned under the monitor, read by the read-ahead thread (or by the faulting thread: `inline`) |
//! | `inline` | read-ahead started and finished by the faulting thread, on an `io_uring` (the default on `O_DIRECT` drives) |
//! | [`inline_reads`] | the ring of those reads and what is in flight in it |
//! | `in_thread` | service by the faulting thread, in ticket order, the monitor held throughout (the seed) |
//! | `worker` | the PageFault worker's loop (the seed's synchronous worker) |
//! | `service` | serving one fault under the monitor: read-ahead, choosing the seek-ahead hint, bringing a page into a frame |
//! | `streams` | the sequential streams faulting lately, counted so that their read-ahead windows share real memory |
//!
//! In the seed's scope ([`MonitorScope::HeldAcrossIo`]) the monitor is
//! held while a fault is served, I/O included, and the faults waiting for
//! it form the queue from which the seek-ahead hint is taken: the hint
//! names the transfer that really comes next. In the default scope
//! ([`MonitorScope::Decisions`]) it is held only to decide, and transfers
//! of faults by different threads are in flight together.

mod around;
mod decided;
mod in_thread;
mod inline;
pub(crate) mod inline_reads;
pub(crate) mod planned;
pub(crate) mod queue;
mod read_ahead;
mod service;
pub(crate) mod streams;
mod worker;

use crate::config::MonitorScope;
use crate::space::AddressSpace;
use crate::state::{READ_ONLY, Word};
use queue::{FaultOutcome, Latch, Latched};

/// What serving a fault under the monitor found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Served {
    /// The page is resident (now, or it already was).
    Resident,
    /// The page is latched exclusively — by a guard or a writer, or by a
    /// read this thread planned (a read-around into free memory, met and
    /// finished by the retry's wait): let go of the monitor and retry.
    Busy,
}

impl AddressSpace {
    /// Serves a fault on `page` — in this thread or by the PageFault
    /// worker — and returns with the latch the accessor wants already taken
    /// (under the monitor, so no other fault can replace the page in
    /// between), or [`Latched::Retry`]. Monitor not held on entry or exit.
    pub(crate) fn fault(&self, page: u64, latch: Latch) -> FaultOutcome {
        self.check_poisoned()?;
        let outcome = match &self.worker_queue {
            // A panic while serving unwinds through the monitor's guard,
            // which marks the VM poisoned.
            None => match self.monitor_scope {
                MonitorScope::HeldAcrossIo => self.serve_in_order(page, latch),
                MonitorScope::Decisions => {
                    let outcome = self.serve_decided(page, latch);
                    self.start_planned();
                    outcome
                }
            },
            Some(queue) => queue.submit_and_wait(page, latch),
        };
        if let Ok(Latched::Retry) = outcome {
            std::thread::yield_now();
        }
        outcome
    }

    /// Monitor held on entry and exit.
    ///
    /// Hands back what serving `page` found, with `latch` taken if it is
    /// resident (taken under the monitor, so no fault replaces the page in
    /// between).
    fn latch_after(&self, served: Served, page: u64, latch: Latch) -> Latched {
        let taken: Result<Word, Word> = match (served, latch) {
            (Served::Busy, _) => return Latched::Retry,
            // (The first use of a page brought in referenced: one use, not
            // two — see `PageStates::try_share_once`.)
            (Served::Resident, Latch::Shared) => self.states().try_share_once(page),
            (Served::Resident, Latch::Exclusive) => self.states().try_lock_resident(page),
            // Protection is checked here, under the monitor (the only place
            // it changes): a page brought in without its contents must not
            // be handed to a writer who will then be refused. Once latched,
            // a later `make_read_only` is ordered after this write.
            (Served::Resident, Latch::Overwrite) => {
                if self.states().load(page).has(READ_ONLY) {
                    return Latched::WriteProtected;
                }
                self.states().try_lock_resident(page)
            }
        };
        taken.map_or(Latched::Retry, Latched::Taken)
    }
}
