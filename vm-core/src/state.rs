//! Page-state words: one `AtomicU64` per virtual page, the part of the VM
//! that plays the hardware's role. The resident hit path reads and latches
//! this word and never touches the monitor.
//!
//! ```text
//!  63..62  tag: 0 absent, 1 resident, 2 locked (exclusive latch held)
//!  61..46  shared-latch count (resident only); while locked, bit 46
//!          marks a page coming in (`TRANSIT`: the latch is a transfer's,
//!          taken on the absent page, not a guard's or a writer's)
//!  45      referenced (clock's second chance; set by every hit)
//!  44      dirty (differs from its disk copy)
//!  43      read-only (write-protect)
//!  42      on disk (a disk copy exists; absent pages without it zero-fill)
//!  41      waiters (a thread is parked on the word: wake it on release)
//!  40      writable (transparent mode: the kernel's page is not
//!          write-protected, so plain stores land without a fault; set only
//!          with dirty, cleared whenever the page goes absent)
//!  39      again (used again while referenced: the clock's third
//!          chance; set by a hit on a referenced page, cleared whenever
//!          referenced is)
//!  38..0   version (bumped by every exclusive unlock)
//! ```
//!
//! Every change of a word is one atomic read-modify-write that keeps the
//! bits it does not own: an unlock names the flags it sets and clears and
//! keeps the rest as they are *now*, not as they were when the latch was
//! taken. (The first round's unlock stored the latch holder's stale copy,
//! so a `make_read_only` made while a guard held the page was undone when
//! the guard dropped — regression test `read_only_survives_a_held_guard`.)
//!
//! Waiting for a latch spins a bounded number of times, then sets
//! `waiters` and parks on the word (`sys::park`); whoever releases a latch
//! and sees `waiters` wakes the parked threads.
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
/// While locked: the latch was taken on an absent page for a transfer
/// (a fault, a read-ahead, a read-around) and has not ended or passed to
/// a guard yet. `kill` and `free` wait for such a latch; any other they
/// wait for briefly (a copy in progress) and then report as busy. (The
/// count's lowest bit: a locked word has no sharers.)
const TRANSIT: u64 = COUNT_ONE;
pub(crate) const REFERENCED: u64 = 1 << 45;
pub(crate) const DIRTY: u64 = 1 << 44;
pub(crate) const READ_ONLY: u64 = 1 << 43;
pub(crate) const ON_DISK: u64 = 1 << 42;
const WAITERS: u64 = 1 << 41;
pub(crate) const WRITABLE: u64 = 1 << 40;
/// Used again while `REFERENCED`: the clock's count of a page's uses is
/// two (see `replace`). Set only with `REFERENCED` already set, by a use;
/// cleared whenever `REFERENCED` is.
pub(crate) const AGAIN: u64 = 1 << 39;
const FLAGS: u64 = REFERENCED | DIRTY | READ_ONLY | ON_DISK | WRITABLE | AGAIN;
const VERSION_MASK: u64 = (1 << 39) - 1;

/// `clear`, with `AGAIN` wherever it clears `REFERENCED`.
#[inline(always)]
fn clearing(clear: u64) -> u64 {
    if clear & REFERENCED != 0 {
        clear | AGAIN
    } else {
        clear
    }
}

/// What a use of a page whose word is `seen` sets besides `set`: `AGAIN`
/// where it sets `REFERENCED` on a page already referenced.
#[inline(always)]
fn using(set: u64, seen: u64) -> u64 {
    if set & seen & REFERENCED != 0 {
        set | AGAIN
    } else {
        set
    }
}

// The fields do not overlap and cover the word.
const _: () = assert!(TAG_MASK & COUNT_MASK == 0);
const _: () = assert!((TAG_MASK | COUNT_MASK) & (FLAGS | WAITERS | VERSION_MASK) == 0);
const _: () = assert!(FLAGS & WAITERS == 0 && (FLAGS | WAITERS) & VERSION_MASK == 0);
const _: () = assert!(TAG_MASK | COUNT_MASK | FLAGS | WAITERS | VERSION_MASK == u64::MAX);

/// Spins on a latched page before parking (or, under the monitor,
/// yielding).
pub(crate) const SPINS_BEFORE_PARK: u32 = 64;

