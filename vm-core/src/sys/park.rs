//! Parking a thread on a page-state word until it changes (the slow path of
//! a latch wait), on `parking_lot_core`'s address-keyed parking lot — the
//! crate `parking_lot` itself is built on, so no new dependency enters the
//! build. A futex on the word would need a 32-bit half of a 64-bit atomic,
//! which Rust's memory model does not define.

use std::sync::atomic::{AtomicU64, Ordering};

/// Parks the calling thread while `word` still holds `expected`; returns
/// when another thread calls [`unpark_all`] on it (or at once if the word
/// has changed). May return without a change; callers re-check.
pub(crate) fn park_while(word: &AtomicU64, expected: u64) {
    let key = word as *const AtomicU64 as usize;
    // SAFETY: `validate` and the callbacks neither panic nor park, and
    // do not call into the parking lot; the key is the word's address,
    // which `unpark_all` uses too.
    unsafe {
        parking_lot_core::park(
            key,
            || word.load(Ordering::Acquire) == expected,
            || {},
            |_, _| {},
            parking_lot_core::DEFAULT_PARK_TOKEN,
            None,
        );
    }
}

/// Wakes every thread parked on `word`.
pub(crate) fn unpark_all(word: &AtomicU64) {
    let key = word as *const AtomicU64 as usize;
    // SAFETY: the key is the word's address (as in `park_while`); waking
    // with the default token has no other precondition.
    unsafe {
        parking_lot_core::unpark_all(key, parking_lot_core::DEFAULT_UNPARK_TOKEN);
    }
}
