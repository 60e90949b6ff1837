//! Little-endian field encoding shared by the label and the header, with
//! bounds-checked reads: a short or garbled buffer becomes an error value.
//!
//! The geometry block and the bad-spot entry appear in both structures:
//!
//! ```text
//!  geometry block (32 bytes)           bad-spot entry (24 bytes)
//!  +0  u32 page size                   +0  u16 drive
//!  +4  u16 drive count                 +2  u16 spare drive (0xFFFF: none)
//!  +6  u8  layout (0 concat, 1 stripe) +4  u32 reserved, 0
//!  +7  u8  flags (bit 0: sparse)       +8  u64 page
//!  +8  u64 virtual page count          +16 u64 spare page (0 when none)
//!  +16 u32 stripe unit (0 for concat)
//!  +20 u32 spare pages per drive
//!  +24 u32 header slot pages
//!  +28 u32 reserved remaps
//! ```

use crate::DiskAddr;
use crate::error::StructError;
use crate::layout::{BadSpot, Layout};

/// Bytes of the geometry block.
pub const GEOMETRY_BYTES: usize = 32;
/// Bytes of one bad-spot entry.
pub const BAD_SPOT_BYTES: usize = 24;
/// Bytes of the CRC-32C that ends every structure.
pub const CRC_BYTES: usize = 4;

const NO_SPARE: u16 = u16::MAX;
const FLAG_SPARSE: u8 = 1;

/// Appends little-endian fields to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Writer {
        Writer {
            bytes: Vec::with_capacity(capacity),
        }
    }
    /// Appends raw bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
    }
    /// Appends a `u8`.
    pub fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }
    /// Appends a little-endian `u16`.
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    /// Appends a little-endian `u32`.
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    /// Appends a little-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    /// Appends a little-endian `u128`.
    pub fn u128(&mut self, v: u128) {
        self.bytes(&v.to_le_bytes());
    }
    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// Appends the CRC-32C of everything so far and returns the bytes.
    pub fn finish_with_crc(mut self) -> Vec<u8> {
        let crc = crc32c::crc32c(&self.bytes);
        self.u32(crc);
        self.bytes
    }
}

/// Reads little-endian fields; running off the end is an error.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// A read ran past the end of the structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated {
    /// Offset of the field that did not fit.
    pub at: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }
    /// Current offset.
    pub fn offset(&self) -> usize {
        self.at
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let end = self.at.checked_add(N).ok_or(Truncated { at: self.at })?;
        let field = self
            .bytes
            .get(self.at..end)
            .ok_or(Truncated { at: self.at })?;
        self.at = end;
        Ok(field.try_into().expect("length checked"))
    }
    /// Reads a `u8`.
    pub fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.take::<1>()?[0])
    }
    /// Reads a little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, Truncated> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    /// Reads a little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    /// Reads a little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    /// Reads a little-endian `u128`.
    pub fn u128(&mut self) -> Result<u128, Truncated> {
        Ok(u128::from_le_bytes(self.take()?))
    }
    /// Reads 8 raw bytes.
    pub fn bytes8(&mut self) -> Result<[u8; 8], Truncated> {
        self.take()
    }
}

/// Checks the CRC-32C stored in the last 4 bytes of `structure`.
pub fn crc_matches(structure: &[u8]) -> bool {
    let Some(body_len) = structure.len().checked_sub(CRC_BYTES) else {
        return false;
    };
    let (body, stored) = structure.split_at(body_len);
    crc32c::crc32c(body) == u32::from_le_bytes(stored.try_into().expect("4 bytes"))
}

/// The geometry block's fields as read, before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawGeometry {
    /// Page size field.
    pub page_size: u32,
    /// Drive count field.
    pub drive_count: u16,
    /// Layout code.
    pub layout: u8,
    /// Flags.
    pub flags: u8,
    /// Virtual page count.
    pub virtual_pages: u64,
    /// Stripe unit.
    pub stripe_unit: u32,
    /// Spare pages per drive.
    pub spare_pages_per_drive: u32,
    /// Header slot pages.
    pub header_slot_pages: u32,
    /// Reserved remaps.
    pub reserve_remaps: u32,
}

