//! The hot path: `read` and `write` at a [`VAddr`], and the page guards'
//! constructors (`page`, `page_mut`).
//!
//! A resident hit latches the page's state word (shared to read, exclusive
//! to write), copies, and unlatches: no monitor, no allocation, no system
//! call — this plays the part of the hardware in the seed. A miss goes to
//! the fault service (`fault`), which returns with the latch taken.

use crate::error::VmError;
use crate::fault::queue::{Latch, Latched};
use crate::guard::{PageMut, PageRef, held_by_this_thread};
use crate::space::AddressSpace;
use crate::state::{ExclusiveLatch, READ_ONLY, SPINS_BEFORE_PARK, TAG_ABSENT, TAG_LOCKED, Word};
use crate::vocabulary::VAddr;
use runtable::{Interval, PageNumber};

impl AddressSpace {
    #[inline]
    fn page_range(&self, addr: VAddr, len: usize) -> Result<(), VmError> {
        let end = addr.0.checked_add(len as u64);
        if end.is_none_or(|end| end > self.virtual_pages * self.page_size as u64) {
            return Err(self.outside(addr));
        }
        Ok(())
    }

    /// The error of an access at `addr`, past the end of the space.
    #[cold]
    pub(crate) fn outside(&self, addr: VAddr) -> VmError {
        VmError::OutsideAddressSpace {
            addr,
            pages: self.virtual_pages,
            page_size: self.page_size,
        }
    }

    /// [`VmError::OutsideAddressSpace`] unless `page` lies in the address
    /// space (checked on the page number: its byte address may not fit in
    /// 64 bits).
    #[inline]
    fn page_in_space(&self, page: PageNumber) -> Result<(), VmError> {
        if page.0 >= self.virtual_pages {
            return Err(self.outside(VAddr(page.0.saturating_mul(self.page_size as u64))));
        }
        Ok(())
    }

    /// Splits `[addr, addr+len)` into (page, offset in page, piece length).
    ///
    /// Hot path: the page size is a power of two, so shifts and masks, not
    /// divisions (a 64-bit division costs more than the rest of a hit).
    #[inline]
    fn pieces(&self, addr: VAddr, len: usize) -> impl Iterator<Item = (u64, usize, usize)> + use<> {
        let page_size = self.page_size;
        let shift = page_size.trailing_zeros();
        let mask = page_size as u64 - 1;
        let mut at = addr.0;
        let end = addr.0 + len as u64;
        std::iter::from_fn(move || {
            (at < end).then(|| {
                let page = at >> shift;
                let offset = (at & mask) as usize;
                let piece = (page_size - offset).min((end - at) as usize);
                at += piece as u64;
                (page, offset, piece)
            })
        })
    }

    /// Copies `buf.len()` bytes at `addr` into `buf`, faulting pages in as
    /// needed.
    pub fn read(&self, addr: VAddr, buf: &mut [u8]) -> Result<(), VmError> {
        self.page_range(addr, buf.len())?;
        // Transparent mode only: no view may hold these pages exclusively.
        let _views = match self.views {
            None => None,
            Some(_) => self.check_views(self.pages_of(addr, buf.len()), false)?,
        };
        let mut done = 0;
        for (page, offset, len) in self.pieces(addr, buf.len()) {
            self.share(page)?;
            // SAFETY: we hold a shared latch on `page` until `unshare` below.
            let bytes = unsafe { self.region.page(page) };
            buf[done..done + len].copy_from_slice(&bytes[offset..offset + len]);
            self.states().unshare(page);
            done += len;
        }
        Ok(())
    }

    /// Copies `data` to `addr`, faulting pages in as needed. A write that
    /// spans pages checks first that every page is allocated and writable,
    /// so that it fails before writing anything rather than halfway (a
    /// concurrent `make_read_only` can still land between the check and the
    /// write of a page; the write is then refused at that page).
    ///
    /// A page the write covers whole is not read from the drive first, even
    /// if it has a copy there: its old contents could only be overwritten
    /// (`VmStats::overwrites` counts these). Write whole, page-aligned
    /// pages where you can — a database page at a time — and an absent page
    /// costs no read.
    pub fn write(&self, addr: VAddr, data: &[u8]) -> Result<(), VmError> {
        self.page_range(addr, data.len())?;
        let pages = self.pages_of(addr, data.len());
        let _views = self.check_views(pages, true)?;
        if pages.count.0 > 1 {
            self.check_writable(pages)?;
        }
        let mut done = 0;
        for (page, offset, len) in self.pieces(addr, data.len()) {
            // A piece that covers its page overwrites it: an absent page
            // comes in without a read.
            let intent = if len == self.page_size {
                Latch::Overwrite
            } else {
                Latch::Exclusive
            };
            let latch = self.latch_for_write(page, intent)?;
            let set = self.prepare_store(&latch)?;
            // SAFETY: `latch` holds the exclusive latch on `page` until it
            // is released below, and the page takes stores now.
            let bytes = unsafe { self.region.page_mut(page) };
            bytes[offset..offset + len].copy_from_slice(&data[done..done + len]);
            self.finish_store(latch, set);
            done += len;
        }
        Ok(())
    }