/// One step of waiting, under the monitor, for a latch that is expected to
/// be short (a writer's copy): spin a while, then yield. Bounded by the
/// caller.
pub(crate) fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < SPINS_BEFORE_PARK {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

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
    /// Whether the page is locked for a transfer that brings it in (see
    /// `TRANSIT`).
    pub(crate) fn coming_in(self) -> bool {
        self.tag() == TAG_LOCKED && self.0 & TRANSIT != 0
    }
    fn version(self) -> u64 {
        self.0 & VERSION_MASK
    }
    /// The word with `tag`, no sharers, no waiters, `flags`, and the next
    /// version.
    fn next(self, tag: u64, flags: u64) -> Word {
        Word((tag << TAG_SHIFT) | (flags & FLAGS) | ((self.version() + 1) & VERSION_MASK))
    }
}

/// The words of all pages.
#[derive(Clone, Copy)]
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

    /// Takes a shared latch on a resident page for a use of it (an
    /// accessor's hit): marks it referenced, or used again (`AGAIN`) if it
    /// was. Fails (returning the word seen) if the page is not resident.
    #[inline]
    pub(crate) fn try_share(&self, page: u64) -> Result<Word, Word> {
        self.try_share_setting(page, REFERENCED, true)
    }

    /// As [`PageStates::try_share`], marking the page referenced but never
    /// used again: the first use of a page the fault service just brought
    /// in (referenced as it came), or a latch of the VM's own that counts
    /// as a reference as it always has (write-back).
    pub(crate) fn try_share_once(&self, page: u64) -> Result<Word, Word> {
        self.try_share_setting(page, REFERENCED, false)
    }

    /// As [`PageStates::try_share`], without setting `REFERENCED`: a shared
    /// latch taken by the VM itself (the background cleaner), not by a use
    /// of the page, gives it no second chance.
    pub(crate) fn try_share_unreferenced(&self, page: u64) -> Result<Word, Word> {
        self.try_share_setting(page, 0, false)
    }

    #[inline(always)]
    fn try_share_setting(&self, page: u64, set: u64, again: bool) -> Result<Word, Word> {
        let word = &self.words[page as usize];
        let mut seen = Word(word.load(Ordering::Relaxed));
        loop {
            if seen.tag() != TAG_RESIDENT || seen.shared() == COUNT_MAX {
                return Err(seen);
            }
            let set = if again { using(set, seen.0) } else { set };
            let want = (seen.0 + COUNT_ONE) | set;
            match word.compare_exchange_weak(seen.0, want, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(seen),
                Err(now) => seen = Word(now),
            }
        }
    }

    /// Takes a shared latch on a resident page, held by the returned guard.
    pub(crate) fn try_share_latch(&self, page: u64) -> Result<SharedLatch<'a>, Word> {
        self.try_share_once(page).map(|was| SharedLatch {
            states: *self,
            page,
            was,
        })
    }

    /// Drops a shared latch; wakes parked threads if the word records any
    /// (they re-check: a writer parks again until the last sharer leaves).
    #[inline]
    pub(crate) fn unshare(&self, page: u64) {
        let word = &self.words[page as usize];
        let before = Word(word.fetch_sub(COUNT_ONE, Ordering::Release));
        // One bit test on the hot path: a parked waiter to wake. A latch
        // that was not held (a protocol bug) is asserted in debug builds
        // and wherever a waiter is woken.
        if before.0 & WAITERS != 0 {
            self.unshare_slow(page, before);
        }
        debug_assert!(
            before.tag() == TAG_RESIDENT && before.shared() > 0,
            "unshare of page {page}: {before:?}"
        );
    }

    /// The rare ends of `unshare`: wake parked waiters, or report a latch
    /// that was not held (a bug: the assertion fails).
    #[cold]
    #[inline(never)]
    fn unshare_slow(&self, page: u64, before: Word) {
        assert!(
            before.tag() == TAG_RESIDENT && before.shared() > 0,
            "unshare of page {page}: {before:?}"
        );
        if before.has(WAITERS) {
            self.wake_waiters(page);
        }
    }

    /// Clears `waiters` and wakes every thread parked on the page's word.
    #[cold]
    fn wake_waiters(&self, page: u64) {
        let word = &self.words[page as usize];
        word.fetch_and(!WAITERS, Ordering::AcqRel);
        crate::sys::park::unpark_all(word);
    }

    /// Waits (without the monitor) until the page's word differs from
    /// `seen`, or may have: marks the word `waiters` and parks. Returns at
    /// once if the word already changed. Callers re-check and retry.
    pub(crate) fn wait_for_change(&self, page: u64, seen: Word) {
        let word = &self.words[page as usize];
        let marked = seen.0 | WAITERS;
        if !seen.has(WAITERS)
            && word
                .compare_exchange(seen.0, marked, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        crate::sys::park::park_while(word, marked);
    }

    /// Takes the exclusive latch on a resident page with no sharers, held
    /// by the returned guard.
    #[inline]
    pub(crate) fn try_latch_resident(&self, page: u64) -> Result<ExclusiveLatch<'a>, Word> {
        self.try_lock_resident_as(page, false)
            .map(|was| ExclusiveLatch::adopt(*self, page, was))
    }

    /// [`PageStates::try_latch_resident`] for a use of the page (a writer's
    /// hit): used again (`AGAIN`) if it was referenced.
    pub(crate) fn try_latch_resident_used(&self, page: u64) -> Result<ExclusiveLatch<'a>, Word> {
        self.try_lock_resident_as(page, true)
            .map(|was| ExclusiveLatch::adopt(*self, page, was))
    }

    /// Takes the exclusive latch on a resident page with no sharers; the
    /// caller owns the raw latch (see [`ExclusiveLatch::adopt`]).
    #[inline]
    ///
    /// Fails only with a word that really is taken (latched, shared or not
    /// resident): a compare-and-swap that lost to a flag change or to a
    /// writer that came and went is retried. (Returning such a word made a
    /// waiter park on a free page that nobody would release — the review's
    /// lost wake-up.)
    pub(crate) fn try_lock_resident(&self, page: u64) -> Result<Word, Word> {
        self.try_lock_resident_as(page, false)
    }

    /// [`PageStates::try_lock_resident`]; with `again`, a use of the page:
    /// used again (`AGAIN`) if it was referenced.
    fn try_lock_resident_as(&self, page: u64, again: bool) -> Result<Word, Word> {
        let word = &self.words[page as usize];
        let mut seen = Word(word.load(Ordering::Relaxed));
        loop {
            if seen.tag() != TAG_RESIDENT || seen.shared() != 0 {
                return Err(seen);
            }
            let set = if again {
                using(REFERENCED, seen.0)
            } else {
                REFERENCED
            };
            let want = (seen.0 & !TAG_MASK) | (TAG_LOCKED << TAG_SHIFT) | set;
            match word.compare_exchange_weak(seen.0, want, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(seen),
                Err(now) => seen = Word(now),
            }
        }
    }

    /// Monitor held on entry and exit.
    ///
    /// Takes the exclusive latch on an absent page (nothing but the monitor
    /// holder changes an absent word, so this cannot fail), held by the
    /// returned guard.
    #[inline]
    pub(crate) fn latch_absent(&self, page: u64) -> ExclusiveLatch<'a> {
        let was = self.lock_absent(page);
        ExclusiveLatch::adopt(*self, page, was)
    }

    /// Monitor held on entry and exit.
    ///
    /// The raw form of [`PageStates::latch_absent`].
    fn lock_absent(&self, page: u64) -> Word {
        let word = &self.words[page as usize];
        let seen = Word(word.load(Ordering::Relaxed));
        assert_eq!(
            seen.tag(),
            TAG_ABSENT,
            "lock_absent of page {page}: {seen:?}"
        );
        // Only `waiters` may change under us (a thread that saw the page
        // locked a moment ago parks on it); retry for that.
        let mut seen = seen;
        loop {
            let want = (seen.0 & !TAG_MASK) | (TAG_LOCKED << TAG_SHIFT) | TRANSIT;
            match word.compare_exchange(seen.0, want, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return seen,
                Err(now) => {
                    assert_eq!(
                        now & !WAITERS,
                        seen.0 & !WAITERS,
                        "absent word of page {page} changed outside the monitor"
                    );
                    seen = Word(now);
                }
            }
        }
    }

    /// Releases an exclusive latch, leaving the page with `tag`, the flags
    /// in `set` set and those in `clear` cleared — every other flag as it
    /// is in the word now. One read-modify-write; wakes parked waiters.
    #[inline]
    fn unlock(&self, page: u64, tag: u64, set: u64, clear: u64) {
        // An absent page has no memory, so nothing of it is writable.
        let clear = if tag == TAG_ABSENT {
            clear | WRITABLE
        } else {
            clear
        };
        let word = &self.words[page as usize];
        let mut seen = Word(word.load(Ordering::Relaxed));
        loop {
            assert_eq!(seen.tag(), TAG_LOCKED, "unlock of page {page}: {seen:?}");
            let flags = (seen.flags() & !clearing(clear)) | set;
            let next = seen.next(tag, flags);
            match word.compare_exchange_weak(seen.0, next.0, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => seen = Word(now),
            }
        }
        if seen.has(WAITERS) {
            crate::sys::park::unpark_all(word);
        }
    }

    /// Releases an exclusive latch straight into one shared latch on the
    /// page, now resident: no other latch can come between. `set` and
    /// `clear` as for [`PageStates::unlock`]; wakes parked waiters (readers
    /// among them get in beside the shared latch).
    fn unlock_to_shared(&self, page: u64, set: u64, clear: u64) {
        let word = &self.words[page as usize];
        let mut seen = Word(word.load(Ordering::Relaxed));
        loop {
            assert_eq!(seen.tag(), TAG_LOCKED, "unlock of page {page}: {seen:?}");
            let flags = (seen.flags() & !clearing(clear)) | set;
            let next = seen.next(TAG_RESIDENT, flags).0 | COUNT_ONE;
            match word.compare_exchange_weak(seen.0, next, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => seen = Word(now),
            }
        }
        if seen.has(WAITERS) {
            crate::sys::park::unpark_all(word);
        }
    }

    /// Clears `flags` on the page's word, whatever its state.
    pub(crate) fn clear_flags(&self, page: u64, flags: u64) {
        self.words[page as usize].fetch_and(!(clearing(flags) & FLAGS), Ordering::AcqRel);
    }

    /// Sets `REFERENCED` on the page if it is resident (unlatched or
    /// shared), as a use of it would; says whether it was.
    pub(crate) fn reference_if_resident(&self, page: u64) -> bool {
        let word = &self.words[page as usize];
        let seen = Word(word.load(Ordering::Relaxed));
        if seen.tag() == TAG_RESIDENT && seen.0 & REFERENCED != 0 {
            // Already marked: no write (the line stays shared).
            return true;
        }
        word.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |w| {
            (Word(w).tag() == TAG_RESIDENT).then_some(w | REFERENCED)
        })
        .is_ok()
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

