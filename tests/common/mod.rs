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
    let o = cedarvm(dir, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    vec![dir.join("a.vol"), dir.join("b.vol")]
}
