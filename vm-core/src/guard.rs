//! Page guards: [`PageRef`] (a shared latch) and [`PageMut`] (the exclusive
//! latch) on one resident page, released when dropped. Taken by
//! `AddressSpace::page` and `AddressSpace::page_mut` (module `access`).
//!
//! Each thread keeps a record of the pages its guards hold, so that an
//! access that would wait for the thread's own guard — `write` to a page it
//! holds with `page_mut`, say — is an error instead of a hang.

use crate::space::AddressSpace;
use crate::state::ExclusiveLatch;
use std::cell::RefCell;
use std::marker::PhantomData;

thread_local! {
    /// (this thread) The pages this thread's guards hold: (space, page).
    static HELD: RefCell<Vec<(usize, u64)>> = const { RefCell::new(Vec::new()) };
}

fn note_held(space: usize, page: u64) {
    // During thread teardown the record is gone; such a guard cannot meet
    // its own thread's waits any more.
    let _ = HELD.try_with(|held| held.borrow_mut().push((space, page)));
}

fn note_released(space: usize, page: u64) {
    // During thread teardown the record may be gone already; nothing to do.
    let _ = HELD.try_with(|held| {
        let mut held = held.borrow_mut();
        if let Some(i) = held.iter().rposition(|&h| h == (space, page)) {
            held.swap_remove(i);
        }
    });
}

/// Whether a guard of this thread holds `page` of the space `space`.
pub(crate) fn held_by_this_thread(space: usize, page: u64) -> bool {
    HELD.try_with(|held| held.borrow().contains(&(space, page)))
        .unwrap_or(false)
}

/// A shared guard on one resident page; see [`AddressSpace::page`].
///
/// Not `Send`: the thread that takes a guard drops it (its thread's record
/// of the pages it holds must stay true).
pub struct PageRef<'a> {
    vm: &'a AddressSpace,
    page: u64,
    /// Its entry in the registry of views (transparent mode).
    view: Option<u64>,
    _not_send: PhantomData<*const ()>,
}

impl<'a> PageRef<'a> {
    /// Wraps the shared latch the caller took on `page`.
    pub(crate) fn new(vm: &'a AddressSpace, page: u64, view: Option<u64>) -> PageRef<'a> {
        note_held(vm.space_key(), page);
        PageRef {
            vm,
            page,
            view,
            _not_send: PhantomData,
        }
    }
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
        note_released(self.vm.space_key(), self.page);
        self.vm.states().unshare(self.page);
        self.vm.unregister_view(self.view);
    }
}

/// An exclusive guard on one resident page; see [`AddressSpace::page_mut`].
///
/// Not `Send`, for the same reason as [`PageRef`].
pub struct PageMut<'a> {
    vm: &'a AddressSpace,
    latch: Option<ExclusiveLatch<'a>>,
    /// The flags its release sets (`AddressSpace::prepare_store`).
    set: u64,
    /// Its entry in the registry of views (transparent mode).
    view: Option<u64>,
    _not_send: PhantomData<*const ()>,
}

impl<'a> PageMut<'a> {
    /// Wraps the exclusive latch the caller took and made ready for stores
    /// (`set`: what `AddressSpace::prepare_store` gave).
    pub(crate) fn new(
        vm: &'a AddressSpace,
        latch: ExclusiveLatch<'a>,
        set: u64,
        view: Option<u64>,
    ) -> PageMut<'a> {
        note_held(vm.space_key(), latch.page());
        PageMut {
            vm,
            latch: Some(latch),
            set,
            view,
            _not_send: PhantomData,
        }
    }

    fn page(&self) -> u64 {
        self.latch.as_ref().expect("held until drop").page()
    }
}

impl std::ops::Deref for PageMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the guard holds the exclusive latch for its life.
        unsafe { self.vm.region.page(self.page()) }
    }
}

impl std::ops::DerefMut for PageMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: the guard holds the exclusive latch for its life, and
        // `&mut self` makes this the only slice.
        unsafe { self.vm.region.page_mut(self.page()) }
    }
}

impl Drop for PageMut<'_> {
    fn drop(&mut self) {
        let latch = self.latch.take().expect("held until drop");
        note_released(self.vm.space_key(), latch.page());
        // Set, not stored: flags changed meanwhile under the monitor (a
        // `make_read_only`) stay as they are.
        self.vm.finish_store(latch, self.set);
        self.vm.unregister_view(self.view);
    }
}
