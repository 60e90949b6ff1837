//! The monitor: the one lock over the VM's data structures, held during
//! fault handling including its I/O, as the seed decides.
//!
//! Fields guarded by the monitor (all of `Monitor`):
//! - `free`, `allocations`: the interval allocator and the map entries;
//! - `frames`, `free_frames`, `frame_of`, `hand`: the resident set (one
//!   frame per page of the real-memory budget) and the clock hand;
//! - `pins`: pin counts;
//! - `counters`: fault-path statistics;
//! - `volume`: the backing store (drives, run table).
//!
//! Invariants (checked by [`Monitor::check_invariants`]): resident frames +
//! free frames + frames in transit = budget; `frame_of` is the inverse of `frames`; free and
//! allocated extents are disjoint and sorted.

use crate::page_map::PageMap;
use crate::vocabulary::Advice;
use parking_lot::MutexGuard;
use runtable::Volume;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// One allocated interval's attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Allocation {
    pub(crate) count: u64,
    pub(crate) advice: Advice,
}

/// Where a persistent space keeps its map (see `persist`), the
/// generation of the newest map written, and the slot it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SpaceMapState {
    /// The volume's virtual page where map slot 0 starts (the first page
    /// past the address space).
    pub(crate) first_page: u64,
    /// Pages per map slot.
    pub(crate) slot_pages: u64,
    /// The newest map's generation (0: none written yet).
    pub(crate) generation: u64,
    /// The slot holding the newest map (the next map goes to the other).
    pub(crate) newest_slot: Option<u64>,
    /// The machine address the space's region had when it was last in
    /// transparent mode (0: never), kept in the map so that a reopen in
    /// transparent mode maps it there again.
    pub(crate) base: u64,
    /// The map's format version: 2 (a journal below the map slots), or 1
    /// for a space made before the journal (written as 1 again: its space
    /// may reach up to the slots).
    pub(crate) version: u32,
    /// The journal's pages, just below map slot 0 (0 for version 1).
    pub(crate) journal_pages: u64,
}

/// Fault-path counters (the hit counter lives outside the monitor).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) faults: u64,
    pub(crate) reclaims: u64,
    pub(crate) zero_fills: u64,
    pub(crate) page_ins: u64,
    pub(crate) page_outs: u64,
    pub(crate) evictions: u64,
    pub(crate) read_aheads: u64,
    pub(crate) resident_high_water: u64,
    pub(crate) seek_ahead_hints: u64,
    pub(crate) write_back_failures: u64,
    pub(crate) remaps: u64,
    pub(crate) overwrites: u64,
    pub(crate) cluster_reads: u64,
    pub(crate) async_read_aheads: u64,
    pub(crate) cluster_writes: u64,
    pub(crate) freed_behind: u64,
    pub(crate) free_read_arounds: u64,
}

/// The VM's data structures. Every field is guarded by the monitor `(m)`:
/// reached only through a [`MonitorGuard`].
pub(crate) struct Monitor {
    /// (m) Free extents of the address space: start page → page count.
    pub(crate) free: BTreeMap<u64, u64>,
    /// (m) Allocated intervals (map entries): start page → attributes.
    pub(crate) allocations: BTreeMap<u64, Allocation>,
    /// (m) Pages allocated, the sum of `allocations`' counts.
    pub(crate) allocated_pages: u64,
    /// (m) One slot per frame of the real-memory budget: the page in it.
    pub(crate) frames: Vec<Option<u64>>,
    /// (m) Frames holding no page.
    pub(crate) free_frames: Vec<u32>,
    /// (m) Frames taken from clean victims by a fault served outside the
    /// monitor, whose memory that fault has not yet given back: neither
    /// holding a page nor free (see `fault::decided`).
    pub(crate) frames_in_transit: u64,
    /// (m) Resident page → its frame; the inverse of `frames`.
    pub(crate) frame_of: PageMap<u32>,
    /// (m) The clock hand: the next frame the clock looks at.
    pub(crate) hand: usize,
    /// (m) Write-behind: the frame up to which cleaning has been planned
    /// ahead of the hand (`plan_clean_ahead`).
    pub(crate) clean_cursor: usize,
    /// (m) Pin counts of pinned pages.
    pub(crate) pins: PageMap<u32>,
    /// (m) Fault-path statistics.
    pub(crate) counters: Counters,
    /// (m) The backing store (drives, run table); `None` in
    /// real-memory-only mode.
    pub(crate) volume: Option<Volume>,
    /// (m) The volume's run table changed (a remap) since its header was
    /// last committed: `flush` commits it.
    pub(crate) volume_needs_commit: bool,
    /// (m) The space map of a persistent space (`Vm::create`/`Vm::open`);
    /// `None` for an anonymous one.
    pub(crate) map: Option<SpaceMapState>,
    /// (m) What each map slot was last written with (or read holding), so
    /// that the next map written there writes only the pages that changed;
    /// empty where unknown.
    pub(crate) map_written: [Vec<u8>; 2],
    /// (m) Extents a persistent space freed since its last map: not free
    /// (not reusable) until the next map is written.
    pub(crate) freed_since_map: Vec<(u64, u64)>,
    /// (m) A persistent space's double-write journal (`journal`); `None`
    /// for an anonymous space, or one whose map predates the journal.
    pub(crate) journal: Option<crate::journal::Journal>,
    /// (m) File mappings and maximum protections (`mapped`).
    pub(crate) files: crate::mapped::FileMaps,
    /// (m) Virtual copies' destination pages still reading their source's
    /// place (`vcopy`).
    pub(crate) links: crate::vcopy::Links,
    /// Transparent mode with a volume: copies of recently evicted pages
    /// (`reclaim`), in a quarter of the budget set aside from the frames.
    pub(crate) reclaim: Option<crate::reclaim::Reclaim>,
    /// (m) The clock last gave up because every page it could take was
    /// latched by a transfer in flight: the fault should let go of the
    /// monitor and retry rather than fail (see `force_victim`).
    pub(crate) gave_up_on_transit: bool,
    /// (m) The sequential streams faulting lately (their read-ahead
    /// windows share a quarter of real memory).
    pub(crate) streams: crate::fault::streams::Streams,
}

