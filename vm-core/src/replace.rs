//! Replacement: the clock (second chance) over the frames of the
//! real-memory budget, choosing victims in batches, writing dirty pages
//! back in disk order (each transfer hinting at the next), and releasing
//! victims' memory in one batch; and the write-back that `clean` and
//! `flush` use. Every function here runs with the monitor held.

use crate::access::backoff;
use crate::error::VmError;
use crate::monitor::Monitor;
use crate::space::AddressSpace;
use crate::state::{
    DIRTY, ON_DISK, READ_ONLY, REFERENCED, TAG_ABSENT, TAG_LOCKED, TAG_RESIDENT, Word,
};
use runtable::PageNumber;

/// Most victims one eviction batch takes.
const EVICTION_BATCH_MAX: u64 = 64;

impl AddressSpace {
    /// Monitor held on entry and exit.
    ///
    /// Frees a batch of frames with the clock; dirty victims are written back
    /// first (with seek-ahead toward `incoming`).
    pub(crate) fn evict_batch(&self, monitor: &mut Monitor, incoming: u64) -> Result<(), VmError> {
        let victims = self.select_victims(monitor, incoming)?;
        self.write_back_and_release(monitor, victims, Some(incoming))
    }

    /// Monitor held on entry and exit.
    ///
    /// Chooses up to a batch of victims with the clock (second chance;
    /// pinned and latched pages are passed over) and takes their exclusive
    /// latches.
    pub(crate) fn select_victims(
        &self,
        monitor: &mut Monitor,
        incoming: u64,
    ) -> Result<Vec<(u64, Word)>, VmError> {
        let states = self.states();
        let budget = monitor.budget();
        if monitor.volume.is_none() {
            return Err(VmError::CantAllocateReal {
                pages: 1,
                allocated: monitor.allocated_pages,
                budget,
            });
        }
        let want = (budget / 16).clamp(1, EVICTION_BATCH_MAX);
        let mut victims: Vec<(u64, Word)> = Vec::with_capacity(want as usize);
        let mut scanned = 0u64;
        while (victims.len() as u64) < want && scanned < 2 * budget + 1 {
            let frame = monitor.hand;
            monitor.hand = (monitor.hand + 1) % budget as usize;
            scanned += 1;
            let Some(page) = monitor.frames[frame] else {
                continue;
            };
            if monitor.pins.contains_key(&page) {
                continue;
            }
            let word = states.load(page);
            if word.tag() != TAG_RESIDENT {
                continue;
            }
            if word.has(REFERENCED) {
                states.clear_flags(page, REFERENCED);
                continue;
            }
            if let Ok(word) = states.try_lock_resident(page) {
                victims.push((page, word));
            }
        }
        if victims.is_empty() {
            return Err(VmError::AllPinned {
                page: PageNumber(incoming),
                budget,
            });
        }
        Ok(victims)
    }

    /// Monitor held on entry and exit.
    ///
    /// The disk address of the first dirty victim in disk order (where the
    /// write-backs will start).
    pub(crate) fn first_write_back(
        &self,
        monitor: &Monitor,
        victims: &[(u64, Word)],
    ) -> Option<runtable::DiskAddr> {
        let volume = monitor.volume.as_ref()?;
        victims
            .iter()
            .filter(|(_, w)| w.has(DIRTY))
            .filter_map(|&(p, _)| volume.translate(PageNumber(p)).ok())
            .min()
    }

