//! The label page: page 0 of every drive of a volume.
//!
//! A label says which volume the drive belongs to and where it stands in
//! it, repeats the volume's geometry, and lists the bad spots of this drive
//! — so that the run table can be re-derived from the labels alone when
//! both header slots are lost.
//!
//! ```text
//!  offset size  field
//!   0      8    magic "CEDARLBL"
//!   8      4    format version (1)
//!  12      4    length in bytes, CRC included: 80 + 24·n + 4
//!  16     16    volume id
//!  32      2    drive index
//!  34      2    reserved, 0
//!  36      4    bad-spot count n
//!  40      8    this drive's page count
//!  48     32    geometry block (see `codec`)
//!  80   24·n    bad spots on this drive (see `codec`)
//!  ..      4    CRC-32C of bytes [0, length-4)
//! ```
//!
//! All fields little-endian. The rest of the page is zero.

use crate::codec::{self, BAD_SPOT_BYTES, CRC_BYTES, GEOMETRY_BYTES, RawGeometry, Writer};
use crate::envelope::{ENVELOPE_BYTES, FORMAT_VERSION, StructError, open_envelope};
use crate::layout::{BadSpot, Geometry};

/// The label's magic.
pub const MAGIC: &[u8; 8] = b"CEDARLBL";
/// Offset of the bad-spot list.
pub const BAD_SPOTS_OFFSET: usize = ENVELOPE_BYTES + 16 + 2 + 2 + 4 + 8 + GEOMETRY_BYTES;
const _: () = assert!(BAD_SPOTS_OFFSET == 80);

/// The most bad spots one label of a `page_size`-byte page can list.
pub fn max_bad_spots(page_size: usize) -> usize {
    (page_size - BAD_SPOTS_OFFSET - CRC_BYTES) / BAD_SPOT_BYTES
}

/// A label as read from disk: envelope and checksum checked, fields not yet
/// validated against the volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawLabel {
    /// Volume id.
    pub volume_id: u128,
    /// This drive's index in the volume.
    pub drive_index: u16,
    /// This drive's page count.
    pub drive_pages: u64,
    /// The volume's geometry block.
    pub geometry: RawGeometry,
    /// Bad spots on this drive.
    pub bad_spots: Vec<BadSpot>,
}

/// Encodes the label of drive `drive_index` into a page of `page_size`
/// bytes. `bad_spots` are this drive's.
pub fn encode(geometry: &Geometry, drive_index: u16, bad_spots: &[BadSpot]) -> Vec<u8> {
    let length = BAD_SPOTS_OFFSET + bad_spots.len() * BAD_SPOT_BYTES + CRC_BYTES;
    let mut w = Writer::with_capacity(geometry.page_size);
    w.bytes(MAGIC);
    w.u32(FORMAT_VERSION);
    w.u32(length as u32);
    w.u128(geometry.volume_id);
    w.u16(drive_index);
    w.u16(0);
    w.u32(bad_spots.len() as u32);
    w.u64(geometry.drive_pages[usize::from(drive_index)]);
    codec::put_geometry(&mut w, geometry);
    for spot in bad_spots {
        codec::put_bad_spot(&mut w, spot);
    }
    debug_assert_eq!(w.len() + CRC_BYTES, length);
    let mut page = w.finish_with_crc();
    page.resize(geometry.page_size.max(page.len()), 0);
    page
}

/// Decodes a label page. Never panics, whatever the bytes.
pub fn decode(page: &[u8]) -> Result<RawLabel, StructError> {
    let mut r = open_envelope(page, MAGIC, BAD_SPOTS_OFFSET + CRC_BYTES)?;
    let volume_id = r.u128()?;
    let drive_index = r.u16()?;
    let _reserved = r.u16()?;
    let count = r.u32()? as usize;
    let drive_pages = r.u64()?;
    let geometry = codec::get_geometry(&mut r)?;
    let expected = BAD_SPOTS_OFFSET + count.saturating_mul(BAD_SPOT_BYTES);
    if expected > page.len() {
        return Err(StructError::BadField {
            field: "label bad-spot count",
            value: count as u64,
        });
    }
    let mut bad_spots = Vec::with_capacity(count);
    for _ in 0..count {
        bad_spots.push(codec::get_bad_spot(&mut r)?);
    }
    Ok(RawLabel {
        volume_id,
        drive_index,
        drive_pages,
        geometry,
        bad_spots,
    })
}
