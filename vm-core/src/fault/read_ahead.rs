//! Asynchronous read-ahead under sequential advice, in the default monitor
//! scope ([`MonitorScope::Decisions`](crate::MonitorScope)).
//!
//! A fault in an interval advised `Sequential` reads its cluster at once
//! (`read_cluster`) and, in the same monitor hold, *plans* the next
//! cluster: frames taken (evicting as needed), pages latched absent → "being
//! read", disk address looked up. On a drive read with `O_DIRECT` the
//! faulting thread starts that read itself once it lets go of the monitor,
//! and the thread that meets the cluster finishes it (`inline`, the
//! default). Otherwise the read is done by the VM's
//! read-ahead thread, without the monitor, while the scanning thread works
//! through the cluster it has. A run read into the frame pool is then
//! moved to its pages and made resident by a second thread, the finisher,
//! while the read-ahead thread starts the next read — so the drive does
//! not wait for the move and the wake-up (measured, the scan's time
//! against the best kernel's: 0.92-1.40x, median 0.97x, with it; 0.99-1.36x,
//! median 1.06x, without; at 4x scale medians 1.10x and 1.32x). Other
//! reads (no pool run, transparent mode, a failure) are finished by the
//! read-ahead thread itself.
//! A fault that finds its page still being read (the scan caught up) plans
//! the clusters after the ones in flight before it waits, so a scan that
//! is faster than the drive keeps up to six clusters in flight (two
//! where the frame pool is small: `stream_reads_max`) — the kernel's
//! asynchronous read-ahead, by other means.
//!
//! The real-memory bound holds: frames are taken, and victims' memory
//! given back, when the read is planned, before any memory is committed.
//! A read that fails (or a drive that panics) is undone under the monitor:
//! frames freed, pages absent again — read-ahead is a guess, and the page's
//! own fault meets the error, if any. The threads finish every planned
//! read before the VM is closed, so no latch outlives them. A run never
//! leaves the interval it starts in, and `free` or `kill` meeting a page
//! being read ahead waits for it without the monitor (its read may need
//! the monitor to be undone) and tries again.
//!
//! The same thread writes behind (`plan_clean_ahead`): each eviction hands
//! it the dirty pages the clock will reach next, latched shared, and it
//! writes them by runs and marks them clean without the monitor — so the
//! next faults find clean victims and do not wait for write-backs. A
//! writer that meets such a page waits for its write (Cedar's "being
//! written"); readers do not.

use super::planned::{
    PLANNED_MAX, Planned, PlannedClean, PlannedFrom, STREAM_READS_MIN, TOUCH_PLANNED_MAX, Work,
};
use crate::mapped::Source;
use crate::monitor::Monitor;
use crate::space::AddressSpace;
use crate::state::{DIRTY, ExclusiveLatch, ON_DISK, REFERENCED, TAG_ABSENT, TAG_RESIDENT};
use crate::sys::region::{PooledRun, RunUse};
use crate::vocabulary::Advice;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;

impl AddressSpace {
    /// Monitor held on entry and exit.
    ///
    /// Plans the cluster read that starts at `page` for the read-ahead
    /// thread (see the module doc); nothing if there is no read-ahead
    /// thread, enough reads are planned already, or `page` does not start
    /// a run worth a cluster read. Whether it planned one.
    pub(crate) fn plan_read_ahead(&self, monitor: &mut Monitor, page: u64) -> bool {
        let Some(read_ahead) = self.read_ahead.as_ref() else {
            return false;
        };
        let (reads_pending, pages_pending) = read_ahead.pending();
        if page >= self.virtual_pages || reads_pending >= PLANNED_MAX {
            return false;
        }
        // Only in an interval advised sequential (a stream's next cluster
        // that would start in the next interval is not this stream's).
        if monitor
            .allocation_of(page)
            .is_none_or(|(_, a)| a.advice != Advice::Sequential)
        {
            return false;
        }
        // Only a stream whose window has grown to the maximum (it keeps all
        // it reads: a scan) reads ahead asynchronously. Many streams at once
        // (a merge) have small windows, and a second window in flight for
        // each would evict the others' (measured: the demo's 32-way merge
        // went from 2.5 to 3.0 s when every stream planned one).
        let window = self.stream_window(monitor, page);
        if window < Self::run_max(monitor) {
            return false;
        }
        // As many in flight as the frame pool holds, less two (see
        // `stream_reads_max`; `touch`'s reads count here too, and have a
        // limit of their own besides).
        if reads_pending >= self.stream_reads_max(window) {
            return false;
        }
        // And never more in flight than a quarter of real memory: at small
        // budgets two clusters ahead evicted each other before the scan
        // reached them (a 512-page scan through 128 pages read 536 pages);
        // at large ones (a window is 1 MiB) two to six stay in flight,
        // which the scan needs (one at a time: 512 MiB in 0.68-0.71 s, not
        // 0.45).
        if pages_pending + window > monitor.budget() / 4 {
            return false;
        }
        self.plan_run(monitor, page, window, true, false) > 0
    }

