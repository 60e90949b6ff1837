//! Property tests: the run table derived by the format rule, and every
//! operation on it, agree with a naive model that keeps one disk address
//! per virtual page.

use proptest::prelude::*;
use runtable::layout::{self, BadSpot, Geometry, Layout};
use runtable::{DiskAddr, Interval, PageNumber, RunTable};
use std::collections::BTreeSet;

#[derive(Clone, Debug)]
struct Format {
    geometry: Geometry,
    bad: Vec<DiskAddr>,
}

fn format_strategy() -> impl Strategy<Value = Format> {
    (
        prop::collection::vec(20u64..400, 1..=4),
        prop_oneof![
            Just(Layout::Concatenate),
            (1u32..40).prop_map(|unit| Layout::Stripe { unit })
        ],
        0u32..6,
        1u32..3,
        prop::collection::vec((0usize..4, 0u64..400), 0..30),
        0.3f64..1.0,
    )
        .prop_map(|(drive_pages, layout, spares, slot_pages, bad, fill)| {
            let geometry_stub = Geometry {
                volume_id: 1,
                page_size: 4096,
                virtual_pages: 0,
                drive_pages: drive_pages.clone(),
                layout,
                spare_pages_per_drive: spares,
                header_slot_pages: slot_pages,
                reserve_remaps: 8,
                sparse: true,
            };
            let bad: BTreeSet<DiskAddr> = bad
                .into_iter()
                .filter(|&(d, _)| d < drive_pages.len())
                .map(|(d, p)| DiskAddr::new(d as u16, p % drive_pages[d]))
                .filter(|&a| !geometry_stub.is_reserved(a))
                .collect();
            let data_pages: u64 = (0..drive_pages.len())
                .map(|d| naive_data_pages(&geometry_stub, d, &bad).len() as u64)
                .sum();
            let virtual_pages = ((data_pages as f64) * fill) as u64;
            Format {
                geometry: Geometry {
                    virtual_pages,
                    ..geometry_stub
                },
                bad: bad.into_iter().collect(),
            }
        })
}

/// The data pages of drive `d`, one by one.
fn naive_data_pages(g: &Geometry, d: usize, bad: &BTreeSet<DiskAddr>) -> Vec<DiskAddr> {
    let drive = runtable::DriveId(d as u16);
    let (spare_start, _) = g.spare_range(drive);
    (g.reserved_front(drive)..spare_start)
        .map(|p| DiskAddr::new(d as u16, p))
        .filter(|a| !bad.contains(a))
        .collect()
}

/// The format rule page by page: a cursor on a drive, moved on after
/// `unit` pages or when the drive has no data page left.
fn naive_model(f: &Format) -> Vec<DiskAddr> {
    let g = &f.geometry;
    let bad: BTreeSet<DiskAddr> = f.bad.iter().copied().collect();
    let mut queues: Vec<std::collections::VecDeque<DiskAddr>> = (0..g.drive_count())
        .map(|d| naive_data_pages(g, d, &bad).into())
        .collect();
    let unit = match g.layout {
        Layout::Concatenate => u64::MAX,
        Layout::Stripe { unit } => u64::from(unit),
    };
    let (mut cursor, mut used) = (0usize, 0u64);
    let mut model = Vec::new();
    for _ in 0..g.virtual_pages {
        if used == unit {
            cursor = (cursor + 1) % queues.len();
            used = 0;
        }
        while queues[cursor].is_empty() {
            cursor = (cursor + 1) % queues.len();
            used = 0;
        }
        model.push(queues[cursor].pop_front().unwrap());
        used += 1;
    }
    model
}

fn derive(f: &Format) -> RunTable {
    let spots: Vec<BadSpot> = f
        .bad
        .iter()
        .map(|&addr| BadSpot { addr, spare: None })
        .collect();
    layout::derive_run_table(&f.geometry, &spots).unwrap()
}

