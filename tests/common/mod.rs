//! Helpers for the tests that run the real `cedarvm` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `cedarvm` with `args` in `dir`.
pub fn cedarvm(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cedarvm"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the cedarvm binary runs")
}

/// Runs `cedarvm` with `args` in `dir` (its `TMPDIR` there too), waits
/// until `there` holds — what the run creates has appeared; bounded at 12
/// s, not a timing assertion — then sends it SIG`signal` (`INT`, `TERM`)
/// and returns its exit status.
pub fn interrupted(dir: &Path, args: &[&str], there: impl Fn() -> bool, signal: &str) -> i32 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cedarvm"))
        .current_dir(dir)
        .args(args)
        .env("TMPDIR", dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the cedarvm binary runs");
    let mut waited = 0;
    while !there() && waited < 600 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        waited += 1;
    }
    assert!(there(), "{args:?} never made what the test waits for");
    let killed = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    exit.code().expect("exited, not killed")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The exit status.
pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

/// Formats a two-drive volume `a.vol`, `b.vol` of 8 MiB each in `dir`.
pub fn format_two(dir: &Path, extra: &[&str]) -> Vec<PathBuf> {
    let o = format_two_run(dir, extra);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    vec![dir.join("a.vol"), dir.join("b.vol")]
}

/// The `format` of [`format_two`], its output whatever it did.
pub fn format_two_run(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "format",
        "-d",
        "a.vol",
        "-d",
        "b.vol",
        "--drive-size",
        "8MiB",
    ];
    args.extend_from_slice(extra);
    cedarvm(dir, &args)
}
