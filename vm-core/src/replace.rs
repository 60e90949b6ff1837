//! Replacement: the clock over the frames of the real-memory budget,
//! counting each page's uses up to two (GCLOCK: a page used once since the
//! hand last passed has a second chance, one used twice a third), choosing
//! victims in batches, writing dirty pages
//! back in disk order (each transfer hinting at the next), and releasing
//! victims' memory in one batch; and the write-back that `clean` and
//! `flush` use. Every function here runs with the monitor held.

use crate::error::VmError;
use crate::monitor::Monitor;
use crate::space::AddressSpace;
use crate::state::{
    AGAIN, DIRTY, ExclusiveLatch, ON_DISK, REFERENCED, SharedLatch, TAG_ABSENT, TAG_LOCKED,
    TAG_RESIDENT, backoff,
};
use crate::vocabulary::Advice;
use runtable::PageNumber;

/// Most victims one eviction batch takes (a sixteenth of real memory up to
/// this): 256 pages, so that the dirty victims of a sequential fill go out
/// as 1 MiB transfers. Raised from 64 (256 KiB transfers): filling 512 MiB
/// through 128 MiB went from 0.72–0.79 s to 0.63–0.65 s, and the demo from
/// 4.8–5.4 s to 4.4–4.6 s (`bench out-of-core --scale 4 --workloads fill`,
/// same session).
const EVICTION_BATCH_MAX: u64 = 256;
/// Most pages `clean` and `flush` write in one transfer (1 MiB of 4 KiB
/// pages).
const WRITE_BACK_RUN_MAX: usize = 256;
/// Rounds of waiting for a latched page when the clock must force a
/// victim.
const FORCE_SPINS_MAX: u32 = 10_000;

impl AddressSpace {
    /// Monitor held on entry and exit.
    ///
    /// Frees a batch of frames with the clock for the fault on `incoming`;
    /// dirty victims are written back first (with seek-ahead toward
    /// `incoming`).
    pub(crate) fn evict_batch(&self, monitor: &mut Monitor, incoming: u64) -> Result<(), VmError> {
        // A batch whose every write-back failed frees nothing; the clock then
        // moves on past those pages (they stay resident and dirty) and tries
        // other victims — at most once round the clock.
        let mut failed_pages = Vec::new();
        let mut last_failure = None;
        loop {
            let victims = self.select_victims_except(monitor, incoming, &failed_pages)?;
            if victims.is_empty() {
                // Only pages whose write-back failed are left to take.
                return Err(last_failure.expect("no victims only after failures"));
            }
            match self.write_back_and_release(monitor, victims, Some(incoming), incoming) {
                Err(
                    e @ (VmError::WriteBackFailed { failed, .. }
                    | VmError::FileWriteBackFailed { failed, .. }),
                ) if (failed_pages.len() as u64) < monitor.budget() => {
                    failed_pages.push(failed.0);
                    last_failure = Some(e);
                }
                other => return other,
            }
        }
    }

    /// Monitor held on entry and exit.
    ///
    /// Free-behind: a sequential stream about to read `count` pages at
    /// `page`, in an interval advised `Sequential` that is larger than real
    /// memory (one pass cannot keep it), first evicts as many of the
    /// interval's clean pages that lie well behind it — further behind
    /// `page` than it keeps (see `keep` below), oldest first,
    /// referenced or not, as `MADV_SEQUENTIAL` allows ("pages … may be freed soon after they
    /// are accessed"). Their memory goes into the frame pool, and the read
    /// takes it from there: a scan larger than memory then recycles the
    /// memory it has, where it used to commit (and the kernel to zero) a
    /// whole budget of fresh memory before the clock reached its first
    /// victim; and the scan does not push the rest of the space out of
    /// memory. Dirty pages are left to the clock (and to the write-behind
    /// that cleans them ahead of it); so are pinned and latched ones.
    /// Nothing here fails: a page that cannot go simply stays. (Two
    /// streams in one interval, far enough apart, free each other's pages:
    /// the pages go, nothing is lost, and they are read again.)
    pub(crate) fn free_behind(&self, monitor: &mut Monitor, page: u64, count: u64) {
        let Some((start, allocation)) = monitor.allocation_of(page) else {
            return;
        };
        let budget = monitor.budget();
        if allocation.advice != Advice::Sequential
            || allocation.count <= budget
            || monitor.volume.is_none()
        {
            return;
        }
        // What the stream keeps behind the page it reads next
        // (`kept_behind`). No more, though a program that reads a chunk in
        // order and then rewrites it in place (an external sort's run)
        // finds the chunk's first pages gone: the rewrite of a whole page
        // reads nothing (`Latch::Overwrite`), so they come back for the cost
        // of a fault, not a transfer. What keeping more costs is fresh
        // memory: every page kept is a frame that one pass needs
        // beyond the frame pool's, and the first pass commits those from
        // the kernel, zeroed, as 2 MiB chunks — 2.6–7 ms each on this
        // project's virtual machine once its host has taken free memory
        // back. Measured at the full size (`bench out-of-core
        // --scale 8 --workloads scan`, a 256 MiB budget, the host idle 20 s
        // before each run, four rounds): with a quarter of real memory kept
        // (the earlier rule) the scan committed 32–35 chunks and its first
        // quarter took 0.32–0.45 s against the kernel's 0.16–0.21; with
        // this, 1–4 chunks and 0.19–0.25 s. The bench's sort, whose runs
        // are a quarter of the budget, took 4.1–4.4 s against 3.7–4.0 (its
        // rewrites now fault the freed pages back in, without reads); the
        // demo 3.1–3.3 s against 3.2–3.8.
        let keep = self.kept_behind(monitor);
        let Some(end) = page.checked_sub(keep).filter(|&end| end > start) else {
            return;
        };
        let states = self.states();
        // The stream's pages behind `end`, back to the first absent one
        // (free-behind keeps that run short; looked at no further than a
        // few reads' worth).
        let mut low = end;
        while low > start && end - low < 4 * count && states.load(low - 1).tag() == TAG_RESIDENT {
            low -= 1;
        }
        let mut victims = Vec::with_capacity(count as usize);
        for p in low..end {
            if victims.len() as u64 == count {
                break;
            }
            let word = states.load(p);
            // (A wired page is resident with no frame: never a victim.)
            if word.tag() != TAG_RESIDENT
                || word.has(DIRTY)
                || monitor.pins.contains_key(&p)
                || !monitor.frame_of.contains_key(&p)
            {
                continue;
            }
            if let Ok(latch) = states.try_latch_resident(p) {
                // (Made dirty between the load and the latch: the clock's.)
                if latch.has_now(DIRTY) {
                    continue;
                }
                // A page a mapped file's read-around brought in: used or
                // not, as the clock tells it.
                monitor.files.swept(p, word.has(REFERENCED));
                victims.push(latch);
            }
        }
        let freed = victims.len() as u64;
        if freed > 0
            && self
                .write_back_and_release(monitor, victims, None, page)
                .is_ok()
        {
            monitor.counters.freed_behind += freed;
        }
    }

