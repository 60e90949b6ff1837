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
//! Each fault that brings in a stream's next pages is noted with how many
//! it brought in: under `Sequential` advice a cluster read, a run of
//! zeros or pages read one by one; a cluster planned for the read-ahead
//! thread; under `Normal` advice a stream found going up by its resident
//! pages (not one going down, nor runs of zeros under `Normal`). It
//! continues the stream whose last cluster it follows — at or
//! past that cluster's first page, and, the pages resident just before it
//! left aside (what the stream kept, or read past without a fault), no
//! more than [`SLACK`] pages past its end; the closest such stream — or
//! starts one. A stream is over once
//! the streams together have read `horizon` pages since its last cluster
//! (the caller's choice: half of real memory, by when what it read ahead
//! would be gone anyway). With `n` streams live, a window is at most a
//! quarter of real memory over `n`, so between two faults of one stream
//! the others read about a quarter of memory: half is twice that. A
//! stream left alone after a merge has its whole window back once it has
//! read half of memory, not after a count of faults that, in windows of
//! the merge's size, would be far more.

/// Streams tracked at most; a new one replaces the oldest.
const TRACKED: usize = 64;

/// How far past the end of its last cluster a stream's next fault may
/// lie (pages it skipped, or read otherwise).
pub(crate) const SLACK: u64 = 8;

/// One stream: the first page of its last cluster, the page after it,
/// and the pages read by all streams when it was noted.
#[derive(Clone, Copy, Debug)]
struct Stream {
    last: u64,
    next: u64,
    at: u64,
}

/// The sequential streams faulting lately (see the module doc). Guarded
/// by the monitor.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    recent: Vec<Stream>,
    /// Pages read by the clusters noted, all streams together.
    read: u64,
}

impl Streams {
    /// Notes a stream's fault at `page` that brought in `read` pages (at
    /// least one counted): it continues the stream whose last cluster it
    /// follows, or starts one (see the module doc). `behind` counts the
    /// pages resident just before `page`; it is asked only when no stream
    /// is followed without them (a stream that continues, the common case,
    /// costs no walk back over its pages). Streams over (more than
    /// `horizon` pages read since their last cluster) are dropped; beyond
    /// [`TRACKED`], the oldest.
    pub(crate) fn note(
        &mut self,
        page: u64,
        read: u64,
        behind: impl FnOnce() -> u64,
        horizon: u64,
    ) {
        let read = read.max(1);
        let now = self.read;
        self.recent.retain(|s| now - s.at <= horizon);
        self.read += read;
        let noted = Stream {
            last: page,
            next: page.saturating_add(read),
            at: self.read,
        };
        // The closest stream followed, first without the resident pages.
        let closest = |recent: &[Stream], behind: u64| {
            recent
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    s.last <= page && page.saturating_sub(behind) <= s.next.saturating_add(SLACK)
                })
                .max_by_key(|(_, s)| s.last)
                .map(|(k, _)| k)
        };
        let continued = closest(&self.recent, 0).or_else(|| closest(&self.recent, behind()));
        match continued {
            Some(k) => self.recent[k] = noted,
            None => {
                if self.recent.len() == TRACKED
                    && let Some((oldest, _)) =
                        self.recent.iter().enumerate().min_by_key(|(_, s)| s.at)
                {
                    self.recent.swap_remove(oldest);
                }
                self.recent.push(noted);
            }
        }
    }

    /// The streams live: noted no more than `horizon` pages read ago (at
    /// least one: the caller's).
    pub(crate) fn live(&self, horizon: u64) -> u64 {
        let live = self.recent.iter().filter(|s| self.read - s.at <= horizon);
        (live.count() as u64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::{SLACK, Streams, TRACKED};

    /// Half of 8,192 pages of real memory.
    const HORIZON: u64 = 4096;

    #[test]
    fn one_stream_moving_forward_stays_one() {
        let mut streams = Streams::default();
        for k in 0..1000 {
            streams.note(k * 256, 256, || 0, HORIZON);
            assert_eq!(streams.live(HORIZON), 1);
        }
        // A stream that continues is found without a walk back over the
        // pages resident before the fault.
        streams.note(1000 * 256, 256, || unreachable!("walked back"), HORIZON);
        assert_eq!(streams.live(HORIZON), 1);
        // Growing windows, a few pages skipped, a fault inside the last
        // cluster (a page of it evicted before it was used): still one
        // stream beside the first.
        let mut page = 1_000_000;
        for read in [8, 16, 32, 64, 64] {
            streams.note(page, read, || 0, HORIZON);
            page += read + 3;
        }
        streams.note(page - 10, 64, || 0, HORIZON);
        assert_eq!(streams.live(HORIZON), 2);
        // A fault again at its last cluster's first page (a retry, or
        // that page evicted before it was used): still the same stream.
        streams.note(page - 10, 64, || 0, HORIZON);
        assert_eq!(streams.live(HORIZON), 2);
        // Past pages it holds, read without a fault (resident already):
        // the same stream, as far past the end of its last cluster as the
        // resident pages reach (the caller counts them up to the horizon).
        let last_end = page - 10 + 64;
        streams.note(last_end + 500, 64, || 500, HORIZON);
        assert_eq!(streams.live(HORIZON), 2);
        // Without them resident, another.
        streams.note(last_end + 5000, 64, || 10, HORIZON);
        assert_eq!(streams.live(HORIZON), 3);
    }

    #[test]
    fn interleaved_streams_are_counted_apart() {
        let mut streams = Streams::default();
        // 32 runs side by side, 256 pages each, each read 16 pages at a
        // time, in turn (a merge).
        for step in 0..16 {
            for run in 0..32u64 {
                streams.note(run * 256 + step * 16, 16, || 0, HORIZON);
            }
        }
        assert_eq!(streams.live(HORIZON), 32);
        // A fault behind a stream, or too far ahead of it, is another.
        streams.note(100_000, 16, || 0, HORIZON);
        assert_eq!(streams.live(HORIZON), 33);
        streams.note(100_000 + 16 + SLACK + 1, 16, || 0, HORIZON);
        assert_eq!(streams.live(HORIZON), 34);
    }

    #[test]
    fn a_stream_that_stops_is_over_once_the_horizon_is_read() {
        let mut streams = Streams::default();
        streams.note(1_000_000, 256, || 0, HORIZON);
        // The other stream reads up to the horizon: both live.
        for k in 0..HORIZON / 256 {
            streams.note(k * 256, 256, || 0, HORIZON);
        }
        assert_eq!(streams.live(HORIZON), 2);
        // One page more, and the first is over.
        streams.note(HORIZON, 1, || 0, HORIZON);
        assert_eq!(streams.live(HORIZON), 1);
        assert_eq!(streams.recent.len(), 2, "dropped at the next note");
        streams.note(HORIZON + 1, 1, || 0, HORIZON);
        assert_eq!(streams.recent.len(), 1);
    }

    #[test]
    fn at_most_tracked_streams_and_the_oldest_goes() {
        let mut streams = Streams::default();
        for run in 0..(TRACKED as u64 + 10) {
            streams.note(run * 1_000_000, 16, || 0, HORIZON);
        }
        assert_eq!(streams.live(HORIZON), TRACKED as u64);
        assert!(streams.recent.iter().all(|s| s.last >= 10 * 1_000_000));
    }
}
