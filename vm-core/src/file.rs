//! [`VmFile`]: a growable file over an interval of the address space — the
//! thing an embedded storage engine plugs in as its file, with `sync_data`
//! as [`AddressSpace::sync`] of the interval.
//!
//! Page 0 of the interval is the file's header (its magic and length);
//! the bytes follow from page 1. The interval is reserved up front for the
//! file's capacity — reserving address space costs neither memory nor disk
//! until pages are written — and grows in place past it when the pages
//! after it are free, so the file never moves and an address into it stays
//! valid. In a persistent space the file, its length included, survives
//! as the space does: reopen the space, then [`VmFile::open`] the interval.
//!
//! ```text
//!  header (page 0 of the interval), little-endian
//!   0   8   magic "CEDARFIL"
//!   8   8   length in bytes
//! ```

use crate::error::VmError;
use crate::space::AddressSpace;
use runtable::{Interval, PageNumber};
use std::io::{self, Read, Seek, SeekFrom, Write};

const MAGIC: &[u8; 8] = b"CEDARFIL";

/// A growable file over an interval of the address space.
pub struct VmFile<'v> {
    space: &'v AddressSpace,
    interval: Interval,
    len: u64,
    /// The position `Read`, `Write` and `Seek` use.
    position: u64,
}

impl std::fmt::Debug for VmFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmFile")
            .field("interval", &self.interval)
            .field("len", &self.len)
            .field("position", &self.position)
            .finish()
    }
}

impl<'v> VmFile<'v> {
    /// A new empty file with room for `capacity` bytes before it has to
    /// grow its interval: allocates `1 + capacity / page size` pages
    /// (rounded up).
    pub fn create(space: &'v AddressSpace, capacity: u64) -> Result<VmFile<'v>, VmError> {
        let page = space.page_size() as u64;
        let interval = space.allocate(1 + capacity.div_ceil(page))?;
        let file = VmFile {
            space,
            interval,
            len: 0,
            position: 0,
        };
        file.write_header()?;
        Ok(file)
    }

    /// The file held by `interval` (made by [`VmFile::create`], perhaps in
    /// an earlier run of a persistent space).
    ///
    /// After a crash the header page and the file's other pages may come
    /// from different moments (pages survive one by one): a length past
    /// the interval is cut to it, and whatever lies past the length — bytes
    /// written after the last sync, or left by a shrink the crash undid —
    /// is cleared, so that the file reads as zeros past its end, as it
    /// promises.
    pub fn open(space: &'v AddressSpace, interval: Interval) -> Result<VmFile<'v>, VmError> {
        if interval.count.0 == 0 {
            return Err(VmError::BadArgument {
                call: "VmFile::open",
                reason: "an empty interval holds no VmFile".into(),
            });
        }
        let mut header = [0u8; 16];
        space.read(space.address_of(interval.page), &mut header)?;
        if &header[..8] != MAGIC {
            return Err(VmError::BadArgument {
                call: "VmFile::open",
                reason: format!("{interval} holds no VmFile (wrong magic)"),
            });
        }
        let len = u64::from_le_bytes(header[8..].try_into().unwrap_or_default());
        let mut file = VmFile {
            space,
            interval,
            len: 0,
            position: 0,
        };
        let len = len.min(file.capacity());
        // Clear past the end: `set_len` from the capacity down to `len`.
        file.len = file.capacity();
        file.set_len(len)?;
        Ok(file)
    }

    /// The interval the file lives in (page 0 its header).
    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the interval holds now (it grows in place past them if it
    /// can).
    pub fn capacity(&self) -> u64 {
        (self.interval.count.0 - 1) * self.space.page_size() as u64
    }

    fn data_address(&self, offset: u64) -> crate::vocabulary::VAddr {
        let page = self.space.page_size() as u64;
        crate::vocabulary::VAddr(self.space.address_of(self.interval.page).0 + page + offset)
    }

    fn write_header(&self) -> Result<(), VmError> {
        let mut header = [0u8; 16];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(&self.len.to_le_bytes());
        self.space
            .write(self.space.address_of(self.interval.page), &header)
    }

    /// Room for `end` bytes: grows the interval in place if it must.
    fn reserve(&mut self, end: u64) -> Result<(), VmError> {
        if end <= self.capacity() {
            return Ok(());
        }
        let page = self.space.page_size() as u64;
        let extra = (end - self.capacity()).div_ceil(page);
        // Twice what is missing, where the space allows: fewer grows.
        let interval = self
            .space
            .grow(self.interval, extra.max(self.interval.count.0))
            .or_else(|_| self.space.grow(self.interval, extra))?;
        self.interval = interval;
        Ok(())
    }

    /// Sets the length: a shorter file loses its tail (a partial last page
    /// is zeroed past the end, whole pages past it are discarded without
    /// I/O), a longer one reads as zeros past the old end.
    pub fn set_len(&mut self, len: u64) -> Result<(), VmError> {
        if len < self.len {
            let page = self.space.page_size() as u64;
            let tail = len.next_multiple_of(page);
            if tail > len {
                let zeros = vec![0u8; (tail.min(self.len) - len) as usize];
                self.space.write(self.data_address(len), &zeros)?;
            }
            let first = tail / page;
            let last = self.len.div_ceil(page);
            if last > first {
                self.space.kill(Interval::new(
                    self.interval.page.0 + 1 + first,
                    last - first,
                ))?;
            }
        } else {
            self.reserve(len)?;
        }
        self.len = len;
        self.write_header()
    }

    /// Reads from `offset` into `buf`: the bytes read (fewer than asked at
    /// the end of the file, none past it).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, VmError> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = (self.len - offset).min(buf.len() as u64) as usize;
        self.space.read(self.data_address(offset), &mut buf[..n])?;
        Ok(n)
    }

    /// Writes `buf` at `offset`, growing the file (and its interval, in
    /// place) if it ends past the end; a gap reads as zeros. All of `buf`
    /// is written or an error returned.
    pub fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<usize, VmError> {
        // As `pwrite`: writing nothing changes nothing, past the end too.
        if buf.is_empty() {
            return Ok(0);
        }
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(VmError::CantAllocateVirtual { pages: u64::MAX })?;
        self.reserve(end)?;
        self.space.write(self.data_address(offset), buf)?;
        if end > self.len {
            self.len = end;
            self.write_header()?;
        }
        Ok(buf.len())
    }

    /// Makes every write to the file durable ([`AddressSpace::sync`] of its
    /// interval: its changed pages, its length, and the space's shape).
    pub fn sync_data(&self) -> Result<(), VmError> {
        self.space.sync(self.interval)
    }

    /// As [`VmFile::sync_data`]: the length is in the file's own pages.
    pub fn sync_all(&self) -> Result<(), VmError> {
        self.sync_data()
    }

    /// The first page of the file's data (page 1 of its interval).
    pub fn first_data_page(&self) -> PageNumber {
        PageNumber(self.interval.page.0 + 1)
    }
}

impl Read for VmFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at(buf, self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl Write for VmFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.write_at(buf, self.position)?;
        self.position += n as u64;
        Ok(n)
    }

    /// Writes reach the VM at once; durability is [`VmFile::sync_data`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for VmFile<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let (base, delta) = match to {
            SeekFrom::Start(at) => (at, 0),
            SeekFrom::End(delta) => (self.len, delta),
            SeekFrom::Current(delta) => (self.position, delta),
        };
        let position = base.checked_add_signed(delta).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        self.position = position;
        Ok(position)
    }
}