/// An exclusive latch on one page, held by this value. Dropping it
/// releases the latch with the page's tag as it was when latched and every
/// flag as it is now — the undo of an operation that fails halfway, on
/// every path, including a panic. [`ExclusiveLatch::release`] ends it with
/// a change instead.
pub(crate) struct ExclusiveLatch<'a> {
    states: PageStates<'a>,
    page: u64,
    was: Word,
    held: bool,
}

impl<'a> ExclusiveLatch<'a> {
    /// Takes ownership of an exclusive latch already taken on `page` (by a
    /// `try_lock_resident` whose result crossed a thread, say); `was` is
    /// the word before it was taken.
    #[inline]
    pub(crate) fn adopt(states: PageStates<'a>, page: u64, was: Word) -> ExclusiveLatch<'a> {
        ExclusiveLatch {
            states,
            page,
            was,
            held: true,
        }
    }

    /// The page.
    #[inline]
    pub(crate) fn page(&self) -> u64 {
        self.page
    }

    /// The word as it was before the latch was taken.
    pub(crate) fn was(&self) -> Word {
        self.was
    }

    /// Whether the page holds `flag` now (the latch holder's view: only
    /// the monitor holder changes flags of a latched page).
    #[inline]
    pub(crate) fn has_now(&self, flag: u64) -> bool {
        self.states.load(self.page).has(flag)
    }

    /// Releases the latch leaving the page with `tag`, `set` set and
    /// `clear` cleared (other flags as they are now).
    #[inline]
    pub(crate) fn release(mut self, tag: u64, set: u64, clear: u64) {
        self.held = false;
        self.states
            .unlock(self.page, tag, set & FLAGS, clear & FLAGS);
    }
}

impl ExclusiveLatch<'_> {
    /// Gives up the guard but not the latch: the page stays latched, and
    /// whoever keeps the returned word (the word before the latch was
    /// taken) owns the latch and ends it with [`ExclusiveLatch::adopt`].
    pub(crate) fn into_raw(mut self) -> Word {
        self.held = false;
        self.was
    }

