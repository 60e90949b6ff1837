//! The mapping layer's errors: each names the drive, disk page, virtual
//! page or structure it is about.

use crate::table::RunTableError;
use crate::{DiskAddr, PageNumber};
use disk_channel::DriveError;

/// Something wrong with a run table as stored on a volume.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingProblem {
    /// The runs overlap virtually, are out of order, or are malformed.
    #[error("malformed runs: {0}")]
    Runs(RunTableError),
    /// Two virtual pages map to one disk page.
    #[error("overlapping runs: {first} and {second} both map to {disk}")]
    OverlappingRuns {
        /// One virtual page.
        first: PageNumber,
        /// The other.
        second: PageNumber,
        /// The shared disk page.
        disk: DiskAddr,
    },
    /// A run reaches past the end of its drive (or names no drive).
    #[error(
        "run at {page} ({count} pages from {disk}) runs past the end of its drive ({drive_pages} pages)"
    )]
    RunPastDriveEnd {
        /// The run's first virtual page.
        page: PageNumber,
        /// Its first disk page.
        disk: DiskAddr,
        /// Its length.
        count: u64,
        /// Pages on the drive (0 if the drive does not exist).
        drive_pages: u64,
    },
    /// A virtual page maps onto a label or header page.
    #[error("{page} maps onto {disk}, a label or header page")]
    OnReservedPage {
        /// The virtual page.
        page: PageNumber,
        /// The reserved disk page.
        disk: DiskAddr,
    },
    /// A virtual page maps onto a bad spot.
    #[error("{page} maps onto {disk}, a bad spot")]
    OnBadSpot {
        /// The virtual page.
        page: PageNumber,
        /// The bad spot.
        disk: DiskAddr,
    },
    /// A virtual page maps into the spare pool without a bad-spot entry
    /// that sent it there.
    #[error("{page} maps onto spare {disk} that no bad-spot entry assigned")]
    OnUnassignedSpare {
        /// The virtual page.
        page: PageNumber,
        /// The spare page.
        disk: DiskAddr,
    },
    /// A virtual page of the address space has no disk page.
    #[error("{page} is not mapped (the volume has {virtual_pages} virtual pages)")]
    Unmapped {
        /// The first unmapped page.
        page: PageNumber,
        /// Pages in the virtual space.
        virtual_pages: u64,
    },
    /// A run maps pages beyond the virtual size.
    #[error("run at {page} maps beyond the virtual size of {virtual_pages} pages")]
    BeyondVirtualSize {
        /// The run's first page.
        page: PageNumber,
        /// Pages in the virtual space.
        virtual_pages: u64,
    },
    /// A bad-spot entry names a page off the volume, or a spare that is not
    /// in a spare pool.
    #[error("bad-spot entry for {addr} is impossible: {reason}")]
    BadSpotEntry {
        /// The entry's bad page.
        addr: DiskAddr,
        /// Why.
        reason: String,
    },
}

