//! Read-around of a mapped file's page under `Normal` advice (see
//! `mapped`), decided under the monitor and read without it
//! ([`MonitorScope::Decisions`](crate::MonitorScope)).
//!
//! A fault on a mapped file's page reads the absent pages of its mapping
//! within a window around it — half before, as the kernel's read-around
//! does, unless the mapping ends sooner — with one `pread` of the file
//! from the first of them to the last, into a run of the frame pool. The
//! pages between that are not to be read (resident ones, say) are read
//! all the same and their copies dropped: one request, where reading only
//! the holes would be one each — what the last holes of a working set
//! filling up cost a page at a time. (The file's `page_ins` count them:
//! they were read.) Where the pool has no run for the span, the run that
//! holds the page is read straight into its frames.
//!
//! **Under the monitor** ([`AddressSpace::plan_read_around`]): the window
//! and its runs, the pool run leased, frames freed for every page to be
//! read (evicting), every such page latched exclusively — the "being
//! read" state other accessors wait on, not on the monitor — and given its
//! frame. **Without it** ([`Around::carry_out`]): the read, the move of the
//! runs to their pages, the latches released (the faulting page's handed
//! to its accessor, as a single page's fault hands its own). Faults by
//! other threads, on other pages, are decided and served meanwhile: before,
//! the monitor was held across the 2 MiB read, about 1.5 ms here, and
//! every other fault waited for it.
//!
//! A read that fails, or a panic, is undone (the guard's drop, under the
//! monitor): the pages are absent again, their frames free, their counts
//! and accounting taken back. Victims evicted for it stay evicted (the
//! frames are freed before the read, so that the pages can be latched
//! with theirs), and read-around stops for the file but for every 256th
//! fault until new advice — a file truncated under its mapping would
//! otherwise evict a window's worth at every fault near its end. The
//! caller then serves the page alone, and meets the error itself.
//!
//! `kill` and `free` wait for a read-around in flight on their pages as
//! they wait for a planned read-ahead: its runs are registered with the
//! read-ahead queue (`ReadAheadQueue::around`) while it is read. (A mapped
//! file implies a volume, and so, in this scope, the read-ahead thread's
//! queue; without one there is no read-around.)
//!
//! The read is ordered against nothing the monitor orders: an eviction's
//! write-back through *another* mapping of the same file may land while it
//! is in flight, and the pages then hold the file's bytes from before, or
//! a mix. Mappings are not coherent with each other (see `mapped`); one
//! mapping's own pages are, since a page being written back is not absent
//! and so not read around.

use super::queue::{Latch, Latched};
use super::service::reads_from_file;
use crate::mapped::MappedFile;
use crate::monitor::Monitor;
use crate::space::AddressSpace;
use crate::state::{DIRTY, ExclusiveLatch, ON_DISK, READ_ONLY, REFERENCED, TAG_RESIDENT};
use crate::sys::region::{PooledRun, RunUse};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A read-around decided under the monitor and carried out without it.
/// Dropped before it is finished (its read failed, or a panic), it undoes
/// what the decision did.
pub(super) struct Around<'a> {
    space: &'a AddressSpace,
    /// The faulting page.
    page: u64,
    file: Arc<MappedFile>,
    /// The first page of the span read, and its file page.
    first: u64,
    at: u64,
    /// The runs read in, as (first page, length): absent, and their
    /// contents the file's.
    runs: Vec<(u64, u64)>,
    /// The pool run the span is read into; `None`: the single run in
    /// `runs` is read straight into its frames.
    pooled: Option<PooledRun<'a>>,
    /// Every page of `runs`, latched exclusively (absent, with its frame).
    latches: Vec<ExclusiveLatch<'a>>,
}

