//! The hit counter: resident hits counted without a contended
//! read-modify-write (the resident hit is the VM's hottest path).

use parking_lot::Mutex;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const HIT_SHARDS: usize = 64;

#[repr(align(128))]
#[derive(Default)]
struct Shard(AtomicU64);

/// Counts resident hits without a contended read-modify-write: each live
/// thread (up to 64 at once) owns a cache-line-sized shard that only it
/// writes (a plain load and store); threads beyond that share one atomic.
pub(crate) struct HitCounter {
    shards: [Shard; HIT_SHARDS],
    shared: AtomicU64,
}

impl Default for HitCounter {
    fn default() -> HitCounter {
        HitCounter {
            shards: std::array::from_fn(|_| Shard::default()),
            shared: AtomicU64::new(0),
        }
    }
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
/// Slots of threads that have exited, for reuse (the lock orders the old
/// owner's last store before the new owner's first load).
static FREE_SLOTS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// A thread's claim on a shard slot, given back when the thread exits, so
/// that a program that keeps starting short-lived threads does not run out
/// of shards.
struct Slot(usize);

impl Slot {
    fn claim() -> Slot {
        if let Some(slot) = FREE_SLOTS.lock().pop() {
            return Slot(slot);
        }
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        Slot(if slot < HIT_SHARDS { slot } else { usize::MAX })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.0 < HIT_SHARDS {
            FREE_SLOTS.lock().push(self.0);
        }
    }
}

const UNCLAIMED: usize = usize::MAX - 1;

thread_local! {
    /// The claim, with the destructor that gives it back.
    static CLAIM: Slot = Slot::claim();
    /// The claimed slot, cached where reading it costs no lazy-init check.
    static SLOT: Cell<usize> = const { Cell::new(UNCLAIMED) };
}

/// This thread's slot (claimed on first use).
#[inline]
fn slot() -> usize {
    let slot = SLOT.with(Cell::get);
    if slot != UNCLAIMED {
        return slot;
    }
    // During thread teardown the claim may be gone: count in the shared
    // word then.
    let claimed = CLAIM.try_with(|c| c.0).unwrap_or(usize::MAX);
    SLOT.with(|s| s.set(claimed));
    claimed
}

impl HitCounter {
    #[inline]
    pub(crate) fn add(&self) {
        let slot = slot();
        match self.shards.get(slot) {
            // Only this thread writes this shard while it holds the slot, so
            // load + store loses nothing; readers may see a slightly old
            // total.
            Some(shard) => shard
                .0
                .store(shard.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed),
            None => {
                self.shared.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.shared.load(Ordering::Relaxed)
    }
}
