//! Asynchronous read-ahead under sequential advice, in the default monitor
//! scope ([`MonitorScope::Decisions`](crate::MonitorScope)).
//!
//! A fault in an interval advised `Sequential` reads its cluster at once
//! (`read_cluster`) and, in the same monitor hold, *plans* the next
//! cluster: frames taken (evicting as needed), pages latched absent → "being
//! read", disk address looked up. The read itself is done by the VM's
//! read-ahead thread, without the monitor, while the scanning thread works
//! through the cluster it has; the thread then makes the pages resident.
//! A fault that finds its page still being read (the scan caught up) plans
//! the cluster after the one in flight before it waits, so a scan that is
//! faster than the drive keeps two clusters in flight — the kernel's
//! asynchronous read-ahead, by other means.
//!
//! The real-memory bound holds: frames are taken, and victims' memory
//! given back, when the read is planned, before any memory is committed.
//! A read that fails (or a drive that panics) is undone under the monitor:
//! frames freed, pages absent again — read-ahead is a guess, and the page's
//! own fault meets the error, if any. The thread finishes every planned
//! read before the VM is closed, so no latch outlives it. A run never
//! leaves the interval it starts in, and `free` or `kill` meeting a page
//! being read ahead waits for it without the monitor (its read may need
//! the monitor to be undone) and tries again.

use super::planned::{PLANNED_MAX, Planned, PlannedFrom};
use crate::monitor::Monitor;
use crate::space::AddressSpace;
use crate::state::{
    DIRTY, ExclusiveLatch, ON_DISK, REFERENCED, TAG_ABSENT, TAG_LOCKED, TAG_RESIDENT,
};
use crate::vocabulary::Advice;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;

impl AddressSpace {
    /// Monitor held on entry and exit.
    ///
    /// Plans the cluster read that starts at `page` for the read-ahead
    /// thread (see the module doc); nothing if there is no read-ahead
    /// thread, enough reads are planned already, or `page` does not start
    /// a run worth a cluster read.
    pub(crate) fn plan_read_ahead(&self, monitor: &mut Monitor, page: u64) {
        let Some(read_ahead) = self.read_ahead.as_ref() else {
            return;
        };
        let (reads_pending, pages_pending) = read_ahead.pending();
        if page >= self.virtual_pages || reads_pending >= PLANNED_MAX {
            return;
        }
        // Only in an interval advised sequential (a stream's next cluster
        // that would start in the next interval is not this stream's).
        if monitor
            .allocation_of(page)
            .is_none_or(|(_, a)| a.advice != Advice::Sequential)
        {
            return;
        }
        // Only a stream whose window has grown to the maximum (it keeps all
        // it reads: a scan) reads ahead asynchronously. Many streams at once
        // (a merge) have small windows, and a second window in flight for
        // each would evict the others' (measured: the demo's 32-way merge
        // went from 2.5 to 3.0 s when every stream planned one).
        let window = self.stream_window(monitor, page);
        if window < Self::run_max(monitor) {
            return;
        }
        // And never more in flight than a quarter of real memory: at small
        // budgets two clusters ahead evicted each other before the scan
        // reached them (a 512-page scan through 128 pages read 536 pages);
        // at large ones (a window is 1 MiB) two stay in flight, which the
        // scan needs (one at a time: 512 MiB in 0.68-0.71 s, not 0.45).
        if pages_pending + window > monitor.budget() / 4 {
            return;
        }
        let (from, mut count) = match self.run_at(monitor, page, window) {
            Ok(Some((disk, count))) => (PlannedFrom::Disk(disk), count),
            // A mapped file's pages (see `mapped`).
            Ok(None) => match self.file_run_at(monitor, page, window) {
                Some((file, at, count)) => (PlannedFrom::File(file, at), count),
                None => return,
            },
            Err(_) => return,
        };
        // Frames for the cluster; with fewer to be had, a shorter one. (A
        // failed eviction leaves the pages for their own faults.)
        while (monitor.free_frames.len() as u64) < count {
            if self.evict_batch(monitor, page).is_err() {
                break;
            }
        }
        count = count.min(monitor.free_frames.len() as u64);
        if count < 2 {
            return;
        }
        let states = self.states();
        let mut was = Vec::with_capacity(count as usize);
        for p in page..page + count {
            // The planned read owns the latch from here (see `finish`).
            was.push(states.latch_absent(p).into_raw());
            monitor.install_frame(p);
        }
        monitor.forget_copies(page, page + count);
        self.in_transit.fetch_add(count, Ordering::AcqRel);
        if let PlannedFrom::Disk(_) = from {
            // (A file's pages are counted by the file, once read.)
            monitor.counters.page_ins += count;
        }
        monitor.counters.read_aheads += count;
        monitor.counters.cluster_reads += 1;
        monitor.counters.async_read_aheads += 1;
        read_ahead.plan(Planned { page, from, was });
    }

