//! The reclaim list of transparent mode: clean copies of recently evicted
//! pages, kept in real memory so that a page the clock let go too early
//! comes back without a transfer.
//!
//! # Why
//!
//! A plain load sets no reference bit (there is no software on a resident
//! hit), and this machine's kernel gives a process no view of the
//! hardware's accessed bits (no `page_idle`; `pagemap` has none). Without
//! them the clock replaces pages in fault order, and a popular page is
//! evicted as soon as an unpopular one: Zipf reads through plain loads
//! made 23% more page-ins than through the copying API (`bench
//! out-of-core`). VAX/VMS met the same machine limit with a FIFO resident
//! set and a second-chance list of freed pages in memory, and 4.3BSD on
//! the VAX by reclaiming pages from its free list: a page touched again
//! while on the list is *reclaimed* — a fault, but no disk read — and set
//! referenced. This is that list.
//!
//! # What it holds
//!
//! A quarter of the real-memory budget is set aside as slots (the clock's
//! frames are the rest, so the VM still holds at most its budget). When a
//! victim's memory is given back, its bytes are copied into a slot first
//! (clean or just written back: the copy is what a fault would read). A
//! fault on an absent page whose copy is on the list installs the copy
//! (`UFFDIO_COPY` from the slot) instead of reading the drive. The list is
//! FIFO; the oldest copy is dropped for a new one.
//!
//! An entry exists only for an absent page: any other way a page comes in
//! (a cluster read, read-ahead, the seed's service) forgets its entry, and
//! so do `free`, `kill` and `DontNeed` (the bytes may not be the page's
//! contents any more). Copies are made under the monitor, while the victim
//! is latched and write-protected (no store can change it), so a slot is
//! never filled by two evictions at once and no fault finds an entry
//! before its bytes are there. A slot taken by a fault belongs to that
//! fault (which copies from it without the monitor) until it gives the
//! slot back.

use crate::page_map::PageMap;
use std::collections::VecDeque;

/// Which slots (`AddressSpace::reclaim_slots`) hold which pages' copies,
/// and in what order.
#[derive(Debug)]
pub(crate) struct Reclaim {
    /// Slots on the list.
    count: u32,
    /// (m) Page → slot holding its copy.
    entries: PageMap<u32>,
    /// (m) Copies in the order they were made (entries that were taken or
    /// forgotten since are skipped when met).
    order: VecDeque<(u64, u32)>,
    /// (m) Slots holding nothing.
    free: Vec<u32>,
    /// (m) Copies kept, and of them reclaimed, in the current window.
    window: (u32, u32),
    /// (m) One victim in `stride` has its copy kept (1: every one).
    stride: u32,
    /// (m) Victims passed over since the last copy kept.
    skipped: u32,
}

/// Copies a window of the list's usefulness counts.
const WINDOW: u32 = 4096;
/// Below one reclaim in this many copies, copies are not worth their
/// cost (a `memcpy` of the page under the monitor): only one victim in
/// [`SAMPLED_STRIDE`] is copied, to keep watching.
const USEFUL_RATE: u32 = 32;
const SAMPLED_STRIDE: u32 = 16;

impl Reclaim {
    /// A list of `count` slots.
    pub(crate) fn new(count: u32) -> Reclaim {
        Reclaim {
            count,
            entries: PageMap::with_capacity_and_hasher(count as usize, Default::default()),
            order: VecDeque::with_capacity(count as usize),
            free: (0..count).rev().collect(),
            window: (0, 0),
            stride: 1,
            skipped: 0,
        }
    }

    /// Slots on the list.
    pub(crate) fn capacity(&self) -> u64 {
        u64::from(self.count)
    }