impl RawGeometry {
    /// The layout the codes name, if they name one.
    pub fn layout(&self) -> Option<Layout> {
        match (self.layout, self.stripe_unit) {
            (0, _) => Some(Layout::Concatenate),
            (1, unit) if unit > 0 => Some(Layout::Stripe { unit }),
            _ => None,
        }
    }
    /// Whether the sparse flag is set.
    pub fn sparse(&self) -> bool {
        self.flags & FLAG_SPARSE != 0
    }

    /// The geometry these fields describe for a volume of `volume_id` whose
    /// drives have `drive_pages` pages, or the impossible field. Not yet
    /// validated: see [`crate::Geometry::validate`].
    pub fn to_geometry(
        &self,
        volume_id: u128,
        drive_pages: Vec<u64>,
    ) -> Result<crate::Geometry, StructError> {
        let layout = self.layout().ok_or(StructError::BadField {
            field: "layout",
            value: u64::from(self.layout),
        })?;
        Ok(crate::Geometry {
            volume_id,
            page_size: self.page_size as usize,
            virtual_pages: self.virtual_pages,
            drive_pages,
            layout,
            spare_pages_per_drive: self.spare_pages_per_drive,
            header_slot_pages: self.header_slot_pages,
            reserve_remaps: self.reserve_remaps,
            sparse: self.sparse(),
        })
    }
}

/// Writes a geometry block.
pub fn put_geometry(w: &mut Writer, g: &crate::Geometry) {
    w.u32(g.page_size as u32);
    w.u16(g.drive_count() as u16);
    let (code, unit) = match g.layout {
        Layout::Concatenate => (0, 0),
        Layout::Stripe { unit } => (1, unit),
    };
    w.u8(code);
    w.u8(if g.sparse { FLAG_SPARSE } else { 0 });
    w.u64(g.virtual_pages);
    w.u32(unit);
    w.u32(g.spare_pages_per_drive);
    w.u32(g.header_slot_pages);
    w.u32(g.reserve_remaps);
}

/// Reads a geometry block.
pub fn get_geometry(r: &mut Reader<'_>) -> Result<RawGeometry, Truncated> {
    Ok(RawGeometry {
        page_size: r.u32()?,
        drive_count: r.u16()?,
        layout: r.u8()?,
        flags: r.u8()?,
        virtual_pages: r.u64()?,
        stripe_unit: r.u32()?,
        spare_pages_per_drive: r.u32()?,
        header_slot_pages: r.u32()?,
        reserve_remaps: r.u32()?,
    })
}

/// Writes a bad-spot entry.
pub fn put_bad_spot(w: &mut Writer, spot: &BadSpot) {
    w.u16(spot.addr.drive.0);
    w.u16(spot.spare.map_or(NO_SPARE, |s| s.drive.0));
    w.u32(0);
    w.u64(spot.addr.page.0);
    w.u64(spot.spare.map_or(0, |s| s.page.0));
}

/// Reads a bad-spot entry.
pub fn get_bad_spot(r: &mut Reader<'_>) -> Result<BadSpot, Truncated> {
    let drive = r.u16()?;
    let spare_drive = r.u16()?;
    let _reserved = r.u32()?;
    let page = r.u64()?;
    let spare_page = r.u64()?;
    Ok(BadSpot {
        addr: DiskAddr::new(drive, page),
        spare: (spare_drive != NO_SPARE).then(|| DiskAddr::new(spare_drive, spare_page)),
    })
}

impl From<Truncated> for StructError {
    fn from(t: Truncated) -> StructError {
        StructError::Truncated { at: t.at }
    }
}