fn assert_matches_model(table: &RunTable, model: &[DiskAddr]) {
    table.check_invariants();
    assert_eq!(table.mapped_pages(), model.len() as u64);
    for (page, &addr) in model.iter().enumerate() {
        assert_eq!(
            table.translate(PageNumber(page as u64)),
            Some(addr),
            "page {page}"
        );
    }
    assert_eq!(table.translate(PageNumber(model.len() as u64)), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn translate_agrees_with_the_naive_model(f in format_strategy()) {
        let table = derive(&f);
        assert_matches_model(&table, &naive_model(&f));
    }

    #[test]
    fn translation_is_one_to_one_and_avoids_bad_label_header_and_spare_pages(f in format_strategy()) {
        let table = derive(&f);
        table.check_one_to_one().unwrap();
        let bad: BTreeSet<DiskAddr> = f.bad.iter().copied().collect();
        let mut seen = BTreeSet::new();
        for page in 0..f.geometry.virtual_pages {
            let addr = table.translate(PageNumber(page)).unwrap();
            prop_assert!(seen.insert(addr), "{addr} mapped twice");
            prop_assert!(!bad.contains(&addr));
            prop_assert!(!f.geometry.is_reserved(addr));
            prop_assert!(!f.geometry.is_spare(addr));
        }
        let spots: Vec<BadSpot> = f.bad.iter().map(|&addr| BadSpot { addr, spare: None }).collect();
        prop_assert!(runtable::check::mapping_problems(&f.geometry, table.runs(), &spots).is_empty());
    }

    #[test]
    fn segments_cover_the_interval_with_maximal_contiguous_pieces(
        f in format_strategy(), start in 0u64..1000, len in 0u64..400,
    ) {
        let table = derive(&f);
        let model = naive_model(&f);
        let interval = Interval::new(start, len);
        let mut page = start;
        let mut previous: Option<runtable::Segment> = None;
        for segment in table.segments(interval) {
            prop_assert_eq!(segment.page.0, page);
            prop_assert!(segment.count.0 > 0);
            for k in 0..segment.count.0 {
                let expected = model.get((page + k) as usize).copied();
                prop_assert_eq!(segment.disk.map(|d| d.offset(k)), expected);
            }
            if let (Some(prev), Some(disk)) = (previous, segment.disk)
                && let Some(prev_disk) = prev.disk
            {
                let continues = prev_disk.drive == disk.drive && prev_disk.page.0 + prev.count.0 == disk.page.0;
                prop_assert!(!continues, "segments {prev:?} and {segment:?} are not maximal");
            }
            page += segment.count.0;
            previous = Some(segment);
        }
        prop_assert_eq!(page, start + len);
    }

    #[test]
    fn remap_agrees_with_the_naive_model(f in format_strategy(), picks in prop::collection::vec(any::<u64>(), 1..8)) {
        prop_assume!(f.geometry.virtual_pages > 0 && f.geometry.spare_pages_per_drive > 0);
        let mut table = derive(&f);
        let mut model = naive_model(&f);
        let bad: BTreeSet<DiskAddr> = f.bad.iter().copied().collect();
        let mut spares: Vec<DiskAddr> = (0..f.geometry.drive_count())
            .flat_map(|d| {
                let (s, e) = f.geometry.spare_range(runtable::DriveId(d as u16));
                (s..e).map(move |p| DiskAddr::new(d as u16, p))
            })
            .filter(|a| !bad.contains(a))
            .collect();
        let mut spots: Vec<BadSpot> = f.bad.iter().map(|&addr| BadSpot { addr, spare: None }).collect();
        for pick in picks {
            let Some(spare) = spares.pop() else { break };
            let page = pick % f.geometry.virtual_pages;
            let old = table.remap(PageNumber(page), spare).unwrap();
            prop_assert_eq!(old, model[page as usize]);
            spots.push(BadSpot { addr: old, spare: Some(spare) });
            model[page as usize] = spare;
            assert_matches_model(&table, &model);
            table.check_one_to_one().unwrap();
        }
        // The bad-spot table replays to the same run table.
        let rebuilt = layout::derive_run_table(&f.geometry, &spots).unwrap();
        prop_assert_eq!(rebuilt, table);
    }
}
