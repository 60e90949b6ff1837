//! Read-ahead started and finished by the faulting thread
//! ([`VmConfig::inline_read_ahead`](crate::VmConfig::inline_read_ahead),
//! on by default).
//!
//! # What
//!
//! A cluster read planned for a sequential stream (`plan_read_ahead`, under
//! the monitor) whose drive is read with `O_DIRECT` is started by the
//! thread that planned it, once it has let go of the monitor: a run of the
//! frame pool is leased and an `io_uring` read into it submitted
//! ([`AddressSpace::start_planned`]). Nothing waits for it. The thread
//! that later meets a page of the run — the scan, caught up — waits for
//! that read's completion itself, moves the run to its pages and releases
//! their latches ([`AddressSpace::reap_inline`], from `wait_for_latch`),
//! after planning and starting the clusters after those in flight (up to
//! six in flight: `plan_past_in_flight`). So, as in the
//! kernel's read-ahead, the thread that uses the pages does the work, and
//! no other thread of the process runs for a read.
//!
//! # Why
//!
//! With the read-ahead thread, every cluster crossed between processors
//! three times: the plan woke the read-ahead thread, its completed read
//! woke the finisher, and the finisher's move woke the scan — and each
//! move's TLB flush interrupted the processor running the scan (a third
//! of the scan's busy time, `perf`; on this virtual machine an
//! interrupt between processors is an exit on both sides). On a busy host
//! each wake-up of an idle processor can take milliseconds. Here the
//! move's flush is local: no other processor runs a thread of the process.
//! And the reads in flight are at the device together, where the
//! read-ahead thread issued them one after the other. Measured in
//! BENCHMARKS.md ("Read-ahead in the faulting thread").
//!
//! # The read-ahead mark
//!
//! A read that completes before its reader reaches it stays latched until
//! the reader meets it (only the read waited for is finished): meeting it
//! is what plans the cluster after it, as the
//! kernel's `PG_readahead` mark does. Finishing it early made the reader
//! find its pages resident, plan nothing, and read every third cluster
//! synchronously (170 of 516 cluster reads in a scan, against 21).
//!
//! # Nobody waits
//!
//! Any thread about to wait for the latch of a page such a read holds
//! helps it instead ([`AddressSpace::help_inline_read`]: an accessor, a
//! `touch` or `pin`, a `free` or `kill`): it starts the read if it is still
//! planned, or waits for it in the ring and finishes it. A read whose
//! reader never comes (the program stopped scanning) is finished by the
//! read-ahead thread once it has been complete for a [`TICK`] — it looks at
//! least that often, whatever else it does, while a read is in the ring
//! or planned, and otherwise sleeps until a stream's read enters a ring
//! holding none (for a second at most) — and so is a planned read nobody
//! started. (A read of `touch`, the will-need thread or a fault's
//! read-around wakes no one: the thread that planned it waits for it at
//! once.) Closing the VM stops the read-ahead thread only after
//! every read has completed and been finished. A panic while a read is
//! being started undoes it (its pages absent again), as a failed read is.
//!
//! A child made by `fork` shares the ring's memory with its parent: there
//! the ring is never touched (no read is started on it, no completion
//! taken from it, its entries are forgotten at drop).
//!
//! # The ring
//!
//! One ring per address space, behind one lock, held to submit and to
//! reap, and across the wait for a completion (the pages of the reads in
//! the ring are kept apart, under a lock of their own, for the look that
//! decides whether to wait). The kernel posts a
//! completion through the thread that submitted the read; a waiter that
//! did not submit it is woken once that thread runs (it is interrupted,
//! if running, or woken from an interruptible sleep to do so). Reads are
//! not registered buffers: registering pins the pages, and a pinned page
//! cannot be moved.

use super::inline_reads::{Entry, InlineReads, TICK};
use super::planned::{Planned, PlannedFrom};
use crate::space::AddressSpace;
use crate::sys::region::{PooledRun, RunUse};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;

impl AddressSpace {
    /// Starts the reads planned for this thread to start (see the module
    /// docs): into a run of the frame pool, or, with none free, straight
    /// into the pages; a read it cannot hand to the ring (full: not seen)
    /// it reads here, synchronously, as the read-ahead thread would.
    /// Monitor not held on entry or exit.
    pub(crate) fn start_planned(&self) {
        let (Some(inline), Some(queue)) = (self.inline.as_ref(), self.read_ahead.as_ref()) else {
            return;
        };
        while let Some(planned) = queue.take_planned() {
            let (page, count) = (planned.page, planned.was.len() as u64);
            let mut slot = Some(planned);
            // A panic (the pool's) undoes the read, as the read-ahead
            // thread's does: its latches must not be lost.
            let started =
                std::panic::catch_unwind(AssertUnwindSafe(|| self.start_one(inline, &mut slot)));
            queue.started(page, count);
            match (started, slot) {
                // In the ring.
                (Ok(()), None) => {}
                // The ring takes no more (not seen), or is not this
                // process's.
                (Ok(()), Some(planned)) => self.read_planned_here(planned),
                // Lost before it reached the ring: nothing in flight.
                (Err(_), Some(planned)) => self.finish_read(&planned, false),
                // (`start_one` takes the read only where it cannot unwind:
                // from the ring's push to the entry's record.)
                (Err(_), None) => {}
            }
        }
    }