/// The monitor, held (the name says what it is: a guard of the one lock
/// over the VM's data structures); counts the time it was held.
pub(crate) struct MonitorGuard<'a> {
    guard: MutexGuard<'a, Monitor>,
    since: Instant,
    total_held_ns: &'a AtomicU64,
    poisoned: &'a AtomicBool,
    /// Whether the thread was already unwinding when it took the monitor
    /// (a destructor freeing an interval during a panic): then releasing it
    /// while unwinding is not a sign of half-done work.
    taken_while_panicking: bool,
}

impl<'a> MonitorGuard<'a> {
    /// Wraps a freshly taken monitor; its hold time is added to
    /// `total_held_ns` when it is released, and `poisoned` is set if it is
    /// released by a panic unwinding (the structures it guards may be
    /// half-changed).
    pub(crate) fn new(
        guard: MutexGuard<'a, Monitor>,
        total_held_ns: &'a AtomicU64,
        poisoned: &'a AtomicBool,
    ) -> Self {
        MonitorGuard {
            guard,
            since: Instant::now(),
            total_held_ns,
            poisoned,
            taken_while_panicking: std::thread::panicking(),
        }
    }
}

impl Drop for MonitorGuard<'_> {
    fn drop(&mut self) {
        if !self.taken_while_panicking && std::thread::panicking() {
            self.poisoned.store(true, Ordering::Release);
        }
        self.total_held_ns
            .fetch_add(self.since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

impl std::ops::Deref for MonitorGuard<'_> {
    type Target = Monitor;
    fn deref(&self) -> &Monitor {
        &self.guard
    }
}

impl std::ops::DerefMut for MonitorGuard<'_> {
    fn deref_mut(&mut self) -> &mut Monitor {
        &mut self.guard
    }
}

impl Monitor {
    /// The monitor's structures for `budget` frames. The frame table is
    /// made at once (12–20 bytes a frame): where the allocator cannot give
    /// it, an error, not an abort.
    pub(crate) fn new(
        virtual_pages: u64,
        budget: u64,
        volume: Option<Volume>,
    ) -> Result<Monitor, crate::error::VmError> {
        let too_much = |_| crate::error::VmError::Config {
            field: "real_memory_pages",
            reason: format!(
                "{budget} pages of real memory need a frame table this process cannot allocate"
            ),
        };
        let mut free = BTreeMap::new();
        if virtual_pages > 0 {
            free.insert(0, virtual_pages);
        }
        let mut frames = Vec::new();
        frames
            .try_reserve_exact(budget as usize)
            .map_err(too_much)?;
        frames.resize(budget as usize, None);
        let mut free_frames = Vec::new();
        free_frames
            .try_reserve_exact(budget as usize)
            .map_err(too_much)?;
        free_frames.extend((0..budget as u32).rev());
        let mut frame_of = PageMap::default();
        frame_of.try_reserve(budget as usize).map_err(too_much)?;
        Ok(Monitor {
            free,
            allocations: BTreeMap::new(),
            allocated_pages: 0,
            frames,
            free_frames,
            frames_in_transit: 0,
            frame_of,
            hand: 0,
            clean_cursor: 0,
            pins: PageMap::default(),
            counters: Counters::default(),
            volume,
            volume_needs_commit: false,
            gave_up_on_transit: false,
            streams: Default::default(),
            map: None,
            map_written: Default::default(),
            freed_since_map: Vec::new(),
            journal: None,
            files: Default::default(),
            links: Default::default(),
            reclaim: None,
        })
    }

