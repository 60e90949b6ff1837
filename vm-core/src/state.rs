//! Page-state words: one `AtomicU64` per virtual page, the part of the VM
//! that plays the hardware's role. The resident hit path reads and latches
//! this word and never touches the monitor.
//!
//! ```text
//!  63..62  tag: 0 absent, 1 resident, 2 locked (exclusive latch held)
//!  61..46  shared-latch count (resident only)
//!  45      referenced (clock's second chance; set by every hit)
//!  44      dirty (differs from its disk copy)
//!  43      read-only (write-protect)
//!  42      on disk (a disk copy exists; absent pages without it zero-fill)
//!  41..0   version (bumped by every exclusive unlock)
//! ```
//!
//! A zero word is "absent, no disk copy": whether such a page is allocated
//! at all is the monitor's business (its allocation map), so allocating a
//! huge interval touches no word. Transitions:
//!
//! - absent → locked → resident: a fault, under the monitor;
//! - resident → locked → absent: an eviction, under the monitor;
//! - resident ⇄ locked: a writer or an exclusive guard, without the monitor;
//! - resident, count n ⇄ n+1: a reader or a shared guard, without the
//!   monitor.
//!
//! Only the monitor holder moves a page in or out of residency, and it
//! never waits for a latch: it uses `try_` operations and skips or retries.

use std::sync::atomic::{AtomicU64, Ordering};

const TAG_SHIFT: u32 = 62;
const TAG_MASK: u64 = 0b11 << TAG_SHIFT;
pub(crate) const TAG_ABSENT: u64 = 0;
pub(crate) const TAG_RESIDENT: u64 = 1;
pub(crate) const TAG_LOCKED: u64 = 2;
const COUNT_SHIFT: u32 = 46;
const COUNT_ONE: u64 = 1 << COUNT_SHIFT;
const COUNT_MASK: u64 = 0xFFFF << COUNT_SHIFT;
const COUNT_MAX: u64 = 0xFFFF;
pub(crate) const REFERENCED: u64 = 1 << 45;
pub(crate) const DIRTY: u64 = 1 << 44;
pub(crate) const READ_ONLY: u64 = 1 << 43;
pub(crate) const ON_DISK: u64 = 1 << 42;
const FLAGS: u64 = REFERENCED | DIRTY | READ_ONLY | ON_DISK;
const VERSION_MASK: u64 = (1 << 42) - 1;

/// A snapshot of one page's word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Word(pub u64);

impl Word {
    pub(crate) fn tag(self) -> u64 {
        (self.0 & TAG_MASK) >> TAG_SHIFT
    }
    pub(crate) fn shared(self) -> u64 {
        (self.0 & COUNT_MASK) >> COUNT_SHIFT
    }
    pub(crate) fn has(self, flag: u64) -> bool {
        self.0 & flag != 0
    }
    pub(crate) fn flags(self) -> u64 {
        self.0 & FLAGS
    }
    fn version(self) -> u64 {
        self.0 & VERSION_MASK
    }
    /// The word with `tag`, no sharers, `flags`, and the next version.
    fn next(self, tag: u64, flags: u64) -> Word {
        Word((tag << TAG_SHIFT) | (flags & FLAGS) | ((self.version() + 1) & VERSION_MASK))
    }
}

/// The words of all pages.
pub(crate) struct PageStates<'a> {
    words: &'a [AtomicU64],
}

impl<'a> PageStates<'a> {
    pub(crate) fn new(words: &'a [AtomicU64]) -> PageStates<'a> {
        PageStates { words }
    }

    pub(crate) fn load(&self, page: u64) -> Word {
        Word(self.words[page as usize].load(Ordering::Acquire))
    }

    /// Takes a shared latch on a resident page and marks it referenced.
    /// Fails (returning the word seen) if the page is not resident.
    #[inline]
    pub(crate) fn try_share(&self, page: u64) -> Result<Word, Word> {
        let word = &self.words[page as usize];
        let mut seen = Word(word.load(Ordering::Relaxed));
        loop {
            if seen.tag() != TAG_RESIDENT || seen.shared() == COUNT_MAX {
                return Err(seen);
            }
            let want = (seen.0 + COUNT_ONE) | REFERENCED;
            match word.compare_exchange_weak(seen.0, want, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(seen),
                Err(now) => seen = Word(now),
            }
        }
    }

    /// Drops a shared latch.
    #[inline]
    pub(crate) fn unshare(&self, page: u64) {
        let before = Word(self.words[page as usize].fetch_sub(COUNT_ONE, Ordering::Release));
        debug_assert!(
            before.tag() == TAG_RESIDENT && before.shared() > 0,
            "unshare of {before:?}"
        );
    }

    /// Takes the exclusive latch on a resident page with no sharers.
    #[inline]
    pub(crate) fn try_lock_resident(&self, page: u64) -> Result<Word, Word> {
        let word = &self.words[page as usize];
        let seen = Word(word.load(Ordering::Relaxed));
        if seen.tag() != TAG_RESIDENT || seen.shared() != 0 {
            return Err(seen);
        }
        let want = (seen.0 & !TAG_MASK) | (TAG_LOCKED << TAG_SHIFT) | REFERENCED;
        word.compare_exchange(seen.0, want, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| seen)
            .map_err(Word)
    }

    /// Monitor held on entry and exit.
    ///
    /// Takes the exclusive latch on an absent page (nothing but the monitor
    /// holder changes an absent word, so this cannot fail).
    pub(crate) fn lock_absent(&self, page: u64) -> Word {
        let word = &self.words[page as usize];
        let seen = Word(word.load(Ordering::Relaxed));
        assert_eq!(
            seen.tag(),
            TAG_ABSENT,
            "lock_absent of page {page}: {seen:?}"
        );
        let want = (seen.0 & !TAG_MASK) | (TAG_LOCKED << TAG_SHIFT);
        word.compare_exchange(seen.0, want, Ordering::Acquire, Ordering::Relaxed)
            .expect("absent words change only under the monitor");
        seen
    }

    /// Releases an exclusive latch, leaving the page with `tag` and `flags`.
    #[inline]
    pub(crate) fn unlock(&self, page: u64, tag: u64, flags: u64) {
        let word = &self.words[page as usize];
        let seen = Word(word.load(Ordering::Relaxed));
        debug_assert_eq!(seen.tag(), TAG_LOCKED, "unlock of page {page}: {seen:?}");
        word.store(seen.next(tag, flags).0, Ordering::Release);
    }

    /// Clears `flags` on the page's word, whatever its state.
    pub(crate) fn clear_flags(&self, page: u64, flags: u64) {
        self.words[page as usize].fetch_and(!flags, Ordering::AcqRel);
    }

    /// Sets `flags` on the page's word, whatever its state.
    pub(crate) fn set_flags(&self, page: u64, flags: u64) {
        self.words[page as usize].fetch_or(flags & FLAGS, Ordering::AcqRel);
    }

    /// Monitor held on entry and exit.
    ///
    /// Resets an absent page's word to zero (freed).
    pub(crate) fn reset_absent(&self, page: u64) {
        let word = &self.words[page as usize];
        let seen = Word(word.load(Ordering::Relaxed));
        assert_eq!(
            seen.tag(),
            TAG_ABSENT,
            "reset of a page that is not absent: {seen:?}"
        );
        word.store(0, Ordering::Release);
    }
}