    /// Hands the read in `slot` to the ring, taking it from `slot`; leaves
    /// it there when the ring takes no more or is not this process's.
    fn start_one(&self, inline: &InlineReads, slot: &mut Option<Planned>) {
        let Some(planned) = slot.as_ref() else {
            return;
        };
        let Some((fd, offset)) = planned.direct.filter(|_| inline.usable()) else {
            return;
        };
        let count = planned.was.len() as u64;
        let (buf, len, run) = match self
            .region
            .lease_pool_run(planned.page, count, RunUse::Read)
        {
            Some(mut run) => {
                let (mut buf, mut len) = (std::ptr::null_mut::<u8>(), 0usize);
                // SAFETY: the run was leased from this region just above.
                // The closure only takes the slots' address: the bytes are
                // written by the kernel's read, while the entry holds the
                // run (below), and no slice of them is made until the read
                // has completed.
                let _ = unsafe {
                    self.region.read_pooled(&mut run, |bytes| {
                        (buf, len) = (bytes.as_mut_ptr(), bytes.len());
                        Ok::<(), ()>(())
                    })
                };
                // SAFETY: only the lifetime changes; the region outlives
                // the entry (see `Entry::run`).
                let run: PooledRun<'static> = unsafe { std::mem::transmute(run) };
                (buf, len, Some(run))
            }
            None => {
                // No run of the pool free (a small pool, its runs all in
                // flight): straight into the pages, as the read-ahead
                // thread would. SAFETY: the planned read owns the exclusive
                // latches of these absent pages (taken in
                // `plan_read_ahead`, released in `finish`), so nothing else
                // touches their bytes until it is finished; the slice is
                // gone at once, the kernel writes them.
                let bytes = unsafe { self.region.pages_mut(planned.page, count) };
                (bytes.as_mut_ptr(), bytes.len(), None)
            }
        };
        let mut state = inline.state.lock();
        let id = state.next_id;
        state.next_id += 1;
        let read = io_uring::opcode::Read::new(io_uring::types::Fd(fd), buf, len as u32)
            .offset(offset)
            .build()
            .user_data(id);
        // From here the read is the entry's: nothing between the push and
        // the entry's record can unwind (a failed allocation aborts), so
        // no unwinding undoes a read the kernel may be writing.
        let planned = slot.take().expect("looked at above");
        // The read-ahead thread sleeps while no stream's read is in the
        // ring: it looks at reads nobody meets from the first one on. A
        // read of `touch`, the will-need thread or a fault's read-around
        // is met by the thread that planned it, which waits for it at once
        // (`help_inline_read`): waking the other processor for it cost
        // that thread a wake-up and every move of its run a flush of the
        // other processor's TLB (measured: a read-around took 185–190 µs
        // against 64 for a page read alone; see `fault::decided`).
        let wake = planned.stream && !state.entries.iter().any(|e| e.planned.stream);
        // SAFETY: the buffer (the run's slots, or the latched pages) is
        // valid and written by no one else until the completion is seen:
        // the entry recorded just below holds the run and the latches
        // until then, and `Drop` waits for it.
        if unsafe { state.ring.submission().push(&read) }.is_err() {
            // (Not in the ring: the caller reads it another way.)
            *slot = Some(planned);
            return;
        }
        inline.runs.lock().push((planned.page, count));
        state.entries.push(Entry {
            id,
            planned,
            run,
            len,
            read: None,
        });
        inline.started.fetch_add(1, Ordering::Relaxed);
        let before = inline.in_ring.fetch_add(1, Ordering::AcqRel);
        inline.in_ring_high.fetch_max(before + 1, Ordering::Relaxed);
        // A submit refused for now (interrupted, the kernel short of
        // memory) leaves the read queued in the ring: the next submit (a
        // wait, the read-ahead thread's tick) submits it.
        let _ = state.ring.submit();
        drop(state);
        if wake && let Some(queue) = self.read_ahead.as_ref() {
            queue.nudge();
        }
    }

    /// A planned read this thread took but cannot start: read here,
    /// synchronously, as the read-ahead thread reads (into the pool, or
    /// straight into the pages), and finished.
    fn read_planned_here(&self, planned: Planned) {
        match self.read_planned(&planned) {
            Ok(Some(run)) => self.finish_pooled(&planned, run),
            Ok(None) => self.finish_read(&planned, true),
            Err(()) => self.finish_read(&planned, false),
        }
    }

