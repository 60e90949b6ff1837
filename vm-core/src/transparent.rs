//! Transparent mode: plain loads and stores into the single address space,
//! paged by the VM ([`VmConfig::transparent`](crate::VmConfig::transparent)).
//!
//! The region is registered with a `userfaultfd` in SIGBUS mode
//! (`sys::uffd`). A load of an absent page raises SIGBUS in the thread that
//! made it, and that thread serves the fault itself (`sys::sigbus`) with
//! the copying API's fault service — same queue order, seek-ahead hint,
//! budget, clock and advice — which installs the page write-protected
//! (`UFFDIO_COPY`). The first store to a page is then a write-protect
//! fault, served by marking the page dirty and lifting the protection:
//! dirty tracking without scanning. Eviction and write-back protect a
//! page *before* reading it out, and release it only after the write, so a
//! store that comes in between faults and waits for the page's latch, and
//! nothing stored is lost. Each page's state word carries `WRITABLE`
//! exactly when the kernel's page is not write-protected (and then the
//! page is dirty).
//!
//! # Safe access: views
//!
//! [`AddressSpace::view`] gives `&[T]` and [`AddressSpace::view_mut`]
//! `&mut [T]` over an interval (`T: bytemuck::Pod`, so any bytes are a
//! valid `T`). Rust's aliasing rules are kept by a registry of live views
//! and page guards: a shared view excludes writers (copying-API writes,
//! `page_mut` guards, exclusive views, `free`, `kill`, protection and
//! change-marking of its pages); an exclusive view excludes every other
//! access to its pages. A refused access is a [`VmError::ViewConflict`].
//! In transparent mode every copying-API access checks the registry under
//! a read lock (a few nanoseconds; the copying API is not what this mode is
//! for); outside it nothing changes.
//!
//! # Raw pointers
//!
//! [`AddressSpace::transparent_ptr`] gives the address of a [`VAddr`] for
//! FFI. The pointer is valid for the life of the address space (a pointer
//! stored in the VM stays valid as long as the VM lives). Dereferencing it
//! is `unsafe`, with this contract:
//!
//! - The page must be allocated; a load or store outside every interval,
//!   or a store into a read-only interval, is fatal (the process prints the
//!   address and aborts, as a segmentation fault would end it).
//! - An I/O error while serving the fault is fatal too, as a failed read of
//!   an `mmap`ped file raises a fatal SIGBUS.
//! - Do not alias a live view or guard in a way Rust's rules forbid.
//! - System calls do not fault pages in for you: the kernel's own access
//!   to an absent page, and its *store* into a page not yet stored to
//!   (write-protected), is refused with `EFAULT` rather than served (SIGBUS
//!   mode serves user-mode faults only). So `file.read(&mut view[..])` may
//!   fail with `EFAULT`; `file.write(&view[..])` may too, for absent
//!   pages. Copy through a buffer of your own, or use the copying API
//!   (`read`/`write`, [`VmFile`](crate::VmFile)).
//! - Do not `mlock` the region: the kernel then refuses to release pages,
//!   and a page it will not release cannot be paged.
//! - Do not touch VM memory inside your own signal handler, inside a
//!   global allocator, or on a page this thread holds a guard on: the fault
//!   service takes locks and allocates.
//!
//! # What the VM reads while a view lives
//!
//! Write-back reads a page's bytes while an exclusive view of it may live.
//! It protects the page first, so a store meanwhile faults and waits for
//! the write-back's latch: the bytes do not change under the read. (Rust's
//! model would call the `&[u8]` the transfer is given an alias of the
//! view's `&mut [T]`; the machine sees no concurrent access.)
//!
//! # Signals and `fork`
//!
//! The process's SIGBUS handler is installed by the first transparent VM;
//! a SIGBUS at any other address, or one that is not a fault's
//! (`BUS_ADRERR`) — sent by a process, a memory error — goes to the
//! handler installed before it (or kills the process as the default
//! would). A thread that blocks SIGBUS and then touches an absent page is
//! killed by the kernel. A fault that serving cannot end (the same address
//! faulting 10,000 times in a row) is fatal with a message, not a hang.
//! Dropping a VM while another thread still touches its memory through a
//! raw pointer is undefined behaviour (views borrow the VM, so safe code
//! cannot).
//!
//! After `fork`, the child has no VM region at all (it is mapped
//! `MADV_DONTFORK`): a load or store through a pointer into the VM in the
//! child is a SIGSEGV, never a silent read of zeros where pages were
//! absent; the child has none of the VM's threads either. Exec or exit in
//! the child; the parent's VM is unaffected.
//!
//! # Reference bits
//!
//! A plain load sets no reference bit (there is no software on the hit
//! path): the clock sees a page referenced when it faults in, and pages
//! touched only by plain loads since then age in fault order — second
//! chance on fault order, as on a VAX without reference bits. The copying
//! API's hits still set it.

