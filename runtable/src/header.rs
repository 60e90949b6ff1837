//! The volume header: the run table and the bad-spot table, kept in two
//! slots on drive 0 that are written alternately.
//!
//! Generation `g` goes to slot `g mod 2`, so a commit never overwrites the
//! newest complete header: a torn write leaves the previous generation
//! valid in the other slot, and `open` takes the newest slot whose checksum
//! and contents check out. A header larger than a page spans consecutive
//! pages of its slot.
//!
//! ```text
//!  offset size  field
//!   0      8    magic "CEDARHDR"
//!   8      4    format version (1)
//!  12      4    length in bytes, CRC included
//!  16     16    volume id
//!  32      8    generation (≥ 1)
//!  40      4    run count r
//!  44      4    bad-spot count b
//!  48     32    geometry block (see `codec`)
//!  80    8·d    page count of each drive (d = drive count from the geometry)
//!  ..   32·r    runs: u64 virtual page, u64 disk page, u64 count,
//!               u16 drive, 6 bytes reserved (0)
//!  ..   24·b    bad spots (see `codec`)
//!  ..      4    CRC-32C of bytes [0, length-4)
//! ```
//!
//! All fields little-endian.

use crate::codec::{self, RawGeometry, Writer};
use crate::envelope::{FORMAT_VERSION, StructError, open_envelope};
use crate::layout::{BadSpot, Geometry};
use crate::table::Run;
use crate::{DiskAddr, PageCount, PageNumber};

/// The header's magic.
pub const MAGIC: &[u8; 8] = b"CEDARHDR";
/// Bytes before the drive table.
pub const FIXED_BYTES: usize = 80;
/// Bytes per drive entry.
pub const DRIVE_ENTRY_BYTES: usize = 8;
/// Bytes per run entry.
pub const RUN_ENTRY_BYTES: usize = 32;

/// A header's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Commit generation.
    pub generation: u64,
    /// The volume's geometry.
    pub geometry: Geometry,
    /// The runs.
    pub runs: Vec<Run>,
    /// The bad-spot table.
    pub bad_spots: Vec<BadSpot>,
}

/// A header as read from disk: envelope and checksum checked, contents not
/// yet validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawHeader {
    /// Volume id.
    pub volume_id: u128,
    /// Commit generation.
    pub generation: u64,
    /// The geometry block.
    pub geometry: RawGeometry,
    /// Page count of each drive.
    pub drive_pages: Vec<u64>,
    /// The runs, unchecked.
    pub runs: Vec<Run>,
    /// The bad-spot table, unchecked.
    pub bad_spots: Vec<BadSpot>,
}

/// Encodes a header (not padded).
pub fn encode(header: &Header) -> Vec<u8> {
    let g = &header.geometry;
    let length = header_bytes(g.drive_count(), header.runs.len(), header.bad_spots.len());
    let mut w = Writer::with_capacity(length);
    w.bytes(MAGIC);
    w.u32(FORMAT_VERSION);
    w.u32(length as u32);
    w.u128(g.volume_id);
    w.u64(header.generation);
    w.u32(header.runs.len() as u32);
    w.u32(header.bad_spots.len() as u32);
    codec::put_geometry(&mut w, g);
    for &pages in &g.drive_pages {
        w.u64(pages);
    }
    for run in &header.runs {
        w.u64(run.page.0);
        w.u64(run.disk.page.0);
        w.u64(run.count.0);
        w.u16(run.disk.drive.0);
        w.bytes(&[0; 6]);
    }
    for spot in &header.bad_spots {
        codec::put_bad_spot(&mut w, spot);
    }
    let bytes = w.finish_with_crc();
    debug_assert_eq!(bytes.len(), length);
    bytes
}

/// Decodes the header at the start of a slot's bytes. Never panics and
/// never allocates more than the slot's size, whatever the bytes.
pub fn decode(slot: &[u8]) -> Result<RawHeader, StructError> {
    let mut r = open_envelope(slot, MAGIC, FIXED_BYTES + codec::CRC_BYTES)?;
    let volume_id = r.u128()?;
    let generation = r.u64()?;
    let run_count = r.u32()? as usize;
    let bad_count = r.u32()? as usize;
    let geometry = codec::get_geometry(&mut r)?;
    let drives = usize::from(geometry.drive_count);
    let needed = header_bytes(drives, run_count, bad_count);
    if needed > slot.len() {
        return Err(StructError::BadField {
            field: "header table sizes",
            value: needed as u64,
        });
    }
    let mut drive_pages = Vec::with_capacity(drives);
    for _ in 0..drives {
        drive_pages.push(r.u64()?);
    }
    let mut runs = Vec::with_capacity(run_count);
    for _ in 0..run_count {
        let page = r.u64()?;
        let disk_page = r.u64()?;
        let count = r.u64()?;
        let drive = r.u16()?;
        r.u16()?;
        r.u32()?;
        runs.push(Run {
            page: PageNumber(page),
            disk: DiskAddr::new(drive, disk_page),
            count: PageCount(count),
        });
    }
    let mut bad_spots = Vec::with_capacity(bad_count);
    for _ in 0..bad_count {
        bad_spots.push(codec::get_bad_spot(&mut r)?);
    }
    Ok(RawHeader {
        volume_id,
        generation,
        geometry,
        drive_pages,
        runs,
        bad_spots,
    })
}

/// The length in bytes a header claims, from the first 16 bytes of `bytes`,
/// if they start with the header's magic (the rest is not checked: decode
/// that many bytes to know whether a header is there).
pub fn claimed_length(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return None;
    }
    Some(u32::from_le_bytes(bytes[12..16].try_into().ok()?) as usize)
}

/// Where a header's own geometry puts it, from its first [`FIXED_BYTES`]
/// bytes (checksum not yet checked): its volume's page size and the page
/// at which its slot 1 starts (slot 0 always starts at page 1). `None` if
/// the bytes do not start with the header's magic, or the page size is not
/// one a volume may have. Lets a search reject a misplaced header before
/// reading the rest of it.
pub fn claimed_place(first: &[u8]) -> Option<(usize, u64)> {
    claimed_length(first)?;
    let field = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(first.get(at..at + 4)?.try_into().ok()?))
    };
    let page_size = field(48)? as usize;
    let slot_pages = u64::from(field(72)?);
    let valid = page_size.is_power_of_two()
        && (crate::layout::PAGE_SIZE_MIN..=crate::layout::PAGE_SIZE_MAX).contains(&page_size);
    valid.then_some((page_size, 1 + slot_pages))
}

/// Size of a header holding `runs` runs and `bad_spots` bad spots on
/// `drives` drives, in bytes.
/// (Saturating: a size past `usize` is as much too large as any.)
pub fn header_bytes(drives: usize, runs: usize, bad_spots: usize) -> usize {
    FIXED_BYTES
        .saturating_add(drives.saturating_mul(DRIVE_ENTRY_BYTES))
        .saturating_add(runs.saturating_mul(RUN_ENTRY_BYTES))
        .saturating_add(bad_spots.saturating_mul(codec::BAD_SPOT_BYTES))
        .saturating_add(codec::CRC_BYTES)
}