    /// The pages `[addr, addr + len)` touches (at least one); the range is
    /// checked already.
    #[inline]
    fn pages_of(&self, addr: VAddr, len: usize) -> Interval {
        let shift = self.page_size.trailing_zeros();
        let first = addr.0 >> shift;
        let last = (addr.0 + len.max(1) as u64 - 1) >> shift;
        Interval::new(first, last - first + 1)
    }

    /// Checks that every page of `interval` is allocated and none is
    /// read-only; the error names the first page that is not. Resident
    /// pages are allocated by definition and carry their protection in
    /// their words, so a write over resident pages checks without the
    /// monitor; only a range with an absent page takes it to look at the
    /// allocation map. Monitor not held on entry or exit.
    fn check_writable(&self, interval: Interval) -> Result<(), VmError> {
        let states = self.states();
        let mut any_absent = false;
        for page in interval.pages() {
            let word = states.load(page.0);
            if word.tag() == TAG_ABSENT {
                any_absent = true;
                break;
            }
            if word.has(READ_ONLY) {
                return Err(VmError::WriteProtect { page });
            }
        }
        if !any_absent {
            return Ok(());
        }
        let monitor = self.lock_monitor();
        for page in interval.pages() {
            if monitor.allocation_of(page.0).is_none() {
                return Err(VmError::AddressFault {
                    addr: self.address_of(page),
                    page,
                });
            }
            if states.load(page.0).has(READ_ONLY) {
                return Err(VmError::WriteProtect { page });
            }
        }
        Ok(())
    }

    /// Takes a shared latch on `page`, faulting it in first if needed.
    ///
    /// Hot path: a resident page costs one compare-and-swap here; every
    /// other case (a fault, a latch to wait for) is off the inlined path in
    /// `share_slow`.
    #[inline]
    pub(crate) fn share(&self, page: u64) -> Result<(), VmError> {
        if self.states().try_share(page).is_ok() {
            self.hits.add();
            return Ok(());
        }
        self.share_slow(page)
    }

    /// `share` for a page that was not resident or was latched.
    #[cold]
    #[inline(never)]
    fn share_slow(&self, page: u64) -> Result<(), VmError> {
        let states = self.states();
        let mut spins = 0u32;
        loop {
            match states.try_share(page) {
                Ok(_) => {
                    self.hits.add();
                    return Ok(());
                }
                Err(word) if word.tag() == TAG_ABSENT => {
                    if let Latched::Taken(_) = self.fault(page, Latch::Shared)? {
                        return Ok(());
                    }
                }
                Err(word) => self.wait_for_latch(page, word, &mut spins)?,
            }
        }
    }