    /// Monitor held on entry and exit.
    ///
    /// Writes back the dirty `victims` in disk order — each transfer
    /// hinting at the next, the last at `toward` if that page will be read
    /// — then releases all of them in one batch. On a write failure every
    /// victim stays resident with its state, and the error is returned.
    pub(crate) fn write_back_and_release(
        &self,
        monitor: &mut Monitor,
        mut victims: Vec<(u64, Word)>,
        toward: Option<u64>,
    ) -> Result<(), VmError> {
        let states = self.states();
        // Write back the dirty victims in disk order, each transfer hinting
        // at the next one and the last at the page about to be read (if it
        // will be read). On failure every victim stays resident and keeps
        // its state.
        let volume = monitor.volume.as_ref().expect("checked above");
        let mut dirty: Vec<(runtable::DiskAddr, usize)> = Vec::with_capacity(victims.len());
        for (i, &(page, word)) in victims.iter().enumerate() {
            if !word.has(DIRTY) {
                continue;
            }
            match volume.translate(PageNumber(page)) {
                Ok(disk) => dirty.push((disk, i)),
                Err(e) => {
                    for &(p, w) in &victims {
                        states.unlock(p, TAG_RESIDENT, w.flags());
                    }
                    return Err(e.into());
                }
            }
        }
        dirty.sort_unstable();
        let incoming_read = toward
            .filter(|&p| p < self.virtual_pages && states.load(p).has(ON_DISK))
            .and_then(|p| volume.translate(PageNumber(p)).ok());
        for k in 0..dirty.len() {
            let (disk, i) = dirty[k];
            let (page, word) = victims[i];
            let target = dirty.get(k + 1).map(|&(d, _)| d).or(incoming_read);
            let hint = target
                .filter(|d| d.drive == disk.drive && self.seek_ahead)
                .map(|d| d.page);
            // SAFETY: we hold the exclusive latch on `page`.
            let bytes = unsafe { self.region.page(page) };
            if let Err(source) = volume.channel().write(disk.drive, disk.page, bytes, hint) {
                for &(p, w) in &victims {
                    states.unlock(p, TAG_RESIDENT, w.flags());
                }
                return Err(VmError::Io {
                    page: PageNumber(page),
                    disk,
                    source,
                });
            }
            monitor.counters.page_outs += 1;
            victims[i].1 = Word((word.0 & !DIRTY) | ON_DISK);
        }
        victims.sort_unstable_by_key(|&(p, _)| p);
        let mut runs: Vec<(u64, u64)> = Vec::with_capacity(victims.len());
        for &(page, _) in &victims {
            match runs.last_mut() {
                Some((start, count)) if *start + *count == page => *count += 1,
                _ => runs.push((page, 1)),
            }
        }
        if self.region.release_runs(&runs).is_err() {
            // The memory stays committed; zero it by hand so that a later
            // zero-fill fault still reads zeros.
            for &(page, _) in &victims {
                // SAFETY: we hold the exclusive latch on every victim.
                unsafe { self.region.page_mut(page) }.fill(0);
            }
        }
        for &(page, word) in &victims {
            states.unlock(page, TAG_ABSENT, word.flags() & (ON_DISK | READ_ONLY));
            monitor.remove_frame(page);
            monitor.counters.evictions += 1;
        }
        Ok(())
    }

    /// Monitor held on entry and exit.
    ///
    /// Writes back the resident, changed pages of `[start, end)`; they stay
    /// resident. A no-op without backing.
    pub(crate) fn write_back_range(
        &self,
        monitor: &Monitor,
        start: u64,
        end: u64,
    ) -> Result<(), VmError> {
        if monitor.volume.is_none() {
            return Ok(());
        }
        for page in start..end {
            if monitor.frame_of.contains_key(&page) {
                self.write_back(monitor, page)?;
            }
        }
        Ok(())
    }

    /// Monitor held on entry and exit.
    ///
    /// Writes `page` back if it is resident and dirty.
    pub(crate) fn write_back(&self, monitor: &Monitor, page: u64) -> Result<(), VmError> {
        let states = self.states();
        if !states.load(page).has(DIRTY) {
            return Ok(());
        }
        let mut spins = 0;
        // A writer's latch is short; a held exclusive guard makes the page
        // busy, which is reported rather than waited for.
        let word = loop {
            match states.try_share(page) {
                Ok(word) => break word,
                Err(word) if word.tag() == TAG_LOCKED && spins < 1000 => backoff(&mut spins),
                Err(_) => {
                    return Err(VmError::PageBusy {
                        page: PageNumber(page),
                    });
                }
            }
        };
        let volume = monitor.volume.as_ref().expect("write_back needs a volume");
        let result = if word.has(DIRTY) {
            let disk = volume.translate(PageNumber(page))?;
            // SAFETY: we hold a shared latch on `page` until `unshare`.
            let bytes = unsafe { self.region.page(page) };
            match volume.channel().write(disk.drive, disk.page, bytes, None) {
                Ok(()) => {
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
        } else {
            Ok(())
        };
        states.unshare(page);
        result
    }
}
