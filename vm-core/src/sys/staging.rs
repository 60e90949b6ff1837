//! Each thread's staging buffer: where a transfer into pages that plain
//! loads could see lands before `UFFDIO_COPY` installs it (transparent
//! mode only). Page-aligned, so `O_DIRECT` reads go straight into it; it
//! grows to the largest transfer the thread has made (a read-ahead
//! cluster) and lives as long as the thread. It is outside the real-memory
//! budget: one cluster per faulting thread at most.

use super::mapping::Mapping;
use crate::error::VmError;
use std::cell::RefCell;

thread_local! {
    static STAGING: RefCell<Option<Mapping>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's staging buffer, `len` bytes long.
pub(crate) fn with_staging<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, VmError> {
    let mut f = Some(f);
    let staged = STAGING.try_with(|cell| {
        let f = f.take().expect("called once");
        let mut slot = cell.try_borrow_mut().map_err(|_| VmError::Map {
            what: "staging buffer (already in use by this thread)",
            bytes: len,
            source: std::io::Error::from(std::io::ErrorKind::ResourceBusy),
        })?;
        if slot.as_ref().is_none_or(|m| m.len < len) {
            *slot = None;
            *slot = Some(Mapping::new(len.next_power_of_two(), "staging buffer")?);
        }
        let mapping = slot.as_ref().expect("made above");
        // SAFETY: the mapping is this thread's own (thread-local), at
        // least `len` bytes, and borrowed mutably through the `RefCell`
        // for as long as the slice lives.
        let buffer = unsafe { std::slice::from_raw_parts_mut(mapping.base.as_ptr(), len) };
        Ok(f(buffer))
    });
    match staged {
        Ok(result) => result,
        // The thread's locals are being destroyed (a fault served from a
        // destructor): a buffer for this transfer alone.
        Err(_) => {
            let mapping = Mapping::new(len, "staging buffer")?;
            // SAFETY: a fresh mapping of `len` bytes that only this call
            // uses, alive until the end of it.
            let buffer = unsafe { std::slice::from_raw_parts_mut(mapping.base.as_ptr(), len) };
            Ok(f.take().expect("not called above")(buffer))
        }
    }
}
