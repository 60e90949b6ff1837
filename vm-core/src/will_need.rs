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
//! checks the interval and queues it here (the first interval queued makes
//! the thread: a VM never so advised has none); the VM's will-need thread takes
//! the intervals in order and brings each in as `touch` does — by runs,
//! each planned under the monitor and read without it where the drive is
//! read with `O_DIRECT` (started in the ring and waited for by this
//! thread, as a sequential stream's read-ahead is; elsewhere the read is
//! made under the monitor, as a buffered drive's copy from the page cache
//! is short) — but as advice (the pages already in are marked referenced, as the use
//! it announces would mark them, so that the clock does not take them
//! first to make room for the rest): a page another thread
//! holds (a guard) or is bringing in is passed over, never waited for, so
//! a guard held while its owner waits in `settle` or closes the VM cannot
//! hang either. An interval that would take the pages waiting past three
//! quarters of real memory (of the frames the clock has, in transparent
//! mode) is not queued (it would push out what it was asked to bring in),
//! and a failed read is left to the access that needs the page, which
//! meets the error. A `kill`, `free` or `DontNeed` withdraws the advice
//! for its pages (under the monitor, where it discards them): what waits
//! is cut, and the thread passes over those pages of the interval it is
//! on — so it never brings back what the program just let go (zeros, for
//! killed pages; a freed interval's pages for whoever allocates them
//! next). (A read of the thread's already in flight is waited for by
//! `kill`, `free` and `DontNeed`, which discard its pages after.) In a
//! child made by `fork` there is no thread: the advice is brought in
//! before it returns. [`AddressSpace::settle`](crate::AddressSpace::settle) waits until
//! everything queued has been brought in (or failed). Without a volume, or
//! where the thread could not be made, `WillNeed` brings the interval in
//! before it returns, as before.

use parking_lot::{Condvar, Mutex};
use runtable::Interval;
use std::collections::VecDeque;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

/// What [`WillNeedQueue::push`] did with an interval.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued for the thread.
    Queued,
    /// Not queued: the pages waiting would pass the limit.
    Full,
    /// No thread takes intervals (none could be made, none is set to be
    /// made, the queue is stopped, or this is a child made by `fork`):
    /// bring it in now.
    NoThread,
}

#[derive(Default)]
struct State {
    /// Intervals waiting, oldest first.
    waiting: VecDeque<Interval>,
    /// Their pages, and those of the one being brought in.
    pages: u64,
    /// The interval the thread is bringing in, if any.
    current: Option<Interval>,
    /// Parts of `current` withdrawn while the thread was on it: page
    /// ranges `[start, end)` inside it, in order, apart and not touching
    /// (merged as they come, so at most one for every two of its pages,
    /// rounded up).
    withdrawn: Vec<(u64, u64)>,
    /// Set when the VM closes: the thread ends, what waits is dropped.
    stopped: bool,
    /// Set where the thread could not be made (or no spawner was set):
    /// every later push is answered [`Pushed::NoThread`].
    no_thread: bool,
    /// The thread, once the first interval was queued (it is made then,
    /// not with the VM: a VM never advised `WillNeed` has no such thread);
    /// taken by the VM when it stops the thread.
    thread: Option<JoinHandle<()>>,
}

/// Makes the thread that serves the queue (set by the VM, which knows the
/// address space the thread works on).
pub(crate) type Spawner = Box<dyn Fn() -> std::io::Result<JoinHandle<()>> + Send + Sync>;

/// The will-need thread's queue (see the module doc).
pub(crate) struct WillNeedQueue {
    state: Mutex<State>,
    /// Signalled when an interval is queued, when one is done, and at the
    /// stop.
    changed: Condvar,
    /// The process whose thread serves the queue: a child made by `fork`
    /// has the queue and no thread, and brings its advice in itself.
    owner: u32,
    /// Makes the thread at the first push; none set, no thread is made.
    spawner: OnceLock<Spawner>,
    /// Pages queued so far, and pages whose advice was dropped at the
    /// limit (for `VmStats::will_need_queued_pages` and
    /// `will_need_dropped_pages`; read without the lock, which a child
    /// made by `fork` may have inherited held).
    queued_pages: AtomicU64,
    dropped_pages: AtomicU64,
}