    /// Ends a latch taken on an absent page (a page coming in) by turning
    /// it into one shared latch on the page, resident now, with `set` set
    /// and `clear` cleared; returns the word as it was when the latch was
    /// taken. The caller owns the shared latch.
    pub(crate) fn release_to_shared(mut self, set: u64, clear: u64) -> Word {
        self.held = false;
        self.states
            .unlock_to_shared(self.page, set & FLAGS, clear & FLAGS);
        self.was
    }

    /// Keeps the latch, taken on an absent page that is now in its frame,
    /// as a latch on a resident page: `set` and `clear` applied now, and
    /// the returned word (tag resident) is what the caller that adopts the
    /// latch ([`ExclusiveLatch::adopt`]) restores when it lets go.
    pub(crate) fn keep_as_resident(mut self, set: u64, clear: u64) -> Word {
        self.held = false;
        // One read-modify-write (the fault path's): the flags changed, and
        // a guard's latch now, no longer a transfer's — whoever waits for
        // the transfer to end (`kill`) is woken to look again.
        let word = &self.states.words[self.page as usize];
        let change =
            |w: u64| (w & !((clearing(clear) & FLAGS) | TRANSIT | WAITERS)) | (set & FLAGS);
        let was = word
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |w| Some(change(w)))
            .unwrap_or_else(|w| w);
        if was & WAITERS != 0 {
            crate::sys::park::unpark_all(word);
        }
        Word((TAG_RESIDENT << TAG_SHIFT) | Word(change(was)).flags())
    }
}

