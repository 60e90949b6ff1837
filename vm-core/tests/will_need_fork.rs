//! `WillNeed` in a child made by `fork`: the child has the VM's will-need
//! queue but not its thread, so it brings the advice in itself before the
//! call returns (the queue's pid check in `push`: without it the advice
//! would wait in the queue for a thread the child does not have). The
//! child also settles, kills and closes its VM, which must neither hang nor
//! join the parent's threads, and must write nothing (`close` is refused) (the checks in `settle`, `withdraw` and
//! `stop`; the child's copy of the queue is empty and its lock free, so
//! without those checks it would still pass: they guard against a lock
//! the parent's thread held at the fork). One test in this file: the child
//! runs the VM while no other test's thread can hold a lock it needs.

mod common;
use common::*;
use vm_core::{Advice, Interval};

/// What the child found, as its exit status.
const OK: i32 = 0;
const NOT_RESIDENT: i32 = 1;
const WRONG_DATA: i32 = 2;
const FAILED: i32 = 3;
const KILLED_STAYED: i32 = 4;
const PANICKED: i32 = 5;
const CLOSED: i32 = 6;

/// Waits (ten seconds at most: a liveness bound, not a speed check) until
/// every other thread of this process sleeps: the VM's threads have gone
/// back to waiting on their queues, holding no lock, when the test forks.
fn others_asleep() {
    let me = rustix::thread::gettid().as_raw_nonzero().get().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let busy = std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|task| task.ok())
            .filter(|task| task.file_name().to_str() != Some(&me))
            .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
            // The state follows the command's closing parenthesis.
            .filter(|stat| {
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with('S'))
            })
            .count();
        if busy == 0 || std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn a_forked_child_brings_its_will_need_in_itself() {
    let vm = sim_vm(1024, 256);
    let first = vm.allocate(32).unwrap();
    let second = vm.allocate(32).unwrap();
    write_out(&vm, first, 1);
    write_out(&vm, second, 2);
    // The parent's thread is made, and idle, before the fork.
    vm.advise(first, Advice::WillNeed).unwrap();
    vm.settle();
    assert!(vm.state(first.page).has_real_memory);
    others_asleep();
    // SAFETY: the parent's other threads (the VM's read-ahead and
    // will-need threads, the test harness's main thread) were seen asleep,
    // waiting on their queues, just before: a lock the child takes is
    // held across the fork only if one woke in between (nothing wakes
    // them: the VM is idle). The child prints nothing (the standard
    // streams' locks), calls the VM, catches any panic (which would
    // otherwise unwind into the harness's copy and exit 0), and ends with
    // `_exit`; an alarm ends it if it hangs.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: a hang detector for the child alone (a minute).
        unsafe { libc::alarm(60) };
        let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let status = child(&vm, second);
            // Closed in the child: refused, nothing written into the
            // parent's volume, and no join of the parent's threads (which
            // the child does not have: that join panicked before).
            match vm.close() {
                Err(vm_core::VmError::BadArgument { call: "close", .. }) => status,
                _ => CLOSED,
            }
        }))
        .unwrap_or(PANICKED);
        // SAFETY: ends the child without running the parent's exit code.
        unsafe { libc::_exit(status) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just made.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status),
        "the child did not exit (a hang ends it with SIGALRM): {status:#x}"
    );
    let code = libc::WEXITSTATUS(status);
    assert_eq!(
        code, OK,
        "the child: 1 advice not brought in, 2 wrong data, 3 a call failed, \
         4 a killed page came back, 5 a panic, 6 close was not refused"
    );
    // The parent's VM and queue are as they were: advice is served.
    vm.advise(second, Advice::WillNeed).unwrap();
    vm.settle();
    for p in second.pages() {
        assert!(vm.state(p).has_real_memory, "{p}");
    }
    vm.check_invariants();
}

/// The child's part: `WillNeed` has the interval in when it returns (no
/// `settle`), its data is the data written, and a `kill` after more advice
/// leaves the killed pages out.
fn child(vm: &vm_core::Vm, interval: Interval) -> i32 {
    if vm.advise(interval, Advice::WillNeed).is_err() {
        return FAILED;
    }
    if !interval.pages().all(|p| vm.state(p).has_real_memory) {
        return NOT_RESIDENT;
    }
    let mut page = vec![0u8; PAGE];
    for p in interval.pages() {
        let addr = vm.address_of(p);
        if vm.read(addr, &mut page).is_err() {
            return FAILED;
        }
        if page
            .iter()
            .enumerate()
            .any(|(k, &b)| b != pattern(2, addr.0 + k as u64))
        {
            return WRONG_DATA;
        }
    }
    vm.settle();
    let half = Interval::new(interval.page.0, 16);
    if vm.advise(half, Advice::DontNeed).is_err()
        || vm.advise(half, Advice::WillNeed).is_err()
        || vm.kill(half).is_err()
    {
        return FAILED;
    }
    vm.settle();
    if half.pages().any(|p| vm.state(p).has_real_memory) {
        return KILLED_STAYED;
    }
    OK
}
