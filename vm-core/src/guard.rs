//! Page guards: [`PageRef`] (a shared latch) and [`PageMut`] (the exclusive
//! latch) on one resident page, released when dropped. Taken by
//! `AddressSpace::page` and `AddressSpace::page_mut` (module `access`).

use crate::space::AddressSpace;
use crate::state::{DIRTY, REFERENCED, TAG_RESIDENT};

/// A shared guard on one resident page; see [`AddressSpace::page`].
pub struct PageRef<'a> {
    pub(crate) vm: &'a AddressSpace,
    pub(crate) page: u64,
}

impl std::ops::Deref for PageRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the guard holds a shared latch on the page for its life.
        unsafe { self.vm.region.page(self.page) }
    }
}

impl Drop for PageRef<'_> {
    fn drop(&mut self) {
        self.vm.states().unshare(self.page);
    }
}

/// An exclusive guard on one resident page; see [`AddressSpace::page_mut`].
pub struct PageMut<'a> {
    pub(crate) vm: &'a AddressSpace,
    pub(crate) page: u64,
    pub(crate) flags: u64,
}

impl std::ops::Deref for PageMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the guard holds the exclusive latch for its life.
        unsafe { self.vm.region.page(self.page) }
    }
}

impl std::ops::DerefMut for PageMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: the guard holds the exclusive latch for its life, and
        // `&mut self` makes this the only slice.
        unsafe { self.vm.region.page_mut(self.page) }
    }
}

impl Drop for PageMut<'_> {
    fn drop(&mut self) {
        self.vm
            .states()
            .unlock(self.page, TAG_RESIDENT, self.flags | DIRTY | REFERENCED);
    }
}
