//! # utility-mode
//!
//! The disk tools and the command-line face of cedar-vm. The seed asks for
//! a "real memory only" VM so that utility programs that massage the disk —
//! the formatter, the scavenger — run on the same VM as regular programs,
//! with no backing storage: [`UtilityVm`] is that VM, and the tools keep
//! their working memory in its intervals ([`VmArray`]).
//!
//! | module | the tool |
//! |---|---|
//! | [`format`](mod@format) | create or overwrite a volume (optionally after a surface scan) |
//! | [`scan`] | surface scan: write and read back patterns, list bad pages |
//! | [`scavenge`] | check labels, header slots and run table; repair |
//! | [`info`] | what a volume is |
//! | [`demo`] | the main job: an out-of-core sort through the VM |
//! | [`bench`](mod@bench) | seek-ahead and fault-path benchmark runs, tables, JSON, SVG plots |
//! | [`cli`] | the `cedarvm` command |
//!
//! Dependencies beyond the design card: `tempfile` at run time (the demo's
//! temporary volume is removed even when the run fails), `plotters` (SVG
//! plots of benchmark runs, issue 5).

pub mod bench;
pub mod cli;
pub mod demo;
pub mod drives;
mod error;
pub mod format;
pub mod info;
pub mod scan;
pub mod scavenge;
mod utility_vm;

pub use error::ToolError;
pub use utility_vm::{UtilityVm, VmArray};

/// `n` bytes in the largest binary unit that keeps a whole number.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while unit + 1 < UNITS.len() && value >= 1024 && value.is_multiple_of(1024) {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

/// Parses a size: plain bytes, or a number with K/M/G/T (binary) and an
/// optional `iB`/`B`, e.g. `256MiB`, `4k`, `1G`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 256MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("`{other}` is not a size unit (use K, M, G or T)")),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}
