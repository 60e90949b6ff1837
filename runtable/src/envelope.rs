//! The envelope every persistent structure shares: magic, format version,
//! length and a trailing CRC-32C. Decoding checks the envelope before any
//! field is trusted.
//!
//! ```text
//!  +0  8 bytes  magic
//!  +8  u32      format version
//!  +12 u32      length in bytes, trailing CRC included
//!  ...          body
//!  +len-4 u32   CRC-32C of bytes [0, len-4)
//! ```

use crate::codec::{CRC_BYTES, Reader, crc_matches};
pub use crate::error::StructError;

/// The on-disk format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of magic + version + length.
pub const ENVELOPE_BYTES: usize = 16;

/// Checks the envelope of a structure stored at the start of `bytes` and
/// returns a reader over exactly its bytes, positioned after the envelope.
/// `min_len` is the least length a valid structure has.
pub fn open_envelope<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    min_len: usize,
) -> Result<Reader<'a>, StructError> {
    let mut r = Reader::new(bytes);
    let found = r.bytes8()?;
    if &found != magic {
        return Err(StructError::WrongMagic { found });
    }
    let version = r.u32()?;
    if version == 0 {
        return Err(StructError::ZeroVersion);
    }
    if version > FORMAT_VERSION {
        return Err(StructError::FutureVersion {
            version,
            supported: FORMAT_VERSION,
        });
    }
    let length = r.u32()?;
    if (length as usize) < min_len.max(ENVELOPE_BYTES + CRC_BYTES) || length as usize > bytes.len()
    {
        return Err(StructError::BadLength {
            length: u64::from(length),
            min: min_len,
            max: bytes.len(),
        });
    }
    let structure = &bytes[..length as usize];
    if !crc_matches(structure) {
        return Err(StructError::BadChecksum);
    }
    let mut r = Reader::new(&structure[..structure.len() - CRC_BYTES]);
    r.bytes8()?;
    r.u32()?;
    r.u32()?;
    Ok(r)
}
