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
//! | [`sys`] | the kernel's own fault paths, measured (the only `mmap` calls here) |
//!
//! This crate is a tool, not a library an embedder links: the facade pulls
//! it in only with its `cli` feature. Dependencies beyond the design card:
//! `plotters` (SVG plots, issue 5), `tempfile` (scratch files of a run).

pub mod fault_path;
pub mod ipc;
pub mod seek_ahead;
pub mod sys;
