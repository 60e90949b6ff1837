//! # runtable
//!
//! The mapping layer of cedar-vm: which disk page backs each virtual page,
//! and the volume on disk that records it.
//!
//! | module | owns |
//! |---|---|
//! | [`RunTable`] | sorted runs, `translate` by binary search, `segments`, `remap` |
//! | [`layout`] | where labels, headers, data and spares go; the deterministic format rule |
//! | [`label`] | the label page on every drive (on-disk) |
//! | [`header`] | the double header on drive 0 (on-disk) |
//! | [`Volume`] | format, open (newest valid slot), commit, remap a bad page |
//! | [`check`] | cross-checks of a run table against its volume |
//!
//! Cedar's `VMBacking.RunTable` is `{nDataPages, nRuns, runs: Run[filePage,
//! diskPage, channel]}`; our [`Run`] carries the drive where Cedar had the
//! channel.
//!
//! Bytes read from disk are decoded into unvalidated `Raw*` types, checked,
//! and only then used; corrupt input is an error value, never a panic.
//!
//! ```
//! use disk_channel::{DiskChannel, SimDrive};
//! use runtable::{FormatOptions, PageNumber, Volume};
//!
//! let drive = SimDrive::preset("ssd", 4096).unwrap().with_page_count(4096).unwrap();
//! let channel = DiskChannel::new(vec![Box::new(drive)]).unwrap();
//! let volume = Volume::format(channel, &FormatOptions::new(4096, 1000)).unwrap();
//! let addr = volume.translate(PageNumber(10)).unwrap();
//! assert_eq!(addr.drive.0, 0);
//! ```

pub mod check;
pub mod codec;
pub mod envelope;
mod error;
pub mod header;
pub mod label;
pub mod layout;
mod table;
mod units;
mod volume;

pub use disk_channel::{DiskPage, DriveId};
pub use error::{MappingProblem, VolumeError};
pub use layout::{BadSpot, Geometry, Layout};
pub use table::{Run, RunTable, RunTableError, Segment, Segments};
pub use units::{DiskAddr, Interval, PageCount, PageNumber};
pub use volume::{FormatOptions, GENERATION_MAX, HEADER_BYTES_MAX, HeaderChoice, Volume};