impl AddressSpace {
    /// Monitor held on entry and exit.
    ///
    /// The decisions of a read-around of `page` (see the module doc) within
    /// `window` pages: `None`, having changed nothing, when it would bring
    /// in `page` alone or frames cannot be had (victims evicted by then stay
    /// evicted).
    pub(super) fn plan_read_around(
        &self,
        monitor: &mut Monitor,
        page: u64,
        window: u64,
    ) -> Option<Around<'_>> {
        let queue = self.read_ahead.as_ref()?;
        let (file, at_page) = self.absent_from_file(monitor, page)?;
        // The window, inside the mapping, whose file pages are consecutive
        // (`continues`): half before `page`, the rest after, and what the
        // mapping's end leaves of that before again.
        let mut lo = page;
        while page - lo < window / 2 && lo > 0 && monitor.files.continues(lo - 1) {
            lo -= 1;
        }
        let mut hi = page + 1;
        while hi - lo < window && monitor.files.continues(hi - 1) {
            hi += 1;
        }
        while hi - lo < window && lo > 0 && monitor.files.continues(lo - 1) {
            lo -= 1;
        }
        // The runs of pages to read, as (first page, length): absent, and
        // no copy in the volume to be read instead (the whole window is
        // `file`'s, one entry: its swap cache asked once).
        let states = self.states();
        let volume_copy_valid = file.volume_copy_valid();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for p in lo..hi {
            if !reads_from_file(states.load(p), || volume_copy_valid) {
                continue;
            }
            match runs.last_mut() {
                Some((first, len)) if *first + *len == p => *len += 1,
                _ => runs.push((p, 1)),
            }
        }
        let first = runs.first()?.0;
        let last = runs[runs.len() - 1];
        let span = last.0 + last.1 - first;
        // A pool run for the span, leased before any frame is freed for it,
        // never one that waits for a huge page's zeroing
        // (`RunUse::ReadReady`); else the run that holds `page`.
        let pooled = self.region.lease_pool_run(first, span, RunUse::ReadReady);
        if pooled.is_none() {
            let own = *runs
                .iter()
                .find(|&&(p, len)| (p..p + len).contains(&page))
                .expect("`page` is absent: one of the runs holds it");
            runs = vec![own];
        }
        let wanted: u64 = runs.iter().map(|&(_, len)| len).sum();
        if wanted < 2 {
            return None;
        }
        // Frames for every page read in (the pool run, not read, frees its
        // slots when dropped).
        while (monitor.free_frames.len() as u64) < wanted {
            if self.evict_batch(monitor, page).is_err() {
                return None;
            }
        }
        let mut latches = Vec::with_capacity(wanted as usize);
        for &(p, len) in &runs {
            for q in p..p + len {
                latches.push(states.latch_absent(q));
                monitor.install_frame(q);
            }
            monitor.forget_copies(p, p + len);
        }
        self.in_transit.fetch_add(wanted, Ordering::AcqRel);
        queue.around(&runs);
        monitor.counters.read_aheads += wanted - 1;
        monitor.counters.cluster_reads += 1;
        let limit = 4 * monitor.budget() as usize;
        for &(p, len) in &runs {
            for part in [
                p..page.clamp(p, p + len),
                (page + 1).clamp(p, p + len)..p + len,
            ] {
                if !part.is_empty() {
                    monitor.files.read_around(&file, part, limit);
                }
            }
        }
        Some(Around {
            space: self,
            page,
            at: at_page - (page - first),
            file,
            first,
            runs,
            pooled,
            latches,
        })
    }
}

impl AddressSpace {
    /// The read-around runs `runs` are read or undone (see `plan_read_around`).
    fn around_done(&self, runs: &[(u64, u64)]) {
        self.read_ahead
            .as_ref()
            .expect("a read-around implies the queue")
            .around_done(runs);
    }
}