    /// The clusters of `window` pages a sequential stream keeps in flight
    /// at most: as many as the frame pool holds less two, from
    /// [`STREAM_READS_MIN`] to [`PLANNED_MAX`] — `STREAM_READS_MIN`
    /// without a pool. So six with the largest pool (2,048 pages, budgets
    /// of 64 MiB and more), two with 1,024 (the default 32 MiB budget).
    ///
    /// Why less two: a read takes a run of the pool's committed slots, and
    /// the pages the scan frees behind it refill them; with every slot in
    /// flight, the next read finds none committed and commits fresh memory
    /// (zeroed, up to 4.7 ms for a huge page here) in its own time.
    /// Measured (BENCHMARKS.md): with a pool of 1,024 pages, four reads of
    /// 1 MiB in flight made a 4× scan 1.44–2.24× the best kernel side,
    /// against 0.85–1.31× with 2,048 ("Four clusters in flight"); with
    /// 2,048, six in flight against four, twelve rounds each at the issue's
    /// full size, the VM's scan took a median 0.76 s against 0.85, 0.93×
    /// the faster kernel side against 1.12× ("Free-behind keeps little, and
    /// six clusters in flight", the 2026-11-28 session); at the default
    /// size, four against two with 1,024, level (four rounds), so two.
    pub(crate) fn stream_reads_max(&self, window: u64) -> usize {
        let pool = self.region.pool_pages();
        if pool == 0 {
            return STREAM_READS_MIN;
        }
        usize::try_from((pool / window.max(1)).saturating_sub(2))
            .unwrap_or(PLANNED_MAX)
            .clamp(STREAM_READS_MIN, PLANNED_MAX)
    }

    /// Whether a thread about to wait for a page coming in should look for
    /// clusters to plan past it first (`plan_past_in_flight`): fewer reads
    /// in flight than a stream of the largest window keeps. Looked at
    /// without the monitor.
    pub(crate) fn may_plan_past(&self) -> bool {
        self.read_ahead.as_ref().is_some_and(|q| {
            q.pending().0 < self.stream_reads_max(super::service::READ_AHEAD_PAGES)
        })
    }

    /// Monitor held on entry and exit.
    ///
    /// For `touch` and the will-need thread: plans the cluster read that
    /// brings in `page` and the pages after it (absent, on consecutive
    /// disk pages, at most `window`) for this thread to start once it lets
    /// go of the monitor, and to wait for without it
    /// ([`AddressSpace::help_inline_read`]) — where the drive is read with
    /// `O_DIRECT` and the ring is usable, and fewer than the most reads are
    /// planned. Whether it planned one: if not, nothing changed (the
    /// caller reads under the monitor, as before).
    ///
    /// Why: a `touch` made its read under the monitor, so every other
    /// thread's fault waited for the drive meanwhile — a demo's merge,
    /// writing its output, for the thread that brings the runs in ahead of
    /// it (measured in BENCHMARKS.md, "The monitor let go for `touch`").
    ///
    /// With `guess` (a fault's read-around into free memory), the pages
    /// come in unreferenced (see `Planned::guess`).
    pub(crate) fn plan_touch_run(
        &self,
        monitor: &mut Monitor,
        page: u64,
        window: u64,
        guess: bool,
    ) -> bool {
        let Some(read_ahead) = self.read_ahead.as_ref() else {
            return false;
        };
        // Its own most, whatever a stream has in flight: a deep scan
        // beside it does not send it back under the monitor.
        if read_ahead.touches_pending() >= TOUCH_PLANNED_MAX {
            return false;
        }
        self.plan_run(monitor, page, window, false, guess) > 0
    }