    /// A slot for a copy of `page` (being evicted, latched by the caller,
    /// who fills the slot before letting the page go): a free one, or the
    /// oldest copy's. `None` when every slot is taken by a fault in flight,
    /// or when copies have not been worth keeping lately (fewer than one
    /// in [`USEFUL_RATE`] reclaimed over the last window: a scan, uniform
    /// reads over far more than the budget) and this victim is not one of
    /// the sampled.
    pub(crate) fn reserve(&mut self, page: u64) -> Option<u32> {
        self.forget(page);
        self.skipped += 1;
        if self.skipped < self.stride {
            return None;
        }
        self.skipped = 0;
        self.window.0 += 1;
        if self.window.0 == WINDOW {
            let useful = self.window.1 * USEFUL_RATE >= WINDOW;
            self.stride = if useful { 1 } else { SAMPLED_STRIDE };
            self.window = (0, 0);
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => loop {
                let (old, slot) = self.order.pop_front()?;
                if self.entries.get(&old) == Some(&slot) {
                    self.entries.remove(&old);
                    break slot;
                }
            },
        };
        self.entries.insert(page, slot);
        self.order.push_back((page, slot));
        Some(slot)
    }

    /// Takes `page`'s copy off the list: its slot belongs to the caller
    /// until [`Reclaim::give_back`].
    pub(crate) fn take(&mut self, page: u64) -> Option<u32> {
        let slot = self.entries.remove(&page)?;
        self.window.1 += 1;
        Some(slot)
    }

    /// Returns a slot taken with [`Reclaim::take`] (or reserved and not
    /// filled) to the free slots.
    pub(crate) fn give_back(&mut self, slot: u32) {
        self.free.push(slot);
    }

    /// Drops `page`'s copy, if any.
    pub(crate) fn forget(&mut self, page: u64) {
        if let Some(slot) = self.entries.remove(&page) {
            self.free.push(slot);
        }
    }

    /// Drops the copies of the pages of `[start, end)`.
    pub(crate) fn forget_range(&mut self, start: u64, end: u64) {
        if end - start <= self.entries.len() as u64 {
            for page in start..end {
                self.forget(page);
            }
        } else {
            let free = &mut self.free;
            self.entries.retain(|&page, &mut slot| {
                let keep = !(start..end).contains(&page);
                if !keep {
                    free.push(slot);
                }
                keep
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_copy_makes_room_and_taken_slots_are_never_reused() {
        let mut list = Reclaim::new(2);
        let a = list.reserve(10).unwrap();
        let b = list.reserve(11).unwrap();
        assert_ne!(a, b);
        // Full: 10's copy, the oldest, goes.
        let c = list.reserve(12).unwrap();
        assert_eq!(c, a);
        assert_eq!(list.take(10), None);
        // 11 is taken by a fault: its slot is not given to 13, and with
        // 12's the only one left, 12's goes.
        assert_eq!(list.take(11), Some(b));
        assert_eq!(list.reserve(13), Some(c));
        assert_eq!(list.take(12), None);
        // Both slots busy (11 taken, 13 listed): 14 takes 13's.
        assert_eq!(list.reserve(14), Some(c));
        list.give_back(b);
        assert_eq!(list.reserve(15), Some(b));
        list.forget_range(0, 100);
        assert_eq!(list.take(14), None);
        assert_eq!(list.take(15), None);
    }

    #[test]
    fn copies_that_are_not_reclaimed_are_sampled_and_come_back_when_useful() {
        let mut list = Reclaim::new(8);
        // A window of copies none of which is reclaimed: then one in 16.
        for page in 0..u64::from(WINDOW) {
            assert!(list.reserve(page).is_some());
        }
        let kept = (0..1600u64)
            .filter(|p| list.reserve(10_000 + p).is_some())
            .count();
        assert_eq!(kept, 100);
        // Sampled copies that are reclaimed: every victim again after a
        // window.
        let mut page = 20_000u64;
        for _ in 0..2 * SAMPLED_STRIDE * WINDOW {
            if list.reserve(page).is_some() {
                let slot = list.take(page).unwrap();
                list.give_back(slot);
            }
            page += 1;
            if list.stride == 1 {
                break;
            }
        }
        assert_eq!(
            list.stride, 1,
            "useful copies did not bring every victim back"
        );
        assert!(list.reserve(page).is_some() && list.reserve(page + 1).is_some());
    }
}
