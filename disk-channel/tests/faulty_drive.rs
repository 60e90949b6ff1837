//! Specification of the fault-injecting drive.

use disk_channel::{DiskPage, Drive, DriveError, FaultyDrive, OpKind, SimDrive};

const PAGE: usize = 4096;

fn drive() -> (FaultyDrive<SimDrive>, SimDrive) {
    let sim = SimDrive::preset("ssd", PAGE)
        .unwrap()
        .with_page_count(64)
        .unwrap();
    let view = sim.share_media();
    (FaultyDrive::new(sim), view)
}

fn page_of(drive: &mut SimDrive, page: u64) -> Vec<u8> {
    let mut buf = vec![0u8; PAGE];
    drive.read(DiskPage(page), &mut buf, None).unwrap();
    buf
}

#[test]
fn bad_pages_fail_every_transfer_that_touches_them() {
    let (mut d, _) = drive();
    let h = d.handle();
    h.add_bad_page(DiskPage(5));
    let mut buf = vec![0u8; 2 * PAGE];
    let err = d.read(DiskPage(4), &mut buf, None).unwrap_err();
    assert!(matches!(
        err,
        DriveError::BadPage {
            page: DiskPage(5),
            ..
        }
    ));
    assert!(d.write(DiskPage(5), &buf[..PAGE], None).is_err());
    d.read(DiskPage(6), &mut buf, None).unwrap();
    h.remove_bad_page(DiskPage(5));
    d.read(DiskPage(4), &mut buf, None).unwrap();
}

#[test]
fn the_nth_operation_fails_once() {
    let (mut d, _) = drive();
    let h = d.handle();
    h.fail_once(OpKind::Write, 2);
    let data = vec![1u8; PAGE];
    let results: Vec<bool> = (0..5)
        .map(|i| d.write(DiskPage(i), &data, None).is_ok())
        .collect();
    assert_eq!(results, [true, true, false, true, true]);
    assert_eq!(h.injected_failures(), 1);
}

#[test]
fn failing_forever_lasts_until_cleared() {
    let (mut d, _) = drive();
    let h = d.handle();
    h.fail_from(OpKind::Read, 1);
    let mut buf = vec![0u8; PAGE];
    assert!(d.read(DiskPage(0), &mut buf, None).is_ok());
    for _ in 0..5 {
        let err = d.read(DiskPage(1), &mut buf, None).unwrap_err();
        assert!(matches!(
            err,
            DriveError::Injected {
                op: "read",
                page: DiskPage(1),
                ..
            }
        ));
    }
    assert!(
        d.write(DiskPage(1), &buf, None).is_ok(),
        "writes are not counted by a read rule"
    );
    h.clear_failures();
    assert!(d.read(DiskPage(1), &mut buf, None).is_ok());
}

#[test]
fn a_torn_write_lands_a_prefix_and_then_the_drive_crashes() {
    let (mut d, mut view) = drive();
    let h = d.handle();
    d.write(DiskPage(0), &vec![1u8; 3 * PAGE], None).unwrap();
    h.tear_write(0, PAGE + 100);
    d.write(DiskPage(0), &vec![2u8; 3 * PAGE], None).unwrap();
    assert!(page_of(&mut view, 0).iter().all(|&b| b == 2));
    let second = page_of(&mut view, 1);
    assert!(second[..100].iter().all(|&b| b == 2) && second[100..].iter().all(|&b| b == 1));
    assert!(page_of(&mut view, 2).iter().all(|&b| b == 1));
    assert!(h.crashed());
    d.write(DiskPage(10), &vec![3u8; PAGE], None).unwrap();
    assert!(
        page_of(&mut view, 10).iter().all(|&b| b == 0),
        "writes after the crash are dropped"
    );
    assert_eq!(h.dropped_writes(), 1);
}

#[test]
fn after_the_crash_point_writes_are_dropped_and_reads_see_the_past() {
    let (mut d, _) = drive();
    let h = d.handle();
    h.crash_after_writes(2);
    for page in 0..4 {
        d.write(DiskPage(page), &vec![page as u8 + 1; PAGE], None)
            .unwrap();
    }
    let mut buf = vec![0u8; PAGE];
    for page in 0..4u64 {
        d.read(DiskPage(page), &mut buf, None).unwrap();
        let expected = if page < 2 { page as u8 + 1 } else { 0 };
        assert!(buf.iter().all(|&b| b == expected), "page {page}");
    }
    assert_eq!(h.dropped_writes(), 2);
    h.heal();
    d.write(DiskPage(3), &vec![9u8; PAGE], None).unwrap();
    d.read(DiskPage(3), &mut buf, None).unwrap();
    assert!(buf.iter().all(|&b| b == 9));
}
