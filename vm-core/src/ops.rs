//! Cedar's operations on intervals (named after Cedar 6.0's `VM`
//! interface): allocation (`allocate`, `free`), residency (`swap_in`,
//! `touch`, `pin`, `unpin`, `kill`), protection and data state
//! (`make_read_only`, `make_read_write`, `make_changed`, `make_unchanged`,
//! `age`), advice (`advise`), write-back (`clean`, `flush`) and `state`.
//! Each takes the monitor for its whole work.

use crate::error::VmError;
use crate::fault::Served;
use crate::monitor::Monitor;
use crate::space::AddressSpace;
use crate::state::{
    DIRTY, ON_DISK, PageStates, READ_ONLY, REFERENCED, TAG_ABSENT, TAG_LOCKED, TAG_RESIDENT,
};
use crate::vocabulary::{Advice, DataState, PageState};
use runtable::{Interval, PageNumber, Volume};

impl AddressSpace {
    /// Allocates `count` pages; their contents read as zeros.
    pub fn allocate(&self, count: u64) -> Result<Interval, VmError> {
        if count == 0 {
            return Err(VmError::CantAllocateVirtual { pages: 0 });
        }
        let mut monitor = self.lock_monitor();
        if monitor.volume.is_none() && monitor.allocated_pages + count > monitor.budget() {
            return Err(VmError::CantAllocateReal {
                pages: count,
                allocated: monitor.allocated_pages,
                budget: monitor.budget(),
            });
        }
        let start = monitor
            .allocate(count)
            .ok_or(VmError::CantAllocateVirtual { pages: count })?;
        Ok(Interval::new(start, count))
    }

    /// Frees `interval` (all of it must be allocated); its contents are
    /// discarded without I/O.
    pub fn free(&self, interval: Interval) -> Result<(), VmError> {
        let mut monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        self.discard(&mut monitor, interval)?;
        let states = self.states();
        for page in interval.page.0..interval.end().0 {
            monitor.pins.remove(&page);
            states.reset_absent(page);
        }
        monitor.deallocate(interval.page.0, interval.count.0);
        Ok(())
    }

    /// Monitor held on entry and exit.
    fn check_allocated(&self, monitor: &Monitor, interval: Interval) -> Result<(), VmError> {
        let fits = interval
            .checked_end()
            .is_some_and(|end| end.0 <= self.virtual_pages);
        if interval.is_empty() || !fits || !monitor.is_allocated(interval.page.0, interval.count.0)
        {
            return Err(VmError::NotAllocated { interval });
        }
        Ok(())
    }

    /// Monitor held on entry and exit.
    ///
    /// Drops every page of `interval` from real memory without writing it
    /// back, and forgets its disk copy: its contents become undefined (they
    /// read as zeros).
    fn discard(&self, monitor: &mut Monitor, interval: Interval) -> Result<(), VmError> {
        let states = self.states();
        for page in interval.page.0..interval.end().0 {
            let word = states.load(page);
            match word.tag() {
                TAG_RESIDENT => {
                    states
                        .try_lock_resident(page)
                        .map_err(|_| VmError::PageBusy {
                            page: PageNumber(page),
                        })?;
                    self.region.release(page, 1)?;
                    states.unlock(page, TAG_ABSENT, word.flags() & READ_ONLY);
                    monitor.remove_frame(page);
                }
                TAG_LOCKED => {
                    return Err(VmError::PageBusy {
                        page: PageNumber(page),
                    });
                }
                _ => states.clear_flags(page, ON_DISK | DIRTY),
            }
        }
        Ok(())
    }

    /// Brings every page of `interval` into real memory; with `kill`, their
    /// contents are discarded first (no read: they come in as zeros); with
    /// `pin`, they stay until unpinned.
    pub fn swap_in(&self, interval: Interval, kill: bool, pin: bool) -> Result<(), VmError> {
        if kill {
            self.kill(interval)?;
        }
        for page in interval.page.0..interval.end().0 {
            loop {
                let mut monitor = self.lock_monitor();
                self.check_allocated(&monitor, Interval::new(page, 1))?;
                match self.serve(&mut monitor, page, None)? {
                    Served::Resident => {
                        if pin {
                            *monitor.pins.entry(page).or_insert(0) += 1;
                        }
                        break;
                    }
                    Served::Busy => {
                        drop(monitor);
                        std::thread::yield_now();
                    }
                }
            }
        }
        Ok(())
    }

    /// Brings `interval` into real memory (Cedar's `Touch`).
    pub fn touch(&self, interval: Interval) -> Result<(), VmError> {
        self.swap_in(interval, false, false)
    }

    /// Brings `interval` in and keeps it there until [`AddressSpace::unpin`].
    pub fn pin(&self, interval: Interval) -> Result<(), VmError> {
        self.swap_in(interval, false, true)
    }

