//! Shared segments across real processes: the test binary spawns itself as
//! the child processes (`CEDAR_SHM_ROLE` says what a child does).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::Ordering;
use std::time::Duration;
use vm_core::shm::{LockError, Segment, Semaphore, ShmError, ShmMutex, msem};

const SIZE: usize = 64 * 1024;
// Layout of the test segment.
const MUTEX: usize = 0;
const COUNTER: usize = 16;
const FLAG: usize = 20;
const EMPTY: usize = 32;
const FULL: usize = 40;
const RING_LOCK: usize = 48;
const TAIL: usize = 56;
const RING: usize = 64;
const SLOTS: usize = 16;

fn spawn(role: &str, path: &Path, extra: &[(&str, String)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CEDAR_SHM_ROLE", role)
        .env("CEDAR_SHM_PATH", path);
    for (k, v) in extra {
        command.env(k, v);
    }
    command.stdout(std::process::Stdio::null()).spawn().unwrap()
}

fn segment_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("segment")
}

/// What a child process does; a no-op in an ordinary test run.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var("CEDAR_SHM_ROLE") else {
        return;
    };
    let segment = Segment::open_sized(std::env::var("CEDAR_SHM_PATH").unwrap(), SIZE).unwrap();
    let n: u64 = std::env::var("CEDAR_SHM_N").map_or(0, |v| v.parse().unwrap());
    match role.as_str() {
        "increment" => {
            let mutex = ShmMutex::at(&segment, MUTEX).unwrap();
            let counter = segment.word(COUNTER).unwrap();
            for _ in 0..n {
                let _guard = mutex.lock().unwrap();
                // Two steps, not one atomic add: only the mutex keeps
                // increments from being lost.
                let v = counter.load(Ordering::Relaxed);
                std::hint::spin_loop();
                counter.store(v + 1, Ordering::Relaxed);
            }
        }
        "produce" => {
            let id: u32 = std::env::var("CEDAR_SHM_ID").unwrap().parse().unwrap();
            let empty = Semaphore::at(&segment, EMPTY).unwrap();
            let full = Semaphore::at(&segment, FULL).unwrap();
            let lock = ShmMutex::at(&segment, RING_LOCK).unwrap();
            let tail = segment.word(TAIL).unwrap();
            for seq in 0..n as u32 {
                empty.p();
                let guard = lock.lock().unwrap();
                let slot = tail.load(Ordering::Relaxed) as usize % SLOTS;
                segment
                    .word(RING + slot * 8)
                    .unwrap()
                    .store(id, Ordering::Relaxed);
                segment
                    .word(RING + slot * 8 + 4)
                    .unwrap()
                    .store(seq, Ordering::Relaxed);
                tail.store(tail.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                drop(guard);
                full.v();
            }
        }
        "hold-and-hang" => {
            let mutex = ShmMutex::at(&segment, MUTEX).unwrap();
            let guard = mutex.lock().unwrap();
            segment.word(FLAG).unwrap().store(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(600));
            drop(guard);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn processes_incrementing_under_the_mutex_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment_path(&dir);
    let segment = Segment::create(&path, SIZE, 0o600).unwrap();
    let (children, each) = (4, 5_000u64);
    let spawned: Vec<Child> = (0..children)
        .map(|_| spawn("increment", &path, &[("CEDAR_SHM_N", each.to_string())]))
        .collect();
    for mut child in spawned {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(
        u64::from(segment.word(COUNTER).unwrap().load(Ordering::SeqCst)),
        children * each
    );
}

#[test]
fn a_ring_buffer_between_processes_delivers_every_message_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment_path(&dir);
    let segment = Segment::create(&path, SIZE, 0o600).unwrap();
    Semaphore::at(&segment, EMPTY).unwrap().init(SLOTS as u32);
    let (producers, each) = (3u32, 2_000u32);
    let spawned: Vec<Child> = (0..producers)
        .map(|id| {
            spawn(
                "produce",
                &path,
                &[
                    ("CEDAR_SHM_N", each.to_string()),
                    ("CEDAR_SHM_ID", id.to_string()),
                ],
            )
        })
        .collect();
    let (empty, full) = (
        Semaphore::at(&segment, EMPTY).unwrap(),
        Semaphore::at(&segment, FULL).unwrap(),
    );
    let mut next = vec![0u32; producers as usize];
    for head in 0..(producers * each) as usize {
        full.p();
        let slot = head % SLOTS;
        let id = segment
            .word(RING + slot * 8)
            .unwrap()
            .load(Ordering::Relaxed);
        let seq = segment
            .word(RING + slot * 8 + 4)
            .unwrap()
            .load(Ordering::Relaxed);
        assert_eq!(seq, next[id as usize], "producer {id} out of order");
        next[id as usize] += 1;
        empty.v();
    }
    assert!(next.iter().all(|&n| n == each));
    for mut child in spawned {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(full.value(), 0);
}

#[test]
fn a_holder_killed_while_holding_the_mutex_is_reported_as_owner_died() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment_path(&dir);
    let segment = Segment::create(&path, SIZE, 0o600).unwrap();
    let mut child = spawn("hold-and-hang", &path, &[]);
    let flag = segment.word(FLAG).unwrap();
    while flag.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mutex = ShmMutex::at(&segment, MUTEX).unwrap();
    assert!(matches!(
        mutex.lock_timeout(Duration::from_millis(30)),
        Err(LockError::TimedOut)
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    // The next lock learns the owner died, and holds the lock.
    match mutex.lock() {
        Err(LockError::OwnerDied(mut guard)) => guard.mark_consistent(),
        other => panic!("expected owner-died, got {other:?}"),
    }
    let guard = mutex.lock().expect("consistent again");
    drop(guard);
}

#[test]
fn an_owner_death_never_marked_consistent_leaves_the_mutex_not_recoverable() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment_path(&dir);
    let segment = Segment::create(&path, SIZE, 0o600).unwrap();
    let mut child = spawn("hold-and-hang", &path, &[]);
    while segment.word(FLAG).unwrap().load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mutex = ShmMutex::at(&segment, MUTEX).unwrap();
    assert!(matches!(mutex.lock(), Err(LockError::OwnerDied(_))));
    assert!(matches!(mutex.lock(), Err(LockError::NotRecoverable)));
}

#[test]
fn an_anonymous_segment_is_shared_with_a_forked_child() {
    let segment = Segment::anonymous(4096).unwrap();
    let mutex = ShmMutex::at(&segment, 0).unwrap();
    let counter = segment.word(16).unwrap();
    let _ = vm_core::shm::current_pid(); // cache the parent's pid first
    // SAFETY: the child only uses atomics, futexes and `_exit`, which are
    // safe after `fork` in a multi-threaded process.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    let bump = |n: u32| {
        for _ in 0..n {
            let guard = mutex.lock().unwrap();
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            drop(guard);
        }
    };
    if pid == 0 {
        bump(10_000);
        // SAFETY: leave the child at once, running no destructors.
        unsafe { libc::_exit(0) };
    }
    bump(10_000);
    let mut status = 0;
    // SAFETY: waits for our own child.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(reaped, pid);
    assert_eq!(counter.load(Ordering::SeqCst), 20_000);
}

#[test]
fn the_bsd_primitives_need_no_system_call_when_uncontended() {
    let segment = Segment::anonymous(64).unwrap();
    let sem = segment.word(0).unwrap();
    assert!(msem::mset(sem, false));
    assert!(!msem::mset(sem, false), "already set");
    assert_eq!(sem.load(Ordering::SeqCst), msem::SET, "no waiter recorded");
    msem::mclear(sem);
    assert_eq!(sem.load(Ordering::SeqCst), msem::CLEAR);
    msem::msleep(sem); // clear: returns at once
    // A waiter in another thread is woken by mclear.
    assert!(msem::mset(sem, true));
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(msem::mset(sem, true));
            msem::mclear(sem);
        });
        std::thread::sleep(Duration::from_millis(20));
        msem::mclear(sem);
    });
    assert_eq!(sem.load(Ordering::SeqCst), msem::CLEAR);
}

