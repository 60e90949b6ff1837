//! Specification of the disk channel: transfers to different drives overlap,
//! and bytes go where they are sent.

use disk_channel::rng::SplitMix64;
use disk_channel::{
    DiskChannel, DiskPage, Drive, DriveError, DriveId, FileDrive, FileDriveOptions, Op, Request,
    SimDrive,
};

const PAGE: usize = 4096;

fn sim() -> Box<dyn Drive> {
    Box::new(SimDrive::preset("diablo44", PAGE).unwrap())
}

/// Submits every request, then waits for all; returns the virtual time.
fn run_batch(channel: &DiskChannel, requests: &[(u16, u64)]) -> u64 {
    let tickets: Vec<_> = requests
        .iter()
        .map(|&(drive, page)| {
            channel
                .submit(Request {
                    drive: DriveId(drive),
                    page: DiskPage(page),
                    op: Op::Read,
                    buffer: vec![0; PAGE],
                    seek_ahead: None,
                })
                .unwrap()
        })
        .collect();
    for ticket in tickets {
        ticket.wait().result.unwrap();
    }
    channel.virtual_time_ns().unwrap()
}

#[test]
fn a_batch_split_over_two_drives_takes_about_half_the_time_of_one() {
    let mut rng = SplitMix64::new(7);
    let pages: Vec<u64> = (0..400).map(|_| rng.below(1200)).collect();
    let one = DiskChannel::new(vec![sim()]).unwrap();
    let one_time = run_batch(&one, &pages.iter().map(|&p| (0, p)).collect::<Vec<_>>());
    let two = DiskChannel::new(vec![sim(), sim()]).unwrap();
    let split: Vec<(u16, u64)> = pages
        .iter()
        .enumerate()
        .map(|(i, &p)| ((i % 2) as u16, p))
        .collect();
    let two_time = run_batch(&two, &split);
    let ratio = two_time as f64 / one_time as f64;
    assert!(
        (0.50..=0.60).contains(&ratio),
        "two drives took {ratio:.3} of one drive's time"
    );
    assert_eq!(two.total_stats().reads, 400);
    assert_eq!(two.stats(DriveId(0)).unwrap().reads, 200);
}

#[test]
fn two_file_drives_keep_their_bytes_apart() {
    let dir = tempfile::tempdir().unwrap();
    let drives: Vec<Box<dyn Drive>> = (0..2)
        .map(|i| {
            let path = dir.path().join(format!("drive{i}"));
            Box::new(FileDrive::open(path, &FileDriveOptions::create(PAGE, 64)).unwrap())
                as Box<dyn Drive>
        })
        .collect();
    let channel = DiskChannel::new(drives).unwrap();
    let pattern = |drive: u16, page: u64| -> Vec<u8> {
        (0..PAGE)
            .map(|i| (i as u64 * 31 + page * 7 + u64::from(drive) * 101) as u8)
            .collect()
    };
    let mut tickets = Vec::new();
    for page in 0..64 {
        for drive in 0..2u16 {
            tickets.push(
                channel
                    .submit(Request {
                        drive: DriveId(drive),
                        page: DiskPage(page),
                        op: Op::Write,
                        buffer: pattern(drive, page),
                        seek_ahead: None,
                    })
                    .unwrap(),
            );
        }
    }
    for ticket in tickets {
        ticket.wait().result.unwrap();
    }
    channel.sync_all().unwrap();
    let mut buf = vec![0u8; PAGE];
    for page in 0..64 {
        for drive in 0..2u16 {
            channel
                .read(DriveId(drive), DiskPage(page), &mut buf, None)
                .unwrap();
            assert_eq!(buf, pattern(drive, page), "drive {drive} page {page}");
        }
    }
    assert_eq!(channel.virtual_time_ns(), None);
}

#[test]
fn a_completion_returns_the_request_and_its_buffer() {
    let channel = DiskChannel::new(vec![sim()]).unwrap();
    channel
        .write(DriveId(0), DiskPage(4), &[9u8; PAGE], None)
        .unwrap();
    let ticket = channel
        .submit(Request {
            drive: DriveId(0),
            page: DiskPage(4),
            op: Op::Read,
            buffer: vec![0; PAGE],
            seek_ahead: Some(DiskPage(5)),
        })
        .unwrap();
    let done = ticket.wait();
    done.result.unwrap();
    assert!(done.request.buffer.iter().all(|&b| b == 9));
    assert_eq!(channel.stats(DriveId(0)).unwrap().seek_aheads_issued, 1);
}

#[test]
fn errors_name_the_drive_and_page() {
    let channel = DiskChannel::new(vec![sim()]).unwrap();
    let mut buf = vec![0u8; PAGE];
    assert!(matches!(
        channel.read(DriveId(3), DiskPage(0), &mut buf, None),
        Err(DriveError::NoSuchDrive { drive: 3, count: 1 })
    ));
    let err = channel
        .read(DriveId(0), DiskPage(1_000_000), &mut buf, None)
        .unwrap_err();
    assert_eq!(err.page(), Some(DiskPage(1_000_000)));
    assert!(err.to_string().contains("sim:diablo44"), "{err}");
    let mixed = DiskChannel::new(vec![
        sim(),
        Box::new(SimDrive::preset("ssd", 8192).unwrap()),
    ]);
    assert!(matches!(mixed, Err(DriveError::Config { .. })));
}

#[test]
fn into_drives_gives_the_drives_back_after_the_workers_stop() {
    let channel = DiskChannel::new(vec![sim(), sim()]).unwrap();
    let t = channel
        .submit(Request {
            drive: DriveId(1),
            page: DiskPage(0),
            op: Op::Write,
            buffer: vec![1; PAGE],
            seek_ahead: None,
        })
        .unwrap();
    t.wait().result.unwrap();
    let drives = channel.into_drives();
    assert_eq!(drives.len(), 2);
    assert_eq!(drives[1].stats().writes, 1);
}
