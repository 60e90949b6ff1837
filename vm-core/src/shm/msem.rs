//! The 4.3BSD semaphore primitives on one 32-bit word in a shared segment.
//!
//! The word is 0 (clear), 1 (set, nobody waiting) or 2 (set, and a waiter
//! may be asleep). Uncontended `mset` is one compare-and-swap and
//! uncontended `mclear` one swap: no system call. The kernel is entered
//! only to sleep on a set semaphore, or — from `mclear` — when the word
//! says someone may be asleep (Drepper's "Futexes are tricky", mutex 3).
//!
//! The functions are generic over [`FutexWord`] so that the same state
//! machine runs on a shared word and, in the tests, under `loom`.

use crate::sys::futex::FutexWord;

/// Clear.
pub const CLEAR: u32 = 0;
/// Set, nobody waiting.
pub const SET: u32 = 1;
/// Set, and a waiter may be asleep.
pub const SET_WAITERS: u32 = 2;

/// Test-and-set. Returns whether this call set the semaphore; with `wait`,
/// sleeps until it can (and so always returns `true`).
pub fn mset<W: FutexWord + ?Sized>(sem: &W, wait: bool) -> bool {
    if sem.compare_exchange(CLEAR, SET).is_ok() {
        return true;
    }
    if !wait {
        return false;
    }
    loop {
        // Record a waiter and try to take it in one step: if it was clear,
        // we now hold it (marked "waiters", which at worst costs one
        // needless wake-up).
        if sem.swap(SET_WAITERS) == CLEAR {
            return true;
        }
        sem.wait(SET_WAITERS);
    }
}

/// Clears the semaphore; wakes every sleeper if the word records one.
///
/// Every sleeper, not one: `msleep`ers and `mset(wait)`ers sleep on the
/// same word and value, and the word cannot say which kind is asleep. Waking
/// one could wake an `msleep`er, which returns without taking the
/// semaphore, while an `mset`er sleeps on with the word clear — a lost
/// wake-up (see the regression test `mclear_wakes_the_setter_behind_a_sleeper`
/// in `tests/shm_loom.rs`). Every woken setter re-tries the swap, and all
/// but one go back to sleep: a herd only when there is contention.
pub fn mclear<W: FutexWord + ?Sized>(sem: &W) {
    if sem.swap(CLEAR) == SET_WAITERS {
        sem.wake(u32::MAX);
    }
}

/// Sleeps until the semaphore is cleared (or an `mwakeup`); returns at
/// once if it is clear. May return early; callers re-check.
pub fn msleep<W: FutexWord + ?Sized>(sem: &W) {
    match sem.load() {
        CLEAR => {}
        SET => {
            if sem.compare_exchange(SET, SET_WAITERS).is_ok() {
                sem.wait(SET_WAITERS);
            }
        }
        _ => sem.wait(SET_WAITERS),
    }
}

/// Wakes one process sleeping on the semaphore.
pub fn mwakeup<W: FutexWord + ?Sized>(sem: &W) {
    sem.wake(1);
}