use crate::error::VmError;
use crate::fault::queue::Latch;
use crate::space::AddressSpace;
use crate::state::{DIRTY, ExclusiveLatch, READ_ONLY, REFERENCED, TAG_RESIDENT, WRITABLE};
use crate::views::{AccessGuard, ViewEntry, conflict};
use crate::vocabulary::VAddr;
use bytemuck::Pod;
use runtable::Interval;
use std::marker::PhantomData;

impl AddressSpace {
    /// Whether plain loads and stores reach this address space.
    pub fn is_transparent(&self) -> bool {
        self.region.is_transparent()
    }

    /// In transparent mode, whether the kernel lets this VM trap faults of
    /// user code only (an unprivileged process gets `UFFD_USER_MODE_ONLY`).
    /// Nothing changes for plain loads and stores; a system call given a
    /// pointer to an absent page fails with `EFAULT` either way.
    pub fn is_transparent_user_mode_only(&self) -> bool {
        self.region.user_mode_only()
    }

    /// In transparent mode, checks that an access to `interval` (`write`
    /// for a change) conflicts with no live view or guard, and returns the
    /// registry's read lock to hold across the access. Outside transparent
    /// mode, nothing (no cost).
    #[inline]
    pub(crate) fn check_views(
        &self,
        interval: Interval,
        write: bool,
    ) -> Result<AccessGuard<'_>, VmError> {
        let Some(views) = &self.views else {
            return Ok(None);
        };
        self.end_of(interval)?;
        let entries = views.entries.read();
        conflict(&entries, interval, write)?;
        Ok(Some(entries))
    }

    /// Registers a view or guard over `interval` (transparent mode; `None`
    /// otherwise), refusing one that conflicts with a live one.
    pub(crate) fn register_view(
        &self,
        interval: Interval,
        exclusive: bool,
    ) -> Result<Option<u64>, VmError> {
        self.register_view_checked(interval, exclusive, || Ok(()))
    }

    /// [`AddressSpace::register_view`], with `check` run under the
    /// registry's lock first (so nothing that the registry excludes —
    /// `free`, `make_read_only` — comes between the check and the entry).
    fn register_view_checked(
        &self,
        interval: Interval,
        exclusive: bool,
        check: impl FnOnce() -> Result<(), VmError>,
    ) -> Result<Option<u64>, VmError> {
        let Some(views) = &self.views else {
            return Ok(None);
        };
        let mut entries = views.entries.write();
        conflict(&entries, interval, exclusive)?;
        check()?;
        let id = views
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        entries.push(ViewEntry {
            interval,
            exclusive,
            id,
        });
        Ok(Some(id))
    }

    /// Ends the view or guard `id` registered.
    pub(crate) fn unregister_view(&self, id: Option<u64>) {
        if let (Some(views), Some(id)) = (&self.views, id) {
            views.entries.write().retain(|e| e.id != id);
        }
    }

    /// Makes the latched `page` ready for this thread's stores and returns
    /// the flags its release sets: dirty and referenced, and — in
    /// transparent mode, where its protection is lifted here if it is
    /// still protected — writable.
    pub(crate) fn prepare_store(&self, latch: &ExclusiveLatch<'_>) -> Result<u64, VmError> {
        if !self.region.is_transparent() {
            return Ok(DIRTY | REFERENCED);
        }
        if !latch.has_now(WRITABLE) {
            self.region.set_write_protect(latch.page(), 1, false)?;
        }
        Ok(DIRTY | REFERENCED | WRITABLE)
    }

    /// Ends a store's exclusive latch with the flags [`prepare_store`]
    /// gave. A page made read-only while it was held (a `make_read_only`
    /// that could not latch it) is protected again first, so plain stores
    /// cannot land in it.
    ///
    /// [`prepare_store`]: AddressSpace::prepare_store
    pub(crate) fn finish_store(&self, latch: ExclusiveLatch<'_>, set: u64) {
        if set & WRITABLE != 0 && latch.has_now(READ_ONLY) {
            self.release_protected(latch, set, true);
            return;
        }
        latch.release(TAG_RESIDENT, set, 0);
    }

    /// A store refused as a write-protect fault, said with the reason where
    /// the page's maximum protection is read (a file mapping's, a page past
    /// its file's end, `restrict`): the process is about to abort with it.
    /// Monitor not held on entry or exit.
    fn why_refused(&self, e: VmError) -> VmError {
        if let VmError::WriteProtect { page } = e
            && let Some((interval, why)) = self
                .lock_monitor()
                .files
                .read_only_max_in(page.0, page.0 + 1)
        {
            return VmError::AboveMaximumProtection { interval, why };
        }
        e
    }

    /// Ends the exclusive latch of a store that is refused (the page is
    /// read-only): a page installed writable for it is protected again, so
    /// no plain store lands in it. Referenced, and not dirty unless it was.
    pub(crate) fn refuse_store(&self, latch: ExclusiveLatch<'_>) {
        let writable = latch.has_now(WRITABLE);
        self.release_protected(latch, REFERENCED, writable);
    }

    /// Releases `latch` with `set` and the page protected: protected here
    /// if the kernel's page is `writable`. Where protecting fails the page
    /// stays writable, and is then at least dirty (whatever is stored is
    /// written back).
    fn release_protected(&self, latch: ExclusiveLatch<'_>, set: u64, writable: bool) {
        if writable
            && self
                .region
                .set_write_protect(latch.page(), 1, true)
                .is_err()
        {
            latch.release(TAG_RESIDENT, set | DIRTY | WRITABLE, 0);
            return;
        }
        latch.release(TAG_RESIDENT, set & !WRITABLE, WRITABLE);
    }

    /// Write-protects those of `pages` (latched by the caller, shared or
    /// exclusive) that are writable, by runs of consecutive pages, and
    /// clears their `WRITABLE`: a store after this faults and waits for the
    /// caller's latch. Called before a page's bytes are read out to be
    /// written back. A no-op outside transparent mode.
    pub(crate) fn protect_for_write_back(
        &self,
        pages: impl Iterator<Item = u64>,
    ) -> Result<(), VmError> {
        if !self.region.is_transparent() {
            return Ok(());
        }
        let states = self.states();
        let mut writable: Vec<u64> = pages.filter(|&p| states.load(p).has(WRITABLE)).collect();
        writable.sort_unstable();
        let mut at = 0;
        while at < writable.len() {
            let first = writable[at];
            let run = writable[at..]
                .iter()
                .enumerate()
                .take_while(|&(k, &p)| p == first + k as u64)
                .count();
            if let Err(e) = self.region.set_write_protect(first, run as u64, true) {
                // Part of the run may be protected now: unprotect it all
                // again, so that the words stay true, and report.
                let _ = self.region.set_write_protect(first, run as u64, false);
                return Err(e);
            }
            for &page in &writable[at..at + run] {
                states.clear_flags(page, WRITABLE);
            }
            at += run;
        }
        Ok(())
    }

    /// Monitor held on entry and exit (transparent mode).
    ///
    /// Protects the writable resident pages of `interval` and clears
    /// `clear` on them, each under a shared latch (which keeps writers out;
    /// readers and shared guards may stay). A page latched exclusively by
    /// someone else is waited for a while (a store's latch is short); one
    /// held longer (a `page_mut` guard) is left to its holder, whose
    /// release protects it if it is read-only by then ([`finish_store`]).
    ///
    /// [`finish_store`]: AddressSpace::finish_store
    pub(crate) fn protect_resident(&self, interval: Interval, clear: u64) -> Result<(), VmError> {
        if !self.region.is_transparent() {
            return Ok(());
        }
        let states = self.states();
        for page in interval.page.0..interval.end().0 {
            let mut spins = 0u32;
            loop {
                match states.try_share_latch(page) {
                    Ok(latch) => {
                        self.protect_for_write_back(std::iter::once(page))?;
                        states.clear_flags(page, clear);
                        drop(latch);
                        break;
                    }
                    Err(word) if word.tag() == crate::state::TAG_ABSENT => break,
                    // Held exclusively for long (a `page_mut` guard): its
                    // release protects it if it is read-only by then
                    // (`finish_store`), and a change it makes is a change.
                    Err(_) if spins >= 1_000 => break,
                    Err(_) => crate::state::backoff(&mut spins),
                }
            }
        }
        Ok(())
    }

    /// Serves a plain load (`write == Some(false)`) or store of this
    /// thread at the machine address `addr` in the region, which faulted:
    /// the page comes in (write-protected for a load), or a store's page
    /// is marked dirty and its protection lifted. Called from the SIGBUS
    /// handler; monitor not held.
    pub(crate) fn serve_plain_access(
        &self,
        addr: usize,
        write: Option<bool>,
    ) -> Result<(), VmError> {
        let offset = addr - self.region.base() as usize;
        let page = (offset / self.page_size) as u64;
        if page >= self.virtual_pages {
            return Err(self.outside(VAddr(offset as u64)));
        }
        no_progress_check(addr)?;
        // Where the machine does not say: a fault on a resident page can
        // only be a store to a protected one (unless the page came in
        // meanwhile, or is read-only: then taken for a load, and a store
        // faults again until the check above stops it).
        let store = match write {
            Some(store) => store,
            None => {
                let word = self.states().load(page);
                word.tag() != crate::state::TAG_ABSENT && !word.has(READ_ONLY)
            }
        };
        if !store {
            self.share(page)?;
            self.states().unshare(page);
            return Ok(());
        }
        let was_absent = self.states().load(page).tag() == crate::state::TAG_ABSENT;
        let latch = self
            .latch_for_write(page, Latch::Exclusive)
            .map_err(|e| self.why_refused(e))?;
        // A page that was resident when the store faulted is protected,
        // whatever its word says: unprotected outright. One that was absent
        // and came in writable for this store (zeros installed so) needs
        // nothing more.
        let installed_writable = was_absent && latch.has_now(WRITABLE);
        if !installed_writable && let Err(e) = self.region.set_write_protect(page, 1, false) {
            self.refuse_store(latch);
            return Err(e);
        }
        self.finish_store(latch, DIRTY | REFERENCED | WRITABLE);
        Ok(())
    }

    /// The machine address of `addr` in transparent mode, for FFI. See the
    /// module docs (`transparent`) for the contract a dereference must
    /// keep; the pointer itself stays valid for the life of the address
    /// space.
    pub fn transparent_ptr(&self, addr: VAddr) -> Result<*mut u8, VmError> {
        if !self.region.is_transparent() {
            return Err(not_transparent());
        }
        if addr.0 >= self.virtual_pages * self.page_size as u64 {
            return Err(self.outside(addr));
        }
        // SAFETY: in bounds (checked above) of the region's mapping.
        Ok(unsafe { self.region.base().add(addr.0 as usize) })
    }

    /// A shared view of `interval` as a slice of `T` (as many whole `T` as
    /// its pages hold): plain loads, faulted in by the VM. Transparent mode
    /// only. While it lives, writes to the interval are refused.
    pub fn view<T: Pod>(&self, interval: Interval) -> Result<View<'_, T>, VmError> {
        let (ptr, len, id) = self.open_view::<T>(interval, false)?;
        Ok(View {
            space: self,
            ptr,
            len,
            id,
            _element: PhantomData,
        })
    }

    /// An exclusive view of `interval` as a mutable slice of `T`: plain
    /// loads and stores, paged by the VM, tracked dirty by page. Transparent
    /// mode only; the interval must be writable. While it lives, every other
    /// access to the interval is refused.
    pub fn view_mut<T: Pod>(&self, interval: Interval) -> Result<ViewMut<'_, T>, VmError> {
        let (ptr, len, id) = self.open_view::<T>(interval, true)?;
        Ok(ViewMut {
            space: self,
            ptr,
            len,
            id,
            _element: PhantomData,
        })
    }

    fn open_view<T: Pod>(
        &self,
        interval: Interval,
        exclusive: bool,
    ) -> Result<(*mut T, usize, Option<u64>), VmError> {
        if !self.region.is_transparent() {
            return Err(not_transparent());
        }
        if size_of::<T>() == 0 || align_of::<T>() > self.page_size {
            return Err(VmError::BadArgument {
                call: "view",
                reason: format!(
                    "a view needs an element of 1 to {} bytes' alignment and a non-zero size",
                    self.page_size
                ),
            });
        }
        // Checked and entered under the registry's lock (then the
        // monitor's, the order every path takes them in).
        let id = self.register_view_checked(interval, exclusive, || {
            let monitor = self.lock_monitor();
            self.check_allocated(&monitor, interval)?;
            if exclusive {
                let states = self.states();
                if let Some(page) = interval.pages().find(|p| states.load(p.0).has(READ_ONLY)) {
                    return Err(VmError::WriteProtect { page });
                }
            }
            Ok(())
        })?;
        let bytes = interval.count.0 as usize * self.page_size;
        let start = self.address_of(interval.page);
        let ptr = self.transparent_ptr(start)?.cast::<T>();
        Ok((ptr, bytes / size_of::<T>(), id))
    }
}

