//! # cedar-bench
//!
//! The benchmark runs of cedar-vm, as `cedarvm bench …` runs them: each
//! measures the VM beside a baseline taken in the same run, and reports a
//! table, JSON and (for seek-ahead) an SVG plot. Results of recorded runs
//! live in `bench/results/`.
//!
//! | module | the run |
//! |---|---|
//! | [`seek_ahead`] | seek-ahead on simulated period disks (deterministic, with the disk model's prediction) and on a real file |
//! | [`fault_path`] | where a fault's time goes, against `pread`, `HashMap`, the kernel's own faults |
//! | [`ipc`] | shared-memory messaging against pipes and Unix sockets |
//! | [`out_of_core`] | scan, fill, random reads and an external sort on data larger than memory, the VM against the kernel's `mmap`, each in a memory cgroup |
//! | [`cgroup`] | a memory cgroup (v1 or v2) for one side of a run, and its peak |
//! | [`sys`] | the kernel's own fault paths, measured (the only `mmap` calls here) |
//!
//! This crate is a tool, not a library an embedder links: the facade pulls
//! it in only with its `cli` feature. Dependencies beyond the design card:
//! `plotters` (SVG plots, issue 5), `tempfile` (scratch files of a run),
//! `serde_json` (the report a side's child process sends back), `bytemuck`
//! (the sort's run buffer read and written as bytes without a copy).

pub mod cgroup;
pub mod fault_path;
pub mod ipc;
pub mod out_of_core;
pub mod persistent;
pub mod seek_ahead;
pub mod sys;
