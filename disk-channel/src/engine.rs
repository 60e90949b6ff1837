//! Batches of transfers in flight together on a file drive: the kernel's
//! `io_uring` where it allows it, a few threads doing positioned reads and
//! writes where it does not.
//!
//! A caller with several transfers ready at once — `flush` writing back
//! runs of dirty pages, say — hands them over as one batch
//! ([`ParallelIo::transfer_all`](crate::ParallelIo::transfer_all)); the
//! device then sees them together (a queue depth above one) instead of one
//! after another. The buffers are the caller's (the VM's frames: no copy);
//! they are not registered with the ring, because registering pins them,
//! and the VM's region is reserved, not committed — pinning it would commit
//! all of it.
//!
//! [`IoEngine::Auto`] (the default) takes `io_uring` when a ring can be
//! set up and falls back to threads otherwise; either can be forced (the
//! tests run the same suite through both). A ring that fails in a way it
//! should not is retired and the drive goes on with threads.

use crate::DiskPage;
use serde::{Deserialize, Serialize};

/// Transfers in a ring at once at most (and the most the threads engine
/// splits a batch among is [`THREADS`]).
pub(crate) const RING_ENTRIES: u32 = 64;
/// Threads the portable engine runs a batch on, at most.
pub(crate) const THREADS: usize = 4;

/// Which engine runs a file drive's batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoEngine {
    /// `io_uring` if the kernel gives a ring, else threads.
    #[default]
    #[serde(alias = "Auto")]
    Auto,
    /// `io_uring`; opening the drive fails if the kernel refuses a ring.
    #[serde(alias = "Uring")]
    Uring,
    /// A few threads doing positioned reads and writes (portable).
    #[serde(alias = "Threads")]
    Threads,
}

/// One transfer of a batch: whole pages at a disk page, into or out of
/// the caller's buffer.
#[derive(Debug)]
pub enum Transfer<'a> {
    /// Read `buf.len()` bytes of whole pages at `page` into `buf`.
    Read {
        /// First disk page.
        page: DiskPage,
        /// Destination.
        buf: &'a mut [u8],
    },
    /// Write `data` (whole pages) at `page`.
    Write {
        /// First disk page.
        page: DiskPage,
        /// Source.
        data: &'a [u8],
    },
}

impl Transfer<'_> {
    /// The first disk page.
    pub fn page(&self) -> DiskPage {
        match self {
            Transfer::Read { page, .. } | Transfer::Write { page, .. } => *page,
        }
    }

    /// Bytes moved.
    pub fn len(&self) -> usize {
        match self {
            Transfer::Read { buf, .. } => buf.len(),
            Transfer::Write { data, .. } => data.len(),
        }
    }

    /// Whether it moves nothing (never, for a valid transfer).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