/// What went wrong with a volume.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// A drive operation failed.
    #[error(transparent)]
    Drive(#[from] DriveError),
    /// A drive's page 0 is not a cedar-vm label.
    #[error("{drive}: not a cedar-vm volume ({reason})")]
    NotAVolume {
        /// The drive.
        drive: String,
        /// What was found.
        reason: StructError,
    },
    /// A label or header was written by a newer version of this software.
    #[error("{drive}: {structure} has format version {version}, newer than this software supports")]
    FutureVersion {
        /// The drive.
        drive: String,
        /// "label" or "header".
        structure: &'static str,
        /// The version found.
        version: u32,
    },
    /// A label failed its checksum or holds impossible fields.
    #[error("{drive}: corrupt label: {reason}")]
    CorruptLabel {
        /// The drive.
        drive: String,
        /// What is wrong.
        reason: StructError,
    },
    /// Neither header slot holds a valid header.
    #[error("no valid header: slot 0: {slot0}; slot 1: {slot1}")]
    NoValidHeader {
        /// Why slot 0 was rejected.
        slot0: String,
        /// Why slot 1 was rejected.
        slot1: String,
    },
    /// The drive's label belongs to another volume or another position.
    #[error("{drive}: {reason}")]
    WrongDrive {
        /// The drive.
        drive: String,
        /// What does not match.
        reason: String,
    },
    /// The drive is shorter than its label says: truncated.
    #[error("{drive}: truncated: the label says {label_pages} pages, the drive has {actual_pages}")]
    TruncatedDrive {
        /// The drive.
        drive: String,
        /// Pages the label records.
        label_pages: u64,
        /// Pages the drive has.
        actual_pages: u64,
    },
    /// A page size that is not a power of two in 4 KiB..=1 MiB.
    #[error("page size {page_size} is not a power of two between 4 KiB and 1 MiB")]
    BadPageSize {
        /// The page size.
        page_size: usize,
    },
    /// The volume's page size differs from the drives'.
    #[error("the volume's page size is {volume} but the drives use {drives}")]
    PageSizeMismatch {
        /// The volume's page size.
        volume: usize,
        /// The drives' page size.
        drives: usize,
    },
    /// The geometry is impossible.
    #[error("bad volume geometry: {reason}")]
    BadGeometry {
        /// Why.
        reason: String,
    },
    /// The drives have fewer data pages than the virtual size asks.
    #[error(
        "{virtual_pages} virtual pages asked, but the drives hold only {data_pages} data pages"
    )]
    NotEnoughDisk {
        /// Pages asked.
        virtual_pages: u64,
        /// Pages available.
        data_pages: u64,
    },
    /// The run table would not fit a header of reasonable size.
    #[error("the header would need {bytes} bytes (at most {max}); use a larger stripe unit")]
    HeaderTooLarge {
        /// Bytes needed.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// More bad spots on one drive than its label can list.
    #[error("{drive} has {count} bad spots; its label holds at most {max}")]
    TooManyBadSpots {
        /// The drive.
        drive: String,
        /// Bad spots on it.
        count: usize,
        /// The label's capacity.
        max: usize,
    },
    /// A bad spot lies off the volume or on a label/header page.
    #[error("bad spot {addr} is off the volume or on a label or header page")]
    BadSpotOffVolume {
        /// The bad page.
        addr: DiskAddr,
    },
    /// A remap names a disk page no virtual page maps to.
    #[error("cannot remap {addr}: no virtual page maps there")]
    RemapOfUnmappedPage {
        /// The page.
        addr: DiskAddr,
    },
    /// The spare pools are used up.
    #[error("no spare page left to replace {addr}")]
    NoSpare {
        /// The bad page.
        addr: DiskAddr,
    },
    /// A run-table operation failed.
    #[error("run table: {0}")]
    RunTable(RunTableError),
    /// The stored run table is inconsistent with the volume.
    #[error("inconsistent run table: {0}")]
    Mapping(MappingProblem),
    /// A virtual page beyond the volume's virtual size.
    #[error("{page} is outside the volume's {virtual_pages} virtual pages")]
    AddressOutOfRange {
        /// The page.
        page: PageNumber,
        /// Pages in the virtual space.
        virtual_pages: u64,
    },
}

/// Why a persistent structure could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StructError {
    /// The magic is not ours: not a cedar-vm structure at all.
    #[error("wrong magic {found:02x?}")]
    WrongMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// Written by a newer version of this software.
    #[error("format version {version} is newer than this software's {supported}")]
    FutureVersion {
        /// The version found.
        version: u32,
        /// The newest version this software reads.
        supported: u32,
    },
    /// The version field is 0: never written by any version.
    #[error("format version 0 is not valid")]
    ZeroVersion,
    /// The length field is impossible for the space the structure has.
    #[error("length {length} is outside {min}..={max}")]
    BadLength {
        /// The length found.
        length: u64,
        /// The least valid length.
        min: usize,
        /// The most the slot can hold.
        max: usize,
    },
    /// The CRC does not match: torn or corrupted.
    #[error("checksum mismatch (torn or corrupted)")]
    BadChecksum,
    /// A field lies past the structure's length.
    #[error("truncated at byte {at}")]
    Truncated {
        /// Offset of the field.
        at: usize,
    },
    /// A field holds a value no writer produces.
    #[error("field {field} has impossible value {value}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
}
