//! Shared memory between processes, with semaphores whose uncontended lock
//! and unlock need no system call — the 4.3BSD proposal's `mset` /
//! `mclear` / `msleep` / `mwakeup` over a `MAP_HASSEMAPHORE` region, built
//! on Linux futexes.
//!
//! - [`Segment`]: a named (a file, e.g. under `/dev/shm`) or anonymous
//!   (shared with children across `fork`) region, with a checked header.
//! - [`msem`]: the BSD primitives on one 32-bit word.
//! - [`ShmMutex`]: a process-shared mutex that survives a holder's death.
//! - [`Semaphore`]: a counting semaphore (P/V, try, timed).
//! - [`SemaphoreSet`]: a System V-style set with all-or-nothing `semop`.
//!
//! Everything in a segment is reached through 32-bit atomics, and every
//! structure is placed at a checked offset (4-aligned, within the segment),
//! so misuse from safe code — two structures placed on top of each other,
//! another process scribbling on the segment — garbles values but cannot
//! cause undefined behaviour.
//!
//! One misuse this cannot contain: another process *truncating* a named
//! segment's file while it is mapped. Touching the pages cut off then
//! raises `SIGBUS` (the kernel's rule for shared file mappings; no advisory
//! lock stops `ftruncate`). `Segment::open` checks the size once, at open.
//! Create segment files with a mode that only cooperating processes can
//! write (`0o600` is the usual choice), or use anonymous segments between
//! related processes, which no one can truncate.
//!
//! # Segment header
//!
//! ```text
//!  offset size field
//!   0      8   magic "CEDARSHM"
//!   8      4   version (1)
//!  12      4   header bytes (64)
//!  16      8   data bytes (the segment's usable size)
//!  24      4   creator's process id (informational)
//!  28     32   reserved, 0
//!  60      4   CRC-32C of bytes [0, 60)
//! ```
//!
//! The data follows at offset 64; structure offsets are relative to it.

pub mod msem;
mod mutex;
mod segment;
mod semaphore;
mod semset;

pub use crate::sys::futex::{FutexWord, current_pid, process_alive};
pub use mutex::{LockError, MutexGuard, ShmMutex};
pub use segment::{HEADER_BYTES, Segment, ShmError};
pub use semaphore::Semaphore;
pub use semset::{SEMVMX, SemError, SemOp, SemaphoreSet};