/// Faults at the same address in a row, by one thread, before the fault
/// is taken for one that serving cannot end (a page the kernel will not
/// let us map, a store the machine does not report as one) and made an
/// error instead of a loop.
const SAME_FAULT_LIMIT: u32 = 10_000;

thread_local! {
    /// (this thread) The last faulting address and how many times in a
    /// row it faulted.
    static LAST_FAULT: std::cell::Cell<(usize, u32)> = const { std::cell::Cell::new((0, 0)) };
}

/// Counts a fault at `addr`; an error when it is the same address
/// [`SAME_FAULT_LIMIT`] times in a row.
fn no_progress_check(addr: usize) -> Result<(), VmError> {
    let repeats = LAST_FAULT
        .try_with(|last| {
            let (at, n) = last.get();
            let n = if at == addr { n + 1 } else { 1 };
            last.set((addr, n));
            n
        })
        .unwrap_or(1);
    if repeats >= SAME_FAULT_LIMIT {
        return Err(VmError::TransparentUnavailable {
            reason: format!(
                "the access at {addr:#x} faulted {repeats} times in a row without progress"
            ),
        });
    }
    Ok(())
}

fn not_transparent() -> VmError {
    VmError::TransparentUnavailable {
        reason: "this VM was made without transparent mode (VmConfig::transparent)".into(),
    }
}

