//! # cedar-vm
//!
//! A Cedar/Pilot-style virtual memory for a Rust program: one large single
//! address space whose pages live in a bounded real-memory budget and are
//! backed by one large anonymous backing file, mapped page by page through a
//! run table and spread over one or more drives.
//!
//! This crate is the facade. An embedder needs only it, and can turn the
//! tools off: `cedar-vm = { version = "…", default-features = false }`
//! links the VM alone (no command-line, terminal or plotting code).
//!
//! | layer | crate | what it owns | feature |
//! |---|---|---|---|
//! | drives | [`disk_channel`] | file, simulated and fault-injecting drives; the multi-drive channel | always |
//! | mapping | [`runtable`] | virtual page → disk page runs; the on-disk volume | always |
//! | address space | [`vm_core`] | region, page states, monitor, fault service, replacement, safe API | always |
//! | tools | `utility_mode` | the real-memory-only VM, format / scan / scavenge / info as a library | `tools` |
//! | the `cedarvm` binary | `cedar-bench` + this package's `src/main.rs` | the command line, progress bars, the demo, the benchmark runs | `cli` (default) |
//!
//! Dependencies point down only: `runtable` uses `disk_channel`, never the
//! other way round.
//!
//! ```
//! use cedar_vm::prelude::*;
//!
//! // A file-backed VM from this crate alone: one drive, 256 pages of
//! // address space, 16 pages of real memory. The drive is sized for the
//! // 256 pages and the volume's labels, headers and spares.
//! let dir = tempfile::tempdir().unwrap();
//! let format = FormatOptions::new(4096, 256);
//! let drive_pages = Volume::drive_pages_for(&format, 1).unwrap();
//! let drive = FileDrive::open(
//!     dir.path().join("v.vol"),
//!     &FileDriveOptions::create(4096, drive_pages),
//! )
//! .unwrap();
//! let channel = DiskChannel::new(vec![Box::new(drive)]).unwrap();
//! let volume = Volume::format(channel, &format).unwrap();
//! let vm = Vm::new(VmConfig::new(256, 16), Backing::Volume(volume)).unwrap();
//! let interval: Interval = vm.allocate(64).unwrap();
//! let at: VAddr = vm.address_of(interval.page);
//! vm.write(at, b"paged through the run table").unwrap();
//! let mut back = [0u8; 27];
//! vm.read(at, &mut back).unwrap();
//! assert_eq!(&back, b"paged through the run table");
//! ```

pub use disk_channel;
pub use runtable;
#[cfg(feature = "tools")]
pub use utility_mode;
pub use vm_core;

/// What an embedder needs to build and use a VM, file-backed or
/// real-memory-only, from this one crate.
pub mod prelude {
    pub use disk_channel::{
        CachePolicy, DiskChannel, Drive, FileDrive, FileDriveOptions, SimDrive,
    };
    pub use runtable::{FormatOptions, Interval, Layout, PageCount, PageNumber, Volume};
    pub use vm_core::bytemuck::{self, Pod, Zeroable};
    pub use vm_core::{
        Advice, Backing, DataState, FaultService, FileStats, MapFile, MonitorScope, PageMut,
        PageRef, PageState, Protection, Sharing, SpaceFiles, VAddr, View, ViewMut, Vm, VmArray,
        VmConfig, VmError, VmFile, VmStats,
    };
}
