//! A process-shared mutex that survives its holder's death.
//!
//! ```text
//!  word 0: owner — 0 when free, else the holder's process id, with bit 31
//!          set when a waiter may be asleep
//!  word 1: state — 0 consistent, 1 inconsistent (a holder died; the new
//!          holder has not yet said the data is consistent), 2 not
//!          recoverable
//! ```
//!
//! Uncontended lock is one compare-and-swap of the process id into the
//! owner word, unlock one swap back to 0: no system call. A contended
//! locker marks the word and sleeps on it (a shared futex), waking every
//! 10 ms to check that the holder is alive.
//!
//! **How death is detected.** The owner word names the holding *process*.
//! A waiter that finds the holder's process gone — `kill(pid, 0)` fails
//! with `ESRCH`, or `/proc/<pid>/stat` shows a zombie — takes the lock
//! over with a compare-and-swap and gets [`LockError::OwnerDied`], which
//! carries the guard: the lock is held, and the data it protects may be
//! half-updated. The new holder repairs what it must and calls
//! [`MutexGuard::mark_consistent`]; a guard dropped without that leaves the
//! mutex not recoverable, and every later lock fails with
//! [`LockError::NotRecoverable`] (as `pthread` robust mutexes do with
//! `EOWNERDEAD` / `ENOTRECOVERABLE`). Limits: a thread that dies while its
//! process lives is not detected (its guard is released by unwinding, or
//! the whole process dies with it); and a process id reused by a new
//! process within the 10 ms between checks would be taken for the holder.

use super::segment::{Segment, ShmError};
use crate::sys::futex::{self, current_pid, process_alive};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const WAITERS: u32 = 1 << 31;
const PID_MASK: u32 = !WAITERS;
const CONSISTENT: u32 = 0;
const INCONSISTENT: u32 = 1;
const NOT_RECOVERABLE: u32 = 2;
/// How often a sleeping locker checks that the holder lives.
const LIVENESS_CHECK: Duration = Duration::from_millis(10);

/// A mutex in a shared segment.
#[derive(Clone, Copy, Debug)]
pub struct ShmMutex<'a> {
    owner: &'a AtomicU32,
    state: &'a AtomicU32,
}

/// Why a lock was not simply granted.
#[derive(Debug)]
pub enum LockError<'a> {
    /// The previous holder died holding it. The lock is now held — here is
    /// the guard — but the protected data may be inconsistent.
    OwnerDied(MutexGuard<'a>),
    /// A holder died and its successor never marked the data consistent.
    NotRecoverable,
    /// A timed lock ran out of time.
    TimedOut,
}

impl std::fmt::Display for LockError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::OwnerDied(_) => write!(f, "the previous holder died holding the lock"),
            LockError::NotRecoverable => write!(f, "the mutex is not recoverable"),
            LockError::TimedOut => write!(f, "timed out waiting for the lock"),
        }
    }
}

/// Holds the mutex; unlocks when dropped.
#[derive(Debug)]
pub struct MutexGuard<'a> {
    mutex: ShmMutex<'a>,
}

impl<'a> ShmMutex<'a> {
    /// Bytes a mutex takes in a segment.
    pub const BYTES: usize = 8;

    /// The mutex at byte `offset` of `segment` (zeroed memory is an
    /// unlocked, consistent mutex).
    pub fn at(segment: &'a Segment, offset: usize) -> Result<ShmMutex<'a>, ShmError> {
        let words = segment.words("mutex", offset, 2)?;
        Ok(ShmMutex {
            owner: &words[0],
            state: &words[1],
        })
    }

    fn granted(self) -> Result<MutexGuard<'a>, LockError<'a>> {
        let guard = MutexGuard { mutex: self };
        match self.state.load(Ordering::Relaxed) {
            CONSISTENT => Ok(guard),
            INCONSISTENT => Err(LockError::OwnerDied(guard)),
            _ => {
                drop(guard);
                Err(LockError::NotRecoverable)
            }
        }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(self) -> Option<Result<MutexGuard<'a>, LockError<'a>>> {
        self.owner
            .compare_exchange(0, current_pid(), Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| self.granted())
    }

    /// Takes the lock, sleeping while another holds it.
    pub fn lock(self) -> Result<MutexGuard<'a>, LockError<'a>> {
        self.lock_until(None)
    }

    /// Takes the lock, giving up after `timeout`.
    pub fn lock_timeout(self, timeout: Duration) -> Result<MutexGuard<'a>, LockError<'a>> {
        self.lock_until(Some(Instant::now() + timeout))
    }

    fn lock_until(self, deadline: Option<Instant>) -> Result<MutexGuard<'a>, LockError<'a>> {
        let me = current_pid();
        if self
            .owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return self.granted();
        }
        loop {
            let seen = self.owner.load(Ordering::Relaxed);
            if seen == 0 {
                // Free: take it, keeping the mark (others may still sleep).
                if self
                    .owner
                    .compare_exchange(0, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return self.granted();
                }
                continue;
            }
            let holder = seen & PID_MASK;
            if !process_alive(holder) {
                if self
                    .owner
                    .compare_exchange(
                        seen,
                        me | (seen & WAITERS),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    // Not recoverable stays not recoverable.
                    let _ = self.state.compare_exchange(
                        CONSISTENT,
                        INCONSISTENT,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                    return self.granted();
                }
                continue;
            }
            if seen & WAITERS == 0
                && self
                    .owner
                    .compare_exchange(seen, seen | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let mut nap = LIVENESS_CHECK;
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(LockError::TimedOut);
                }
                nap = nap.min(left);
            }
            futex::wait(self.owner, seen | WAITERS, Some(nap));
        }
    }

    fn unlock(self) {
        if self.owner.swap(0, Ordering::Release) & WAITERS != 0 {
            futex::wake(self.owner, 1);
        }
    }
}

impl MutexGuard<'_> {
    /// Says the protected data is consistent again after an owner died.
    pub fn mark_consistent(&mut self) {
        let _ = self.mutex.state.compare_exchange(
            INCONSISTENT,
            CONSISTENT,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        // Dropped after an owner's death without being marked consistent:
        // nobody may rely on the data again. (Only the holder changes the
        // state, so a plain load decides: the common case costs no
        // read-modify-write.)
        if self.mutex.state.load(Ordering::Relaxed) == INCONSISTENT {
            self.mutex.state.store(NOT_RECOVERABLE, Ordering::SeqCst);
        }
        self.mutex.unlock();
    }
}
