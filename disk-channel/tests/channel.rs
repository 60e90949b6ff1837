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
    let drives = channel.into_drives().unwrap();
    assert_eq!(drives.len(), 2);
    assert_eq!(drives[1].stats().writes, 1);
}

/// A drive whose parallel reads each wait until `want` readers are inside
/// at once (a rendezvous): a channel that serialized them would never let
/// the second in, and the first would give up (after a generous bound that
/// only a broken channel reaches) and fail the test.
struct Rendezvous {
    inside: std::sync::Mutex<usize>,
    all_in: std::sync::Condvar,
    want: usize,
}

impl disk_channel::ParallelIo for Rendezvous {
    fn read_at(
        &self,
        _page: DiskPage,
        buf: &mut [u8],
        _seek_ahead: Option<DiskPage>,
    ) -> Result<(), DriveError> {
        let mut inside = self.inside.lock().unwrap();
        *inside += 1;
        self.all_in.notify_all();
        let (inside, timeout) = self
            .all_in
            .wait_timeout_while(inside, std::time::Duration::from_secs(30), |n| {
                *n < self.want
            })
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "only {} of {} readers were ever in flight at once",
            *inside,
            self.want
        );
        buf.fill(0x5A);
        Ok(())
    }
    fn write_at(&self, _: DiskPage, _: &[u8], _: Option<DiskPage>) -> Result<(), DriveError> {
        Ok(())
    }
}

struct RendezvousDrive(std::sync::Arc<Rendezvous>);

impl Drive for RendezvousDrive {
    fn name(&self) -> &str {
        "rendezvous"
    }
    fn page_size(&self) -> usize {
        PAGE
    }
    fn page_count(&self) -> u64 {
        16
    }
    fn read(&mut self, p: DiskPage, b: &mut [u8], h: Option<DiskPage>) -> Result<(), DriveError> {
        disk_channel::ParallelIo::read_at(&*self.0, p, b, h)
    }
    fn write(&mut self, _: DiskPage, _: &[u8], _: Option<DiskPage>) -> Result<(), DriveError> {
        Ok(())
    }
    fn sync(&mut self) -> Result<(), DriveError> {
        Ok(())
    }
    fn stats(&self) -> disk_channel::DriveStats {
        disk_channel::DriveStats::default()
    }
    fn parallel(&self) -> Option<std::sync::Arc<dyn disk_channel::ParallelIo>> {
        Some(self.0.clone())
    }
}

#[test]
fn blocking_reads_of_a_parallel_drive_are_in_flight_together() {
    let gate = std::sync::Arc::new(Rendezvous {
        inside: std::sync::Mutex::new(0),
        all_in: std::sync::Condvar::new(),
        want: 3,
    });
    let channel = DiskChannel::new(vec![Box::new(RendezvousDrive(gate))]).unwrap();
    let handle = channel.handle();
    std::thread::scope(|s| {
        // Two through the channel, one through a detached handle.
        for i in 0..2u64 {
            let channel = &channel;
            s.spawn(move || {
                let mut page = vec![0; PAGE];
                channel
                    .read(DriveId(0), DiskPage(i), &mut page, None)
                    .unwrap();
                assert!(page.iter().all(|&b| b == 0x5A));
            });
        }
        let mut page = vec![0; PAGE];
        handle
            .read(DriveId(0), DiskPage(2), &mut page, None)
            .unwrap();
        assert!(page.iter().all(|&b| b == 0x5A));
    });
    // While the handle lives the drives cannot be taken back.
    let channel = channel.into_drives().map(|_| ()).unwrap_err();
    drop(handle);
    assert_eq!(channel.into_drives().map(|d| d.len()).ok(), Some(1));
}

#[test]
fn a_file_drive_reads_and_writes_from_many_threads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let drive = FileDrive::open(dir.path().join("d"), &FileDriveOptions::create(PAGE, 64)).unwrap();
    assert!(drive.parallel().is_some());
    let channel = DiskChannel::new(vec![Box::new(drive)]).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let channel = &channel;
            s.spawn(move || {
                for round in 0..50u8 {
                    let page = DiskPage(u64::from(t) * 16 + u64::from(round % 16));
                    let fill = t.wrapping_mul(31).wrapping_add(round);
                    channel
                        .write(DriveId(0), page, &[fill; PAGE], None)
                        .unwrap();
                    let mut back = vec![0; PAGE];
                    channel.read(DriveId(0), page, &mut back, None).unwrap();
                    assert!(back.iter().all(|&b| b == fill), "thread {t} round {round}");
                }
            });
        }
    });
    let stats = channel.stats(DriveId(0)).unwrap();
    assert_eq!((stats.reads, stats.writes), (200, 200));
}