    pub(crate) fn budget(&self) -> u64 {
        self.frames.len() as u64
    }

    pub(crate) fn resident(&self) -> u64 {
        self.frame_of.len() as u64
    }

    /// The allocation holding `page`: its start and attributes.
    pub(crate) fn allocation_of(&self, page: u64) -> Option<(u64, Allocation)> {
        let (&start, &a) = self.allocations.range(..=page).next_back()?;
        (page - start < a.count).then_some((start, a))
    }

    /// Whether every page of `[page, page+count)` is allocated.
    pub(crate) fn is_allocated(&self, page: u64, count: u64) -> bool {
        let mut at = page;
        let end = page.saturating_add(count);
        while at < end {
            match self.allocation_of(at) {
                Some((start, a)) => at = start + a.count,
                None => return false,
            }
        }
        true
    }

    /// Makes `intervals` (start, pages, advice; sorted, disjoint) the
    /// allocations, and the rest of the space free: a reopened persistent
    /// space's map, on a monitor that has allocated nothing.
    pub(crate) fn restore_allocations(
        &mut self,
        intervals: &[(u64, u64, crate::vocabulary::Advice)],
    ) {
        let total: u64 = self.free.values().sum::<u64>() + self.allocated_pages;
        self.allocations.clear();
        self.free.clear();
        self.allocated_pages = 0;
        let mut at = 0;
        for &(start, count, advice) in intervals {
            if start > at {
                self.free.insert(at, start - at);
            }
            self.allocations.insert(start, Allocation { count, advice });
            self.allocated_pages += count;
            at = start + count;
        }
        if total > at {
            self.free.insert(at, total - at);
        }
    }

    /// First-fit allocation of `count` pages.
    pub(crate) fn allocate(&mut self, count: u64) -> Option<u64> {
        let (&start, _) = self.free.iter().find(|&(_, &len)| len >= count)?;
        self.allocate_at(start, count).then_some(start)
    }

    /// Allocates exactly `[start, start + count)`, if every page of it is
    /// free.
    pub(crate) fn allocate_at(&mut self, start: u64, count: u64) -> bool {
        let Some(end) = start.checked_add(count) else {
            return false;
        };
        let Some((&free_start, &free_len)) = self.free.range(..=start).next_back() else {
            return false;
        };
        if free_start + free_len < end {
            return false;
        }
        self.free.remove(&free_start);
        if start > free_start {
            self.free.insert(free_start, start - free_start);
        }
        if free_start + free_len > end {
            self.free.insert(end, free_start + free_len - end);
        }
        self.allocations.insert(
            start,
            Allocation {
                count,
                advice: Advice::Normal,
            },
        );
        self.allocated_pages += count;
        true
    }

    /// Extends the allocation entry that ends at page `end` by the `extra`
    /// free pages after it, if they are free.
    pub(crate) fn extend(&mut self, end: u64, extra: u64) -> bool {
        let Some((start, a)) = end.checked_sub(1).and_then(|last| self.allocation_of(last)) else {
            return false;
        };
        if start + a.count != end {
            return false;
        }
        let Some(&free_len) = self.free.get(&end) else {
            return false;
        };
        if free_len < extra {
            return false;
        }
        self.free.remove(&end);
        if free_len > extra {
            self.free.insert(end + extra, free_len - extra);
        }
        if let Some(entry) = self.allocations.get_mut(&start) {
            entry.count += extra;
        }
        self.allocated_pages += extra;
        true
    }

    /// Splits allocations so that `page` starts one (if it is inside one).
    fn split_at(&mut self, page: u64) {
        if let Some((start, a)) = self.allocation_of(page)
            && start < page
        {
            let head = page - start;
            self.allocations
                .insert(start, Allocation { count: head, ..a });
            self.allocations.insert(
                page,
                Allocation {
                    count: a.count - head,
                    ..a
                },
            );
        }
    }

