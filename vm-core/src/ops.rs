//! Cedar's operations on intervals (named after Cedar 6.0's `VM`
//! interface): allocation (`allocate`, `free`), residency (`swap_in`,
//! `touch`, `pin`, `unpin`, `kill`), protection and data state
//! (`make_read_only`, `make_read_write`, `make_changed`, `make_unchanged`,
//! `age`), advice (`advise`), write-back (`clean`, `flush`) and `state`.
//! Each takes the monitor for its whole work.

use crate::error::VmError;
use crate::fault::Served;
use crate::guard::held_by_this_thread;
use crate::monitor::Monitor;
use crate::space::AddressSpace;
use crate::state::{
    DIRTY, ON_DISK, PageStates, READ_ONLY, REFERENCED, TAG_ABSENT, TAG_LOCKED, TAG_RESIDENT, Word,
};
use crate::vocabulary::{Advice, DataState, PageState, VAddr};
use crate::will_need::Pushed;
use runtable::{Interval, PageNumber};

/// What [`AddressSpace::discard`] found.
enum Discard {
    /// The pages are discarded.
    Done,
    /// Nothing changed: this page is being read ahead, read around,
    /// written behind or brought in by a fault, which ends without the
    /// monitor — its word, as seen, with that latch. Wait for the word to
    /// change (not for whatever latch holds the page by then: a guard may
    /// have it, and a guard makes the page busy) and try again.
    Wait(u64, Word),
    /// Nothing changed: this page is latched otherwise — a reader's or a
    /// writer's copy, which ends in a moment, or a guard, which may not.
    Held(u64),
}

/// `kill` and `free` meeting a page held (`Discard::Held`): how many times
/// they wait a little and try again before the page is busy, and how long
/// each wait is at most (`backoff` steps: spins, then yields).
const HELD_TRIES: u32 = 4;
const HELD_BACKOFF: u32 = 256;

impl AddressSpace {
    /// Allocates `count` pages; their contents read as zeros.
    pub fn allocate(&self, count: u64) -> Result<Interval, VmError> {
        if count == 0 {
            return Err(VmError::BadArgument {
                call: "allocate",
                reason: "0 pages: an interval holds at least one".into(),
            });
        }
        let mut monitor = self.lock_monitor();
        self.check_real_memory(&monitor, count)?;
        let start = monitor
            .allocate(count)
            .ok_or(VmError::CantAllocateVirtual { pages: count })?;
        Ok(Interval::new(start, count))
    }

    /// Allocates exactly the `count` pages from `page` — an interval at an
    /// address of the caller's choosing — if every one of them is free;
    /// their contents read as zeros.
    pub fn allocate_at(&self, page: PageNumber, count: u64) -> Result<Interval, VmError> {
        let mut monitor = self.lock_monitor();
        if count == 0 || page.0.saturating_add(count) > self.virtual_pages {
            return Err(VmError::CantAllocateVirtual { pages: count });
        }
        self.check_real_memory(&monitor, count)?;
        if !monitor.allocate_at(page.0, count) {
            return Err(VmError::CantAllocateVirtual { pages: count });
        }
        Ok(Interval::new(page.0, count))
    }

    /// Grows `interval` in place by the `extra` pages after it, if they are
    /// free: the interval keeps its address (and every `VAddr` into it
    /// stays valid); the new pages read as zeros. `interval` must end where
    /// an allocation ends (as one returned by `allocate` or `grow` does).
    pub fn grow(&self, interval: Interval, extra: u64) -> Result<Interval, VmError> {
        let mut monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        self.check_real_memory(&monitor, extra)?;
        let end = interval.end().0;
        if extra == 0
            || end.saturating_add(extra) > self.virtual_pages
            || !monitor.extend(end, extra)
        {
            return Err(VmError::CantAllocateVirtual { pages: extra });
        }
        Ok(Interval::new(interval.page.0, interval.count.0 + extra))
    }

    /// Monitor held on entry and exit. Without backing, allocation is
    /// limited by real memory.
    fn check_real_memory(&self, monitor: &Monitor, count: u64) -> Result<(), VmError> {
        if monitor.volume.is_none() && monitor.allocated_pages + count > monitor.budget() {
            return Err(VmError::CantAllocateReal {
                pages: count,
                allocated: monitor.allocated_pages,
                budget: monitor.budget(),
            });
        }
        Ok(())
    }

