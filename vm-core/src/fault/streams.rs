//! The sequential streams faulting lately, counted so that their
//! read-ahead windows share real memory instead of evicting each other.
//!
//! # Why
//!
//! A stream's window is twice what it has read in order and still holds
//! (`AddressSpace::stream_window`). What a stream has read stays resident
//! behind it until the clock takes it, so every stream's window grows to
//! the maximum, however many there are. The demo's 32-way merge (32 MiB of
//! real memory, 32 runs of 8 MiB) then had 32 windows of 1 MiB in flight
//! or waiting, a whole budget of guesses: the clock took pages read ahead
//! for one run before the merge reached them, and the merge read its 256
//! MiB 2.65 times over (173,872 page-ins for 65,536 pages). The kernel's
//! page cache has the same problem and meets it with thrashing detection;
//! ZFS's prefetcher keeps a table of streams. This is the table.
//!
//! # How
//!
//! Each sequential fault that reads a cluster is noted with what it read:
//! it continues the stream whose last cluster it follows — it faults past
//! that cluster's first page and no more than [`SLACK`] pages past its
//! end (the closest such stream) — or starts one. A stream that has not
//! faulted in the last [`HORIZON`] notes is over. With `n` streams live, a
//! window is at most a quarter of real memory over `n` (never less than
//! the smallest window): all of them together then read ahead a quarter
//! of memory, as one scan does.

/// Streams tracked at most; a new one replaces the oldest.
const TRACKED: usize = 64;

/// Notes after which a stream that has not faulted again is over: a
/// stream among [`TRACKED`] others faults once every `TRACKED` notes or
/// so, and four rounds of that without a fault means it has stopped.
pub(crate) const HORIZON: u64 = 4 * TRACKED as u64;

/// How far past the end of its last cluster a stream's next fault may
/// lie (pages it skipped, or read otherwise).
pub(crate) const SLACK: u64 = 8;

/// One stream: the first page of its last cluster, the page after it,
/// and when (in notes).
#[derive(Clone, Copy, Debug)]
struct Stream {
    last: u64,
    next: u64,
    tick: u64,
}

/// The sequential streams faulting lately (see the module doc). Guarded
/// by the monitor.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    recent: Vec<Stream>,
    tick: u64,
}

impl Streams {
    /// Notes a sequential fault that read a cluster of `read` pages (at
    /// least one) at `page`: it continues the stream whose last cluster it
    /// follows, or starts one (see the module doc). Streams over are
    /// dropped; beyond [`TRACKED`], the oldest.
    pub(crate) fn note(&mut self, page: u64, read: u64) {
        self.tick += 1;
        let now = self.tick;
        self.recent.retain(|s| now - s.tick <= HORIZON);
        let noted = Stream {
            last: page,
            next: page.saturating_add(read.max(1)),
            tick: now,
        };
        let continued = self
            .recent
            .iter_mut()
            .filter(|s| s.last < page && page <= s.next.saturating_add(SLACK))
            .max_by_key(|s| s.last);
        match continued {
            Some(stream) => *stream = noted,
            None => {
                if self.recent.len() == TRACKED
                    && let Some((oldest, _)) =
                        self.recent.iter().enumerate().min_by_key(|(_, s)| s.tick)
                {
                    self.recent.swap_remove(oldest);
                }
                self.recent.push(noted);
            }
        }
    }

    /// The streams live (at least one: the caller's).
    pub(crate) fn live(&self) -> u64 {
        let now = self.tick;
        (self.recent.iter().filter(|s| now - s.tick <= HORIZON).count() as u64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::{HORIZON, SLACK, Streams, TRACKED};

    #[test]
    fn one_stream_moving_forward_stays_one() {
        let mut streams = Streams::default();
        for k in 0..1000 {
            streams.note(k * 256, 256);
            assert_eq!(streams.live(), 1);
        }
        // Growing windows, a few pages skipped, a fault inside the last
        // cluster (a page of it evicted before it was used): still one.
        let mut page = 1_000_000;
        for read in [8, 16, 32, 64, 64] {
            streams.note(page, read);
            page += read + 3;
        }
        streams.note(page - 10, 64);
        assert_eq!(streams.live(), 2);
    }

    #[test]
    fn interleaved_streams_are_counted_apart() {
        let mut streams = Streams::default();
        // 32 runs side by side, 256 pages each, each read 16 pages at a
        // time, in turn (a merge).
        for step in 0..16 {
            for run in 0..32u64 {
                streams.note(run * 256 + step * 16, 16);
            }
        }
        assert_eq!(streams.live(), 32);
        // A fault behind a stream, or too far ahead of it, is another.
        streams.note(100_000, 16);
        assert_eq!(streams.live(), 33);
        streams.note(100_000 + 16 + SLACK + 1, 16);
        assert_eq!(streams.live(), 34);
    }

    #[test]
    fn a_stream_that_stops_is_over_after_the_horizon() {
        let mut streams = Streams::default();
        streams.note(1_000_000, 256);
        for k in 0..HORIZON {
            streams.note(k * 256, 256);
        }
        assert_eq!(streams.live(), 2);
        streams.note(HORIZON * 256, 256);
        assert_eq!(streams.live(), 1);
    }

    #[test]
    fn at_most_tracked_streams_and_the_oldest_goes() {
        let mut streams = Streams::default();
        for run in 0..(TRACKED as u64 + 10) {
            streams.note(run * 1_000_000, 256);
        }
        assert_eq!(streams.live(), TRACKED as u64);
        // The first streams were replaced: their next faults start new
        // streams again (and replace others).
        assert!(streams.recent.iter().all(|s| s.last >= 10 * 1_000_000));
    }
}