    /// Removes `[page, page+count)` from the allocations (which must hold
    /// it) and returns it to the free extents, merging neighbours.
    pub(crate) fn deallocate(&mut self, page: u64, count: u64) {
        self.split_at(page);
        self.split_at(page + count);
        let keys: Vec<u64> = self
            .allocations
            .range(page..page + count)
            .map(|(&k, _)| k)
            .collect();
        for key in keys {
            self.allocations.remove(&key);
        }
        self.allocated_pages -= count;
        if self.map.is_some() {
            // A persistent space: the pages stay out of the allocator until
            // the map that frees them is written. The map on disk still
            // names them, so a crash before then must find the freed
            // interval's own contents there, not another interval's.
            self.freed_since_map.push((page, count));
            return;
        }
        self.release_extent(page, count);
    }

    /// Returns the pages a persistent space freed to the allocator: the
    /// map that frees them is on disk.
    pub(crate) fn release_freed(&mut self) {
        for (page, count) in std::mem::take(&mut self.freed_since_map) {
            self.release_extent(page, count);
        }
    }

    /// Adds `[page, page+count)` to the free extents, merging neighbours.
    fn release_extent(&mut self, page: u64, count: u64) {
        let (mut start, mut len) = (page, count);
        if let Some((&prev, &prev_len)) = self.free.range(..start).next_back()
            && prev + prev_len == start
        {
            self.free.remove(&prev);
            start = prev;
            len += prev_len;
        }
        if let Some(&next_len) = self.free.get(&(page + count)) {
            self.free.remove(&(page + count));
            len += next_len;
        }
        self.free.insert(start, len);
    }

    /// Sets the advice of every allocation piece in `[page, page+count)`.
    pub(crate) fn set_advice(&mut self, page: u64, count: u64, advice: Advice) {
        self.split_at(page);
        self.split_at(page + count);
        for (_, a) in self.allocations.range_mut(page..page + count) {
            a.advice = advice;
        }
    }

    /// Puts `page` in a free frame; the caller made sure one exists.
    pub(crate) fn install_frame(&mut self, page: u64) {
        let frame = self.free_frames.pop().expect("a free frame was reserved");
        self.frames[frame as usize] = Some(page);
        self.frame_of.insert(page, frame);
        self.counters.resident_high_water = self.counters.resident_high_water.max(self.resident());
    }

    /// Drops the reclaim list's copies of the pages of `[start, end)`
    /// (they are coming in another way, or their contents are going).
    pub(crate) fn forget_copies(&mut self, start: u64, end: u64) {
        if let Some(reclaim) = self.reclaim.as_mut() {
            reclaim.forget_range(start, end);
        }
    }

    /// Takes `page` out of its frame.
    pub(crate) fn remove_frame(&mut self, page: u64) {
        let frame = self.take_frame(page);
        self.free_frames.push(frame);
    }

    /// Takes `page` out of its frame and hands the frame to the caller
    /// (not to the free list).
    pub(crate) fn take_frame(&mut self, page: u64) -> u32 {
        let frame = self.frame_of.remove(&page).expect("page has a frame");
        self.frames[frame as usize] = None;
        frame
    }

    /// Puts `page` in `frame`, which the caller took with
    /// [`Monitor::take_frame`].
    pub(crate) fn assign_frame(&mut self, page: u64, frame: u32) {
        debug_assert!(self.frames[frame as usize].is_none());
        self.frames[frame as usize] = Some(page);
        self.frame_of.insert(page, frame);
        self.counters.resident_high_water = self.counters.resident_high_water.max(self.resident());
    }

    /// The structural invariants (see the module doc). A failure is a bug.
    pub(crate) fn check_invariants(&self) {
        assert_eq!(
            self.frame_of.len() as u64 + self.free_frames.len() as u64 + self.frames_in_transit,
            self.frames.len() as u64
        );
        for (&page, &frame) in &self.frame_of {
            assert_eq!(self.frames[frame as usize], Some(page));
        }
        assert!(self.resident() <= self.budget());
        let mut extents: Vec<(u64, u64)> = self.free.iter().map(|(&s, &c)| (s, c)).collect();
        extents.extend(self.allocations.iter().map(|(&s, a)| (s, a.count)));
        extents.extend(self.freed_since_map.iter().copied());
        extents.sort_unstable();
        for pair in extents.windows(2) {
            assert!(
                pair[0].0 + pair[0].1 <= pair[1].0,
                "overlapping extents {pair:?}"
            );
        }
        let allocated: u64 = self.allocations.values().map(|a| a.count).sum();
        assert_eq!(allocated, self.allocated_pages);
    }
}