impl Default for WillNeedQueue {
    fn default() -> WillNeedQueue {
        WillNeedQueue {
            state: Mutex::default(),
            changed: Condvar::new(),
            owner: crate::sys::futex::current_pid(),
            spawner: OnceLock::new(),
            queued_pages: AtomicU64::new(0),
            dropped_pages: AtomicU64::new(0),
        }
    }
}

impl WillNeedQueue {
    /// What makes the thread, at the first interval queued.
    pub(crate) fn set_spawner(&self, spawner: Spawner) {
        // Set once, by the VM that owns the queue.
        let _ = self.spawner.set(spawner);
    }

    /// Queues `interval` unless the pages waiting would pass `limit`; the
    /// first interval queued makes the thread (made under the queue's lock,
    /// so a `stop` after it finds the thread to join). Made by the first
    /// thread that advises `WillNeed`, it inherits that thread's signal
    /// mask and scheduling (affinity, nice value), as a thread the program
    /// made there would; and a `kill`, `free` or `DontNeed` that withdraws
    /// advice meanwhile (it takes the queue's lock under the monitor) waits
    /// for that one thread creation.
    pub(crate) fn push(&self, interval: Interval, limit: u64) -> Pushed {
        if crate::sys::futex::current_pid() != self.owner {
            return Pushed::NoThread;
        }
        let mut state = self.state.lock();
        if state.no_thread || state.stopped {
            return Pushed::NoThread;
        }
        if state.pages + interval.count.0 > limit {
            self.dropped_pages
                .fetch_add(interval.count.0, Ordering::Relaxed);
            return Pushed::Full;
        }
        if state.thread.is_none() {
            match self.spawner.get().map(|spawn| spawn()) {
                Some(Ok(thread)) => state.thread = Some(thread),
                // No thread can be made: the caller brings the interval
                // in itself, now and from now on.
                Some(Err(_)) | None => {
                    state.no_thread = true;
                    return Pushed::NoThread;
                }
            }
        }
        state.pages += interval.count.0;
        self.queued_pages
            .fetch_add(interval.count.0, Ordering::Relaxed);
        state.waiting.push_back(interval);
        self.changed.notify_all();
        Pushed::Queued
    }

    /// Pages queued so far, and pages whose advice was dropped at the
    /// limit.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.queued_pages.load(Ordering::Relaxed),
            self.dropped_pages.load(Ordering::Relaxed),
        )
    }

    /// The thread's next interval, waiting for one; `None` once stopped.
    pub(crate) fn next(&self) -> Option<Interval> {
        let mut state = self.state.lock();
        loop {
            if state.stopped {
                return None;
            }
            if let Some(interval) = state.waiting.pop_front() {
                state.current = Some(interval);
                state.withdrawn.clear();
                return Some(interval);
            }
            self.changed.wait(&mut state);
        }
    }

    /// The thread is done with the interval [`WillNeedQueue::next`] gave
    /// it (brought in, or failed).
    pub(crate) fn done(&self) {
        let mut state = self.state.lock();
        if let Some(current) = state.current.take() {
            state.pages -= current.count.0;
        }
        state.withdrawn.clear();
        self.changed.notify_all();
    }

    /// Withdraws the advice for `interval`'s pages: the intervals waiting
    /// lose them (an interval cut in the middle waits as two), and the
    /// thread passes them over in the interval it is on
    /// ([`WillNeedQueue::advised_until`]).
    pub(crate) fn withdraw(&self, interval: Interval) {
        // (A child made by `fork` has no thread, and its copy of the lock
        // may have been held by the parent's at the fork.)
        if crate::sys::futex::current_pid() != self.owner {
            return;
        }
        let mut state = self.state.lock();
        let (start, end) = (interval.page.0, interval.end().0);
        let mut kept = VecDeque::with_capacity(state.waiting.len() + 1);
        let mut cut = 0;
        for w in state.waiting.drain(..) {
            let (w_start, w_end) = (w.page.0, w.end().0);
            if w_end <= start || end <= w_start {
                kept.push_back(w);
                continue;
            }
            cut += w_end.min(end) - w_start.max(start);
            if w_start < start {
                kept.push_back(Interval::new(w_start, start - w_start));
            }
            if end < w_end {
                kept.push_back(Interval::new(end, w_end - end));
            }
        }
        state.waiting = kept;
        state.pages -= cut;
        if let Some(current) = state.current {
            let (start, end) = (start.max(current.page.0), end.min(current.end().0));
            if start < end {
                merge(&mut state.withdrawn, start, end);
            }
        }
    }

    /// How far from `page`, of the interval the thread is on, the advice
    /// still stands (to `end` at most): `page` itself if `page` was
    /// withdrawn, else where the next withdrawn part starts (or `end`) —
    /// so a cluster read from `page` stops short of pages let go.
    pub(crate) fn advised_until(&self, page: u64, end: u64) -> u64 {
        until(&self.state.lock().withdrawn, page, end)
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
        while !state.stopped && (state.current.is_some() || !state.waiting.is_empty()) {
            self.changed.wait(&mut state);
        }
    }

    /// Ends the thread's loop (the interval it is on ends at its next
    /// page); what waits is dropped, and later pushes are answered
    /// [`Pushed::NoThread`].
    /// Returns the thread, if one was made, for the caller to join (no
    /// thread is made after the stop).
    pub(crate) fn stop(&self) -> Option<JoinHandle<()>> {
        // (A child made by `fork` has no thread: the handle is the
        // parent's, and its copy of the lock may have been held at the
        // fork.)
        if crate::sys::futex::current_pid() != self.owner {
            return None;
        }
        let mut state = self.state.lock();
        state.stopped = true;
        state.pages -= state.waiting.iter().map(|i| i.count.0).sum::<u64>();
        state.waiting.clear();
        self.changed.notify_all();
        state.thread.take()
    }

    /// Whether the thread has been made.
    #[cfg(test)]
    pub(crate) fn has_thread(&self) -> bool {
        self.state.lock().thread.is_some()
    }
}