#[test]
fn opening_something_else_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    assert!(matches!(
        Segment::open(&junk),
        Err(ShmError::NotASegment { .. })
    ));
    std::fs::write(dir.path().join("short"), b"hi").unwrap();
    assert!(matches!(
        Segment::open(dir.path().join("short")),
        Err(ShmError::NotASegment { .. })
    ));
    let path = dir.path().join("seg");
    let segment = Segment::create(&path, 1000, 0o640).unwrap();
    assert!(matches!(
        Segment::create(&path, 1000, 0o600),
        Err(ShmError::File {
            action: "create",
            ..
        })
    ));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert!(matches!(
        Segment::open_sized(&path, 2000),
        Err(ShmError::WrongSize { .. })
    ));
    assert_eq!(Segment::open_sized(&path, 1000).unwrap().size(), 1000);
    // A future version: rewrite the version field and the CRC.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Segment::open(&path),
        Err(ShmError::FutureVersion { version: 2, .. })
    ));
    // Placement is checked.
    assert!(matches!(
        ShmMutex::at(&segment, 2),
        Err(ShmError::Placement { .. })
    ));
    assert!(matches!(
        Semaphore::at(&segment, 996),
        Err(ShmError::Placement { .. })
    ));
    assert!(segment.word(996).is_ok());
}

#[test]
fn a_counting_semaphore_times_out_and_wakes() {
    let segment = Segment::anonymous(64).unwrap();
    let sem = Semaphore::at(&segment, 0).unwrap();
    assert!(!sem.try_p());
    assert!(!sem.p_timeout(Duration::from_millis(10)));
    std::thread::scope(|s| {
        s.spawn(|| sem.p());
        std::thread::sleep(Duration::from_millis(10));
        sem.v();
    });
    assert_eq!(sem.value(), 0);
    sem.init(2);
    assert!(sem.try_p() && sem.try_p() && !sem.try_p());
}
