//! A System V-style semaphore set in a shared segment: `semop` applies a
//! list of operations to several semaphores atomically — all of them or
//! none.
//!
//! ```text
//!  words 0–1  the set's lock (a `ShmMutex`)
//!  word 2     generation: bumped by every change; sleepers wait on it
//!  word 3     sleepers
//!  word 4     number of semaphores n
//!  word 5     reserved
//!  words 6..  the n values (0..=SEMVMX)
//! ```
//!
//! An operation is `op > 0` (add), `op < 0` (subtract; blocks while the
//! value is below `-op`) or `op == 0` (wait for zero). `semop` takes the
//! lock, tries the whole list on a copy (operations on the same semaphore
//! apply in order), and either stores every new value and wakes sleepers,
//! or — if some operation would block — fails with `WouldBlock` when any
//! operation asked for no-wait, else sleeps until the generation moves and
//! tries again. A holder that dies inside `semop` may have stored part of
//! its values: the next operation takes the lock over and carries on.

use super::mutex::{LockError, ShmMutex};
use super::segment::{Segment, ShmError};
use crate::sys::futex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Largest semaphore value (System V's `SEMVMX`).
pub const SEMVMX: u32 = 32_767;
const HEADER_WORDS: usize = 6;

/// One operation of a `semop`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemOp {
    /// Which semaphore.
    pub num: u16,
    /// Add (> 0), subtract (< 0) or wait for zero (0).
    pub op: i16,
    /// Fail with `WouldBlock` instead of sleeping (`IPC_NOWAIT`).
    pub nowait: bool,
}

/// Why a `semop` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SemError {
    /// Some operation would block and one asked for no-wait (`EAGAIN`).
    #[error("the operation would block")]
    WouldBlock,
    /// A semaphore number past the set (`EFBIG`).
    #[error("semaphore {num} is not in a set of {count}")]
    NoSuchSemaphore {
        /// The number.
        num: u16,
        /// Semaphores in the set.
        count: u32,
    },
    /// A value would pass `SEMVMX` (`ERANGE`).
    #[error("semaphore {num} would exceed {SEMVMX}")]
    Range {
        /// The number.
        num: u16,
    },
    /// The timeout passed (`EAGAIN` from `semtimedop`).
    #[error("timed out")]
    TimedOut,
    /// The set's lock is not recoverable.
    #[error("the set's lock is not recoverable")]
    NotRecoverable,
}

/// A semaphore set.
#[derive(Clone, Copy, Debug)]
pub struct SemaphoreSet<'a> {
    lock: ShmMutex<'a>,
    generation: &'a AtomicU32,
    sleepers: &'a AtomicU32,
    values: &'a [AtomicU32],
}

impl<'a> SemaphoreSet<'a> {
    /// Bytes a set of `n` semaphores takes in a segment.
    pub const fn bytes(n: usize) -> usize {
        (HEADER_WORDS + n) * 4
    }