    /// Undoes one [`AddressSpace::pin`] of each page of `interval`.
    pub fn unpin(&self, interval: Interval) -> Result<(), VmError> {
        let mut monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        for page in interval.page.0..interval.end().0 {
            if let Some(count) = monitor.pins.get_mut(&page) {
                *count -= 1;
                if *count == 0 {
                    monitor.pins.remove(&page);
                }
            }
        }
        Ok(())
    }

    /// Makes the contents of `interval` undefined without I/O: they read as
    /// zeros.
    pub fn kill(&self, interval: Interval) -> Result<(), VmError> {
        let mut monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        self.discard(&mut monitor, interval)
    }

    /// Applies `change` to the state word of every page of `interval`,
    /// under the monitor (so no page moves in or out meanwhile).
    fn change_words(
        &self,
        interval: Interval,
        change: impl Fn(&PageStates<'_>, u64),
    ) -> Result<(), VmError> {
        let monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        let states = self.states();
        for page in interval.page.0..interval.end().0 {
            change(&states, page);
        }
        Ok(())
    }

    /// Write-protects `interval`.
    pub fn make_read_only(&self, interval: Interval) -> Result<(), VmError> {
        self.change_words(interval, |states, page| states.set_flags(page, READ_ONLY))
    }

    /// Removes the write protection of `interval`.
    pub fn make_read_write(&self, interval: Interval) -> Result<(), VmError> {
        self.change_words(interval, |states, page| states.clear_flags(page, READ_ONLY))
    }

    /// Marks the resident pages of `interval` as changed (they will be
    /// written back).
    pub fn make_changed(&self, interval: Interval) -> Result<(), VmError> {
        self.change_words(interval, |states, page| {
            if states.load(page).tag() == TAG_RESIDENT {
                states.set_flags(page, DIRTY);
            }
        })
    }

    /// Marks the resident pages of `interval` as unchanged: their changes
    /// are not written back.
    pub fn make_unchanged(&self, interval: Interval) -> Result<(), VmError> {
        self.change_words(interval, |states, page| states.clear_flags(page, DIRTY))
    }

    /// Makes the pages of `interval` first in line for replacement.
    pub fn age(&self, interval: Interval) -> Result<(), VmError> {
        self.change_words(interval, |states, page| {
            states.clear_flags(page, REFERENCED)
        })
    }

    /// Advice about how `interval` will be used (the BSD `madvise` values).
    pub fn advise(&self, interval: Interval, advice: Advice) -> Result<(), VmError> {
        match advice {
            Advice::WillNeed => self.touch(interval),
            Advice::DontNeed => {
                self.clean(interval)?;
                let mut monitor = self.lock_monitor();
                self.check_allocated(&monitor, interval)?;
                let states = self.states();
                for page in interval.page.0..interval.end().0 {
                    if monitor.pins.contains_key(&page) {
                        continue;
                    }
                    if let Ok(word) = states.try_lock_resident(page) {
                        if word.has(DIRTY) || (!word.has(ON_DISK) && monitor.volume.is_none()) {
                            // Changed again since `clean`, or no backing to
                            // hold it: keep it.
                            states.unlock(page, TAG_RESIDENT, word.flags());
                            continue;
                        }
                        self.region.release(page, 1)?;
                        states.unlock(page, TAG_ABSENT, word.flags() & (ON_DISK | READ_ONLY));
                        monitor.remove_frame(page);
                        monitor.counters.evictions += 1;
                    }
                }
                Ok(())
            }
            Advice::Normal | Advice::Sequential | Advice::Random => {
                let mut monitor = self.lock_monitor();
                self.check_allocated(&monitor, interval)?;
                monitor.set_advice(interval.page.0, interval.count.0, advice);
                Ok(())
            }
        }
    }

    /// Writes back the changed resident pages of `interval`; they stay
    /// resident. A no-op without backing.
    pub fn clean(&self, interval: Interval) -> Result<(), VmError> {
        let monitor = self.lock_monitor();
        self.check_allocated(&monitor, interval)?;
        self.write_back_range(&monitor, interval.page.0, interval.end().0)
    }

    /// Writes back every changed page and syncs the drives: on return every
    /// change has reached stable storage. A no-op without backing.
    pub fn flush(&self) -> Result<(), VmError> {
        let monitor = self.lock_monitor();
        let Some(volume) = monitor.volume.as_ref() else {
            return Ok(());
        };
        let mut pages: Vec<u64> = monitor.frame_of.keys().copied().collect();
        pages.sort_unstable();
        for page in pages {
            self.write_back(&monitor, page)?;
        }
        volume.channel().sync_all().map_err(VmError::Sync)
    }

    /// Cedar's `PageState` of `page`.
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

    /// Runs `f` on the backing volume (tests and tools), under the monitor.
    pub fn with_volume<R>(&self, f: impl FnOnce(&Volume) -> R) -> Option<R> {
        let monitor = self.lock_monitor();
        monitor.volume.as_ref().map(f)
    }
}