    /// Monitor held on entry and exit.
    ///
    /// Plans the read of the run at `page` (at most `window` pages): frames
    /// taken (evicting as needed; fewer to be had, a shorter run), pages
    /// latched absent → "being read", disk address looked up, the read
    /// queued for this thread to start (or the read-ahead thread). For a
    /// `stream` (sequential read-ahead) the stream's pages well behind it
    /// go first, and the cluster is the stream's; otherwise (`touch`) only
    /// a read this thread can start itself is planned. The pages planned:
    /// 0, having changed nothing, where no run of two pages can be.
    fn plan_run(
        &self,
        monitor: &mut Monitor,
        page: u64,
        window: u64,
        stream: bool,
        guess: bool,
    ) -> u64 {
        let Some(read_ahead) = self.read_ahead.as_ref() else {
            return 0;
        };
        let (from, mut count) = match self.run_at(monitor, page, window) {
            Ok(Some((disk, count))) => (PlannedFrom::Disk(disk), count),
            // A mapped file's pages (see `mapped`).
            Ok(None) if stream => match self.file_run_at(monitor, page, window) {
                Some((file, at, count)) => (PlannedFrom::File(file, at), count),
                None => return 0,
            },
            Ok(None) | Err(_) => return 0,
        };
        // Started by this thread once it lets go of the monitor, where it
        // can (see `inline`); else by the read-ahead thread — for a stream.
        let direct = match &from {
            PlannedFrom::Disk(disk) if self.inline.as_ref().is_some_and(|i| i.usable()) => self
                .channel
                .as_ref()
                .and_then(|c| c.direct_target(disk.drive, disk.page)),
            _ => None,
        };
        if !stream && direct.is_none() {
            return 0;
        }
        // The stream's own pages well behind it go first (free-behind),
        // then the clock's victims: frames for the cluster; with fewer to
        // be had, a shorter one. (A failed eviction leaves the pages for
        // their own faults.)
        if stream {
            self.free_behind(monitor, page, count);
        }
        while (monitor.free_frames.len() as u64) < count {
            if self.evict_batch(monitor, page).is_err() {
                break;
            }
        }
        count = count.min(monitor.free_frames.len() as u64);
        if count < 2 {
            return 0;
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
        monitor.counters.cluster_reads += 1;
        if stream {
            monitor.counters.read_aheads += count;
            monitor.counters.async_read_aheads += 1;
            // The stream's cluster, as a fault's would be (see `streams`):
            // its next fault lies past it.
            self.note_stream(monitor, page, count);
        } else {
            // (As a cluster read under the monitor counts: the pages after
            // the one asked for.)
            monitor.counters.read_aheads += count - 1;
        }
        read_ahead.plan(Planned {
            page,
            from,
            was,
            direct,
            at: std::time::Instant::now(),
            stream,
            guess,
        });
        count
    }

    /// Monitor held on entry and exit.
    ///
    /// A fault found `page` latched: if it lies in a sequential interval
    /// and is being read ahead, plan the clusters after the runs in flight
    /// (the scan has caught up with the drive), up to the stream's most
    /// (`stream_reads_max`).
    ///
    /// Why more than one: planning only the cluster right after the one
    /// met kept two reads in flight while the scan waited and one while it
    /// used its cluster — 1.2 MiB in flight on average and the device idle
    /// a quarter of a 4× scan (a block trace), whatever the most allowed
    /// (which is why three or four reads in flight "changed nothing" in
    /// earlier sessions: they were never in flight).
    ///
    /// Whether `page` lies in a sequential interval (a stream's).
    pub(crate) fn plan_past_in_flight(&self, monitor: &mut Monitor, page: u64) -> bool {
        if self.read_ahead.is_none() {
            return false;
        }
        let Some((start, allocation)) = monitor.allocation_of(page) else {
            return false;
        };
        if allocation.advice != Advice::Sequential {
            return false;
        }
        // Only inside this interval: the run in flight may end at its end,
        // and the next interval is not this stream's.
        let interval_end = start + allocation.count;
        let states = self.states();
        let max = Self::run_max(monitor);
        // The runs in flight are consecutive clusters of at most `max`
        // pages: look no further than the most of them past `page`, nor
        // further than free-behind keeps behind a read (`kept_behind`: at
        // small budgets, half of real memory is less than four windows), so
        // that no read planned here frees `page` or any page after it.
        let reach = page
            .saturating_add((PLANNED_MAX as u64 * max).min(self.kept_behind(monitor)))
            .min(interval_end);
        // (Pages coming in only: not a guard's latch.)
        let mut end = page;
        loop {
            while end < reach && states.load(end).coming_in() {
                end += 1;
            }
            if end >= reach
                || states.load(end).tag() != TAG_ABSENT
                || !self.plan_read_ahead(monitor, end)
            {
                break;
            }
        }
        true
    }

    /// The read-ahead thread's loop: take the oldest planned read, do it,
    /// finish it; until stopped with nothing left. Monitor not held on
    /// entry or exit.
    ///
    /// A run read into the frame pool is finished — moved to its pages,
    /// its latches released, its waiters woken — by a second thread, the
    /// finisher, while this one starts the next read: the drive does not
    /// wait for that work (60-90 µs a 1 MiB cluster, measured; the read
    /// itself 490-530 µs). Everything handed over is finished before this
    /// returns.
    pub(crate) fn run_read_ahead(&self) {
        let read_ahead = self.read_ahead.as_ref().expect("the thread has a queue");
        std::thread::scope(|scope| {
            // (No more runs wait for the finisher than reads can be in
            // flight: `pending` counts them until they are done.)
            let (to_finisher, finishing) = std::sync::mpsc::sync_channel::<(Planned, PooledRun<'_>)>(
                PLANNED_MAX + TOUCH_PLANNED_MAX,
            );
            let finisher = std::thread::Builder::new()
                .name("read-ahead-finish".into())
                .spawn_scoped(scope, move || {
                    for (planned, run) in finishing {
                        self.finish_pooled(&planned, run);
                    }
                });
            // Without a finisher (the system would not give a thread),
            // this thread finishes its runs itself.
            let to_finisher = finisher.is_ok().then_some(to_finisher);
            let read = |planned: Planned| {
                // Into the pool (the finisher, or this thread without one,
                // moves it), or straight in.
                let outcome = self.read_planned(&planned);
                match (outcome, &to_finisher) {
                    (Ok(Some(run)), Some(to)) => {
                        if let Err(std::sync::mpsc::SendError((planned, run))) =
                            to.send((planned, run))
                        {
                            // (The finisher's loop does not unwind; should
                            // it be gone, the run is finished here.)
                            self.finish_pooled(&planned, run);
                        }
                    }
                    (Ok(Some(run)), None) => self.finish_pooled(&planned, run),
                    (outcome, _) => self.finish_read(&planned, outcome.is_ok()),
                }
            };
            let clean = |clean: PlannedClean| {
                // A drive that panics fails the writes like an error
                // would: the pages stay dirty (`clean` unlatches them).
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| self.write_behind(clean)));
                read_ahead.cleaned();
            };
            if self.inline.is_some() {
                // Faulting threads start and finish their reads themselves
                // (see `inline`): this thread cleans, and every tick
                // finishes what they left (a read nobody waits for) and
                // starts what they planned and did not start.
                let mut reaped = std::time::Instant::now();
                loop {
                    let ring_empty = || self.inline.as_ref().is_none_or(|i| i.is_empty());
                    let work = read_ahead.next_inline(super::inline_reads::TICK, ring_empty);
                    let idle = work.is_none();
                    match work {
                        Some(Work::Read(planned)) => read(planned),
                        Some(Work::Clean(work)) => clean(work),
                        None => {}
                    }
                    // A tick at most apart, whatever else there is to do.
                    let stopping = read_ahead.stopping();
                    if idle || stopping || reaped.elapsed() >= super::inline_reads::TICK {
                        self.reap_inline(None, stopping);
                        reaped = std::time::Instant::now();
                    }
                    if idle && stopping && !read_ahead.has_planned() {
                        break;
                    }
                }
            } else {
                while let Some(work) = read_ahead.next() {
                    match work {
                        Work::Read(planned) => read(planned),
                        Work::Clean(work) => clean(work),
                    }
                }
            }
            // The finisher drains what it was handed, then ends.
            drop(to_finisher);
        });
    }

    /// Does a planned read here, synchronously: into a run of the frame
    /// pool (handed back, to be moved in), or straight into the pages
    /// (`None`); `Err` if it failed — a drive that panics fails it like an
    /// error would. Monitor not held.
    pub(super) fn read_planned(&self, planned: &Planned) -> Result<Option<PooledRun<'_>>, ()> {
        let count = planned.was.len() as u64;
        let channel = self.channel.as_ref().expect("read-ahead implies a volume");
        let read = |bytes: &mut [u8]| match &planned.from {
            PlannedFrom::Disk(disk) => channel
                .read(disk.drive, disk.page, bytes, None)
                .map_err(|_| ()),
            PlannedFrom::File(file, at) => file.read_pages(*at, bytes).map_err(|_| ()),
        };
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the planned read owns the exclusive latches of these
            // absent pages (taken in `plan_read_ahead`, released only in
            // `finish`).
            let done = unsafe {
                match self
                    .region
                    .read_into_pool(planned.page, count, RunUse::Read, read)
                {
                    Ok(read) => return read.map(Some),
                    // No pool run: the rest of `fill`.
                    Err(read) => self.region.fill_unpooled(planned.page, count, read),
                }
            };
            done.map(|()| None).map_err(|_| ())
        }))
        .unwrap_or(Err(()))
    }

    /// Moves a run read into the frame pool to its pages and finishes its
    /// read; a move that panics undoes the read instead (the pages absent
    /// again, their waiters woken), as a failed read is undone.
    pub(super) fn finish_pooled(&self, planned: &Planned, run: PooledRun<'_>) {
        let moved = std::panic::catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the planned read still owns the exclusive latches of
            // these absent pages (released in `finish`, after the move).
            unsafe { self.region.move_in_run(run, true) }
        }));
        self.finish_read(planned, moved.is_ok());
    }

    /// Finishes a planned read (`read`: its pages hold what was read) and
    /// tells the queue it is over — whatever `finish` does, so that a
    /// panic there does not leave `free` waiting forever; such a panic
    /// poisons the VM (its structures may be half-changed, as after a
    /// panic under the monitor).
    pub(super) fn finish_read(&self, planned: &Planned, read: bool) {
        let finished = std::panic::catch_unwind(AssertUnwindSafe(|| self.finish(planned, read)));
        let read_ahead = self.read_ahead.as_ref().expect("the thread has a queue");
        read_ahead.done(planned.page, planned.was.len() as u64);
        if finished.is_err() {
            self.poisoned.store(true, Ordering::Release);
        }
    }

    /// Monitor held on entry and exit.
    ///
    /// Write-behind: plans the cleaning of the dirty pages the clock will
    /// reach in its next three batches — the frames after the last
    /// cleaning's, up to `hand + 3·batch`, a batch at least — for the
    /// read-ahead thread, so that when the
    /// clock gets there its victims are clean and a fault that needs
    /// frames does not wait for their write-back (the kernel's flusher
    /// threads, by other means). Only anonymous pages of a volume, in
    /// copying mode, in a space that is not persistent (its map records
    /// which pages are on disk, and its journal images them, under the
    /// monitor) and has no virtual copies (whose hook runs under the
    /// monitor before a slot is overwritten): those keep their write-back
    /// at eviction. One cleaning at a time. A `make_changed` of a page
    /// while it is being written is undone when the write ends (the page
    /// is what its disk copy is).
    pub(crate) fn plan_clean_ahead(&self, monitor: &mut Monitor) {
        let Some(read_ahead) = self.read_ahead.as_ref() else {
            return;
        };
        if self.region.is_transparent()
            || monitor.map.is_some()
            || !monitor.links.is_empty()
            || read_ahead.cleaning()
        {
            return;
        }
        let Some(volume) = monitor.volume.as_ref() else {
            return;
        };
        let budget = monitor.frames.len();
        let batch = Self::eviction_batch(monitor) as usize;
        if budget < 6 * batch {
            return;
        }
        // From where the last cleaning ended (unless the hand has passed
        // it) to three batches ahead of the hand, a batch at least.
        let ahead = (monitor.clean_cursor + budget - monitor.hand) % budget;
        let from = if ahead < 3 * batch { ahead } else { 0 };
        let to = 3 * batch;
        if to - from < batch {
            return;
        }
        monitor.clean_cursor = (monitor.hand + to) % budget;
        let states = self.states();
        let mut pages: Vec<u64> = (from..to)
            .filter_map(|k| monitor.frames[(monitor.hand + k) % budget])
            .filter(|&page| {
                let word = states.load(page);
                word.tag() == TAG_RESIDENT
                    && word.has(DIRTY)
                    && !monitor.pins.contains_key(&page)
                    && matches!(monitor.files.source_of(page), Source::Anonymous)
            })
            .collect();
        pages.sort_unstable();
        let mut runs = Vec::new();
        let mut at = 0;
        while at < pages.len() {
            let first = pages[at];
            at += 1;
            let Ok(disk) = volume.translate(runtable::PageNumber(first)) else {
                continue;
            };
            if states.try_share_unreferenced(first).is_err() {
                continue;
            }
            let mut count = 1u64;
            while let Some(&next) = pages.get(at) {
                let consecutive = next == first + count
                    && volume
                        .translate(runtable::PageNumber(next))
                        .is_ok_and(|d| d.drive == disk.drive && d.page.0 == disk.page.0 + count);
                if !consecutive || states.try_share_unreferenced(next).is_err() {
                    break;
                }
                count += 1;
                at += 1;
            }
            runs.push((disk, first, count));
        }
        if runs.is_empty() {
            return;
        }
        let clean = PlannedClean { runs };
        // Latched pages the clock cannot take: a fault that finds only
        // those lets go of the monitor and retries (`force_victim`).
        self.in_transit.fetch_add(clean.pages(), Ordering::AcqRel);
        read_ahead.plan_clean(clean);
    }

    /// Writes a planned cleaning's runs, without the monitor: each page
    /// written is marked clean and on disk; a run whose write fails stays
    /// dirty (its eviction writes it, and remaps a bad spot). Every page's
    /// shared latch is dropped.
    fn write_behind(&self, clean: PlannedClean) {
        let channel = self.channel.as_ref().expect("a cleaning implies a volume");
        // However this ends (a drive that panics included), the latches go.
        struct Unlatch<'a> {
            space: &'a AddressSpace,
            runs: &'a [(runtable::DiskAddr, u64, u64)],
            written: Vec<bool>,
        }
        impl Drop for Unlatch<'_> {
            fn drop(&mut self) {
                let states = self.space.states();
                for (k, &(_, first, count)) in self.runs.iter().enumerate() {
                    for page in first..first + count {
                        if self.written.get(k).copied().unwrap_or(false) {
                            // The shared latch kept writers out since the
                            // write began: the disk copy is the page.
                            states.clear_flags(page, DIRTY);
                            states.set_flags(page, ON_DISK);
                        }
                        states.unshare(page);
                    }
                }
                let pages: u64 = self.runs.iter().map(|&(_, _, n)| n).sum();
                self.space.in_transit.fetch_sub(pages, Ordering::AcqRel);
            }
        }
        let mut unlatch = Unlatch {
            space: self,
            runs: &clean.runs,
            written: Vec::with_capacity(clean.runs.len()),
        };
        for &(disk, first, count) in &clean.runs {
            // SAFETY: the cleaning holds a shared latch on every page of
            // the run (taken in `plan_clean_ahead`, dropped by `unlatch`),
            // so no one writes or releases them while the slice lives.
            let data = unsafe { self.region.pages(first, count) };
            let written = channel.write(disk.drive, disk.page, data, None).is_ok();
            unlatch.written.push(written);
            if written {
                self.read_ahead
                    .as_ref()
                    .expect("the thread has a queue")
                    .cleaned
                    .fetch_add(count, Ordering::Relaxed);
            }
        }
        drop(unlatch);
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
                let (set, clear) = if planned.guess {
                    (0, REFERENCED)
                } else {
                    (REFERENCED, 0)
                };
                latch.release(TAG_RESIDENT, set, clear | DIRTY | stale);
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
        // (Taken back as `plan_run` counted them; for `touch`, the fault
        // `bring_in_from` counted with the plan too: the page is read
        // again, and counted then.)
        monitor.counters.faults -= u64::from(!planned.stream);
        monitor.counters.read_aheads -= if planned.stream { count } else { count - 1 };
        monitor.counters.cluster_reads -= 1;
        monitor.counters.async_read_aheads -= u64::from(planned.stream);
        monitor.counters.free_read_arounds -= u64::from(planned.guess);
        for latch in latches {
            monitor.remove_frame(latch.page());
            // Absent again, as it was.
            drop(latch);
        }
        self.in_transit.fetch_sub(count, Ordering::AcqRel);
    }
}