    /// Frees `interval` (all of it must be allocated); its contents are
    /// discarded without I/O. Its pages are waited for, or refused, as
    /// [`AddressSpace::kill`] says (a whole wired interval: refused at once
    /// if any page is latched).
    ///
    /// `interval` may be part of what one [`AddressSpace::allocate`] gave
    /// (not of a wired interval, which goes whole): the rest stays
    /// allocated, as the intervals before and after the freed part
    /// ([`AddressSpace::intervals`] lists them), and the interval first
    /// allocated is then no longer allocated as a whole — a later `free`
    /// or advice of all of it fails with [`VmError::NotAllocated`], and an
    /// access to a freed page (through a [`VmArray`](crate::VmArray) or
    /// [`VmFile`](crate::VmFile) over it too) with an address fault.
    pub fn free(&self, interval: Interval) -> Result<(), VmError> {
        self.check_poisoned()?;
        let (start, end) = (interval.page.0, self.end_of(interval)?);
        {
            // A shared file mapping's changes go to its file first; an error
            // keeps every page and the mapping (see `mapped`).
            let mut monitor = self.lock_monitor();
            self.check_allocated(&monitor, interval)?;
            if monitor.files.any_wired(start, end) {
                // All of one wired mapping, or nothing.
                if monitor.files.wired_whole(start, end).is_some() {
                    // Views first, the monitor after (their order
                    // everywhere).
                    drop(monitor);
                    let _views = self.check_views(interval, true)?;
                    let mut monitor = self.lock_monitor();
                    self.check_allocated(&monitor, interval)?;
                    if monitor.files.wired_whole(start, end).is_none() {
                        return Err(VmError::NotAllocated { interval });
                    }
                    let freed = self.free_wired(&mut monitor, interval);
                    if freed.is_ok() {
                        self.withdraw_will_need(interval);
                    }
                    return freed;
                }
                self.check_not_wired(&monitor, interval, "free all of it, alone")?;
            }
            if monitor.files.any_shared(start, end) {
                let mut pages: Vec<u64> = monitor
                    .frame_of
                    .keys()
                    .copied()
                    .filter(|p| (start..end).contains(p))
                    .filter(|&p| monitor.files.shared_target(p).is_some())
                    .collect();
                pages.sort_unstable();
                self.write_back_pages(&mut monitor, &pages)?;
            }
        }
        let mut monitor = self.discarded(interval, |_| Ok(()))?;
        self.withdraw_will_need(interval);
        let states = self.states();
        for page in start..end {
            monitor.pins.remove(&page);
            states.reset_absent(page);
        }
        monitor.deallocate(start, interval.count.0);
        monitor.files.remove(start, end);
        Ok(())
    }

    /// Where `interval` ends, or, where the end is past any page number,
    /// the error an access past the end of the address space gets.
    pub(crate) fn end_of(&self, interval: Interval) -> Result<u64, VmError> {
        interval
            .checked_end()
            .map(|end| end.0)
            .ok_or_else(|| self.past_the_end(interval))
    }

    /// The error for `interval` reaching past the end of the address space
    /// (an embedder's trial: it was "not allocated" for pages that cannot
    /// exist): an access there, at the first page past the end it reaches.
    fn past_the_end(&self, interval: Interval) -> VmError {
        let first_out = interval.page.0.max(self.virtual_pages);
        VmError::OutsideAddressSpace {
            addr: VAddr(first_out.saturating_mul(self.page_size as u64)),
            pages: self.virtual_pages,
            page_size: self.page_size,
        }
    }

    /// Monitor held on entry and exit.
    pub(crate) fn check_allocated(
        &self,
        monitor: &Monitor,
        interval: Interval,
    ) -> Result<(), VmError> {
        if !interval.is_empty() && self.end_of(interval)? > self.virtual_pages {
            return Err(self.past_the_end(interval));
        }
        if interval.is_empty() || !monitor.is_allocated(interval.page.0, interval.count.0) {
            return Err(VmError::NotAllocated { interval });
        }
        Ok(())
    }