/// A shared view of an interval as `&[T]`; see [`AddressSpace::view`].
pub struct View<'a, T: Pod> {
    space: &'a AddressSpace,
    ptr: *mut T,
    len: usize,
    id: Option<u64>,
    _element: PhantomData<&'a [T]>,
}

/// An exclusive view of an interval as `&mut [T]`; see
/// [`AddressSpace::view_mut`].
pub struct ViewMut<'a, T: Pod> {
    space: &'a AddressSpace,
    ptr: *mut T,
    len: usize,
    id: Option<u64>,
    _element: PhantomData<&'a mut [T]>,
}

// SAFETY: a view is a borrowed slice of plain data (`Pod`) in memory that
// any thread may load from (faults are served by the thread that makes
// them); the registry keeps it free of conflicting access.
unsafe impl<T: Pod + Sync> Send for View<'_, T> {}
// SAFETY: as above: `&View` gives only `&[T]`.
unsafe impl<T: Pod + Sync> Sync for View<'_, T> {}
// SAFETY: as for `View`; the exclusive view is the only access to its
// pages, as a `&mut [T]` is.
unsafe impl<T: Pod + Send> Send for ViewMut<'_, T> {}
// SAFETY: `&ViewMut` gives only `&[T]`.
unsafe impl<T: Pod + Sync> Sync for ViewMut<'_, T> {}

