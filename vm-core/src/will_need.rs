//! `Advice::WillNeed` without waiting: the intervals asked for are
//! brought in by a thread of the VM's own, as the kernel starts reading for
//! `MADV_WILLNEED` and returns.
//!
//! # Why
//!
//! A program that knows what it will read next (an external sort's next
//! run, each of a merge's runs a little ahead of its cursor) wants the
//! reads to overlap its own work. With a synchronous `WillNeed` it had to
//! make a thread of its own for that (the demo did, measured in
//! BENCHMARKS.md, "The demo's second thread"). The VM's read-ahead covers
//! one stream by itself; for many streams sharing memory it keeps each
//! window small and reads no second window ahead, so there the program's
//! advice is what overlaps the reads.
//!
//! # How
//!
//! [`AddressSpace::advise`](crate::AddressSpace::advise) with `WillNeed`
//! checks the interval and queues it here; the VM's will-need thread takes
//! the intervals in order and brings each in as `touch` does — by runs,
//! each planned under the monitor and read without it where the drive is
//! read with `O_DIRECT` (started in the ring and waited for by this
//! thread, as a sequential stream's read-ahead is; elsewhere the read is
//! made under the monitor, as a buffered drive's copy from the page cache
//! is short) — but as advice: a page another thread
//! holds (a guard) or is bringing in is passed over, never waited for, so
//! a guard held while its owner waits in `settle` or closes the VM cannot
//! hang either. An interval that would take the pages waiting past three
//! quarters of real memory (of the frames the clock has, in transparent
//! mode) is not queued (it would push out what it was asked to bring in),
//! and a failed read is left to the access that needs the page, which
//! meets the error. Advice queued before a `kill`, `free` or `DontNeed` of
//! its pages is not withdrawn: the thread may still bring them in (zeros,
//! for killed pages). In a child made by `fork` there is no thread: the
//! advice is brought in before it returns. [`AddressSpace::settle`](crate::AddressSpace::settle) waits until
//! everything queued has been brought in (or failed). Without a volume, or
//! where the thread could not be made, `WillNeed` brings the interval in
//! before it returns, as before.

use parking_lot::{Condvar, Mutex};
use runtable::Interval;
use std::collections::VecDeque;

/// What [`WillNeedQueue::push`] did with an interval.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued for the thread.
    Queued,
    /// Not queued: the pages waiting would pass the limit.
    Full,
    /// No thread takes intervals (it could not be made): bring it in now.
    NoThread,
}

#[derive(Default)]
struct State {
    /// Intervals waiting, oldest first.
    waiting: VecDeque<Interval>,
    /// Their pages, and those of the one being brought in.
    pages: u64,
    /// Whether the thread is bringing an interval in.
    busy: bool,
    /// Set when the VM closes: the thread ends, what waits is dropped.
    stopped: bool,
    /// Set where the thread could not be made.
    no_thread: bool,
}

/// The will-need thread's queue (see the module doc).
pub(crate) struct WillNeedQueue {
    state: Mutex<State>,
    /// Signalled when an interval is queued, when one is done, and at the
    /// stop.
    changed: Condvar,
    /// The process whose thread serves the queue: a child made by `fork`
    /// has the queue and no thread, and brings its advice in itself.
    owner: u32,
}

impl Default for WillNeedQueue {
    fn default() -> WillNeedQueue {
        WillNeedQueue {
            state: Mutex::default(),
            changed: Condvar::new(),
            owner: crate::sys::futex::current_pid(),
        }
    }
}

impl WillNeedQueue {
    /// Queues `interval` unless the pages waiting would pass `limit`.
    pub(crate) fn push(&self, interval: Interval, limit: u64) -> Pushed {
        if crate::sys::futex::current_pid() != self.owner {
            return Pushed::NoThread;
        }
        let mut state = self.state.lock();
        if state.no_thread || state.stopped {
            return Pushed::NoThread;
        }
        if state.pages + interval.count.0 > limit {
            return Pushed::Full;
        }
        state.pages += interval.count.0;
        state.waiting.push_back(interval);
        self.changed.notify_all();
        Pushed::Queued
    }

    /// The thread's next interval, waiting for one; `None` once stopped.
    pub(crate) fn next(&self) -> Option<Interval> {
        let mut state = self.state.lock();
        loop {
            if state.stopped {
                return None;
            }
            if let Some(interval) = state.waiting.pop_front() {
                state.busy = true;
                return Some(interval);
            }
            self.changed.wait(&mut state);
        }
    }

    /// The thread is done with `interval` (brought in, or failed).
    pub(crate) fn done(&self, interval: Interval) {
        let mut state = self.state.lock();
        state.pages -= interval.count.0;
        state.busy = false;
        self.changed.notify_all();
    }

    /// Whether the VM is closing (the thread's interval in progress ends
    /// at its next page).
    pub(crate) fn stopping(&self) -> bool {
        self.state.lock().stopped
    }

    /// Waits until nothing waits and nothing is being brought in (or the
    /// queue is stopped). In a child made by `fork`, nothing was queued:
    /// returns at once.
    pub(crate) fn settle(&self) {
        if crate::sys::futex::current_pid() != self.owner {
            return;
        }
        let mut state = self.state.lock();
        while !state.stopped && (state.busy || !state.waiting.is_empty()) {
            self.changed.wait(&mut state);
        }
    }

    /// Ends the thread's loop (the interval it is on ends at its next
    /// page); what waits is dropped, and later pushes are answered
    /// [`Pushed::NoThread`].
    pub(crate) fn stop(&self) {
        let mut state = self.state.lock();
        state.stopped = true;
        state.pages -= state.waiting.iter().map(|i| i.count.0).sum::<u64>();
        state.waiting.clear();
        self.changed.notify_all();
    }

    /// No thread will take intervals: every push is answered
    /// [`Pushed::NoThread`].
    pub(crate) fn no_thread(&self) {
        self.state.lock().no_thread = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(page: u64, count: u64) -> Interval {
        Interval::new(page, count)
    }

    /// Intervals come out in order; the limit counts the pages waiting and
    /// the one being brought in, and frees as each is done.
    #[test]
    fn the_queue_keeps_order_and_its_limit() {
        let q = WillNeedQueue::default();
        assert_eq!(q.push(interval(0, 6), 10), Pushed::Queued);
        assert_eq!(q.push(interval(6, 4), 10), Pushed::Queued);
        assert_eq!(q.push(interval(10, 1), 10), Pushed::Full);
        assert_eq!(q.next(), Some(interval(0, 6)));
        assert_eq!(q.push(interval(10, 1), 10), Pushed::Full, "still busy");
        q.done(interval(0, 6));
        assert_eq!(q.push(interval(10, 6), 10), Pushed::Queued);
        assert_eq!(q.next(), Some(interval(6, 4)));
        q.done(interval(6, 4));
        q.stop();
        assert_eq!(q.next(), None, "what waits is dropped at the stop");
        assert_eq!(q.push(interval(0, 1), 10), Pushed::NoThread);
        q.settle();
    }

    /// Without a thread every push says so (the caller brings the
    /// interval in itself).
    #[test]
    fn without_a_thread_nothing_is_queued() {
        let q = WillNeedQueue::default();
        q.no_thread();
        assert_eq!(q.push(interval(0, 1), 10), Pushed::NoThread);
    }
}