impl Around<'_> {
    /// Monitor not held on entry or exit.
    ///
    /// Reads the runs in and hands the faulting page's latch to its
    /// accessor (`intent`: a read-around serves no overwrite); `None`,
    /// with everything undone, if the read fails.
    pub(super) fn carry_out(mut self, intent: Latch) -> Option<Latched> {
        let space = self.space;
        let (file, at, first) = (&self.file, self.at, self.first);
        let read = |bytes: &mut [u8]| file.read_pages(at, bytes);
        match self.pooled.take() {
            Some(mut pooled) => {
                // SAFETY: `pooled` was leased from this region.
                unsafe { space.region.read_pooled(&mut pooled, read) }.ok()?;
                let parts: Vec<(usize, usize)> = self
                    .runs
                    .iter()
                    .map(|&(p, len)| ((p - first) as usize, len as usize))
                    .collect();
                // SAFETY: the parts are the runs, whose pages `self.latches`
                // hold, absent, exclusively.
                unsafe { space.region.move_in_run_parts(pooled, &parts) };
            }
            None => {
                let (own, len) = self.runs[0];
                // SAFETY: `self.latches` hold every page of the run, absent,
                // exclusively. On an error nothing of it stays committed.
                unsafe {
                    space.region.fill_unpooled(own, len, |bytes| {
                        file.read_pages_in_pieces(at + (own - first), bytes)
                    })
                }
                .ok()?;
            }
        }
        // In: each page no longer a transfer in flight once released (one
        // at a time, so that a panic part way leaves the rest to the drop;
        // `kill` and `free` wait for the runs to leave the queue, after).
        // Whatever copy the volume held is stale (`reads_from_file`).
        // The faulting page's latch last (first in the vector), so that
        // until the end every latch not released is the drop's to undo.
        let at_own = self
            .latches
            .iter()
            .position(|l| l.page() == self.page)
            .expect("the faulting page is one of the runs");
        self.latches.swap(0, at_own);
        while self.latches.len() > 1 {
            let latch = self.latches.pop().expect("more than one");
            latch.release(TAG_RESIDENT, 0, DIRTY | ON_DISK | REFERENCED);
            space.in_transit.fetch_sub(1, Ordering::AcqRel);
        }
        let own = self.latches.pop().expect("the faulting page's");
        space.in_transit.fetch_sub(1, Ordering::AcqRel);
        space.around_done(&self.runs);
        Some(match intent {
            Latch::Shared => Latched::Taken(own.release_to_shared(REFERENCED, DIRTY | ON_DISK)),
            // (No read-around is planned for an overwrite; as a single
            // page's fault does, a read-only page is refused to one.)
            Latch::Overwrite if own.has_now(READ_ONLY) => {
                space.refuse_store(own);
                Latched::WriteProtected
            }
            // A read-only page is refused to a writer by the accessor, as
            // after any fault (`access`).
            Latch::Exclusive | Latch::Overwrite => {
                Latched::Taken(own.keep_as_resident(REFERENCED, DIRTY | ON_DISK))
            }
        })
    }
}

impl Drop for Around<'_> {
    /// Undoes an unfinished read-around, under the monitor: its pages
    /// leave their frames and are absent again (their memory given back:
    /// a failed read may have committed some), its counts and read-around
    /// accounting are taken back. (A pool run not moved in frees its slots
    /// as it drops.)
    fn drop(&mut self) {
        if self.latches.is_empty() {
            return;
        }
        let space = self.space;
        let mut monitor = space.lock_monitor();
        space.release_latched(self.latches.iter());
        let left = self.latches.len() as u64;
        while let Some(latch) = self.latches.pop() {
            monitor.remove_frame(latch.page());
            // Absent again, as it was.
            drop(latch);
        }
        space.in_transit.fetch_sub(left, Ordering::AcqRel);
        space.around_done(&self.runs);
        for &(p, len) in &self.runs {
            monitor.files.forget_around(p..p + len);
        }
        let wanted: u64 = self.runs.iter().map(|&(_, len)| len).sum();
        monitor.counters.read_aheads -= wanted - 1;
        monitor.counters.cluster_reads -= 1;
        // The fault is counted again when the page is served alone.
        monitor.counters.faults -= 1;
        self.file.around_failed();
    }
}