    /// Monitor held on entry and exit.
    ///
    /// What a sequential stream keeps behind the page it reads next (see
    /// `free_behind`): the read-ahead windows it keeps in flight and two
    /// more, at most half of real memory. Reads are never planned further
    /// past the page a reader waits on than this (`plan_past_in_flight`),
    /// so free-behind never takes a page at or after it.
    pub(crate) fn kept_behind(&self, monitor: &Monitor) -> u64 {
        let window = Self::run_max(monitor);
        ((self.stream_reads_max(window) as u64 + 2) * window).min(monitor.budget() / 2)
    }

    /// Monitor held on entry and exit.
    ///
    /// Chooses up to a batch of victims with the clock (a chance for each
    /// use since the hand last passed, up to two; pinned and latched pages
    /// are passed over) and takes their exclusive latches, held by the
    /// returned guards (dropping one puts the page back as it was). Three
    /// sweeps of the clock normally find victims; when they
    /// do not — hits set the referenced bits again as fast as the clock
    /// clears them, or readers hold latches for a moment — the clock takes
    /// any unpinned page it can latch, waiting a bounded time for latches.
    /// [`VmError::AllPinned`] only when every resident page is pinned;
    /// [`VmError::FramesBusy`] when the unpinned ones stay latched (by
    /// guards that outlive the wait).
    pub(crate) fn select_victims<'a>(
        &'a self,
        monitor: &mut Monitor,
        incoming: u64,
    ) -> Result<Vec<ExclusiveLatch<'a>>, VmError> {
        self.select_victims_except(monitor, incoming, &[])
    }

    /// Monitor held on entry and exit.
    ///
    /// [`AddressSpace::select_victims`], passing over the pages in
    /// `except` (whose write-back just failed).
    fn select_victims_except<'a>(
        &'a self,
        monitor: &mut Monitor,
        incoming: u64,
        except: &[u64],
    ) -> Result<Vec<ExclusiveLatch<'a>>, VmError> {
        let states = self.states();
        let budget = monitor.budget();
        if monitor.volume.is_none() {
            return Err(VmError::CantAllocateReal {
                pages: 1,
                allocated: monitor.allocated_pages,
                budget,
            });
        }
        let want = Self::eviction_batch(monitor);
        let mut victims: Vec<ExclusiveLatch<'a>> = Vec::with_capacity(want as usize);
        let mut scanned = 0u64;
        // Three sweeps at most: a page used twice takes two to lose its
        // marks, and is taken in the third.
        //
        // Why two uses, not one (Cedar's and the seed's second chance):
        // under a skewed load a page used often and one used once since the
        // hand last passed looked alike, and went alike. Simulated (the
        // bench's Zipf(0.99) reads, 256-page batches, read-around into free
        // memory): 3.2% fewer misses at the default size, 3.8% at full size
        // with the 2,000,000 reads (counting to three: 4.9%).
        // Measured, `bench out-of-core --scale 8 --reads 250000 --workloads
        // zipf`: the VM's reads 317,914–318,268 against 330,658–330,724 with
        // one bit; the advised kernel's time 0.86× (0.80–0.98, twelve
        // rounds in three sets) against 0.90× (eight rounds)
        // (bench/results/gclock-2026-11-28-c.txt). Its costs: the bit is set
        // in the hit's own atomic update (no extra write); a sweep may pass
        // a page once more; and a page read in many small pieces counts two
        // uses, so a merge's consumed pages under `Normal` advice keep
        // their frames a sweep longer (the bench's sort 0.37× the advised
        // kernel against 0.36×).
        while (victims.len() as u64) < want && scanned < 3 * budget + 1 {
            let frame = monitor.hand;
            monitor.hand = (monitor.hand + 1) % budget as usize;
            scanned += 1;
            let Some(page) = monitor.frames[frame] else {
                continue;
            };
            if monitor.pins.contains_key(&page) || except.contains(&page) {
                continue;
            }
            let word = states.load(page);
            if word.tag() != TAG_RESIDENT {
                continue;
            }
            // A page a mapped file's read-around brought in: was it used?
            monitor.files.swept(page, word.has(REFERENCED));
            // Used twice since the hand last passed (`AGAIN`): a chance
            // more (the clock counts uses up to two).
            if word.has(AGAIN) {
                states.clear_flags(page, AGAIN);
                continue;
            }
            if word.has(REFERENCED) {
                states.clear_flags(page, REFERENCED);
                continue;
            }
            if let Ok(latch) = states.try_latch_resident(page) {
                victims.push(latch);
            }
        }
        if victims.is_empty() {
            victims = self.force_victim(monitor, incoming, except)?;
        }
        // The batch after this one, written behind while it is used.
        self.plan_clean_ahead(monitor);
        Ok(victims)
    }

    /// Monitor held on entry and exit.
    ///
    /// The victims one eviction takes at most: a sixteenth of the budget,
    /// at most `EVICTION_BATCH_MAX`, and a persistent space's batch fits
    /// its journal (see `journal`).
    pub(crate) fn eviction_batch(monitor: &Monitor) -> u64 {
        let journal_max = monitor.journal.as_ref().map_or(u64::MAX, |j| j.max_batch());
        (monitor.budget() / 16).clamp(1, EVICTION_BATCH_MAX.min(journal_max))
    }

    /// Monitor held on entry and exit.
    ///
    /// The clock found no victim in three sweeps: take the first unpinned
    /// resident page that can be latched, referenced or not, retrying a
    /// bounded number of times for pages latched for a moment.
    ///
    /// Pages latched by transfers in flight without the monitor (faults
    /// served in the default scope, planned read-ahead) are not waited for
    /// here: their holders may need the monitor to finish, and their
    /// transfers take a disk read, not a moment. If nothing else can be
    /// taken, the clock gives up at once with `FramesBusy` and sets
    /// `Monitor::gave_up_on_transit`, and the fault lets go of the monitor
    /// and retries.
    fn force_victim<'a>(
        &'a self,
        monitor: &mut Monitor,
        incoming: u64,
        except: &[u64],
    ) -> Result<Vec<ExclusiveLatch<'a>>, VmError> {
        let states = self.states();
        let mut spins = 0;
        loop {
            let mut unpinned = 0u64;
            let mut write_failed = 0u64;
            for page in monitor.frames.iter().flatten().copied() {
                if monitor.pins.contains_key(&page) {
                    continue;
                }
                if except.contains(&page) {
                    write_failed += 1;
                    continue;
                }
                unpinned += 1;
                if let Ok(latch) = states.try_latch_resident(page) {
                    return Ok(vec![latch]);
                }
            }
            if unpinned == 0 && write_failed > 0 {
                // Every unpinned page is one whose write-back just failed:
                // the caller reports that failure.
                return Ok(Vec::new());
            }
            if unpinned == 0 {
                return Err(VmError::AllPinned {
                    page: PageNumber(incoming),
                    budget: monitor.budget(),
                });
            }
            if self.in_transit.load(std::sync::atomic::Ordering::Acquire) > 0 {
                monitor.gave_up_on_transit = true;
                return Err(VmError::FramesBusy {
                    page: PageNumber(incoming),
                    latched: unpinned,
                });
            }
            if spins >= FORCE_SPINS_MAX {
                return Err(VmError::FramesBusy {
                    page: PageNumber(incoming),
                    latched: unpinned,
                });
            }
            backoff(&mut spins);
        }
    }

    /// Monitor held on entry and exit.
    ///
    /// The disk address of the first dirty victim in disk order (where the
    /// write-backs will start).
    pub(crate) fn first_write_back(
        &self,
        monitor: &Monitor,
        victims: &[ExclusiveLatch<'_>],
    ) -> Option<runtable::DiskAddr> {
        let volume = monitor.volume.as_ref()?;
        victims
            .iter()
            .filter(|v| v.has_now(DIRTY))
            .filter_map(|v| volume.translate(PageNumber(v.page())).ok())
            .min()
    }

    /// Monitor held on entry and exit.
    ///
    /// Writes back the dirty `victims` in disk order — each transfer
    /// hinting at the next, the last at `toward` if that page will be read
    /// — then releases all of them in one batch.
    ///
    /// A victim whose write fails is moved to a spare disk page (the run
    /// table is remapped, as Cedar does) and written once more; if that
    /// fails too, it stays resident and dirty (its latch guard puts it
    /// back) and the other victims go on. The call fails only when no
    /// victim could be released; the error names `touched`, the page whose
    /// fault needed the frame, and the page whose write failed.
    pub(crate) fn write_back_and_release(
        &self,
        monitor: &mut Monitor,
        victims: Vec<ExclusiveLatch<'_>>,
        toward: Option<u64>,
        touched: u64,
    ) -> Result<(), VmError> {
        let states = self.states();
        let volume = monitor.volume.as_ref().expect("victims imply a volume");
        // Each victim with its disk address if it is dirty: clean ones first,
        // then the dirty ones in disk order. A dirty page the run table
        // cannot place (a broken volume) stays resident (its guard drops).
        let mut failure: Option<VmError> = None;
        let mut batch: Vec<(Option<runtable::DiskAddr>, ExclusiveLatch<'_>)> =
            Vec::with_capacity(victims.len());
        // Dirty victims of shared file mappings go to their files.
        let mut to_files = Vec::new();
        for victim in victims {
            if !victim.has_now(DIRTY) {
                // A clean page the swap cache keeps a copy of goes to its
                // slot in the volume (see `mapped`).
                let cache = !victim.has_now(ON_DISK) && monitor.files.caches(victim.page());
                let disk = cache
                    .then(|| volume.translate(PageNumber(victim.page())).ok())
                    .flatten();
                batch.push((disk, victim));
                continue;
            }
            if let Some(target) = monitor.files.shared_target(victim.page()) {
                to_files.push((target, victim));
                continue;
            }
            match volume.translate(PageNumber(victim.page())) {
                Ok(disk) => batch.push((Some(disk), victim)),
                Err(e) => failure = Some(e.into()),
            }
        }
        if batch.iter().any(|(disk, _)| disk.is_some()) {
            batch.sort_unstable_by_key(|(disk, _)| *disk);
        }
        // Transparent mode: no plain store may land in a dirty victim
        // between its write and its release (it would be lost), so they
        // are protected before they are read out; a store now faults and
        // waits for the victim's latch. A victim that stays (its write
        // failed) stays protected and dirty: its next store faults again.
        self.protect_for_write_back(
            batch
                .iter()
                .filter(|(disk, _)| disk.is_some())
                .map(|(_, v)| v.page()),
        )?;
        let incoming_read = toward
            .filter(|&p| p < self.virtual_pages && states.load(p).has(ON_DISK))
            .and_then(|p| volume.translate(PageNumber(p)).ok());
        if !to_files.is_empty() {
            self.protect_for_write_back(to_files.iter().map(|(_, v)| v.page()))?;
            to_files.sort_unstable_by_key(|(_, v)| v.page());
            // Runs of consecutive pages of one mapping, one `pwrite` each.
            let mut written = vec![false; to_files.len()];
            let mut i = 0;
            while i < to_files.len() {
                let first = to_files[i].1.page();
                let mut n = 1;
                while i + n < to_files.len()
                    && to_files[i + n].1.page() == first + n as u64
                    && monitor.files.continues(first + n as u64 - 1)
                {
                    n += 1;
                }
                let (file, at) = to_files[i].0.clone();
                // Copies still reading these file pages get theirs first.
                let materialized = (0..n as u64)
                    .try_for_each(|k| self.materialize_file_page(monitor, &file, at + k));
                // SAFETY: the victims of the run are latched exclusively
                // (their guards are in `to_files`) and protected against
                // plain stores just above.
                let bytes = unsafe { self.region.pages(first, n as u64) };
                match materialized.and_then(|()| file.write_pages(at, bytes)) {
                    Ok(()) => written[i..i + n].fill(true),
                    Err(e) => {
                        monitor.counters.write_back_failures += n as u64;
                        failure = Some(VmError::FileWriteBackFailed {
                            touched: PageNumber(touched),
                            failed: PageNumber(first),
                            source: Box::new(e),
                        });
                    }
                }
                i += n;
            }
            for (((_, _), victim), written) in to_files.into_iter().zip(written) {
                if written {
                    // Clean now: released with no copy in the volume (its
                    // next fault reads the file; a swap cache's copy of it
                    // is stale).
                    states.clear_flags(victim.page(), ON_DISK);
                    batch.push((None, victim));
                }
                // Else its guard drops: resident and dirty again.
            }
        }
        // SAFETY: every victim is latched exclusively (its guard is in
        // `batch`), and protected against plain stores above.
        unsafe {
            self.before_slot_writes(
                monitor,
                batch
                    .iter()
                    .filter(|(disk, _)| disk.is_some())
                    .map(|(_, v)| v.page()),
            )?;
        }
        // Outside the seed's scope, the dirty victims' runs go to each
        // drive as one batch, in flight together (scattered victims of a
        // random-write workload are many small transfers); the loop below
        // then only retries what failed, page by page, with remapping. The
        // seed's scope writes them one after another, each hinting at the
        // next (the seek-ahead experiments measure that).
        let mut written = if self.monitor_scope == crate::config::MonitorScope::Decisions {
            self.write_runs_batched(monitor, &batch)
        } else {
            vec![false; batch.len()]
        };
        let mut i = 0;
        let mut page_by_page_until = 0usize;
        while i < batch.len() {
            let Some(disk) = batch[i].0 else {
                i += 1;
                continue;
            };
            if written[i] {
                i += 1;
                continue;
            }
            // Victims on consecutive disk pages that are also consecutive
            // virtual pages (so consecutive in the region) go out as one
            // transfer; a cluster that fails is written page by page, so
            // that a bad spot in it is found and remapped alone.
            let first_page = batch[i].1.page();
            let run = batch[i..]
                .iter()
                .enumerate()
                .take_while(|(k, (d, v))| {
                    let (at, k) = (i + *k, *k as u64);
                    !written[at]
                        && d.is_some_and(|d| d.drive == disk.drive && d.page.0 == disk.page.0 + k)
                        && v.page() == first_page + k
                })
                .count();
            if run >= 2 && i >= page_by_page_until {
                let target = batch.get(i + run).and_then(|(d, _)| *d).or(incoming_read);
                let hint = target
                    .filter(|d| d.drive == disk.drive && self.seek_ahead)
                    .map(|d| d.page);
                let volume = monitor.volume.as_ref().expect("victims imply a volume");
                // SAFETY: the latch guards in `batch[i..i + run]` hold these
                // pages exclusively while `bytes` lives.
                let bytes = unsafe { self.region.pages(first_page, run as u64) };
                if volume
                    .channel()
                    .write(disk.drive, disk.page, bytes, hint)
                    .is_ok()
                {
                    monitor.counters.page_outs += run as u64;
                    monitor.counters.cluster_writes += 1;
                    i += run;
                    continue;
                }
                // The cluster failed: its pages go one by one from here,
                // not as ever shorter clusters again (which wrote about
                // n²/2 pages for a bad page at the end of n — review).
                page_by_page_until = i + run;
            }
            let target = batch.get(i + 1).and_then(|(d, _)| *d).or(incoming_read);
            let hint = target
                .filter(|d| d.drive == disk.drive && self.seek_ahead)
                .map(|d| d.page);
            match self.write_victim(monitor, &batch[i].1, disk, hint) {
                Ok(()) => {
                    monitor.counters.page_outs += 1;
                    i += 1;
                }
                Err(source) => {
                    monitor.counters.write_back_failures += 1;
                    failure = Some(VmError::WriteBackFailed {
                        touched: PageNumber(touched),
                        failed: PageNumber(batch[i].1.page()),
                        disk,
                        source,
                    });
                    // Its guard drops: resident and dirty again.
                    batch.remove(i);
                    written.remove(i);
                    page_by_page_until = page_by_page_until.saturating_sub(1);
                }
            }
        }
        if batch.is_empty() {
            return Err(failure.unwrap_or(VmError::FramesBusy {
                page: PageNumber(touched),
                latched: 0,
            }));
        }
        self.keep_copies(monitor, batch.iter().map(|(_, v)| v));
        self.release_latched(batch.iter().map(|(_, v)| v));
        for (written, victim) in batch {
            let page = victim.page();
            let set = if written.is_some() { ON_DISK } else { 0 };
            victim.release(TAG_ABSENT, set, DIRTY | REFERENCED);
            monitor.remove_frame(page);
            monitor.counters.evictions += 1;
        }
        Ok(())
    }

    /// Monitor held on entry and exit.
    ///
    /// Writes the dirty victims of `batch` (in disk order, each with its
    /// disk address) by runs — consecutive on one drive's disk pages and in
    /// the address space, up to `WRITE_BACK_RUN_MAX` pages — each drive's
    /// runs as one batch of transfers in flight together. Returns, per
    /// entry, whether it was written; what failed is left for the caller's
    /// page-by-page path (which remaps bad spots).
    fn write_runs_batched(
        &self,
        monitor: &mut Monitor,
        batch: &[(Option<runtable::DiskAddr>, ExclusiveLatch<'_>)],
    ) -> Vec<bool> {
        let mut written = vec![false; batch.len()];
        // Runs as (first index, length, disk address).
        let mut runs: Vec<(usize, usize, runtable::DiskAddr)> = Vec::new();
        let mut i = 0;
        while i < batch.len() {
            let Some(disk) = batch[i].0 else {
                i += 1;
                continue;
            };
            let first_page = batch[i].1.page();
            let len = batch[i..]
                .iter()
                .take(WRITE_BACK_RUN_MAX)
                .enumerate()
                .take_while(|(k, (d, v))| {
                    let k = *k as u64;
                    d.is_some_and(|d| d.drive == disk.drive && d.page.0 == disk.page.0 + k)
                        && v.page() == first_page + k
                })
                .count();
            runs.push((i, len, disk));
            i += len;
        }
        if runs.len() < 2 {
            // Nothing to overlap: the caller's loop writes it.
            return written;
        }
        let volume = monitor.volume.as_ref().expect("victims imply a volume");
        let mut drives: Vec<disk_channel::DriveId> = runs.iter().map(|r| r.2.drive).collect();
        drives.sort_unstable();
        drives.dedup();
        let (mut pages_out, mut clusters) = (0u64, 0u64);
        for drive in drives {
            let mine: Vec<&(usize, usize, runtable::DiskAddr)> =
                runs.iter().filter(|r| r.2.drive == drive).collect();
            let mut transfers: Vec<disk_channel::Transfer<'_>> = mine
                .iter()
                .map(|&&(first, len, disk)| disk_channel::Transfer::Write {
                    page: disk.page,
                    // SAFETY: the latch guards in `batch[first..first + len]`
                    // hold these pages exclusively while `data` lives.
                    data: unsafe { self.region.pages(batch[first].1.page(), len as u64) },
                })
                .collect();
            let Ok(results) = volume.channel().transfer_all(drive, &mut transfers) else {
                continue;
            };
            drop(transfers);
            for (&&(first, len, _), result) in mine.iter().zip(results) {
                if result.is_ok() {
                    written[first..first + len].fill(true);
                    pages_out += len as u64;
                    clusters += u64::from(len >= 2);
                }
            }
        }
        monitor.counters.page_outs += pages_out;
        monitor.counters.cluster_writes += clusters;
        written
    }

    /// Gives back the memory of the pages `latches` hold exclusively, in
    /// one batch of runs (`Region::release_runs`; where the kernel refuses,
    /// it zeros them instead, so that a later zero-fill still reads zeros).
    /// Monitor held or not.
    pub(crate) fn release_latched<'l, 'a: 'l>(
        &self,
        latches: impl Iterator<Item = &'l ExclusiveLatch<'a>>,
    ) {
        // Sort the page numbers, not the latches' owners (a batch's entries
        // are eight times larger: sorting them cost about 60 ns per fault).
        let mut pages: Vec<u64> = latches.map(|l| l.page()).collect();
        pages.sort_unstable();
        let mut runs: Vec<(u64, u64)> = Vec::with_capacity(pages.len());
        for &page in &pages {
            match runs.last_mut() {
                Some((start, count)) if *start + *count == page => *count += 1,
                _ => runs.push((page, 1)),
            }
        }
        // SAFETY: every page of `runs` is held by one of `latches`, which
        // the caller keeps alive across the call.
        unsafe { self.region.release_runs(&runs) };
    }

    /// Monitor held on entry and exit.
    ///
    /// Writes one latched victim to `disk`; on failure moves the page to a
    /// spare (remapping the run table) and writes it there once more.
    fn write_victim(
        &self,
        monitor: &mut Monitor,
        victim: &ExclusiveLatch<'_>,
        disk: runtable::DiskAddr,
        hint: Option<disk_channel::DiskPage>,
    ) -> Result<(), disk_channel::DriveError> {
        let volume = monitor.volume.as_mut().expect("victims imply a volume");
        // SAFETY: `victim` holds the exclusive latch on the page.
        let bytes = unsafe { self.region.page(victim.page()) };
        let first = match volume.channel().write(disk.drive, disk.page, bytes, hint) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // Only a bad medium is worth a spare: a transient failure would use
        // the spares up (and leave none for a real bad spot).
        if !first.is_media_error() {
            return Err(first);
        }
        let Ok(spare) = volume.remap_bad_page(disk) else {
            return Err(first);
        };
        monitor.counters.remaps += 1;
        monitor.volume_needs_commit = true;
        volume.channel().write(spare.drive, spare.page, bytes, None)
    }

    /// Monitor held on entry and exit.
    ///
    /// Writes back the resident, changed pages of `[start, end)`; they stay
    /// resident. A no-op without backing.
    pub(crate) fn write_back_range(
        &self,
        monitor: &mut Monitor,
        start: u64,
        end: u64,
    ) -> Result<(), VmError> {
        if monitor.volume.is_none() {
            return Ok(());
        }
        let mut pages: Vec<u64> = if end - start <= monitor.frame_of.len() as u64 {
            (start..end)
                .filter(|p| monitor.frame_of.contains_key(p))
                .collect()
        } else {
            monitor
                .frame_of
                .keys()
                .copied()
                .filter(|p| (start..end).contains(p))
                .collect()
        };
        pages.sort_unstable();
        self.write_back_pages(monitor, &pages)
    }

    /// Monitor held on entry and exit.
    ///
    /// Writes back the dirty pages among the resident `pages` (ascending),
    /// by runs: pages consecutive in the address space and on one drive's
    /// consecutive disk pages go out as one transfer (at most
    /// `WRITE_BACK_RUN_MAX` pages), and the runs of each drive go to it as
    /// one batch, in flight together (`DiskChannel::transfer_all`: the
    /// drive's `io_uring`, or its threads). A run that fails is written
    /// page by page, so the error names the page that failed.
    pub(crate) fn write_back_pages(
        &self,
        monitor: &mut Monitor,
        pages: &[u64],
    ) -> Result<(), VmError> {
        // A cleaning in flight ends first (it needs no monitor): no write
        // of the cleaner's lands after a `clean`, `flush` or `sync`.
        if let Some(read_ahead) = self.read_ahead.as_ref() {
            read_ahead.wait_cleaned();
        }
        if monitor.files.has_shared() {
            // Shared file mappings' pages go to their files (by runs).
            let (to_files, rest): (Vec<u64>, Vec<u64>) = pages
                .iter()
                .partition(|&&p| monitor.files.shared_target(p).is_some());
            self.write_back_file_pages(monitor, &to_files)?;
            if !rest.is_empty() {
                return self.write_back_volume_pages(monitor, &rest);
            }
            return Ok(());
        }
        self.write_back_volume_pages(monitor, pages)
    }

    /// Monitor held on entry and exit.
    ///
    /// `write_back_pages` for pages whose copies are in the volume.
    fn write_back_volume_pages(&self, monitor: &mut Monitor, pages: &[u64]) -> Result<(), VmError> {
        let Some(journal) = monitor.journal.as_ref() else {
            return self.write_back_batch(monitor, pages);
        };
        // A persistent space's batches fit its journal: cut by the pages
        // that will be written (the dirty ones; each batch's images go to
        // the journal with one sync, so a batch should be as full as it
        // can — cut by resident pages, a `sync` of 100 scattered dirty
        // pages in a budget of 16,384 was 16 journal records and syncs).
        let chunk = journal.max_batch().max(1) as usize;
        let states = self.states();
        let dirty: Vec<u64> = pages
            .iter()
            .copied()
            .filter(|&p| states.load(p).has(DIRTY))
            .collect();
        for part in dirty.chunks(chunk) {
            self.write_back_batch(monitor, part)?;
        }
        Ok(())
    }

    /// Monitor held on entry and exit.
    ///
    /// `write_back_pages` for a batch that fits the journal.
    fn write_back_batch(&self, monitor: &mut Monitor, pages: &[u64]) -> Result<(), VmError> {
        let states = self.states();
        let volume = monitor.volume.as_ref().expect("write-back needs a volume");
        // The runs, each under shared latches (writers excluded while it
        // is written); pages that are single or latched by a writer or a
        // guard go page by page.
        let mut runs: Vec<(runtable::DiskAddr, Vec<crate::state::SharedLatch<'_>>)> = Vec::new();
        let mut alone: Vec<u64> = Vec::new();
        let mut at = 0;
        while at < pages.len() {
            let first = pages[at];
            if !states.load(first).has(DIRTY) {
                at += 1;
                continue;
            }
            let Ok(latch) = states.try_share_latch(first) else {
                // Latched by a writer or a guard: the page-by-page path
                // waits a little and reports a guard that stays.
                alone.push(first);
                at += 1;
                continue;
            };
            let disk = volume.translate(PageNumber(first))?;
            let mut run = vec![latch];
            while run.len() < WRITE_BACK_RUN_MAX {
                let k = run.len();
                let Some(&next) = pages.get(at + k) else {
                    break;
                };
                let consecutive = next == first + k as u64
                    && volume
                        .translate(PageNumber(next))
                        .is_ok_and(|d| d.drive == disk.drive && d.page.0 == disk.page.0 + k as u64);
                if !consecutive || !states.load(next).has(DIRTY) {
                    break;
                }
                match states.try_share_latch(next) {
                    Ok(latch) => run.push(latch),
                    Err(_) => break,
                }
            }
            at += run.len();
            // Transparent mode: protected before being read out (a plain
            // store after this waits for the shared latches to go).
            self.protect_for_write_back(run.iter().map(|l| l.page()))?;
            // A page alone is a run of one: scattered dirty pages (random
            // writes, then `sync`) go to the drive together, in flight at
            // once, not one synchronous write after another (which cost a
            // VmFile's sync 9x an `fdatasync` of the same pages).
            runs.push((disk, run));
        }
        // SAFETY: every page of `runs` is latched shared (its latch is in
        // `runs`) and protected against plain stores above.
        unsafe {
            self.before_slot_writes(
                monitor,
                runs.iter()
                    .flat_map(|(_, run)| run.iter().map(|l| l.page())),
            )?;
        }
        let volume = monitor.volume.as_ref().expect("write-back needs a volume");
        // One batch per drive.
        let mut drives: Vec<disk_channel::DriveId> = runs.iter().map(|(d, _)| d.drive).collect();
        drives.sort_unstable();
        drives.dedup();
        for drive in drives {
            let mine: Vec<&(runtable::DiskAddr, Vec<crate::state::SharedLatch<'_>>)> =
                runs.iter().filter(|(d, _)| d.drive == drive).collect();
            let mut batch: Vec<disk_channel::Transfer<'_>> = mine
                .iter()
                .map(|(disk, run)| disk_channel::Transfer::Write {
                    page: disk.page,
                    // SAFETY: `run` holds a shared latch on each of these
                    // pages while the batch (and so `data`) lives.
                    data: unsafe { self.region.pages(run[0].page(), run.len() as u64) },
                })
                .collect();
            // Whether each run was written (a drive the channel does not
            // know, which translate never gives, fails them all).
            let written: Vec<bool> = match volume.channel().transfer_all(drive, &mut batch) {
                Ok(results) => results.iter().map(Result::is_ok).collect(),
                Err(_) => vec![false; mine.len()],
            };
            drop(batch);
            for ((_, run), written) in mine.iter().zip(written) {
                match written {
                    true => {
                        for latch in run.iter() {
                            // Shared latches exclude writers: nothing
                            // changed the pages since they were written.
                            states.clear_flags(latch.page(), DIRTY);
                            states.set_flags(latch.page(), ON_DISK);
                        }
                    }
                    false => alone.extend(run.iter().map(|l| l.page())),
                }
            }
        }
        drop(runs);
        alone.sort_unstable();
        for page in alone {
            self.write_back(monitor, page)?;
        }
        Ok(())
    }

    /// Monitor held on entry and exit.
    ///
    /// Writes the dirty pages among `pages` (ascending, of shared file
    /// mappings) back to their files: runs of consecutive pages of one
    /// mapping under shared latches, one `pwrite` each (at most
    /// `WRITE_BACK_RUN_MAX` pages); a page latched by a writer goes alone.
    /// On an error the run's pages stay dirty.
    fn write_back_file_pages(&self, monitor: &mut Monitor, pages: &[u64]) -> Result<(), VmError> {
        let states = self.states();
        let mut at = 0;
        while at < pages.len() {
            let first = pages[at];
            at += 1;
            if !states.load(first).has(DIRTY) {
                continue;
            }
            let Some((file, file_page)) = monitor.files.shared_target(first) else {
                continue;
            };
            let Ok(latch) = states.try_share_latch(first) else {
                self.write_back_to_file(monitor, first)?;
                continue;
            };
            let mut run = vec![latch];
            while run.len() < WRITE_BACK_RUN_MAX && at < pages.len() {
                let next = pages[at];
                if next != first + run.len() as u64
                    || !monitor.files.continues(next - 1)
                    || !states.load(next).has(DIRTY)
                {
                    break;
                }
                match states.try_share_latch(next) {
                    Ok(latch) => run.push(latch),
                    Err(_) => break,
                }
                at += 1;
            }
            self.protect_for_write_back(run.iter().map(|l| l.page()))?;
            for k in 0..run.len() as u64 {
                self.materialize_file_page(monitor, &file, file_page + k)?;
            }
            // SAFETY: `run` holds a shared latch on each of these pages
            // (writers excluded) while `bytes` lives; they were protected
            // against plain stores just above.
            let bytes = unsafe { self.region.pages(first, run.len() as u64) };
            file.write_pages(file_page, bytes)?;
            for latch in &run {
                // A swap cache's copy of it is stale now.
                states.clear_flags(latch.page(), DIRTY | ON_DISK);
            }
        }
        Ok(())
    }

    /// Monitor held on entry and exit.
    ///
    /// Writes `page`, of a shared file mapping, back to its file if it is
    /// resident and dirty. On an error it stays dirty.
    fn write_back_to_file(&self, monitor: &mut Monitor, page: u64) -> Result<(), VmError> {
        let states = self.states();
        if !states.load(page).has(DIRTY) {
            return Ok(());
        }
        let Some((file, at)) = monitor.files.shared_target(page) else {
            return Ok(());
        };
        let Some(_latch) = self.share_latch_dirty(page)? else {
            return Ok(());
        };
        self.protect_for_write_back(std::iter::once(page))?;
        self.materialize_file_page(monitor, &file, at)?;
        // SAFETY: `_latch` holds `page` shared (writers excluded) while
        // `bytes` lives, and it was protected against plain stores above.
        let bytes = unsafe { self.region.page(page) };
        file.write_pages(at, bytes)?;
        // A swap cache's copy of it is stale now.
        states.clear_flags(page, DIRTY | ON_DISK);
        Ok(())
    }

    /// A shared latch on `page` to write it back, if it is dirty once
    /// latched (`None`: nothing to write). A writer's latch is short; a held
    /// exclusive guard makes the page busy, which is reported rather than
    /// waited for.
    fn share_latch_dirty(&self, page: u64) -> Result<Option<SharedLatch<'_>>, VmError> {
        let states = self.states();
        let mut spins = 0;
        let latch = loop {
            match states.try_share_latch(page) {
                Ok(latch) => break latch,
                Err(word) if word.tag() == TAG_LOCKED && spins < 1000 => backoff(&mut spins),
                Err(_) => {
                    return Err(VmError::PageBusy {
                        page: PageNumber(page),
                    });
                }
            }
        };
        Ok(latch.was().has(DIRTY).then_some(latch))
    }

    /// Monitor held on entry and exit.
    ///
    /// Writes `page` back if it is resident and dirty.
    pub(crate) fn write_back(&self, monitor: &mut Monitor, page: u64) -> Result<(), VmError> {
        let states = self.states();
        if !states.load(page).has(DIRTY) {
            return Ok(());
        }
        let Some(_latch) = self.share_latch_dirty(page)? else {
            return Ok(());
        };
        let disk = monitor
            .volume
            .as_ref()
            .expect("write_back needs a volume")
            .translate(PageNumber(page))?;
        self.protect_for_write_back(std::iter::once(page))?;
        // SAFETY: `_latch` holds `page` shared, and it was protected against
        // plain stores just above.
        unsafe { self.before_slot_writes(monitor, std::iter::once(page))? };
        let volume = monitor.volume.as_ref().expect("write_back needs a volume");
        // SAFETY: `_latch` holds a shared latch on `page` while `bytes` lives.
        let bytes = unsafe { self.region.page(page) };
        match volume.channel().write(disk.drive, disk.page, bytes, None) {
            Ok(()) => {
                // Shared latches exclude writers, so nothing changed the
                // page since it was written.
                states.clear_flags(page, DIRTY);
                states.set_flags(page, ON_DISK);
                Ok(())
            }
            Err(source) => Err(VmError::Io {
                page: PageNumber(page),
                disk,
                source,
            }),
        }
    }
}

impl AddressSpace {
    /// Monitor held on entry and exit.
    ///
    /// Before the slots of `pages` are overwritten (every write-back path
    /// calls this, and only this): virtual copies still reading those slots
    /// are materialized (`vcopy`), and, for a persistent space, an image of
    /// each page the newest map names on disk and that has none in the
    /// journal's chain yet goes to the journal, and the drives are synced
    /// (see `journal`; a checkpoint there images all of them). At most the
    /// journal's `max_batch` pages (the callers cut their batches to it).
    ///
    /// # Safety
    /// The caller holds a latch (shared or exclusive) on every page of
    /// `pages`, and, in transparent mode, has protected them against plain
    /// stores, for the whole call: their bytes hold still.
    pub(crate) unsafe fn before_slot_writes(
        &self,
        monitor: &mut Monitor,
        pages: impl Iterator<Item = u64> + Clone,
    ) -> Result<(), VmError> {
        // Copies still reading these slots get theirs first (`vcopy`).
        self.materialize_slots(monitor, pages.clone())?;
        // SAFETY: the caller's contract is this function's.
        unsafe { self.journal_before_write(monitor, pages) }
    }

    /// Monitor held on entry and exit.
    ///
    /// `before_slot_writes`' part for a persistent space: the journal's
    /// images (a no-op for an anonymous space).
    ///
    /// # Safety
    /// As for `before_slot_writes`.
    unsafe fn journal_before_write(
        &self,
        monitor: &mut Monitor,
        pages: impl Iterator<Item = u64>,
    ) -> Result<(), VmError> {
        let (Some(journal), Some(volume)) = (monitor.journal.as_mut(), monitor.volume.as_mut())
        else {
            return Ok(());
        };
        // Every page of the batch the map names, journaled or not: a
        // checkpoint in `record` drops the chain's images, and then each
        // needs one again.
        let mut named: Vec<u64> = pages.filter(|&p| journal.named(p)).collect();
        if named.is_empty() {
            return Ok(());
        }
        named.sort_unstable();
        named.dedup();
        let images: Vec<(u64, &[u8])> = named
            .iter()
            // SAFETY: the caller's latches hold these pages still for the
            // whole call, which the slices do not outlive.
            .map(|&p| (p, unsafe { self.region.page(p) }))
            .collect();
        journal.record(volume, &images)
    }

    /// Monitor held on entry and exit.
    ///
    /// Copies the bytes of `victims` (latched exclusively by the caller,
    /// about to be given back) onto the reclaim list, if there is one (see
    /// `reclaim`).
    pub(crate) fn keep_copies<'l, 'a: 'l>(
        &self,
        monitor: &mut Monitor,
        victims: impl Iterator<Item = &'l ExclusiveLatch<'a>>,
    ) {
        let (Some(reclaim), Some(slots)) = (monitor.reclaim.as_mut(), self.reclaim_slots.as_ref())
        else {
            return;
        };
        for victim in victims {
            let Some(slot) = reclaim.reserve(victim.page()) else {
                continue;
            };
            // SAFETY: the victim is latched exclusively and protected (clean,
            // or written back), so its bytes hold still; the slot was just
            // reserved under the monitor, which this thread holds, and no
            // fault has taken it.
            unsafe {
                slots
                    .slot_mut(slot)
                    .copy_from_slice(self.region.page(victim.page()))
            };
        }
    }
}
