//! Specification of the file drive: sparse files, positioned transfers,
//! hints, locks, and errors that name the drive and page.

use disk_channel::{CachePolicy, DiskPage, Drive, DriveError, FileDrive, FileDriveOptions};
use std::os::unix::fs::MetadataExt;

const PAGE: usize = 4096;

#[test]
fn a_new_drive_is_sparse_and_reads_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let mut drive = FileDrive::open(&path, &FileDriveOptions::create(PAGE, 1 << 20)).unwrap();
    assert_eq!(drive.page_count(), 1 << 20);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), (PAGE as u64) << 20);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "a 4 GiB drive should not allocate blocks up front"
    );
    let mut buf = vec![0xAAu8; PAGE];
    drive.read(DiskPage(123_456), &mut buf, None).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
}

#[test]
fn reads_past_the_end_of_a_short_file_are_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short");
    std::fs::write(&path, vec![5u8; PAGE + 100]).unwrap();
    let mut options = FileDriveOptions::open(PAGE);
    options.page_count = Some(4);
    let mut drive = FileDrive::open(&path, &options).unwrap();
    let mut buf = vec![0xFFu8; 2 * PAGE];
    drive.read(DiskPage(0), &mut buf, None).unwrap();
    assert!(buf[..PAGE + 100].iter().all(|&b| b == 5));
    assert!(buf[PAGE + 100..].iter().all(|&b| b == 0));
}

#[test]
fn writes_read_back_and_reopen_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let data: Vec<u8> = (0..3 * PAGE).map(|i| (i * 7 % 256) as u8).collect();
    {
        let mut drive = FileDrive::open(&path, &FileDriveOptions::create(PAGE, 16)).unwrap();
        drive.write(DiskPage(5), &data, None).unwrap();
        drive.sync().unwrap();
    }
    let mut drive = FileDrive::open(&path, &FileDriveOptions::open(PAGE)).unwrap();
    assert_eq!(drive.page_count(), 16);
    let mut back = vec![0u8; 3 * PAGE];
    drive.read(DiskPage(5), &mut back, None).unwrap();
    assert_eq!(back, data);
    let stats = drive.stats();
    assert_eq!((stats.reads, stats.pages_read), (1, 3));
}

#[test]
fn a_hint_counts_as_used_when_the_next_read_goes_there() {
    // Hints are page-cache read-ahead: a buffered drive (a direct one issues none).
    let dir = tempfile::tempdir().unwrap();
    let options = FileDriveOptions::create(PAGE, 16).with_cache(CachePolicy::Buffered);
    let mut drive = FileDrive::open(dir.path().join("d"), &options).unwrap();
    let mut buf = vec![0u8; PAGE];
    drive
        .read(DiskPage(1), &mut buf, Some(DiskPage(9)))
        .unwrap();
    drive
        .read(DiskPage(9), &mut buf, Some(DiskPage(2)))
        .unwrap();
    drive.read(DiskPage(3), &mut buf, None).unwrap();
    let stats = drive.stats();
    assert_eq!((stats.seek_aheads_issued, stats.seek_aheads_used), (2, 1));
}

#[test]
fn a_second_locker_gets_volume_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let first = FileDrive::open(&path, &FileDriveOptions::create(PAGE, 4)).unwrap();
    first.lock_exclusive().unwrap();
    let second = FileDrive::open(&path, &FileDriveOptions::open(PAGE)).unwrap();
    let err = second.lock_exclusive().unwrap_err();
    assert!(matches!(err, DriveError::InUse { .. }));
    assert!(err.to_string().contains("volume in use"), "{err}");
    drop(first);
    second.lock_exclusive().unwrap();
}

/// Creating a drive at another size, or preallocating it, changes the
/// file: a drive another process holds (its volume in use) is refused
/// before a byte of it changes — it used to be cut to size first, and the
/// lock refused after (found by a user's trial: `demo --force` on a drive a
/// running demo held).
#[test]
fn a_drive_in_use_is_not_resized_or_preallocated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let holder = FileDrive::open(&path, &FileDriveOptions::create(PAGE, 64)).unwrap();
    holder.lock_exclusive().unwrap();
    let len = || std::fs::metadata(&path).unwrap().len();
    let err = FileDrive::open(&path, &FileDriveOptions::create(PAGE, 8)).unwrap_err();
    assert!(matches!(err, DriveError::InUse { .. }), "{err}");
    assert_eq!(len(), 64 * PAGE as u64, "the drive in use was resized");
    let mut options = FileDriveOptions::create(PAGE, 64);
    options.preallocate = true;
    let err = FileDrive::open(&path, &options).unwrap_err();
    assert!(matches!(err, DriveError::InUse { .. }), "{err}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().blocks(),
        0,
        "the drive in use was preallocated"
    );
    // Free again: resized, and locked by the drive that resized it.
    drop(holder);
    let resized = FileDrive::open(&path, &FileDriveOptions::create(PAGE, 8)).unwrap();
    assert_eq!(len(), 8 * PAGE as u64);
    let other = FileDrive::open(&path, &FileDriveOptions::open(PAGE)).unwrap();
    assert!(matches!(
        other.lock_exclusive(),
        Err(DriveError::InUse { .. })
    ));
    drop(resized);
}