    /// Finishes the reads started by faulting threads that have
    /// completed: with `wait_for`, waits for the read covering that page
    /// (if one is in the ring) and finishes it alone — others stay latched
    /// for their readers (see the module docs); without, finishes those
    /// complete for a tick, and with `all` first waits for every read and
    /// finishes them all. Monitor not held on entry or exit.
    pub(crate) fn reap_inline(&self, wait_for: Option<u64>, all: bool) {
        let Some(inline) = self.inline.as_ref().filter(|i| i.usable()) else {
            return;
        };
        let mut done = Vec::new();
        {
            let mut state = inline.state.lock();
            // (Reads a refused submit left queued go now.)
            let _ = state.ring.submit();
            loop {
                state.collect();
                let waiting = if all {
                    state.entries.iter().any(|e| e.read.is_none())
                } else {
                    wait_for.is_some_and(|page| {
                        state
                            .entries
                            .iter()
                            .any(|e| e.read.is_none() && e.covers(page))
                    })
                };
                if !waiting {
                    break;
                }
                state.wait();
            }
            let mut at = 0;
            while at < state.entries.len() {
                let entry = &state.entries[at];
                let take = match (entry.read, wait_for) {
                    (None, _) => false,
                    (Some(_), Some(page)) => entry.covers(page),
                    (Some((_, seen)), None) => all || seen.elapsed() >= TICK,
                };
                if take {
                    done.push(state.entries.swap_remove(at));
                    inline.in_ring.fetch_sub(1, Ordering::AcqRel);
                } else {
                    at += 1;
                }
            }
            if wait_for.is_none() {
                inline.unmet.fetch_add(done.len() as u64, Ordering::Relaxed);
            }
            let mut runs = inline.runs.lock();
            runs.retain(|&(start, _)| !done.iter().any(|e| e.planned.page == start));
        }
        // Finished without the ring's lock: moving a run in takes the
        // pool's, and a failed read's undoing the monitor.
        for entry in done {
            let count = entry.planned.was.len() as u64;
            match (entry.read, entry.run) {
                (Some((true, _)), Some(run)) => self.finish_pooled(&entry.planned, run),
                (Some((true, _)), None) => self.finish_read(&entry.planned, true),
                // (The run's slots go back to the pool, unmoved; pages read
                // into straight are given back by the undoing.)
                (_, run) => {
                    drop(run);
                    self.finish_read(&entry.planned, false);
                    continue;
                }
            }
            if let (Some(channel), PlannedFrom::Disk(disk)) = (&self.channel, &entry.planned.from) {
                // (Counting is a drive's own code: it must not undo what
                // was finished.)
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    channel.count_direct_read(disk.drive, count)
                }));
            }
        }
    }

    /// A thread about to wait for the latch of `page` helps the read that
    /// holds it, if a faulting thread started it or is to start it: starts
    /// it if still planned, or waits for it in the ring and finishes it.
    /// True if it did (the caller looks at the page again instead of
    /// parking: nobody else may finish that read soon); false if `page` is
    /// no such read's. Monitor not held.
    pub(crate) fn help_inline_read(&self, page: u64) -> bool {
        let Some(inline) = self.inline.as_ref().filter(|i| i.usable()) else {
            return false;
        };
        if self
            .read_ahead
            .as_ref()
            .is_some_and(|q| q.to_start_covers(page))
        {
            self.start_planned();
            if !inline.covers(page) {
                // Another thread is handing it to the ring.
                std::thread::yield_now();
                return true;
            }
        }
        if inline.covers(page) {
            self.reap_inline(Some(page), false);
            return true;
        }
        false
    }

    /// Waits until no read covers `page` (a stream's read-ahead, `touch`'s
    /// or the will-need thread's): helped first
    /// ([`AddressSpace::help_inline_read`]), then waited for until it is
    /// over — another thread may be finishing it — for the read, not for
    /// the page's latch, which others may take as soon as the read lets go
    /// of it. Whether a read covered it. Never in a child made by `fork`,
    /// where nothing would finish its copy of the parent's reads. Monitor
    /// not held.
    pub(crate) fn wait_for_read(&self, page: u64) -> bool {
        let helped = self.help_inline_read(page);
        match self
            .read_ahead
            .as_ref()
            .filter(|q| q.is_owners() && (helped || q.covers(page)))
        {
            Some(queue) => {
                queue.wait_uncovered(page);
                true
            }
            None => helped,
        }
    }

    /// Reads started by faulting threads (see [`InlineReads`]).
    pub(crate) fn inline_reads(&self) -> u64 {
        self.inline.as_ref().map_or(0, InlineReads::started)
    }

    /// Of those, the reads nobody met (see [`InlineReads`]).
    pub(crate) fn inline_reads_unmet(&self) -> u64 {
        self.inline.as_ref().map_or(0, InlineReads::unmet)
    }

    /// The most of those in flight at once (see [`InlineReads`]).
    pub(crate) fn inline_reads_in_flight_high(&self) -> u64 {
        self.inline.as_ref().map_or(0, InlineReads::in_flight_high)
    }
}