/// A batch of transfers through each engine (`io_uring` and threads) and
/// each cache policy: every write lands where it was sent, every read
/// brings back what was written, with aligned buffers (straight to the
/// device under `O_DIRECT`) and unaligned ones (bounced), transfers of one
/// and of several pages, more transfers than the ring holds; a transfer
/// past the end fails alone, naming its page; the counters count them.
#[test]
fn batches_run_the_same_through_io_uring_and_threads() {
    use disk_channel::{CachePolicy, IoEngine, Transfer};
    for engine in [IoEngine::Uring, IoEngine::Threads] {
        for cache in [CachePolicy::Direct, CachePolicy::Buffered] {
            let dir = tempfile::tempdir().unwrap();
            let options = FileDriveOptions::create(PAGE, 512)
                .with_cache(cache)
                .with_engine(engine);
            let drive = match FileDrive::open(dir.path().join("d"), &options) {
                Ok(drive) => drive,
                Err(e) if engine == IoEngine::Uring => {
                    println!("skipped io_uring: the kernel refuses a ring here ({e})");
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            assert_eq!(drive.io_engine(), engine);
            let channel = DiskChannel::new(vec![Box::new(drive)]).unwrap();
            // 100 transfers (more than a ring's 64): 1 to 3 pages each, at
            // disjoint places; every third buffer deliberately unaligned.
            let mut rng = SplitMix64::new(5);
            let mut storage: Vec<Vec<u8>> = Vec::new();
            let mut places = Vec::new();
            for k in 0..100u64 {
                let pages = 1 + rng.below(3) as usize;
                let fill = (k as u8).wrapping_mul(37).wrapping_add(1);
                let mut v = vec![0u8; pages * PAGE + PAGE];
                let skew = if k % 3 == 0 { 8 } else { 0 };
                let start = v.as_ptr().align_offset(PAGE) % PAGE + skew;
                v[start..start + pages * PAGE].fill(fill);
                storage.push(v);
                places.push((DiskPage(k * 4), pages, start, fill));
            }
            let mut batch: Vec<Transfer<'_>> = storage
                .iter()
                .zip(&places)
                .map(|(v, &(page, pages, start, _))| Transfer::Write {
                    page,
                    data: &v[start..start + pages * PAGE],
                })
                .collect();
            let results = channel.transfer_all(DriveId(0), &mut batch).unwrap();
            assert!(
                results.iter().all(|r| r.is_ok()),
                "{engine:?} {cache:?}: {results:?}"
            );
            drop(batch);
            // Read them back in one batch, plus one past the end.
            let mut back: Vec<Vec<u8>> = places
                .iter()
                .map(|&(_, p, _, _)| vec![0u8; p * PAGE])
                .collect();
            let mut beyond = vec![0u8; PAGE];
            let mut batch: Vec<Transfer<'_>> = back
                .iter_mut()
                .zip(&places)
                .map(|(b, &(page, _, _, _))| Transfer::Read { page, buf: b })
                .collect();
            batch.push(Transfer::Read {
                page: DiskPage(512),
                buf: &mut beyond,
            });
            let results = channel.transfer_all(DriveId(0), &mut batch).unwrap();
            drop(batch);
            for (k, r) in results[..100].iter().enumerate() {
                assert!(r.is_ok(), "{engine:?} {cache:?} transfer {k}: {r:?}");
            }
            let past = results[100].as_ref().unwrap_err();
            assert_eq!(past.page(), Some(DiskPage(512)));
            for (k, (b, &(_, _, _, fill))) in back.iter().zip(&places).enumerate() {
                assert!(
                    b.iter().all(|&x| x == fill),
                    "{engine:?} {cache:?} transfer {k}"
                );
            }
            let stats = channel.stats(DriveId(0)).unwrap();
            assert_eq!(
                (stats.writes, stats.reads),
                (100, 100),
                "{engine:?} {cache:?}"
            );
        }
    }
}