#[test]
fn no_space_is_an_error_naming_the_drive_and_page() {
    // /dev/full fails every write with ENOSPC.
    let mut options = FileDriveOptions::open(PAGE);
    options.page_count = Some(8);
    let mut drive = match FileDrive::open("/dev/full", &options) {
        Ok(drive) => drive,
        Err(e) => {
            println!("skipped: /dev/full cannot be opened here: {e}");
            return;
        }
    };
    let err = drive.write(DiskPage(3), &[1u8; PAGE], None).unwrap_err();
    assert!(
        matches!(
            err,
            DriveError::NoSpace {
                page: DiskPage(3),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("/dev/full"));
}

#[test]
fn preallocation_allocates_every_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let mut options = FileDriveOptions::create(PAGE, 256);
    options.preallocate = true;
    FileDrive::open(&path, &options).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.blocks() * 512 >= 256 * PAGE as u64);
}

#[test]
fn direct_io_round_trips_unaligned_buffers() {
    let dir = tempfile::tempdir_in(".").unwrap();
    let options = FileDriveOptions::create(PAGE, 8).with_cache(CachePolicy::Direct);
    let mut drive = FileDrive::open(dir.path().join("d"), &options).unwrap();
    if drive.cache_policy() != CachePolicy::Direct {
        println!("skipped: this file system refuses O_DIRECT (the drive drops behind)");
        return;
    }
    let mut storage = vec![0u8; 2 * PAGE + 1];
    let unaligned = &mut storage[1..];
    for (i, b) in unaligned.iter_mut().enumerate() {
        *b = (i % 253) as u8;
    }
    drive.write(DiskPage(2), unaligned, None).unwrap();
    let mut back = vec![0u8; 2 * PAGE + 3];
    drive.read(DiskPage(2), &mut back[3..], None).unwrap();
    assert_eq!(&back[3..], &storage[1..]);
}

#[test]
fn a_bad_page_size_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        FileDrive::open(dir.path().join("d"), &FileDriveOptions::create(3000, 4)).unwrap_err();
    assert!(matches!(err, DriveError::Config { .. }));
}

/// The default keeps the file out of the page cache: after writing and
/// reading 4 MiB through a default drive, the kernel holds (almost) none
/// of the file's pages; through a buffered drive it holds them all. (The
/// count is the file's pages resident in the page cache, by `mincore` on a
/// mapping of it.)
#[test]
fn the_default_drive_keeps_its_file_out_of_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let pages = 1024u64;
    let cached = |policy: CachePolicy| -> (CachePolicy, u64) {
        let path = dir.path().join(policy.name());
        let options = FileDriveOptions::create(PAGE, pages).with_cache(policy);
        let mut drive = FileDrive::open(&path, &options).unwrap();
        let data = vec![0x6Bu8; 64 * PAGE];
        let mut back = vec![0u8; 64 * PAGE];
        for chunk in 0..pages / 64 {
            drive.write(DiskPage(chunk * 64), &data, None).unwrap();
        }
        drive.sync().unwrap();
        for chunk in 0..pages / 64 {
            drive.read(DiskPage(chunk * 64), &mut back, None).unwrap();
            assert_eq!(back, data);
        }
        (drive.cache_policy(), resident_in_page_cache(&path))
    };
    let (buffered_policy, buffered) = cached(CachePolicy::Buffered);
    assert_eq!(buffered_policy, CachePolicy::Buffered);
    assert!(
        buffered >= pages * 9 / 10,
        "buffered: {buffered} of {pages} cached"
    );
    let (policy, default) = cached(FileDriveOptions::create(PAGE, 1).cache);
    println!("default policy here: {}", policy.name());
    assert!(
        default <= pages / 10,
        "{}: {default} of {pages} pages cached",
        policy.name()
    );
}

/// Pages of the file at `path` in the page cache (`mincore` on a shared
/// read-only mapping of it).
fn resident_in_page_cache(path: &std::path::Path) -> u64 {
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    // SAFETY: a fresh read-only shared mapping of a file we hold open and
    // nobody truncates; it is only passed to mincore, never dereferenced.
    let map = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::SHARED,
            &file,
            0,
        )
    }
    .unwrap();
    let mut vec = vec![0u8; len.div_ceil(4096)];
    // SAFETY: `map..map+len` is the mapping above; `vec` has a byte per page.
    let r = unsafe { libc::mincore(map, len, vec.as_mut_ptr()) };
    assert_eq!(r, 0);
    // SAFETY: unmapping the mapping above, no reference into it exists.
    unsafe { rustix::mm::munmap(map, len) }.unwrap();
    vec.iter().filter(|&&b| b & 1 != 0).count() as u64
}
