//! A counting semaphore in a shared segment.
//!
//! ```text
//!  word 0: count
//!  word 1: sleepers (processes or threads asleep in P)
//! ```
//!
//! Uncontended P is one compare-and-swap on the count, uncontended V one
//! fetch-add plus a load of the sleepers word: no system call. P sleeps on
//! the count word (a shared futex) only while it is 0; V wakes one sleeper
//! only when the sleepers word says there is one. No wake-up is lost: a
//! sleeper announces itself before it sleeps, and the kernel's own check
//! of the word (sleep only while it is still 0) closes the window.

use super::segment::{Segment, ShmError};
use crate::sys::futex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Tries of a P before it sleeps.
const SPINS_BEFORE_SLEEP: u32 = 200;

/// A counting semaphore.
#[derive(Clone, Copy, Debug)]
pub struct Semaphore<'a> {
    count: &'a AtomicU32,
    sleepers: &'a AtomicU32,
}

impl<'a> Semaphore<'a> {
    /// Bytes a semaphore takes in a segment.
    pub const BYTES: usize = 8;

    /// The semaphore at byte `offset` of `segment`.
    pub fn at(segment: &'a Segment, offset: usize) -> Result<Semaphore<'a>, ShmError> {
        let words = segment.words("semaphore", offset, 2)?;
        Ok(Semaphore {
            count: &words[0],
            sleepers: &words[1],
        })
    }

    /// Sets the count (before anyone uses it).
    pub fn init(self, count: u32) {
        self.count.store(count, Ordering::SeqCst);
    }

    /// The count now.
    pub fn value(self) -> u32 {
        self.count.load(Ordering::SeqCst)
    }

    /// Takes one unit if there is one.
    pub fn try_p(self) -> bool {
        let mut seen = self.count.load(Ordering::Relaxed);
        while seen > 0 {
            match self.count.compare_exchange_weak(
                seen,
                seen - 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => seen = now,
            }
        }
        false
    }

    /// Takes one unit, sleeping while there is none.
    pub fn p(self) {
        self.p_until(None);
    }

    /// Takes one unit, giving up after `timeout`; returns whether it did.
    pub fn p_timeout(self, timeout: Duration) -> bool {
        self.p_until(Some(Instant::now() + timeout))
    }

    fn p_until(self, deadline: Option<Instant>) -> bool {
        loop {
            // Spin a little before sleeping: a V from the other side is
            // often a few hundred nanoseconds away, a sleep and wake-up
            // tens of microseconds.
            for _ in 0..SPINS_BEFORE_SLEEP {
                if self.try_p() {
                    return true;
                }
                std::hint::spin_loop();
            }
            let nap = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    Some(left)
                }
                None => None,
            };
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            futex::wait(self.count, 0, nap);
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Gives back one unit, waking a sleeper if there is one.
    pub fn v(self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            futex::wake(self.count, 1);
        }
    }
}