    /// Takes the exclusive latch on `page` to write it (`intent` is
    /// [`Latch::Exclusive`], or [`Latch::Overwrite`] for a write of the
    /// whole page), faulting it in first if needed; a read-only page is a
    /// [`VmError::WriteProtect`].
    ///
    /// Protection is checked once: on a resident page right after latching
    /// it; on a page this call faulted in, by the fault service under the
    /// monitor (`latch_after`) — a page brought in without its contents for
    /// an overwrite must not then be refused, or the refusal would leave
    /// zeros in place of its disk copy.
    pub(crate) fn latch_for_write(
        &self,
        page: u64,
        intent: Latch,
    ) -> Result<ExclusiveLatch<'_>, VmError> {
        let states = self.states();
        let mut spins = 0u32;
        loop {
            match states.try_latch_resident_used(page) {
                Ok(latch) => {
                    self.hits.add();
                    if latch.has_now(READ_ONLY) {
                        return Err(VmError::WriteProtect {
                            page: PageNumber(page),
                        });
                    }
                    return Ok(latch);
                }
                Err(word) if word.tag() == TAG_ABSENT => {
                    let checked = intent.overwrites();
                    match self.fault(page, intent)? {
                        Latched::Taken(was) => {
                            let latch = ExclusiveLatch::adopt(states, page, was);
                            if !checked && latch.has_now(READ_ONLY) {
                                self.refuse_store(latch);
                                return Err(VmError::WriteProtect {
                                    page: PageNumber(page),
                                });
                            }
                            return Ok(latch);
                        }
                        Latched::WriteProtected => {
                            return Err(VmError::WriteProtect {
                                page: PageNumber(page),
                            });
                        }
                        Latched::Retry => {}
                    }
                }
                Err(word) => self.wait_for_latch(page, word, &mut spins)?,
            }
        }
    }

    /// One step of waiting for someone else's latch on `page` (seen as
    /// `seen`): spin a while, then park on the word until it changes. A
    /// thread that holds the page itself (a guard) would wait forever: that
    /// is an error instead. Monitor not held.
    #[cold]
    fn wait_for_latch(&self, page: u64, seen: Word, spins: &mut u32) -> Result<(), VmError> {
        *spins += 1;
        if *spins < SPINS_BEFORE_PARK {
            std::hint::spin_loop();
            return Ok(());
        }
        if held_by_this_thread(self.space_key(), page) {
            return Err(VmError::PageHeldByThisThread {
                page: PageNumber(page),
            });
        }
        if seen.coming_in() && self.may_plan_past() {
            // A scan that caught up with its read-ahead: keep the next
            // cluster coming before waiting for this one, and have memory
            // ready for the cluster after it (a huge page zeroed while the
            // drive works, not before the next read starts). Only for a
            // stream: a fault's read-around waited for here would have a
            // chunk committed for a cluster that never comes, the chunk
            // with the fewest pages given back for it (measured: 185 µs a
            // read-around against 64 for a page alone, most of it zeroing
            // huge pages; see `fault::decided`).
            let mut monitor = self.lock_monitor();
            let stream = self.plan_past_in_flight(&mut monitor, page);
            let run = Self::run_max(&monitor);
            drop(monitor);
            self.start_planned();
            if stream {
                self.region.prepare_pool(run);
            }
        }
        // Read by a read a faulting thread started (`fault::inline`):
        // wait for it here and finish it.
        if seen.tag() == TAG_LOCKED && self.help_inline_read(page) {
            *spins = 0;
            return Ok(());
        }
        self.states().wait_for_change(page, seen);
        // Woken (or the word moved on): spin again before the next park.
        *spins = 0;
        Ok(())
    }

    /// A shared guard on `page`: the page stays resident and unchanged while
    /// the guard lives. Asking for the same page exclusively (`page_mut`,
    /// `write`) from the thread that holds the guard is an error
    /// ([`VmError::PageHeldByThisThread`]), not a hang.
    pub fn page(&self, page: PageNumber) -> Result<PageRef<'_>, VmError> {
        self.page_in_space(page)?;
        let view = self.register_view(Interval::new(page.0, 1), false)?;
        if let Err(e) = self.share(page.0) {
            self.unregister_view(view);
            return Err(e);
        }
        Ok(PageRef::new(self, page.0, view))
    }

    /// An exclusive guard on `page`: the page stays resident, and is marked
    /// changed when the guard is dropped. Any other access to the page from
    /// the thread that holds the guard is an error, not a hang.
    pub fn page_mut(&self, page: PageNumber) -> Result<PageMut<'_>, VmError> {
        self.guard_mut(page, Latch::Exclusive)
    }

    /// An exclusive guard taken with `intent`: registered against views,
    /// latched, and ready for stores.
    fn guard_mut(&self, page: PageNumber, intent: Latch) -> Result<PageMut<'_>, VmError> {
        self.page_in_space(page)?;
        let view = self.register_view(Interval::new(page.0, 1), true)?;
        let guard = self
            .latch_for_write(page.0, intent)
            .and_then(|latch| Ok((self.prepare_store(&latch)?, latch)));
        match guard {
            Ok((set, latch)) => Ok(PageMut::new(self, latch, set, view)),
            Err(e) => {
                self.unregister_view(view);
                Err(e)
            }
        }
    }

    /// An exclusive guard on `page` for a caller that will overwrite all of
    /// it: a page that is not resident comes in without being read (no
    /// disk transfer), so its bytes are undefined (zeros, in fact) until
    /// the caller writes them — and whatever the guard holds when it drops
    /// becomes the page's contents. Use it when every byte will be
    /// written; [`AddressSpace::page_mut`] otherwise.
    pub fn page_mut_overwrite(&self, page: PageNumber) -> Result<PageMut<'_>, VmError> {
        self.guard_mut(page, Latch::Overwrite)
    }

    /// What identifies this address space among others in the process (for
    /// the record of the pages a thread holds).
    pub(crate) fn space_key(&self) -> usize {
        self.states.words().as_ptr() as usize
    }
}