    /// Monitor held on entry and exit.
    ///
    /// Drops every page of `interval` from real memory without writing it
    /// back, and forgets its disk copy: its contents become undefined (they
    /// read as zeros). All or nothing: every resident page is latched
    /// first; a page that cannot be changes nothing, and is returned for
    /// the caller to wait for without the monitor ([`Discard`]).
    fn discard(&self, monitor: &mut Monitor, interval: Interval) -> Result<Discard, VmError> {
        let states = self.states();
        let mut resident = Vec::new();
        for page in interval.pages() {
            // Looks again at a latch that ended meanwhile, a few times (a
            // reader that keeps coming back is busy, not ending).
            let mut relooks = 0;
            loop {
                match states.try_latch_resident(page.0) {
                    Ok(latch) => resident.push(latch),
                    Err(word) if word.tag() == TAG_ABSENT => {}
                    // A victim in transit (latched, no longer in a frame):
                    // a fault served without the monitor is giving its
                    // memory back, which needs no monitor — wait for it to
                    // become absent.
                    Err(word)
                        if word.tag() == TAG_LOCKED && !monitor.frame_of.contains_key(&page.0) =>
                    {
                        states.wait_for_change(page.0, word);
                        continue;
                    }
                    // Being read ahead, or read around (a mapped file's
                    // fault): its read ends, or is undone, without the
                    // monitor (which the undoing may need) — wait for it.
                    Err(word)
                        if word.tag() == TAG_LOCKED
                            && self.read_ahead.as_ref().is_some_and(|q| q.covers(page.0)) =>
                    {
                        return Ok(Discard::Wait(page.0, word));
                    }
                    // Being written behind: its shared latch ends without
                    // the monitor too.
                    Err(word)
                        if word.tag() == TAG_RESIDENT
                            && word.shared() > 0
                            && self.read_ahead.as_ref().is_some_and(|q| q.cleans(page.0)) =>
                    {
                        return Ok(Discard::Wait(page.0, word));
                    }
                    // Being brought in by another thread's fault: its
                    // transfer ends (or is undone, which may need the
                    // monitor), or passes to that thread's guard, without
                    // the monitor — wait for it, then look again.
                    Err(word) if word.coming_in() => return Ok(Discard::Wait(page.0, word)),
                    // The latch seen may have ended while the questions
                    // above were asked (a background read finishing: then
                    // it no longer `covers` the page): look again.
                    Err(word) if relooks < 64 && states.load(page.0) != word => {
                        relooks += 1;
                        continue;
                    }
                    Err(_) => return Ok(Discard::Held(page.0)),
                }
                break;
            }
        }
        for page in interval.pages() {
            if states.load(page.0).tag() == TAG_ABSENT {
                states.clear_flags(page.0, ON_DISK | DIRTY);
            }
        }
        monitor.forget_copies(interval.page.0, interval.end().0);
        // A virtual copy's pages still linked: their contents go too.
        monitor
            .links
            .unlink_range(interval.page.0, interval.end().0);
        // Their memory given back by runs, as an eviction's is: one
        // `process_madvise` for up to 64 runs (or a run moved into the
        // frame pool), where one `madvise` a page took 1–2 µs each.
        self.release_latched(resident.iter());
        for latch in resident {
            let page = latch.page();
            latch.release(TAG_ABSENT, 0, ON_DISK | DIRTY | REFERENCED);
            monitor.remove_frame(page);
        }
        Ok(Discard::Done)
    }

    /// Brings every page of `interval` into real memory; with `kill`, their
    /// contents are discarded first (no read: they come in as zeros); with
    /// `pin`, they stay until unpinned. A failure part way unpins the pages
    /// this call pinned (pages it brought in stay: residency is not state a
    /// caller relies on).
    pub fn swap_in(&self, interval: Interval, kill: bool, pin: bool) -> Result<(), VmError> {
        self.check_poisoned()?;
        {
            let monitor = self.lock_monitor();
            self.check_allocated(&monitor, interval)?;
        }
        if kill {
            self.kill(interval)?;
        }
        let mut pinned = 0u64;
        let end = interval.end().0;
        let result = interval.pages().try_for_each(|page| {
            self.swap_in_page(page.0, pin, end - page.0)?;
            pinned += u64::from(pin);
            Ok(())
        });
        if result.is_err() && pinned > 0 {
            let mut monitor = self.lock_monitor();
            for page in interval.page.0..interval.page.0 + pinned {
                unpin_one(&mut monitor, page);
            }
        }
        result
    }

    /// Brings one page in (and pins it, with `pin`), waiting for a latch
    /// someone else holds; a latch of this thread's own guard is an error.
    /// A page absent and on disk comes in with the `ahead - 1` pages after
    /// it (as far as they are consecutive on disk, absent, and fit a cluster
    /// read) in one transfer: the interval's later pages then find
    /// themselves resident. Monitor not held on entry or exit.
    fn swap_in_page(&self, page: u64, pin: bool, ahead: u64) -> Result<(), VmError> {
        // A read planned for this thread is planned once: if it failed, the
        // page is read under the monitor, which reports the error.
        let mut plan = true;
        loop {
            let mut monitor = self.lock_monitor();
            self.check_allocated(&monitor, Interval::new(page, 1))?;
            let served = match self.bring_in_from(&mut monitor, page, ahead, plan, true) {
                // Every frame the clock could take is latched by a transfer
                // in flight: let go of the monitor and try again.
                Err(VmError::FramesBusy { .. }) if monitor.gave_up_on_transit => {
                    drop(monitor);
                    std::thread::yield_now();
                    continue;
                }
                other => other?,
            };
            let Some(served) = served else {
                // Read without the monitor: started and waited for here.
                drop(monitor);
                self.start_planned();
                self.help_inline_read(page);
                plan = false;
                continue;
            };
            match served {
                Served::Resident => {
                    if pin {
                        *monitor.pins.entry(page).or_insert(0) += 1;
                    }
                    // (A cluster it planned: started now, see
                    // `fault::inline`.)
                    drop(monitor);
                    self.start_planned();
                    return Ok(());
                }
                Served::Busy => {
                    drop(monitor);
                    self.start_planned();
                    if self.help_inline_read(page) {
                        continue;
                    }
                    if held_by_this_thread(self.space_key(), page) {
                        return Err(VmError::PageHeldByThisThread {
                            page: PageNumber(page),
                        });
                    }
                    let states = self.states();
                    let seen = states.load(page);
                    if seen.tag() == TAG_LOCKED {
                        states.wait_for_change(page, seen);
                    }
                }
            }
        }
    }