impl Drop for ExclusiveLatch<'_> {
    fn drop(&mut self) {
        if self.held {
            self.states.unlock(self.page, self.was.tag(), 0, 0);
        }
    }
}

/// A shared latch on one resident page, held by this value and dropped
/// with it.
pub(crate) struct SharedLatch<'a> {
    states: PageStates<'a>,
    page: u64,
    was: Word,
}

impl SharedLatch<'_> {
    /// The page.
    pub(crate) fn page(&self) -> u64 {
        self.page
    }

    /// The word as it was before the latch was taken.
    pub(crate) fn was(&self) -> Word {
        self.was
    }
}

impl Drop for SharedLatch<'_> {
    fn drop(&mut self) {
        self.states.unshare(self.page);
    }
}

#[cfg(test)]
mod tests {
    //! The latch guards release on every path: the mechanism behind the fix
    //! of defect 4 of the review (latches left held when a `?` returned
    //! early in discard, `advise(DontNeed)`, bring-in and write-back).
    use super::*;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    fn fails_half_way(states: PageStates<'_>) -> Result<(), &'static str> {
        let _latch = states.latch_absent(3);
        Err("an I/O error after the latch was taken")?;
        Ok(())
    }

    #[test]
    fn an_early_return_releases_an_exclusive_latch_as_it_was() {
        let words = words(8);
        let states = PageStates::new(&words);
        let before = states.load(3);
        assert!(fails_half_way(states).is_err());
        let after = states.load(3);
        assert_eq!(after.tag(), TAG_ABSENT, "{after:?}");
        assert_eq!(after.flags(), before.flags());
        // And it can be latched again (it was not left locked).
        drop(states.latch_absent(3));
    }

    /// A latch taken on an absent page says the page is coming in until
    /// it ends or passes to a guard (`kill` waits for the one, and reports
    /// the other as busy).
    #[test]
    fn a_page_coming_in_says_so_until_its_latch_ends_or_passes_to_a_guard() {
        let words = words(8);
        let states = PageStates::new(&words);
        let latch = states.latch_absent(2);
        assert!(states.load(2).coming_in());
        let was = latch.keep_as_resident(REFERENCED, 0);
        let now = states.load(2);
        assert_eq!(now.tag(), TAG_LOCKED, "still latched, by a guard now");
        assert!(!now.coming_in(), "{now:?}");
        ExclusiveLatch::adopt(states, 2, was).release(TAG_RESIDENT, 0, 0);
        assert!(!states.load(2).coming_in());
        assert!(states.latch_absent(3).release_to_shared(0, 0).tag() == TAG_ABSENT);
        assert!(!states.load(3).coming_in());
        assert_eq!(states.load(3).shared(), 1);
        // A latch on a resident page (a writer, an eviction) is not one.
        states.unshare(3);
        let _writer = states.try_latch_resident(3).unwrap();
        assert!(!states.load(3).coming_in());
    }

    #[test]
    fn a_dropped_shared_latch_unshares() {
        let words = words(8);
        let states = PageStates::new(&words);
        states.latch_absent(5).release(TAG_RESIDENT, ON_DISK, 0);
        {
            let _shared = states.try_share_latch(5).unwrap();
            assert_eq!(states.load(5).shared(), 1);
            assert!(
                states.try_latch_resident(5).is_err(),
                "a sharer blocks the writer"
            );
        }
        assert_eq!(states.load(5).shared(), 0);
        assert!(states.try_latch_resident(5).is_ok());
    }

    #[test]
    fn release_keeps_flags_set_while_latched() {
        let words = words(8);
        let states = PageStates::new(&words);
        states.latch_absent(1).release(TAG_RESIDENT, 0, 0);
        let latch = states.try_latch_resident(1).unwrap();
        // The monitor write-protects the page while a guard holds it.
        states.set_flags(1, READ_ONLY);
        latch.release(TAG_RESIDENT, DIRTY | REFERENCED, 0);
        let word = states.load(1);
        assert!(word.has(READ_ONLY) && word.has(DIRTY), "{word:?}");
    }
}