    /// Creates the set of `n` semaphores at byte `offset` of `segment`
    /// (every value 0).
    pub fn create(
        segment: &'a Segment,
        offset: usize,
        n: u16,
    ) -> Result<SemaphoreSet<'a>, ShmError> {
        let words = segment.words("semaphore set", offset, HEADER_WORDS + usize::from(n))?;
        words[4].store(u32::from(n), Ordering::SeqCst);
        SemaphoreSet::at(segment, offset)
    }

    /// The set created at byte `offset` of `segment`.
    pub fn at(segment: &'a Segment, offset: usize) -> Result<SemaphoreSet<'a>, ShmError> {
        let header = segment.words("semaphore set", offset, HEADER_WORDS)?;
        let n = header[4].load(Ordering::SeqCst) as usize;
        let words = segment.words("semaphore set", offset, HEADER_WORDS + n)?;
        Ok(SemaphoreSet {
            lock: ShmMutex::at(segment, offset)?,
            generation: &words[2],
            sleepers: &words[3],
            values: &words[HEADER_WORDS..],
        })
    }

    /// Semaphores in the set.
    pub fn len(self) -> usize {
        self.values.len()
    }

    /// Whether the set has no semaphores.
    pub fn is_empty(self) -> bool {
        self.values.is_empty()
    }

    fn locked<R>(self, f: impl FnOnce() -> R) -> Result<R, SemError> {
        let mut guard = match self.lock.lock() {
            Ok(guard) => guard,
            Err(LockError::OwnerDied(mut guard)) => {
                guard.mark_consistent();
                guard
            }
            Err(_) => return Err(SemError::NotRecoverable),
        };
        let result = f();
        guard.mark_consistent();
        drop(guard);
        Ok(result)
    }

    fn changed(self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            futex::wake(self.generation, u32::MAX);
        }
    }

    fn check(self, num: u16) -> Result<usize, SemError> {
        let i = usize::from(num);
        if i >= self.values.len() {
            return Err(SemError::NoSuchSemaphore {
                num,
                count: self.values.len() as u32,
            });
        }
        Ok(i)
    }

    /// The value of semaphore `num` (`GETVAL`).
    pub fn getval(self, num: u16) -> Result<u32, SemError> {
        let i = self.check(num)?;
        Ok(self.values[i].load(Ordering::SeqCst))
    }

    /// Sets semaphore `num` to `value` (`SETVAL`), waking sleepers.
    pub fn setval(self, num: u16, value: u32) -> Result<(), SemError> {
        let i = self.check(num)?;
        if value > SEMVMX {
            return Err(SemError::Range { num });
        }
        self.locked(|| {
            self.values[i].store(value, Ordering::SeqCst);
            self.changed();
        })
    }

    /// Applies `ops` atomically, sleeping while they cannot all proceed.
    pub fn semop(self, ops: &[SemOp]) -> Result<(), SemError> {
        self.semop_until(ops, None)
    }

    /// As [`SemaphoreSet::semop`], giving up after `timeout`.
    pub fn semtimedop(self, ops: &[SemOp], timeout: Duration) -> Result<(), SemError> {
        self.semop_until(ops, Some(Instant::now() + timeout))
    }

    fn semop_until(self, ops: &[SemOp], deadline: Option<Instant>) -> Result<(), SemError> {
        for op in ops {
            self.check(op.num)?;
        }
        let nowait = ops.iter().any(|o| o.nowait);
        loop {
            let attempt = self.locked(|| {
                let generation = self.generation.load(Ordering::SeqCst);
                // Try the whole list on a copy of the values it touches.
                let mut scratch: Vec<(usize, u32)> = Vec::with_capacity(ops.len());
                let value_of = |i: usize, scratch: &[(usize, u32)]| {
                    scratch
                        .iter()
                        .rev()
                        .find(|(j, _)| *j == i)
                        .map_or_else(|| self.values[i].load(Ordering::SeqCst), |&(_, v)| v)
                };
                for op in ops {
                    let i = usize::from(op.num);
                    let value = value_of(i, &scratch);
                    let new = match op.op {
                        0 if value == 0 => value,
                        0 => return Ok(Some(generation)),
                        d if d > 0 => {
                            let new = value + d as u32;
                            if new > SEMVMX {
                                return Err(SemError::Range { num: op.num });
                            }
                            new
                        }
                        d => match value.checked_sub(u32::from(d.unsigned_abs())) {
                            Some(new) => new,
                            None => return Ok(Some(generation)),
                        },
                    };
                    scratch.push((i, new));
                }
                for &(i, v) in &scratch {
                    self.values[i].store(v, Ordering::SeqCst);
                }
                if !scratch.is_empty() {
                    self.changed();
                }
                Ok(None)
            })??;
            let Some(generation) = attempt else {
                return Ok(());
            };
            if nowait {
                return Err(SemError::WouldBlock);
            }
            let nap = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(SemError::TimedOut);
                    }
                    Some(left)
                }
                None => None,
            };
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            futex::wait(self.generation, generation, nap);
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
