//! The hot path: `read` and `write` at a [`VAddr`], and the page guards'
//! constructors (`page`, `page_mut`).
//!
//! A resident hit latches the page's state word (shared to read, exclusive
//! to write), copies, and unlatches: no monitor, no allocation, no system
//! call — this plays the part of the hardware in the seed. A miss goes to
//! the fault service (`fault`), which returns with the latch taken.

use crate::error::VmError;
use crate::fault::queue::{Latch, Latched};
use crate::guard::{PageMut, PageRef};
use crate::space::AddressSpace;
use crate::state::{DIRTY, READ_ONLY, REFERENCED, TAG_ABSENT, TAG_RESIDENT, Word};
use crate::vocabulary::VAddr;
use runtable::PageNumber;

/// Spins on a latched page before yielding the processor.
const SPINS_BEFORE_YIELD: u32 = 64;

impl AddressSpace {
    #[inline]
    fn page_range(&self, addr: VAddr, len: usize) -> Result<(), VmError> {
        let end = addr.0.checked_add(len as u64);
        if end.is_none_or(|end| end > self.virtual_pages * self.page_size as u64) {
            return Err(VmError::AddressFault {
                addr,
                page: PageNumber(addr.0 / self.page_size as u64),
            });
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

    /// Copies `data` to `addr`, faulting pages in as needed.
    pub fn write(&self, addr: VAddr, data: &[u8]) -> Result<(), VmError> {
        self.page_range(addr, data.len())?;
        let mut done = 0;
        for (page, offset, len) in self.pieces(addr, data.len()) {
            let word = self.lock_exclusive(page)?;
            if word.has(READ_ONLY) {
                self.states().unlock(page, TAG_RESIDENT, word.flags());
                return Err(VmError::WriteProtect {
                    page: PageNumber(page),
                });
            }
            // SAFETY: we hold the exclusive latch on `page` until `unlock`.
            let bytes = unsafe { self.region.page_mut(page) };
            bytes[offset..offset + len].copy_from_slice(&data[done..done + len]);
            self.states()
                .unlock(page, TAG_RESIDENT, word.flags() | DIRTY | REFERENCED);
            done += len;
        }
        Ok(())
    }

    /// Takes a shared latch on `page`, faulting it in first if needed.
    #[inline]
    fn share(&self, page: u64) -> Result<(), VmError> {
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
                Err(_) => backoff(&mut spins),
            }
        }
    }

    /// Takes the exclusive latch on `page`, faulting it in first if needed;
    /// returns the word as it was.
    fn lock_exclusive(&self, page: u64) -> Result<Word, VmError> {
        let states = self.states();
        let mut spins = 0u32;
        loop {
            match states.try_lock_resident(page) {
                Ok(word) => {
                    self.hits.add();
                    return Ok(word);
                }
                Err(word) if word.tag() == TAG_ABSENT => {
                    if let Latched::Taken(word) = self.fault(page, Latch::Exclusive)? {
                        return Ok(word);
                    }
                }
                Err(_) => backoff(&mut spins),
            }
        }
    }

    /// A shared guard on `page`: the page stays resident and unchanged while
    /// the guard lives. Holding it and asking for the same page exclusively
    /// from the same thread waits forever, as a `RwLock` would.
    pub fn page(&self, page: PageNumber) -> Result<PageRef<'_>, VmError> {
        self.page_range(self.address_of(page), self.page_size)?;
        self.share(page.0)?;
        Ok(PageRef {
            vm: self,
            page: page.0,
        })
    }

    /// An exclusive guard on `page`: the page stays resident, and is marked
    /// changed when the guard is dropped.
    pub fn page_mut(&self, page: PageNumber) -> Result<PageMut<'_>, VmError> {
        self.page_range(self.address_of(page), self.page_size)?;
        let word = self.lock_exclusive(page.0)?;
        if word.has(READ_ONLY) {
            self.states().unlock(page.0, TAG_RESIDENT, word.flags());
            return Err(VmError::WriteProtect { page });
        }
        Ok(PageMut {
            vm: self,
            page: page.0,
            flags: word.flags(),
        })
    }
}

/// One step of waiting for a latch: spin a while, then yield.
pub(crate) fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < SPINS_BEFORE_YIELD {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}
