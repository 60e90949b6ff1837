//! The registry of live views and page guards of transparent mode (see
//! `transparent`): which intervals are held, shared or exclusive.

use crate::error::VmError;
use runtable::{Interval, PageNumber};

/// One live view or guard in the registry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ViewEntry {
    pub(crate) interval: Interval,
    pub(crate) exclusive: bool,
    pub(crate) id: u64,
}

/// The registry of live views and guards (transparent mode only).
#[derive(Debug, Default)]
pub(crate) struct Views {
    pub(crate) entries: parking_lot::RwLock<Vec<ViewEntry>>,
    pub(crate) next_id: std::sync::atomic::AtomicU64,
}

/// A registry read lock held across one copying-API access (transparent
/// mode), so no view can be made over its pages meanwhile.
pub(crate) type AccessGuard<'a> = Option<parking_lot::RwLockReadGuard<'a, Vec<ViewEntry>>>;

pub(crate) fn conflict(
    entries: &[ViewEntry],
    interval: Interval,
    write: bool,
) -> Result<(), VmError> {
    for entry in entries {
        let overlaps =
            entry.interval.page.0 < interval.end().0 && interval.page.0 < entry.interval.end().0;
        if overlaps && (write || entry.exclusive) {
            return Err(VmError::ViewConflict {
                page: PageNumber(entry.interval.page.0.max(interval.page.0)),
                interval: entry.interval,
                kind: if entry.exclusive {
                    "an exclusive"
                } else {
                    "a shared"
                },
            });
        }
    }
    Ok(())
}
