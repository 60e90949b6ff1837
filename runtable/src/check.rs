//! Cross-checks of a run table against its volume: what `open` refuses and
//! what the scavenger reports.
//!
//! The checks, in order: the runs form a run table (sorted, non-empty,
//! non-overlapping virtually); every run lies on its drive; no disk page is
//! mapped twice; no run touches a label or header page, a bad spot, or a
//! spare that no bad-spot entry assigned; the runs cover virtual pages
//! `0..virtual_pages` exactly. Each check reports at most
//! [`PROBLEMS_MAX`] problems in all.

use crate::error::MappingProblem;
use crate::layout::{BadSpot, Geometry};
use crate::table::{Run, RunTable};
use crate::{DiskAddr, PageCount, PageNumber};
use std::collections::BTreeSet;

/// Most problems one check reports.
pub const PROBLEMS_MAX: usize = 64;

/// Every problem (up to [`PROBLEMS_MAX`]) with `runs` on a volume of
/// `geometry` with the bad-spot table `bad_spots`. Empty means consistent.
///
/// This is the one validation of a run table: `Volume::open` refuses a
/// header slot for the first problem it returns, and the scavenger reports
/// them all (through [`mapping_problems_with`]).
pub fn mapping_problems(
    geometry: &Geometry,
    runs: &[Run],
    bad_spots: &[BadSpot],
) -> Vec<MappingProblem> {
    match mapping_problems_with(geometry, runs, bad_spots, |table| {
        Ok::<_, std::convert::Infallible>(table.check_one_to_one())
    }) {
        Ok(problems) => problems,
        Err(never) => match never {},
    }
}

/// [`mapping_problems`] with the one check that needs memory in proportion
/// to the table — that no disk page is mapped twice, which sorts the runs
/// by disk address — done by `one_to_one` (the scavenger sorts in its
/// utility VM; `open` sorts a vector). `one_to_one` answers as
/// [`RunTable::check_one_to_one`] does; its own failure (`E`) ends the check.
pub fn mapping_problems_with<E>(
    geometry: &Geometry,
    runs: &[Run],
    bad_spots: &[BadSpot],
    one_to_one: impl FnOnce(&RunTable) -> Result<Result<(), crate::table::RunTableError>, E>,
) -> Result<Vec<MappingProblem>, E> {
    let mut problems = Vec::new();
    let table = match RunTable::new(runs.to_vec()) {
        Ok(table) => table,
        Err(e) => {
            problems.push(MappingProblem::Runs(e));
            return Ok(problems);
        }
    };
    let drives = geometry.drive_count();
    for spot in bad_spots {
        let on_volume = |a: DiskAddr| {
            a.drive.index() < drives && a.page.0 < geometry.drive_pages[a.drive.index()]
        };
        if !on_volume(spot.addr) {
            problems.push(MappingProblem::BadSpotEntry {
                addr: spot.addr,
                reason: "the page is not on the volume".into(),
            });
        } else if let Some(spare) = spot.spare
            && (!on_volume(spare) || !geometry.is_spare(spare))
        {
            problems.push(MappingProblem::BadSpotEntry {
                addr: spot.addr,
                reason: format!("its spare {spare} is not in a spare pool"),
            });
        }
    }
    let rules = PlacementRules::new(bad_spots);
    for run in table.runs() {
        rules.run_problems(geometry, run, &mut problems);
    }
    if let Err(crate::table::RunTableError::DiskOverlap {
        first,
        second,
        disk,
    }) = one_to_one(&table)?
    {
        problems.push(MappingProblem::OverlappingRuns {
            first,
            second,
            disk,
        });
    }
    let mut expected = PageNumber(0);
    for run in table.runs() {
        if run.page != expected {
            problems.push(MappingProblem::Unmapped {
                page: expected,
                virtual_pages: geometry.virtual_pages,
            });
        }
        expected = run.interval().end();
    }
    if expected.0 < geometry.virtual_pages {
        problems.push(MappingProblem::Unmapped {
            page: expected,
            virtual_pages: geometry.virtual_pages,
        });
    }
    problems.truncate(PROBLEMS_MAX);
    Ok(problems)
}

/// The per-run checks: what one run may not touch.
#[derive(Debug, Default)]
pub struct PlacementRules {
    bad: BTreeSet<DiskAddr>,
    assigned: BTreeSet<DiskAddr>,
}

impl PlacementRules {
    /// The rules of a volume whose bad-spot table is `bad_spots`.
    pub fn new(bad_spots: &[BadSpot]) -> PlacementRules {
        PlacementRules {
            bad: bad_spots.iter().map(|s| s.addr).collect(),
            assigned: bad_spots.iter().filter_map(|s| s.spare).collect(),
        }
    }

    /// Appends what is wrong with `run` alone (up to [`PROBLEMS_MAX`] in
    /// all): past its drive's end, beyond the virtual size, on a label or
    /// header page, on a bad spot, on a spare no bad-spot entry assigned.
    pub fn run_problems(&self, geometry: &Geometry, run: &Run, problems: &mut Vec<MappingProblem>) {
        if problems.len() >= PROBLEMS_MAX {
            return;
        }
        if run
            .page
            .checked_add(run.count)
            .is_none_or(|end| end.0 > geometry.virtual_pages)
        {
            problems.push(MappingProblem::BeyondVirtualSize {
                page: run.page,
                virtual_pages: geometry.virtual_pages,
            });
        }
        let drive_pages = geometry
            .drive_pages
            .get(run.disk.drive.index())
            .copied()
            .unwrap_or(0);
        let fits = run
            .disk
            .page
            .0
            .checked_add(run.count.0)
            .is_some_and(|end| end <= drive_pages);
        if !fits {
            problems.push(MappingProblem::RunPastDriveEnd {
                page: run.page,
                disk: run.disk,
                count: run.count.0,
                drive_pages,
            });
            return;
        }
        let (drive, start, end) = (
            run.disk.drive,
            run.disk.page.0,
            run.disk.page.0 + run.count.0,
        );
        let virtual_of = |disk_page: u64| run.page.plus(PageCount(disk_page - start));
        if start < geometry.reserved_front(drive) {
            problems.push(MappingProblem::OnReservedPage {
                page: run.page,
                disk: run.disk,
            });
        }
        let range = DiskAddr::new(drive.0, start)..DiskAddr::new(drive.0, end);
        if let Some(spot) = self.bad.range(range).next() {
            problems.push(MappingProblem::OnBadSpot {
                page: virtual_of(spot.page.0),
                disk: *spot,
            });
        }
        let (spare_start, spare_end) = geometry.spare_range(drive);
        for disk_page in start.max(spare_start)..end.min(spare_end) {
            let disk = DiskAddr::new(drive.0, disk_page);
            if !self.assigned.contains(&disk) {
                problems.push(MappingProblem::OnUnassignedSpare {
                    page: virtual_of(disk_page),
                    disk,
                });
                break;
            }
        }
    }
}
