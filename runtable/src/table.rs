//! `RunTable`: the map from virtual pages to disk pages, as a sorted list
//! of runs (Cedar's `VMBacking.RunTable`).
//!
//! Owned by the volume; the VM reads it under its monitor. Invariants, kept
//! by every constructor and mutator and checked by
//! [`RunTable::check_invariants`]:
//!
//! - runs are sorted by virtual page and do not overlap virtually;
//! - no run is empty and no run's end overflows;
//! - the table is *normalized*: two runs that touch virtually and continue
//!   each other on the same drive are one run, so [`RunTable::segments`]
//!   yields maximal pieces.
//!
//! One-to-one-ness on disk is a property of a *validated* table
//! ([`RunTable::check_one_to_one`]); the volume checks it on open.
//!
//! Hot path: [`RunTable::translate`] is a binary search over the runs; it
//! neither allocates nor locks.

use crate::{DiskAddr, Interval, PageCount, PageNumber};
use serde::{Deserialize, Serialize};

/// `count` virtual pages from `page` map to consecutive disk pages from
/// `disk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Run {
    /// First virtual page.
    pub page: PageNumber,
    /// Disk address of the first page.
    pub disk: DiskAddr,
    /// Pages in the run.
    pub count: PageCount,
}

impl Run {
    /// The run's virtual pages.
    pub fn interval(&self) -> Interval {
        Interval {
            page: self.page,
            count: self.count,
        }
    }

    /// Whether `next` continues this run virtually and on disk.
    fn continued_by(&self, next: &Run) -> bool {
        self.page.checked_add(self.count) == Some(next.page)
            && self.disk.drive == next.disk.drive
            && self.disk.page.0.checked_add(self.count.0) == Some(next.disk.page.0)
    }
}

/// A maximal piece of an interval that is contiguous on one drive, or a
/// piece that no run maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First virtual page of the piece.
    pub page: PageNumber,
    /// Pages in the piece.
    pub count: PageCount,
    /// Where the piece starts on disk; `None` if no run maps it.
    pub disk: Option<DiskAddr>,
}

/// Why a list of runs is not a run table, or a remap cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunTableError {
    /// A run with no pages.
    #[error("run {index} at {page} has no pages")]
    EmptyRun {
        /// Index of the run.
        index: usize,
        /// Its first page.
        page: PageNumber,
    },
    /// A run whose end is past the largest page number.
    #[error("run {index} at {page} overflows the address space")]
    Overflow {
        /// Index of the run.
        index: usize,
        /// Its first page.
        page: PageNumber,
    },
    /// Two runs out of order or overlapping virtually.
    #[error("runs {first} and {second} overlap or are out of order at {page}")]
    Overlap {
        /// Index of the earlier run.
        first: usize,
        /// Index of the later run.
        second: usize,
        /// The later run's first page.
        page: PageNumber,
    },
    /// Two runs share a disk page.
    #[error("{first} and {second} both map to {disk}")]
    DiskOverlap {
        /// A virtual page mapped there.
        first: PageNumber,
        /// Another virtual page mapped there.
        second: PageNumber,
        /// The shared disk page.
        disk: DiskAddr,
    },
    /// A page that no run maps.
    #[error("{page} is not mapped")]
    Unmapped {
        /// The page.
        page: PageNumber,
    },
}

/// The sorted, normalized runs of a volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTable {
    runs: Vec<Run>,
}

impl RunTable {
    /// A table of `runs`, which must be sorted by virtual page, non-empty
    /// and non-overlapping; adjacent continuing runs are merged.
    pub fn new(runs: Vec<Run>) -> Result<RunTable, RunTableError> {
        for (index, run) in runs.iter().enumerate() {
            if run.count.0 == 0 {
                return Err(RunTableError::EmptyRun {
                    index,
                    page: run.page,
                });
            }
            let disk_end = run.disk.page.0.checked_add(run.count.0);
            if run.page.checked_add(run.count).is_none() || disk_end.is_none() {
                return Err(RunTableError::Overflow {
                    index,
                    page: run.page,
                });
            }
        }
        for (index, pair) in runs.windows(2).enumerate() {
            if pair[0].interval().end() > pair[1].page {
                return Err(RunTableError::Overlap {
                    first: index,
                    second: index + 1,
                    page: pair[1].page,
                });
            }
        }
        let mut table = RunTable { runs };
        table.normalize();
        table.check_invariants();
        Ok(table)
    }

    /// The runs, sorted by virtual page.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Number of runs.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Whether the table maps nothing.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Pages mapped by all runs.
    pub fn mapped_pages(&self) -> u64 {
        self.runs.iter().map(|r| r.count.0).sum()
    }

