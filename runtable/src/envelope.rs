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

use crate::codec::{CRC_BYTES, Reader, Truncated, crc_matches};

/// The on-disk format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of magic + version + length.
pub const ENVELOPE_BYTES: usize = 16;

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
    #[error("format version {version} is newer than this software's {FORMAT_VERSION}")]
    FutureVersion {
        /// The version found.
        version: u32,
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

impl From<Truncated> for StructError {
    fn from(t: Truncated) -> StructError {
        StructError::Truncated { at: t.at }
    }
}

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
        return Err(StructError::FutureVersion { version });
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
