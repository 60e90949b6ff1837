//! Specification of the simulated drive: determinism, the presets' seek
//! curves against their documented figures, and the timing of seek-ahead.

use disk_channel::rng::SplitMix64;
use disk_channel::{DiskPage, Drive, DriveError, Mechanics, SimDrive, SimModel};

const PAGE: usize = 4096;

fn run_sequence(drive: &mut SimDrive, seed: u64, requests: usize) -> Vec<u64> {
    let mut rng = SplitMix64::new(seed);
    let mut buf = vec![0u8; PAGE];
    let mut times = Vec::new();
    for i in 0..requests {
        let page = DiskPage(rng.below(drive.page_count()));
        let hint = (i % 3 == 0).then(|| DiskPage(rng.below(drive.page_count())));
        if i % 2 == 0 {
            drive.read(page, &mut buf, hint).unwrap();
        } else {
            drive.write(page, &buf, hint).unwrap();
        }
        times.push(drive.virtual_time_ns().unwrap());
    }
    times
}

#[test]
fn same_request_sequence_gives_identical_times() {
    for preset in SimModel::PRESETS {
        let mut a = SimDrive::preset(preset, PAGE).unwrap();
        let mut b = SimDrive::preset(preset, PAGE).unwrap();
        assert_eq!(
            run_sequence(&mut a, 42, 300),
            run_sequence(&mut b, 42, 300),
            "{preset}"
        );
        assert_eq!(a.stats(), b.stats(), "{preset}");
    }
}

fn within(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= expected * tolerance
}

#[test]
fn diablo31_seek_curve_reproduces_documented_min_avg_max() {
    let model = SimModel::diablo31();
    let curve = model.seek_curve();
    let (min, avg, max) = (curve.min_ms(), curve.average_ms(203), curve.max_ms(203));
    assert!(within(min, 15.0, 0.02), "min {min}");
    assert!(within(avg, 70.0, 0.02), "avg {avg}");
    assert!(within(max, 135.0, 0.02), "max {max}");
}

#[test]
fn modern_hdd_seek_curve_reproduces_its_data_sheet_figures() {
    let curve = SimModel::modern_hdd().seek_curve();
    assert!(within(curve.min_ms(), 1.0, 0.02));
    assert!(within(curve.average_ms(100_000), 8.5, 0.02));
    assert!(within(curve.max_ms(100_000), 17.0, 0.02));
}

#[test]
fn diablo44_and_trident_use_the_design_curve_8_plus_3_sqrt_d() {
    for model in [SimModel::diablo44(), SimModel::trident_t300()] {
        let curve = model.seek_curve();
        for d in [1u64, 4, 100, 400] {
            let expected = 8.0 + 3.0 * (d as f64).sqrt();
            assert!(
                (curve.seek_ms(d) - expected).abs() < 1e-9,
                "{} d={d}",
                model.name
            );
        }
        assert_eq!(curve.seek_ns(0), 0);
    }
}

#[test]
fn every_preset_seek_curve_rises_with_distance() {
    for preset in SimModel::PRESETS {
        let model = SimModel::preset(preset).unwrap();
        if let Mechanics::Rotating {
            cylinders, seek, ..
        } = model.mechanics
        {
            let mut previous = 0;
            for d in 0..cylinders {
                let t = seek.seek_ns(d);
                assert!(t >= previous, "{preset}: t({d}) = {t} < {previous}");
                previous = t;
            }
        }
    }
}

/// Independent arithmetic for a one-page read on `diablo44` (12 sectors of
/// 512 bytes per track, 2 heads, 25 ms per revolution; a 4 KiB page is 8
/// sectors, so cylinder c holds pages 3c, 3c+1, 3c+2).
struct Diablo44 {
    gap: u64,
}

impl Diablo44 {
    const REV: u64 = 25_000_000;
    fn seek(d: u64) -> u64 {
        if d == 0 {
            0
        } else {
            ((8.0 + 3.0 * (d as f64).sqrt()) * 1e6).round() as u64
        }
    }
    fn sector_start(k: u64) -> u64 {
        (k / 12) * Self::REV + (k % 12) * Self::REV / 12
    }
    /// Completion time of a page whose heads are over its cylinder at `t`.
    fn finish(t: u64, page: u64) -> u64 {
        let first = (page * 8) % 24 % 12;
        let start = Self::sector_start(first);
        let t = t + (start + Self::REV - t % Self::REV) % Self::REV;
        t + Self::sector_start(first + 8) - start
    }
}