    /// Index of the run holding `page`.
    fn run_index(&self, page: PageNumber) -> Option<usize> {
        let after = self.runs.partition_point(|r| r.page <= page);
        let index = after.checked_sub(1)?;
        self.runs[index].interval().contains(page).then_some(index)
    }

    /// The disk address of `page`: a binary search, O(log runs).
    pub fn translate(&self, page: PageNumber) -> Option<DiskAddr> {
        let run = &self.runs[self.run_index(page)?];
        Some(run.disk.offset(page.0 - run.page.0))
    }

    /// The pieces of `interval` in order: each maximal piece contiguous on
    /// one drive, and each unmapped piece as a segment without a disk.
    pub fn segments(&self, interval: Interval) -> Segments<'_> {
        let end = interval.checked_end().unwrap_or(PageNumber(u64::MAX));
        let next_run = self
            .runs
            .partition_point(|r| r.interval().end() <= interval.page);
        Segments {
            runs: &self.runs,
            next_run,
            page: interval.page,
            end,
        }
    }

    /// Moves `page` to the disk page `spare`, splitting its run; returns the
    /// disk address it had. The caller makes sure `spare` is free.
    pub fn remap(&mut self, page: PageNumber, spare: DiskAddr) -> Result<DiskAddr, RunTableError> {
        let index = self
            .run_index(page)
            .ok_or(RunTableError::Unmapped { page })?;
        let run = self.runs[index];
        let before = page.since(run.page);
        let after = PageCount(run.count.0 - before.0 - 1);
        let old = run.disk.offset(before.0);
        let mut pieces = Vec::with_capacity(3);
        if before.0 > 0 {
            pieces.push(Run {
                page: run.page,
                disk: run.disk,
                count: before,
            });
        }
        pieces.push(Run {
            page,
            disk: spare,
            count: PageCount(1),
        });
        if after.0 > 0 {
            pieces.push(Run {
                page: page.plus(PageCount(1)),
                disk: old.offset(1),
                count: after,
            });
        }
        self.runs.splice(index..=index, pieces);
        self.normalize();
        self.check_invariants();
        Ok(old)
    }

    /// Merges adjacent runs that continue each other.
    fn normalize(&mut self) {
        let mut merged: Vec<Run> = Vec::with_capacity(self.runs.len());
        for run in self.runs.drain(..) {
            match merged.last_mut() {
                Some(last) if last.continued_by(&run) => last.count.0 += run.count.0,
                _ => merged.push(run),
            }
        }
        self.runs = merged;
    }

    /// Checks that no two runs share a disk page.
    pub fn check_one_to_one(&self) -> Result<(), RunTableError> {
        let mut by_disk: Vec<&Run> = self.runs.iter().collect();
        by_disk.sort_by_key(|r| r.disk);
        for pair in by_disk.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a.disk.drive == b.disk.drive && a.disk.page.0 + a.count.0 > b.disk.page.0 {
                let shared = b.disk;
                return Err(RunTableError::DiskOverlap {
                    first: a.page.plus(PageCount(shared.page.0 - a.disk.page.0)),
                    second: b.page,
                    disk: shared,
                });
            }
        }
        Ok(())
    }

    /// The structural invariants (see the module doc). A failure is a bug.
    pub fn check_invariants(&self) {
        for run in &self.runs {
            assert!(run.count.0 > 0, "empty run {run:?}");
            assert!(
                run.page.checked_add(run.count).is_some(),
                "overflowing run {run:?}"
            );
        }
        for pair in self.runs.windows(2) {
            assert!(pair[0].interval().end() <= pair[1].page, "overlap {pair:?}");
            assert!(!pair[0].continued_by(&pair[1]), "unmerged runs {pair:?}");
        }
    }
}

/// Iterator returned by [`RunTable::segments`].
#[derive(Debug)]
pub struct Segments<'a> {
    runs: &'a [Run],
    next_run: usize,
    page: PageNumber,
    end: PageNumber,
}

impl Iterator for Segments<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        if self.page >= self.end {
            return None;
        }
        let run = self.runs.get(self.next_run);
        let segment = match run {
            Some(run) if run.page <= self.page => {
                let offset = self.page.0 - run.page.0;
                let count = (run.interval().end().0.min(self.end.0)) - self.page.0;
                self.next_run += 1;
                Segment {
                    page: self.page,
                    count: PageCount(count),
                    disk: Some(run.disk.offset(offset)),
                }
            }
            _ => {
                let stop = run.map_or(self.end.0, |r| r.page.0.min(self.end.0));
                Segment {
                    page: self.page,
                    count: PageCount(stop - self.page.0),
                    disk: None,
                }
            }
        };
        self.page = self.page.plus(segment.count);
        Some(segment)
    }
}
