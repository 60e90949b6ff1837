//! # cedar-vm
//!
//! A Cedar/Pilot-style virtual memory for a Rust program: one large single
//! address space whose pages live in a bounded real-memory budget and are
//! backed by one large anonymous backing file, mapped page by page through a
//! run table and spread over one or more drives.
//!
//! This crate is the facade: it re-exports the member crates as they land.
//!
//! | layer | crate | what it owns |
//! |---|---|---|
//! | drives | [`disk_channel`] | file, simulated and fault-injecting drives; the multi-drive channel |
//! | mapping | [`runtable`] | virtual page → disk page runs; the on-disk volume |
//! | address space | [`vm_core`] | region, page states, monitor, fault service, replacement, safe API |
//! | tools | [`utility_mode`] | the real-memory-only VM, format / scan / scavenge / info, demo, the `cedarvm` CLI |
//!
//! Dependencies point down only: `runtable` uses `disk_channel`, never the
//! other way round.

pub use disk_channel;
pub use runtable;
pub use utility_mode;
pub use vm_core;
