//! # disk-channel
//!
//! The lowest layer of cedar-vm: drives that store fixed-size pages, and the
//! channel that owns several drives and overlaps transfers among them.
//!
//! | module | owns |
//! |---|---|
//! | [`Drive`] | the trait: whole-page transfers with a seek-ahead hint, sync, stats |
//! | [`FileDrive`] | a file or block device: `pread`/`pwrite`, `posix_fadvise` for seek-ahead, sparse or preallocated, optional `O_DIRECT` |
//! | [`SimDrive`] | a timed disk model on a virtual clock, with period presets (Alto Diablo 31/44, Dorado Trident T-300) and modern ones |
//! | [`FaultyDrive`] | wraps any drive and injects bad pages, transient errors, torn writes and a crash point |
//! | [`DiskChannel`] | several drives, one worker each; blocking calls and submit/wait |
//! | [`IoEngine`] | batches of transfers in flight together on a file drive: `io_uring`, or threads |
//! | [`read_in_pieces`] | one long read of any file in pieces kept in flight, each piece's memory made ready while the ones before it are read |
//! | [`rng`] | the seeded generator of the simulated world |
//!
//! Two things here serve simulation rather than I/O, and stay on purpose:
//! the virtual clock on the [`Drive`] trait (`virtual_time_ns`,
//! `idle_until`; real drives keep the defaults) is the contract that
//! `vm_core::simulate` drives its deterministic runs through — it is the
//! library's simulation, not benchmark code — and [`rng`] is public because
//! the simulated drives' tests, the VM's deterministic driver and the
//! seeded fault campaigns must draw from one reproducible generator that no
//! higher crate owns.
//!
//! ```
//! use disk_channel::{DiskChannel, DiskPage, DriveId, SimDrive};
//!
//! let drive = SimDrive::preset("diablo44", 4096).unwrap();
//! let channel = DiskChannel::new(vec![Box::new(drive)]).unwrap();
//! channel.write(DriveId(0), DiskPage(7), &[0xAB; 4096], None).unwrap();
//! let mut page = vec![0; 4096];
//! channel.read(DriveId(0), DiskPage(7), &mut page, None).unwrap();
//! assert!(page.iter().all(|&b| b == 0xAB));
//! assert!(channel.virtual_time_ns().unwrap() > 0);
//! ```

mod cache;
mod channel;
mod drive;
mod engine;
mod error;
mod faulty;
mod file;
mod pieces;
pub mod rng;
mod sim;
mod units;

pub use cache::CachePolicy;
pub use channel::{ChannelHandle, Completion, DiskChannel, Op, Request, Ticket};
pub use drive::{Drive, DriveStats, ParallelIo, check_transfer};
pub use engine::{IoEngine, Transfer};
pub use error::DriveError;
pub use faulty::{FaultHandle, FaultyDrive, OpKind};
pub use file::{FileDrive, FileDriveOptions, lock_drive_file};
pub use pieces::{PieceError, read_in_pieces};
pub use sim::{Mechanics, SeekCurve, SimDrive, SimModel};
pub use units::{DiskPage, DriveId};
