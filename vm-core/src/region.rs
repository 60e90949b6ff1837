//! The machine-dependent part: the reserved address range that holds
//! resident pages, and the lazily committed array of page-state words.
//! All of the crate's mapping calls — and nearly all of its `unsafe` — live
//! here (in the spirit of Mach's and 4.4BSD's `pmap`).
//!
//! # Why the range is mapped read-write, not "no access"
//!
//! The design card reserves the range with no access. We map it
//! `PROT_READ | PROT_WRITE` with `MAP_NORESERVE` instead: a page that was
//! never written, or was released with `MADV_DONTNEED`, costs no memory
//! either way, and read-write avoids one `mprotect` per install and per
//! release — which would also split the mapping into one kernel VMA per
//! resident page and hit `vm.max_map_count` at 65,530 pages. The safe API
//! never touches a page that is not resident (the page-state word says so
//! first), so nothing is lost; when plain pointers into the VM arrive, the
//! range is registered with `userfaultfd` in missing mode, which traps a
//! released page just as `PROT_NONE` would.
//!
//! A resident page sits at `base + page * P`. The region changes residency
//! only by [`Region::page_mut`] (install bytes into a page held exclusively)
//! and [`Region::release`] (give the memory back; the page reads as zeros
//! afterwards).

use crate::VmError;
use rustix::mm::{Advice, MapFlags, ProtFlags};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

/// An anonymous, lazily committed mapping of `len` bytes.
#[derive(Debug)]
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; synchronisation of
// its contents is the page-state protocol's job (see `Region`).
unsafe impl Send for Mapping {}
// SAFETY: as above; shared access goes through the latch protocol.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(len: usize, what: &'static str) -> Result<Mapping, VmError> {
        // SAFETY: a fresh anonymous private mapping at an address the kernel
        // chooses; it aliases no Rust object.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|e| VmError::Map {
            what,
            bytes: len,
            source: e.into(),
        })?;
        let base = NonNull::new(ptr.cast::<u8>()).expect("mmap returned null on success");
        Ok(Mapping { base, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` is our mapping; no reference into it
        // outlives `self` (guards borrow the `Vm` that owns the region).
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// The reserved range of the address space that holds resident pages.
#[derive(Debug)]
pub(crate) struct Region {
    mapping: Mapping,
    page_size: usize,
    pages: u64,
}

impl Region {
    /// Reserves `pages` pages of `page_size` bytes.
    pub(crate) fn reserve(pages: u64, page_size: usize) -> Result<Region, VmError> {
        let len = usize::try_from(pages)
            .ok()
            .and_then(|p| p.checked_mul(page_size))
            .ok_or(VmError::Config {
                field: "virtual_pages",
                reason: format!("{pages} pages of {page_size} bytes overflow the address space"),
            })?;
        Ok(Region {
            mapping: Mapping::new(len, "address-space region")?,
            page_size,
            pages,
        })
    }

    /// Address of the region's first byte.
    pub(crate) fn base(&self) -> *mut u8 {
        self.mapping.base.as_ptr()
    }

    fn page_ptr(&self, page: u64) -> *mut u8 {
        assert!(page < self.pages, "page {page} outside the region");
        // SAFETY: page < pages, so the offset stays inside the mapping.
        unsafe { self.base().add(page as usize * self.page_size) }
    }

    /// The bytes of `page`.
    ///
    /// # Safety
    /// The caller holds a latch on `page` (shared or exclusive) for as long
    /// as the slice lives, so no one writes or releases the page meanwhile.
    pub(crate) unsafe fn page(&self, page: u64) -> &[u8] {
        // SAFETY: in bounds (page_ptr asserts); the caller's latch excludes
        // writers and release for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.page_ptr(page), self.page_size) }
    }

    /// The bytes of `page`, to write.
    ///
    /// # Safety
    /// The caller holds the exclusive latch on `page` for as long as the
    /// slice lives, so this is the only reference to those bytes.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn page_mut(&self, page: u64) -> &mut [u8] {
        // SAFETY: in bounds; the exclusive latch makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.page_ptr(page), self.page_size) }
    }

    /// Gives back the memory of `count` pages from `page`; they read as
    /// zeros afterwards. The caller holds their exclusive latches.
    pub(crate) fn release(&self, page: u64, count: u64) -> Result<(), VmError> {
        assert!(page.checked_add(count).is_some_and(|end| end <= self.pages));
        // SAFETY: the range lies inside our mapping and the caller holds the
        // pages exclusively, so no Rust reference into them exists.
        unsafe {
            rustix::mm::madvise(
                self.page_ptr(page).cast(),
                count as usize * self.page_size,
                Advice::LinuxDontNeed,
            )
        }
        .map_err(|e| VmError::Map {
            what: "release (madvise DONTNEED)",
            bytes: count as usize * self.page_size,
            source: e.into(),
        })
    }
}

/// The page-state words: one `AtomicU64` per virtual page in an anonymous
/// mapping, so untouched words cost nothing and all start at zero.
#[derive(Debug)]
pub(crate) struct StateArray {
    mapping: Mapping,
    len: usize,
}

impl StateArray {
    /// `len` zeroed words.
    pub(crate) fn new(len: u64) -> Result<StateArray, VmError> {
        let len = usize::try_from(len).map_err(|_| VmError::Config {
            field: "virtual_pages",
            reason: "too many pages for this machine".into(),
        })?;
        let bytes = len.checked_mul(8).ok_or(VmError::Config {
            field: "virtual_pages",
            reason: "too many pages for this machine".into(),
        })?;
        Ok(StateArray {
            mapping: Mapping::new(bytes.max(8), "page-state array")?,
            len,
        })
    }

    /// The words.
    pub(crate) fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping holds `len` zero-initialised, 8-byte aligned
        // (page-aligned base) words, valid for the mapping's lifetime which
        // `&self` bounds; `AtomicU64` has the layout of `u64` and every bit
        // pattern is valid; all access is atomic.
        unsafe {
            std::slice::from_raw_parts(self.mapping.base.as_ptr().cast::<AtomicU64>(), self.len)
        }
    }
}