    /// Monitor held on entry and exit.
    ///
    /// One attempt at bringing `page` in, for `swap_in` and the will-need
    /// thread: with the pages after it, up to `ahead` in all, as far as
    /// they are absent, consecutive on disk and fit a cluster, read in one
    /// transfer; then `page` served. With `plan`, where the drive is read
    /// with `O_DIRECT`, that transfer is planned for this thread to start
    /// and wait for without the monitor (`plan_touch_run`): `None` — the
    /// caller lets go of the monitor, calls `start_planned` and
    /// `help_inline_read(page)`. Otherwise it is made here, under the
    /// monitor. A failed cluster read changes nothing: `serve` then reads
    /// the page alone and reports its own error. Without `stream` no page
    /// past `ahead` comes in, whatever the interval's advice (`serve_as`).
    fn bring_in_from(
        &self,
        monitor: &mut Monitor,
        page: u64,
        ahead: u64,
        plan: bool,
        stream: bool,
    ) -> Result<Option<Served>, VmError> {
        let window = ahead.min(Self::run_max(monitor));
        if window > 1 && plan && self.plan_touch_run(monitor, page, window, false) {
            monitor.counters.faults += 1;
            return Ok(None);
        }
        if window > 1 && self.read_run(monitor, page, window)? > 0 {
            monitor.counters.faults += 1;
        }
        monitor.gave_up_on_transit = false;
        self.serve_as(monitor, page, None, false, stream).map(Some)
    }

    /// Brings `interval` into real memory (Cedar's `Touch`).
    pub fn touch(&self, interval: Interval) -> Result<(), VmError> {
        self.swap_in(interval, false, false)
    }

    /// `Advice::WillNeed`: queues `interval` for the will-need thread and
    /// returns (see `will_need`), once it is checked allocated. Past the
    /// queue's limit (three quarters of real memory waiting) it is
    /// dropped, as advice; without the thread it is brought in now.
    fn will_need(&self, interval: Interval) -> Result<(), VmError> {
        let limit = {
            let monitor = self.lock_monitor();
            self.check_allocated(&monitor, interval)?;
            monitor.budget() / 4 * 3
        };
        match self.will_need.as_ref().map(|q| q.push(interval, limit)) {
            Some(Pushed::Queued | Pushed::Full) => Ok(()),
            Some(Pushed::NoThread) | None => self.touch(interval),
        }
    }