impl<T: Pod> std::ops::Deref for View<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` is aligned (page-aligned interval), `len` elements
        // lie inside the interval's pages, every bit pattern is a valid `T`
        // (`Pod`), absent pages are faulted in on access, and the registry
        // excludes writers for the view's life.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: Pod> std::ops::Deref for ViewMut<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: as for `View`; the registry excludes every other access.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: Pod> std::ops::DerefMut for ViewMut<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as above; `&mut self` makes this the only slice.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl<T: Pod> Drop for View<'_, T> {
    fn drop(&mut self) {
        self.space.unregister_view(self.id);
    }
}

impl<T: Pod> Drop for ViewMut<'_, T> {
    fn drop(&mut self) {
        self.space.unregister_view(self.id);
    }
}

impl<T: Pod> std::fmt::Debug for View<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").field("len", &self.len).finish()
    }
}

impl<T: Pod> std::fmt::Debug for ViewMut<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewMut").field("len", &self.len).finish()
    }
}

impl AddressSpace {
    /// Puts this address space's region in the process's SIGBUS table
    /// (transparent mode; once, at construction): faults in it are served
    /// by [`serve`] with this address space.
    pub(crate) fn attach_fault_service(self: &std::sync::Arc<Self>) -> Result<(), VmError> {
        self.region
            .attach_fault_handler(std::sync::Arc::as_ptr(self).cast(), serve)
    }
}

/// The SIGBUS handler's entry (`sys::sigbus::Serve`): `space` is the
/// address space that attached itself.
fn serve(space: *const (), addr: usize, write: Option<bool>) -> Result<(), VmError> {
    // SAFETY: `space` was attached by `Vm::new` from the `Arc` that owns
    // the address space, and detached (in the region's drop) before the
    // address space is freed; a fault in its region cannot outlive it
    // unless a raw pointer outlived the VM, which the contract forbids.
    let space = unsafe { &*space.cast::<AddressSpace>() };
    space.serve_plain_access(addr, write)
}