#[test]
fn seek_ahead_saves_min_of_seek_and_gap_as_the_model_predicts() {
    for gap in [2_000_000u64, 25_000_000, 50_000_000] {
        let model = Diablo44 { gap };
        let (p1, p2) = (0u64, 300u64); // cylinders 0 and 100
        let done1 = Diablo44::finish(model.gap, p1);
        let seek = Diablo44::seek(100);
        let issue2 = done1 + model.gap;
        let arrive_without = issue2 + seek;
        let arrive_with = issue2.max(done1 + seek);
        assert_eq!(arrive_without - arrive_with, seek.min(gap));
        let expected_without = Diablo44::finish(arrive_without, p2);
        let expected_with = Diablo44::finish(arrive_with, p2);

        for (hint, expected) in [
            (None, expected_without),
            (Some(DiskPage(p2)), expected_with),
        ] {
            let sim = SimModel::diablo44().with_software_gap_ns(gap);
            let mut drive = SimDrive::new(sim, PAGE).unwrap();
            let mut buf = vec![0u8; PAGE];
            drive.read(DiskPage(p1), &mut buf, hint).unwrap();
            assert_eq!(drive.virtual_time_ns(), Some(done1));
            drive.read(DiskPage(p2), &mut buf, None).unwrap();
            assert_eq!(
                drive.virtual_time_ns(),
                Some(expected),
                "gap {gap} hint {hint:?}"
            );
            let stats = drive.stats();
            assert_eq!(stats.seek_aheads_issued, u64::from(hint.is_some()));
            assert_eq!(stats.seek_aheads_used, u64::from(hint.is_some()));
            let overlap = if hint.is_some() { seek.min(gap) } else { 0 };
            assert_eq!(stats.seek_ahead_overlap_ns, overlap);
        }
        // A gap of exactly one revolution keeps the rotational position, so
        // the whole saving shows in the completion time.
        if gap == Diablo44::REV {
            assert_eq!(expected_without - expected_with, seek.min(gap));
        }
    }
}

#[test]
fn a_wrong_hint_costs_time_and_is_not_counted_as_used() {
    let mut plain = SimDrive::preset("diablo44", PAGE).unwrap();
    let mut misled = SimDrive::preset("diablo44", PAGE).unwrap();
    let mut buf = vec![0u8; PAGE];
    plain.read(DiskPage(0), &mut buf, None).unwrap();
    misled
        .read(DiskPage(0), &mut buf, Some(DiskPage(1200)))
        .unwrap();
    plain.read(DiskPage(3), &mut buf, None).unwrap();
    misled.read(DiskPage(3), &mut buf, None).unwrap();
    assert!(misled.virtual_time_ns() > plain.virtual_time_ns());
    assert_eq!(misled.stats().seek_aheads_issued, 1);
    assert_eq!(misled.stats().seek_aheads_used, 0);
}

#[test]
fn ssd_charges_a_fixed_latency_and_transfer_time() {
    let mut drive = SimDrive::preset("ssd", PAGE).unwrap();
    let mut buf = vec![0u8; 2 * PAGE];
    drive.read(DiskPage(5), &mut buf, None).unwrap();
    // gap 2 µs + latency 50 µs + 8192 bytes at 2 GB/s (4096 ns).
    assert_eq!(drive.virtual_time_ns(), Some(2_000 + 50_000 + 4_096));
    assert_eq!(drive.stats().cylinders_crossed, 0);
}

#[test]
fn idle_time_lets_a_hinted_seek_finish_before_the_next_request() {
    let mut drive = SimDrive::preset("diablo44", PAGE).unwrap();
    let mut buf = vec![0u8; PAGE];
    drive
        .read(DiskPage(0), &mut buf, Some(DiskPage(900)))
        .unwrap();
    let done = drive.virtual_time_ns().unwrap();
    drive.idle_until(done + 1_000_000_000);
    drive.read(DiskPage(900), &mut buf, None).unwrap();
    // Heads already there: only the gap, rotation and transfer remain.
    let elapsed = drive.virtual_time_ns().unwrap() - done - 1_000_000_000;
    assert!(elapsed <= 2_000_000 + 25_000_000 + 16_666_667, "{elapsed}");
}

#[test]
fn data_round_trips_and_unwritten_pages_read_as_zeros() {
    let mut drive = SimDrive::preset("diablo31", PAGE).unwrap();
    let data: Vec<u8> = (0..2 * PAGE).map(|i| (i % 251) as u8).collect();
    drive.write(DiskPage(10), &data, None).unwrap();
    let mut back = vec![0xFFu8; 3 * PAGE];
    drive.read(DiskPage(10), &mut back, None).unwrap();
    assert_eq!(&back[..2 * PAGE], &data[..]);
    assert!(back[2 * PAGE..].iter().all(|&b| b == 0));
    assert_eq!(drive.pages_stored(), 2);
}

#[test]
fn transfers_off_the_drive_or_of_partial_pages_are_errors() {
    let mut drive = SimDrive::preset("diablo31", PAGE).unwrap();
    let last = drive.page_count();
    let mut buf = vec![0u8; PAGE];
    assert!(matches!(
        drive.read(DiskPage(last), &mut buf, None),
        Err(DriveError::OutOfRange { page_count, .. }) if page_count == last
    ));
    let mut odd = vec![0u8; PAGE + 1];
    assert!(matches!(
        drive.read(DiskPage(0), &mut odd, None),
        Err(DriveError::BadBuffer { .. })
    ));
    assert!(matches!(
        drive.write(DiskPage(0), &[], None),
        Err(DriveError::BadBuffer { .. })
    ));
    assert!(SimDrive::preset("diablo31", 1000).is_err());
    assert!(SimDrive::preset("floppy", PAGE).is_err());
}

#[test]
fn shared_media_sees_what_another_handle_wrote() {
    let mut a = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(64)
        .unwrap();
    a.write(DiskPage(3), &[7u8; PAGE], None).unwrap();
    let mut b = a.share_media();
    let mut buf = vec![0u8; PAGE];
    b.read(DiskPage(3), &mut buf, None).unwrap();
    assert!(buf.iter().all(|&x| x == 7));
    assert_eq!(b.stats().writes, 0);
}