    /// Monitor held on entry and exit.
    ///
    /// A fault found `page` latched: if it lies in a sequential interval
    /// and is being read ahead, plan the cluster after the run in flight
    /// (the scan has caught up with the drive).
    pub(crate) fn plan_past_in_flight(&self, monitor: &mut Monitor, page: u64) {
        if self.read_ahead.is_none() {
            return;
        }
        let Some((start, allocation)) = monitor.allocation_of(page) else {
            return;
        };
        if allocation.advice != Advice::Sequential {
            return;
        }
        // Only inside this interval: the run in flight may end at its end,
        // and the next interval is not this stream's.
        let interval_end = start + allocation.count;
        let states = self.states();
        let max = Self::run_max(monitor);
        let mut end = page;
        while end < interval_end && end - page < max && states.load(end).tag() == TAG_LOCKED {
            end += 1;
        }
        if end < interval_end && states.load(end).tag() == TAG_ABSENT {
            self.plan_read_ahead(monitor, end);
        }
    }

    /// The read-ahead thread's loop: take the oldest planned read, do it,
    /// finish it; until stopped with nothing left. Monitor not held on
    /// entry or exit.
    pub(crate) fn run_read_ahead(&self) {
        let read_ahead = self.read_ahead.as_ref().expect("the thread has a queue");
        while let Some(planned) = read_ahead.next() {
            let count = planned.was.len() as u64;
            let channel = self.channel.as_ref().expect("read-ahead implies a volume");
            // A drive that panics fails this read like an error would.
            let read = std::panic::catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: the planned read owns the exclusive latches of
                // these absent pages (taken in `plan_read_ahead`, released
                // only in `finish` below).
                unsafe {
                    self.region
                        .fill(planned.page, count, |bytes| match &planned.from {
                            PlannedFrom::Disk(disk) => channel
                                .read(disk.drive, disk.page, bytes, None)
                                .map_err(|_| ()),
                            PlannedFrom::File(file, at) => {
                                file.read_pages(*at, bytes).map_err(|_| ())
                            }
                        })
                }
            }));
            // Whatever `finish` does, the queue hears that this read is
            // over (a panic there must not leave `free` waiting forever).
            let finished = std::panic::catch_unwind(AssertUnwindSafe(|| {
                self.finish(&planned, matches!(read, Ok(Ok(()))));
            }));
            read_ahead.done(planned.page);
            if finished.is_err() {
                // A broken invariant: the VM's structures may be
                // half-changed, as after a panic under the monitor.
                self.poisoned.store(true, Ordering::Release);
            }
        }
    }

    /// Ends a planned read: the pages become resident, or — after a failed
    /// read — leave their frames and are absent again, under the monitor.
    fn finish(&self, planned: &Planned, read: bool) {
        let states = self.states();
        let count = planned.was.len() as u64;
        let latches = planned
            .was
            .iter()
            .enumerate()
            .map(|(i, &was)| ExclusiveLatch::adopt(states, planned.page + i as u64, was));
        if read {
            for latch in latches {
                // A file's pages: whatever copy the volume held is stale
                // (the swap cache was off for them).
                let stale = match planned.from {
                    PlannedFrom::Disk(_) => 0,
                    PlannedFrom::File(..) => ON_DISK,
                };
                latch.release(TAG_RESIDENT, REFERENCED, DIRTY | stale);
            }
            self.in_transit.fetch_sub(count, Ordering::AcqRel);
            return;
        }
        let mut monitor = self.lock_monitor();
        // SAFETY: the planned read still owns the pages' latches (adopted
        // just below, after their frames are gone).
        unsafe { self.region.release_or_zero(planned.page, count) };
        if let PlannedFrom::Disk(_) = planned.from {
            monitor.counters.page_ins -= count;
        }
        monitor.counters.read_aheads -= count;
        monitor.counters.cluster_reads -= 1;
        monitor.counters.async_read_aheads -= 1;
        for latch in latches {
            monitor.remove_frame(latch.page());
            // Absent again, as it was.
            drop(latch);
        }
        self.in_transit.fetch_sub(count, Ordering::AcqRel);
    }
}