/// How far from `page` (to `end` at most) no range of `ranges` (in
/// order, apart) holds a page: `page` itself if one holds it.
fn until(ranges: &[(u64, u64)], page: u64, end: u64) -> u64 {
    // The first range that ends past `page`: it holds `page`, or is the
    // next one after it.
    let next = ranges.partition_point(|&(_, r_end)| r_end <= page);
    match ranges.get(next) {
        Some(&(r_start, _)) if r_start <= page => page,
        Some(&(r_start, _)) => r_start.min(end),
        None => end,
    }
}

/// Adds `[start, end)` to `ranges` (in order, apart and not touching),
/// merged with those it overlaps or touches.
fn merge(ranges: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    // Those before it end before `start`; those after start past `end`.
    let first = ranges.partition_point(|&(_, r_end)| r_end < start);
    let last = ranges.partition_point(|&(r_start, _)| r_start <= end);
    let (mut start, mut end) = (start, end);
    if first < last {
        start = start.min(ranges[first].0);
        end = end.max(ranges[last - 1].1);
    }
    ranges.splice(first..last, [(start, end)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(page: u64, count: u64) -> Interval {
        Interval::new(page, count)
    }

    /// A queue whose "thread" does nothing (the tests take the intervals
    /// themselves).
    fn queue() -> WillNeedQueue {
        let q = WillNeedQueue::default();
        q.set_spawner(Box::new(|| Ok(std::thread::spawn(|| {}))));
        q
    }

    /// Intervals come out in order; the limit counts the pages waiting and
    /// the one being brought in, and frees as each is done.
    #[test]
    fn the_queue_keeps_order_and_its_limit() {
        let q = queue();
        assert!(!q.has_thread(), "no thread before the first interval");
        assert_eq!(q.push(interval(0, 6), 10), Pushed::Queued);
        assert!(q.has_thread());
        assert_eq!(q.push(interval(6, 4), 10), Pushed::Queued);
        assert_eq!(q.push(interval(10, 1), 10), Pushed::Full);
        assert_eq!(q.next(), Some(interval(0, 6)));
        assert_eq!(q.push(interval(10, 1), 10), Pushed::Full, "still busy");
        q.done();
        assert_eq!(q.push(interval(10, 6), 10), Pushed::Queued);
        assert_eq!(q.next(), Some(interval(6, 4)));
        q.done();
        q.stop().expect("the thread to join").join().unwrap();
        assert!(q.stop().is_none(), "handed over once");
        assert_eq!(q.next(), None, "what waits is dropped at the stop");
        assert_eq!(q.push(interval(0, 1), 10), Pushed::NoThread);
        q.settle();
    }

    /// Withdrawing cuts what waits (in two, where it falls in the middle)
    /// and the pages it counts, and marks the part of the interval in
    /// progress; the marks go when that interval is done.
    #[test]
    fn withdrawing_cuts_what_waits_and_marks_what_is_in_progress() {
        let q = queue();
        assert_eq!(q.push(interval(0, 10), 100), Pushed::Queued);
        assert_eq!(q.push(interval(20, 10), 100), Pushed::Queued);
        assert_eq!(q.push(interval(40, 10), 100), Pushed::Queued);
        assert_eq!(q.next(), Some(interval(0, 10)));
        q.withdraw(interval(5, 3));
        q.withdraw(interval(24, 2));
        q.withdraw(interval(35, 10));
        assert_eq!(q.advised_until(0, 10), 5, "up to the part withdrawn");
        assert_eq!(q.advised_until(5, 10), 5, "withdrawn");
        assert_eq!(q.advised_until(7, 10), 7, "withdrawn");
        assert_eq!(q.advised_until(8, 10), 10, "past it");
        // 30 pages less the 2 and 5 withdrawn from those waiting.
        assert_eq!(q.push(interval(60, 78), 100), Pushed::Full);
        assert_eq!(q.push(interval(60, 77), 100), Pushed::Queued);
        q.done();
        assert_eq!(q.advised_until(5, 10), 10, "the marks go with the interval");
        assert_eq!(q.next(), Some(interval(20, 4)));
        q.done();
        assert_eq!(q.next(), Some(interval(26, 4)));
        q.done();
        assert_eq!(q.next(), Some(interval(45, 5)));
        q.done();
        assert_eq!(q.next(), Some(interval(60, 77)));
        q.done();
        q.settle();
    }

    /// Ranges withdrawn piece by piece stay few: merged where they touch
    /// or overlap, kept apart otherwise, always in order; and how far the
    /// advice stands from each page is where the next withdrawn page is.
    /// Both checked against a page-by-page model.
    #[test]
    fn withdrawn_ranges_merge() {
        let mut rng = disk_channel::rng::SplitMix64::new(11);
        for _ in 0..200 {
            let mut ranges = Vec::new();
            let mut model = [false; 64];
            for _ in 0..12 {
                let start = rng.next_u64() % 64;
                let end = (start + 1 + rng.next_u64() % 8).min(64);
                merge(&mut ranges, start, end);
                model[start as usize..end as usize].fill(true);
                let mut expected = Vec::new();
                let mut page = 0;
                while page < 64 {
                    if model[page] {
                        let from = page;
                        while page < 64 && model[page] {
                            page += 1;
                        }
                        expected.push((from as u64, page as u64));
                    } else {
                        page += 1;
                    }
                }
                assert_eq!(ranges, expected);
                for page in 0..64u64 {
                    for end in [page + 1, page + 5, 64] {
                        let end = end.min(64);
                        let want = (page..end).find(|&p| model[p as usize]).unwrap_or(end);
                        assert_eq!(until(&ranges, page, end), want, "{ranges:?} {page} {end}");
                    }
                }
            }
        }
    }

    /// Where no thread can be made, every push says so (the caller brings
    /// the interval in itself), and the making is tried once; with no
    /// spawner set, none is made either.
    #[test]
    fn without_a_thread_nothing_is_queued() {
        let q = WillNeedQueue::default();
        let tries = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = std::sync::Arc::clone(&tries);
        q.set_spawner(Box::new(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(std::io::Error::other("no threads today"))
        }));
        assert_eq!(q.push(interval(0, 1), 10), Pushed::NoThread);
        assert_eq!(q.push(interval(0, 1), 10), Pushed::NoThread);
        assert_eq!(tries.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(!q.has_thread());
        let unset = WillNeedQueue::default();
        assert_eq!(unset.push(interval(0, 1), 10), Pushed::NoThread);
    }
}
