//! # utility-mode
//!
//! The disk tools of cedar-vm, as a library. The seed asks for a "real
//! memory only" VM so that utility programs that massage the disk — the
//! formatter, the scavenger — run on the same VM as regular programs, with
//! no backing storage: [`UtilityVm`] is that VM, and the tools keep their
//! working memory in its intervals ([`vm_core::VmArray`]).
//!
//! | module | the tool |
//! |---|---|
//! | [`format`](mod@format) | create or overwrite a volume (optionally after a surface scan) |
//! | [`scan`] | surface scan: write and read back patterns, list bad pages |
//! | [`scavenge`] | check labels, header slots and run table; repair |
//! | [`info`] | what a volume is |
//! | [`damage`] | the damaged-volume campaign the tools are held to |
//! | [`drives`] | opening a volume's drive files |
//! | [`progress`] | progress of long work, shown by whatever sink the program installs |
//! | `utility_vm` | [`UtilityVm`], [`sort_records`] |
//! | `units` | [`parse_size`], [`human_bytes`] |
//!
//! No terminal or command-line code lives here: the `cedarvm` command (its
//! arguments, progress bars, the demo) is the root package's binary, and
//! the benchmark runs are the `cedar-bench` crate.

pub mod damage;
pub mod drives;
mod error;
pub mod format;
pub mod info;
pub mod progress;
pub mod scan;
pub mod scavenge;
mod units;
mod utility_vm;

pub use error::ToolError;
pub use units::{human_bytes, parse_size};
pub use utility_vm::{UtilityVm, available_memory_bytes, sort_records};
