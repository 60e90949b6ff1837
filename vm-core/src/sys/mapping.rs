//! An anonymous, lazily committed mapping: the region's memory, the
//! page-state array's, the staging buffers' and the reclaim slots'.

use crate::error::VmError;
use rustix::mm::{Advice, MapFlags, ProtFlags};
use std::ptr::NonNull;

/// An anonymous, lazily committed mapping of `len` bytes.
#[derive(Debug)]
pub(crate) struct Mapping {
    pub(crate) base: NonNull<u8>,
    pub(crate) len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; synchronisation of
// its contents is the page-state protocol's job (see `Region`).
unsafe impl Send for Mapping {}
// SAFETY: as above; shared access goes through the latch protocol.
unsafe impl Sync for Mapping {}

impl Mapping {
    pub(crate) fn new(len: usize, what: &'static str) -> Result<Mapping, VmError> {
        Self::new_at(None, len, what)
    }

    /// As [`Mapping::new`], at address `at` if given: mapped with
    /// `MAP_FIXED_NOREPLACE`, which fails (`EEXIST`) rather than replace a
    /// mapping there; a kernel that takes the flag as a hint and maps
    /// elsewhere is caught by comparing the address (and the mapping
    /// undone).
    pub(crate) fn new_at(
        at: Option<usize>,
        len: usize,
        what: &'static str,
    ) -> Result<Mapping, VmError> {
        let flags = match at {
            Some(_) => MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED_NOREPLACE,
            None => MapFlags::PRIVATE | MapFlags::NORESERVE,
        };
        let hint = at.map_or(std::ptr::null_mut(), |a| a as *mut std::ffi::c_void);
        // SAFETY: a fresh anonymous private mapping at an address the kernel
        // chooses, or at `at` without replacing anything there
        // (FIXED_NOREPLACE); it aliases no Rust object.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(hint, len, ProtFlags::READ | ProtFlags::WRITE, flags)
        }
        .map_err(|e| VmError::Map {
            what,
            bytes: len,
            source: e.into(),
        })?;
        let base = NonNull::new(ptr.cast::<u8>()).expect("mmap returned null on success");
        let mapping = Mapping { base, len };
        if at.is_some_and(|a| a != ptr as usize) {
            // Mapped elsewhere (an old kernel's hint): undone by the drop.
            return Err(VmError::Map {
                what,
                bytes: len,
                source: std::io::Error::from_raw_os_error(libc::EEXIST),
            });
        }
        // No transparent huge pages: with THP `always` one 4 KiB write would
        // commit 2 MiB and releasing 4 KiB would free 4 KiB of it, so the
        // kernel would hold up to 512 times the real-memory budget. A
        // failure here breaks that bound, so it is an error, not a hint
        // (the mapping is unmapped on the way out).
        // SAFETY: the range is the mapping just made; advice changes no
        // contents.
        unsafe { rustix::mm::madvise(ptr, len, Advice::LinuxNoHugepage) }.map_err(|e| {
            VmError::Map {
                what: "madvise(MADV_NOHUGEPAGE)",
                bytes: len,
                source: e.into(),
            }
        })?;
        Ok(mapping)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` is our mapping; no reference into it
        // outlives `self` (guards borrow the `Vm` that owns the region).
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
