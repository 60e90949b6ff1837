//! Shared mappings for the `shm` segments: a file mapped shared, or
//! anonymous memory shared with children across `fork`.

use super::mapping::Mapping;

use crate::error::VmError;
use rustix::mm::{MapFlags, ProtFlags};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

/// A shared mapping of a file (a named segment) or of anonymous memory (a
/// segment shared with children across `fork`), seen as 32-bit atomic
/// words. Every access goes through atomics, so other processes changing
/// the memory at any time is never a data race.
#[derive(Debug)]
pub(crate) struct SharedMapping {
    mapping: Mapping,
}

impl SharedMapping {
    /// Maps `len` bytes of `file` shared, read-write.
    pub(crate) fn of_file(file: &std::fs::File, len: usize) -> Result<SharedMapping, VmError> {
        // SAFETY: a fresh shared mapping of a file we hold open, at an
        // address the kernel chooses; it aliases no Rust object, and all
        // access to it is through atomics (`words`).
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                file,
                0,
            )
        }
        .map_err(|e| VmError::Map {
            what: "shared segment",
            bytes: len,
            source: e.into(),
        })?;
        let base = NonNull::new(ptr.cast::<u8>()).expect("mmap returned null on success");
        Ok(SharedMapping {
            mapping: Mapping { base, len },
        })
    }

    /// Maps `len` bytes of zero-filled anonymous memory shared with future
    /// children.
    pub(crate) fn anonymous(len: usize) -> Result<SharedMapping, VmError> {
        // SAFETY: a fresh anonymous shared mapping; it aliases no Rust
        // object, and all access is through atomics.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }
        .map_err(|e| VmError::Map {
            what: "anonymous shared segment",
            bytes: len,
            source: e.into(),
        })?;
        let base = NonNull::new(ptr.cast::<u8>()).expect("mmap returned null on success");
        Ok(SharedMapping {
            mapping: Mapping { base, len },
        })
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.mapping.len
    }

    /// The mapping as 32-bit atomic words (`len / 4` of them).
    pub(crate) fn words(&self) -> &[AtomicU32] {
        // SAFETY: the mapping is page-aligned (so 4-aligned), `len / 4`
        // words lie inside it, every bit pattern is a valid `u32`, and all
        // access — ours and, by contract, other processes' — is atomic. The
        // slice lives no longer than `&self`, and the mapping as long as
        // `self`.
        unsafe {
            std::slice::from_raw_parts(
                self.mapping.base.as_ptr().cast::<AtomicU32>(),
                self.mapping.len / 4,
            )
        }
    }
}