    /// The will-need thread's loop: brings in each interval queued, in
    /// order, until the VM closes ([`AddressSpace::touch_advised`]). A
    /// failure is left to the access that needs the page (advice); a panic
    /// is caught (one under the monitor poisons the VM, as any does, and
    /// every later call fails at once) and the loop goes on.
    pub(crate) fn run_will_need(&self) {
        let queue = self.will_need.as_ref().expect("the thread has a queue");
        while let Some(interval) = queue.next() {
            let touched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.touch_advised(interval, queue)
            }));
            drop(touched);
            queue.done();
        }
    }

    /// `touch` as advice, for the will-need thread: a page that is
    /// resident is marked referenced (the use the advice announces) and
    /// passed over without the monitor, and one another thread
    /// holds or is bringing in (a guard's latch, a read in flight) is
    /// passed over too, never waited for — a guard may be held for as long
    /// as its owner likes, even while that owner waits in `settle` or
    /// closes the VM. Stops at the interval's first failed read under the
    /// monitor (a failed ring read is made again under it, as `touch`'s is;
    /// the access that needs the page meets the error) and when the VM is
    /// closing (`queue` says; looked at before each page). A page the
    /// queue says was withdrawn (a `kill`, `free` or `DontNeed`
    /// of it since the advice) is passed over, and no page past the next
    /// such page comes in with it (clusters stop short, and no stream's
    /// read-ahead is made: `serve_as`): looked at under the monitor, which
    /// those hold as they withdraw and discard, so none comes back after.
    /// An absent page on disk comes in with the pages after it in one
    /// transfer, as `touch` brings them (without the monitor where the
    /// drive is read with `O_DIRECT`, as `touch`'s are: see
    /// `bring_in_from`).
    pub(crate) fn touch_advised(
        &self,
        interval: Interval,
        queue: &crate::will_need::WillNeedQueue,
    ) {
        let states = self.states();
        let end = interval.end().0;
        let mut page = interval.page.0;
        // A read planned for this thread is planned once a page: a page it
        // left absent (the read failed, or the page was let go or evicted
        // meanwhile) is looked at again with the read under the monitor,
        // as `touch` does.
        let mut plan = true;
        while page < end {
            if queue.stopping() {
                return;
            }
            // A page already in is marked referenced, as the use the
            // advice announces would mark it: otherwise the clock, sweeping
            // a budget full of pages in use, takes it first, and the advice
            // ends with fewer of its pages in than it found (an embedder's
            // trial: 981 of 1,024 after `settle`).
            if states.reference_if_resident(page) {
                (page, plan) = (page + 1, true);
                continue;
            }
            let mut monitor = self.lock_monitor();
            let until = queue.advised_until(page, end);
            if until == page {
                (page, plan) = (page + 1, true);
                continue;
            }
            if self
                .check_allocated(&monitor, Interval::new(page, 1))
                .is_err()
            {
                return;
            }
            let served = self.bring_in_from(&mut monitor, page, until - page, plan, false);
            drop(monitor);
            // (A cluster it planned: started now, see `fault::inline`.)
            self.start_planned();
            match served {
                // Its read, planned for this thread: waited for here (if
                // still latched after, the read is another thread's to
                // finish — it took the plan, or met the run first — and the
                // page is passed over next time round, as any page another
                // thread holds).
                Ok(None) => {
                    self.help_inline_read(page);
                    plan = false;
                }
                // Resident, or held by another thread: on to the next page.
                Ok(Some(_)) => (page, plan) = (page + 1, true),
                // (The access that needs the page meets the error.)
                Err(_) => return,
            }
        }
    }

    /// Waits until every interval advised `WillNeed` so far has been
    /// brought in — the pages another thread held or was bringing in
    /// passed over — or its reads failed, or the VM is closing. Advice
    /// dropped at the queue's limit is not waited for. While other threads
    /// go on advising, it may wait for their advice too. For a program that
    /// wants its advice done before it measures, and for tests
    /// ([`VmStats::will_need_dropped_pages`](crate::VmStats::will_need_dropped_pages)
    /// says how much advice was dropped).
    ///
    /// It waits for the reads, not for a promise: the pages are not pinned,
    /// so the clock may have taken some back by the time it returns (other
    /// threads' faults, or advice larger than what the budget can hold
    /// beside the pages in use). [`AddressSpace::state`] says per page;
    /// [`AddressSpace::pin`] is the call that keeps pages in.
    pub fn settle(&self) {
        if let Some(queue) = self.will_need.as_ref() {
            queue.settle();
        }
    }

    /// Brings `interval` in and keeps it there until [`AddressSpace::unpin`].
    pub fn pin(&self, interval: Interval) -> Result<(), VmError> {
        self.swap_in(interval, false, true)
    }

    /// Undoes one [`AddressSpace::pin`] of each page of `interval`. Every
    /// page must be pinned ([`VmError::NotPinned`] names the first that is
    /// not, and nothing is unpinned).
    pub fn unpin(&self, interval: Interval) -> Result<(), VmError> {
        self.check_poisoned()?;
        let mut monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        if let Some(page) = interval.pages().find(|p| !monitor.pins.contains_key(&p.0)) {
            return Err(VmError::NotPinned { page });
        }
        for page in interval.pages() {
            unpin_one(&mut monitor, page.0);
        }
        Ok(())
    }

    /// Makes the contents of `interval` undefined without I/O: they read as
    /// zeros. A pinned page is refused ([`VmError::Pinned`]; unpin it
    /// first), and so is a page a guard holds ([`VmError::PageBusy`]);
    /// either way nothing changes. A page on its way in — another thread's
    /// fault, a read-ahead — is waited for, and so, briefly, is another
    /// thread's copy in or out of a page (`read`, `write`).
    pub fn kill(&self, interval: Interval) -> Result<(), VmError> {
        self.check_poisoned()?;
        let monitor = self.discarded(interval, |monitor| {
            match interval.pages().find(|p| monitor.pins.contains_key(&p.0)) {
                Some(page) => Err(VmError::Pinned { page }),
                None => Ok(()),
            }
        })?;
        self.withdraw_will_need(interval);
        drop(monitor);
        Ok(())
    }

    /// Monitor held (by a `kill`, `free` or `DontNeed` of `interval`, as it
    /// discards the pages): withdraws the `WillNeed` advice for them (see
    /// `will_need`).
    fn withdraw_will_need(&self, interval: Interval) {
        if let Some(queue) = self.will_need.as_ref() {
            queue.withdraw(interval);
        }
    }

    /// Takes the monitor, checks `interval` is allocated and passes
    /// `check`, and discards its pages; returns with the monitor held. A
    /// page being read ahead in the background, or brought in by another
    /// thread's fault, is waited for without the monitor (its read ends
    /// without it), then everything is done again.
    /// Monitor not held on entry; held on a successful return.
    pub(crate) fn discarded(
        &self,
        interval: Interval,
        check: impl Fn(&Monitor) -> Result<(), VmError>,
    ) -> Result<crate::monitor::MonitorGuard<'_>, VmError> {
        // No view or guard may see its pages discarded (transparent mode).
        let _views = self.check_views(interval, true)?;
        let mut held_tries = 0;
        loop {
            let mut monitor = self.lock_monitor();
            self.check_allocated(&monitor, interval)?;
            self.check_not_wired(&monitor, interval, "kill it, or free all of it")?;
            check(&monitor)?;
            let (page, seen) = match self.discard(&mut monitor, interval)? {
                Discard::Done => return Ok(monitor),
                Discard::Held(page) => {
                    drop(monitor);
                    // A latch of this thread's own would never end.
                    held_tries += 1;
                    if held_tries > HELD_TRIES || held_by_this_thread(self.space_key(), page) {
                        return Err(VmError::PageBusy {
                            page: PageNumber(page),
                        });
                    }
                    // A reader's or a writer's copy ends in a moment; a
                    // guard may not: a few short waits, then it is busy.
                    let states = self.states();
                    let mut spins = 0;
                    while spins < HELD_BACKOFF && {
                        let word = states.load(page);
                        word.tag() == TAG_LOCKED || word.shared() > 0
                    } {
                        crate::state::backoff(&mut spins);
                    }
                    continue;
                }
                Discard::Wait(page, seen) => (page, seen),
            };
            drop(monitor);
            // A read in flight: finished here, or waited for.
            if self.wait_for_read(page) {
                continue;
            }
            // A guard of this thread's own holds it too, and would never
            // let go while this thread waits: busy, as a page a guard
            // holds is (the fault campaign found `PageHeldByThisThread`
            // here, 9 seeds in 3,000, for a page written behind while this
            // thread held it).
            if held_by_this_thread(self.space_key(), page) {
                return Err(VmError::PageBusy {
                    page: PageNumber(page),
                });
            }
            // (At once if the latch seen has ended meanwhile.)
            self.states().wait_for_change(page, seen);
        }
    }

    /// Applies `change` to the state word of every page of `interval`,
    /// under the monitor (so no page moves in or out meanwhile).
    fn change_words(
        &self,
        interval: Interval,
        change: impl Fn(&PageStates<'_>, u64),
    ) -> Result<(), VmError> {
        self.check_poisoned()?;
        let monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        let states = self.states();
        for page in interval.page.0..interval.end().0 {
            change(&states, page);
        }
        Ok(())
    }

    /// Write-protects `interval` (in transparent mode, plain stores into it
    /// are refused from now on as well: fatal, see the `transparent`
    /// module's contract).
    pub fn make_read_only(&self, interval: Interval) -> Result<(), VmError> {
        let _views = self.check_views(interval, true)?;
        {
            let monitor = self.lock_monitor();
            self.check_allocated(&monitor, interval)?;
            if let Some(done) = self.protect_wired(&monitor, interval, false) {
                return done;
            }
        }
        self.change_words(interval, |states, page| states.set_flags(page, READ_ONLY))?;
        let _monitor = self.lock_monitor();
        self.protect_resident(interval, 0)
    }

    /// Removes the write protection of `interval`; an error, changing
    /// nothing, if part of it has maximum protection read (a file mapping
    /// or [`AddressSpace::restrict`]).
    pub fn make_read_write(&self, interval: Interval) -> Result<(), VmError> {
        self.check_poisoned()?;
        let monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        if let Some((part, why)) = monitor
            .files
            .read_only_max_in(interval.page.0, interval.end().0)
        {
            return Err(VmError::AboveMaximumProtection {
                interval: part,
                why,
            });
        }
        if let Some(done) = self.protect_wired(&monitor, interval, true) {
            return done;
        }
        let states = self.states();
        for page in interval.page.0..interval.end().0 {
            states.clear_flags(page, READ_ONLY);
        }
        Ok(())
    }

    /// Marks the resident pages of `interval` as changed (they will be
    /// written back).
    pub fn make_changed(&self, interval: Interval) -> Result<(), VmError> {
        self.check_poisoned()?;
        let monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        let states = self.states();
        for page in interval.page.0..interval.end().0 {
            // A shared mapping whose maximum is read cannot write its file
            // (it may be open read-only): its pages never count as changed.
            let read_only_file =
                monitor.files.shared_target(page).is_some() && monitor.files.max_is_read(page);
            if states.load(page).tag() == TAG_RESIDENT && !read_only_file {
                states.set_flags(page, DIRTY);
            }
        }
        Ok(())
    }

    /// Marks the resident pages of `interval` as unchanged: their changes
    /// are not written back.
    pub fn make_unchanged(&self, interval: Interval) -> Result<(), VmError> {
        let _views = self.check_views(interval, true)?;
        {
            let monitor = self.lock_monitor();
            self.check_allocated(&monitor, interval)?;
            self.check_not_wired(&monitor, interval, "its changes are the object's")?;
        }
        if self.is_transparent() {
            // Protected again with the change forgotten, under each page's
            // latch, so that the next plain store is seen.
            self.check_poisoned()?;
            let monitor = self.lock_monitor();
            self.check_allocated(&monitor, interval)?;
            return self.protect_resident(interval, DIRTY);
        }
        self.change_words(interval, |states, page| states.clear_flags(page, DIRTY))
    }

    /// Makes the pages of `interval` first in line for replacement.
    pub fn age(&self, interval: Interval) -> Result<(), VmError> {
        self.change_words(interval, |states, page| {
            states.clear_flags(page, REFERENCED)
        })
    }

    /// Advice about how `interval` will be used (the BSD `madvise` values;
    /// see [`Advice`] for what each does, and when `DontNeed` is refused).
    pub fn advise(&self, interval: Interval, advice: Advice) -> Result<(), VmError> {
        self.check_poisoned()?;
        match advice {
            Advice::WillNeed => self.will_need(interval),
            Advice::DontNeed => self.dont_need(interval),
            Advice::Normal | Advice::Sequential | Advice::Random => {
                let mut monitor = self.lock_monitor();
                self.check_allocated(&monitor, interval)?;
                monitor.set_advice(interval.page.0, interval.count.0, advice);
                // New advice, a new phase: mapped files' read-around learns
                // afresh whether it pays.
                monitor.files.new_phase(interval.page.0, interval.end().0);
                Ok(())
            }
        }
    }

    /// `DontNeed` (see [`Advice::DontNeed`]): write back, withdraw
    /// `WillNeed`, drop the clean pages in frames.
    ///
    /// Pages being read (read ahead, or by the will-need thread) when it
    /// comes are waited for, once, and dropped too: a scan stopped with
    /// four clusters in flight then left 1,024 pages resident after its
    /// `DontNeed`, and advice withdrawn left the read it was in. Reads
    /// planned after that wait (another thread still reading the interval)
    /// are not waited for: the advice ends.
    fn dont_need(&self, interval: Interval) -> Result<(), VmError> {
        {
            let monitor = self.lock_monitor();
            self.check_allocated(&monitor, interval)?;
            self.check_not_wired(&monitor, interval, "it cannot be dropped")?;
        }
        self.clean(interval)?;
        let mut waited = false;
        loop {
            let mut monitor = self.lock_monitor();
            self.check_allocated(&monitor, interval)?;
            self.withdraw_will_need(interval);
            let states = self.states();
            let mut dropped = Vec::new();
            // The pages latched by reads in flight.
            let mut reading: Vec<u64> = Vec::new();
            // (Not in a child made by `fork`: nothing there would finish
            // the reads its copy of the queue holds.)
            let read_ahead = self
                .read_ahead
                .as_ref()
                .filter(|q| !waited && q.is_owners());
            for page in interval.page.0..interval.end().0 {
                // Only pages in frames (wired memory, mapped since the
                // check above, has none — review).
                if monitor.pins.contains_key(&page) || !monitor.frame_of.contains_key(&page) {
                    continue;
                }
                match states.try_latch_resident(page) {
                    Ok(latch) => {
                        let dirty = latch.has_now(DIRTY);
                        if dirty || (!latch.has_now(ON_DISK) && monitor.volume.is_none()) {
                            // Changed again since `clean`, or no backing
                            // to hold it: keep it (the guard puts it back).
                            continue;
                        }
                        dropped.push(latch);
                    }
                    Err(word) => {
                        if word.coming_in() && read_ahead.is_some_and(|q| q.covers(page)) {
                            reading.push(page);
                        }
                    }
                }
            }
            // Released (by runs, as in `discard`) or zeroed, they read as
            // their disk copy (or zeros, if they have none) at the next
            // fault.
            self.release_latched(dropped.iter());
            for latch in dropped {
                let page = latch.page();
                latch.release(TAG_ABSENT, 0, DIRTY | REFERENCED);
                monitor.remove_frame(page);
                monitor.forget_copies(page, page + 1);
                monitor.counters.evictions += 1;
            }
            drop(monitor);
            if reading.is_empty() {
                return Ok(());
            }
            // Without the monitor (a read's undoing needs it): each read
            // waited for (at once for the pages of a read already over);
            // then once more.
            for page in reading {
                self.wait_for_read(page);
            }
            waited = true;
        }
    }

    /// Writes back the changed resident pages of `interval`; they stay
    /// resident. A no-op without backing.
    pub fn clean(&self, interval: Interval) -> Result<(), VmError> {
        self.check_poisoned()?;
        let mut monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        self.write_back_range(&mut monitor, interval.page.0, interval.end().0)
    }

    /// Writes back every changed page and syncs the drives: on return every
    /// change has reached stable storage. A no-op without backing.
    pub fn flush(&self) -> Result<(), VmError> {
        self.check_poisoned()?;
        let mut monitor = self.lock_monitor();
        if monitor.volume.is_none() {
            return Ok(());
        }
        let mut pages: Vec<u64> = monitor.frame_of.keys().copied().collect();
        pages.sort_unstable();
        self.write_back_pages(&mut monitor, &pages)?;
        self.make_durable(&mut monitor)
    }

    /// Monitor held on entry and exit; the pages to make durable written.
    ///
    /// Syncs the drives, commits the run table if pages moved to spares
    /// (before the moved pages' contents count as durable, the table on
    /// disk must say where they are), then, for a persistent space, writes
    /// the map that names the pages now durable.
    fn make_durable(&self, monitor: &mut Monitor) -> Result<(), VmError> {
        let needs_commit = monitor.volume_needs_commit;
        // Shared file mappings: their files' writes made durable too (the
        // `msync` of this VM).
        for file in monitor.files.shared_files() {
            file.sync()?;
        }
        let Some(volume) = monitor.volume.as_mut() else {
            return Ok(());
        };
        volume.channel().sync_all().map_err(VmError::Sync)?;
        if needs_commit {
            volume.commit()?;
            monitor.volume_needs_commit = false;
        }
        self.commit_map(monitor)
    }

    /// Writes back `interval`'s changed pages (in clusters) and makes them
    /// durable: on return, every write to `interval` made before the call
    /// survives a crash, and so does the shape of the whole space (see the
    /// durability contract in the crate docs). Other intervals' changed
    /// pages are not written. A no-op without backing.
    pub fn sync(&self, interval: Interval) -> Result<(), VmError> {
        self.check_poisoned()?;
        let mut monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        if monitor.volume.is_none() {
            return Ok(());
        }
        self.write_back_range(&mut monitor, interval.page.0, interval.end().0)?;
        self.make_durable(&mut monitor)
    }

    /// The allocated intervals — the map entries, in address order, each
    /// with its advice (an interval advised in part is two entries). A
    /// reopened persistent space has the same entries as the run that
    /// wrote it.
    pub fn intervals(&self) -> Vec<(Interval, Advice)> {
        let monitor = self.lock_monitor();
        monitor
            .allocations
            .iter()
            .map(|(&start, a)| {
                (
                    Interval {
                        page: PageNumber(start),
                        count: runtable::PageCount(a.count),
                    },
                    a.advice,
                )
            })
            .collect()
    }

    /// Cedar's `PageState` of `page`. A page that is not allocated —
    /// one past the address space's end included — has data
    /// [`DataState::None`] and no memory, as in Cedar: asking is never an
    /// error.
    pub fn state(&self, page: PageNumber) -> PageState {
        let monitor = self.lock_monitor();
        if page.0 >= self.virtual_pages || monitor.allocation_of(page.0).is_none() {
            return PageState::default();
        }
        let word = self.states().load(page.0);
        let resident = word.tag() != TAG_ABSENT;
        let data = if word.has(DIRTY) {
            DataState::Changed
        } else if resident || word.has(ON_DISK) {
            DataState::Unchanged
        } else {
            DataState::Undefined
        };
        PageState {
            data,
            read_only: word.has(READ_ONLY),
            has_real_memory: resident,
            needs_cleaning: resident && word.has(DIRTY),
            pin_count: monitor.pins.get(&page.0).copied().unwrap_or(0),
        }
    }

    /// Checks the monitor's structures and that every frame's page is
    /// resident (tests call this after operations). A failure is a bug.
    pub fn check_invariants(&self) {
        let monitor = self.lock_monitor();
        monitor.check_invariants();
        for &page in monitor.frame_of.keys() {
            assert_ne!(
                self.states().load(page).tag(),
                TAG_ABSENT,
                "frame holds absent page {page}"
            );
        }
    }

    /// Where `page` lives on the drives now (`None` without backing, or
    /// for a page the run table does not map).
    pub fn disk_address(&self, page: PageNumber) -> Option<runtable::DiskAddr> {
        let monitor = self.lock_monitor();
        monitor.volume.as_ref()?.translate(page).ok()
    }
}

/// Monitor held on entry and exit.
///
/// Drops one pin of `page`; nothing if it is not pinned (another thread
/// may have unpinned or freed it since this thread pinned it).
fn unpin_one(monitor: &mut Monitor, page: u64) {
    if let Some(count) = monitor.pins.get_mut(&page) {
        *count -= 1;
        if *count == 0 {
            monitor.pins.remove(&page);
        }
    }
}
