//! The demo's memory, as the kernel charges it: run in a memory cgroup
//! (whose limit is far above what it should need, so the kernel never has
//! to reclaim), its peak stays within the budget + 32 MiB with the drive
//! `O_DIRECT` (the default) — and, the control that shows the check can
//! fail, goes far above it with the drive buffered, where the backing file
//! sits in the page cache beside the VM's frames. Skips, saying why, where
//! no cgroup can be made.

mod common;
use cedar_bench::cgroup::MemoryCgroup;
use common::*;

const BUDGET_MIB: u64 = 8;

/// The peak memory of `cedarvm demo --cache <cache>` in a fresh cgroup,
/// or `None` (with the reason printed) where no cgroup can be made.
fn demo_peak(dir: &std::path::Path, cache: &str) -> Option<u64> {
    let name = format!("cedarvm-test-demo-{}-{cache}", std::process::id());
    let cgroup = match MemoryCgroup::create(&name, 4 << 30) {
        Ok(cgroup) => cgroup,
        Err(reason) => {
            println!("skipped: {reason}");
            return None;
        }
    };
    let memory = format!("{BUDGET_MIB}MiB");
    // The shell joins the cgroup, then becomes the demo.
    let output = std::process::Command::new("sh")
        .current_dir(dir)
        .args(["-c", "echo $$ > \"$1\" && shift && exec \"$@\"", "sh"])
        .arg(cgroup.procs())
        .arg(env!("CARGO_BIN_EXE_cedarvm"))
        .args([
            "demo", "--keys", "64MiB", "--memory", &memory, "--cache", cache,
        ])
        .output()
        .expect("sh runs");
    assert!(output.status.success(), "{}", stderr(&output));
    Some(cgroup.peak().expect("the cgroup reports its peak"))
}

#[test]
fn the_demo_stays_within_its_budget_as_the_kernel_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(direct) = demo_peak(dir.path(), "direct") else {
        return;
    };
    let bound = (BUDGET_MIB + 32) << 20;
    println!("O_DIRECT demo peak: {} MiB", direct >> 20);
    assert!(direct <= bound, "peak {direct} above {bound}");
    let buffered = demo_peak(dir.path(), "buffered").expect("made once already");
    println!("buffered demo peak: {} MiB", buffered >> 20);
    assert!(
        buffered > bound,
        "buffered peak {buffered}: the check cannot fail"
    );
}
