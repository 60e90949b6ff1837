//! The persistent space's double-write journal: what keeps a page that a
//! `flush` or `sync` made durable from being torn by a later rewrite in
//! place.
//!
//! Pages are written back in place, and a crash (or the power) can tear the
//! write of one: part new bytes, part old. For a page with no durable copy
//! (not on disk in the newest map) that is harmless — the map says it has
//! none, and it reads as zeros after a reopen. For a page the newest map
//! says is on disk, the torn page would be the only copy: neither the
//! synced version nor a later one. So before such a page is first written
//! in place after the newest map, an image of what is about to be written
//! goes to the journal, and the drives are synced (the barrier); only then
//! is it written in place. [`replay`] at open writes every intact image of
//! the newest map's chain back in place, so a torn page becomes whole
//! again (the version the journal holds: a write made after the last sync,
//! which the contract allows). InnoDB's doublewrite buffer does the same.
//!
//! A page needs an image **once per map generation**: while its image is in
//! the chain, any later in-place write of it that tears is repaired from
//! that image. When the journal is full, a **checkpoint** syncs the drives
//! (every in-place write so far is whole on the medium) and starts a new
//! chain at the journal's first page; every map commit starts one too (the
//! new map names what is on disk, and chains of older generations are never
//! replayed).
//!
//! # Where it lives and what it holds
//!
//! `journal_pages_for(volume pages)` virtual pages of the volume, just
//! below the two map slots (see `persist`). A chain is a sequence of
//! records from the journal's first page: a descriptor page, then the
//! images it lists, one page each; the next descriptor follows the last
//! image.
//!
//! ```text
//!  offset size  descriptor field (little-endian)
//!   0      8    magic "CEDARJNL"
//!   8      4    format version (1)
//!  12      4    k: images that follow (1 ..= entries per descriptor)
//!  16     16    volume id
//!  32      8    the chain's epoch (random: a chain started later never
//!               continues an older one's records)
//!  40      8    sequence number of this record in its chain (from 0)
//!  48      8    this descriptor's page within the journal
//!  56      8    the lowest map generation the chain belongs to
//!  64      8    the highest (the same, but after a failed commit: below)
//!  72   16·k    per image: the space page it is of (8), the CRC-32C of
//!               the image (4), zero (4)
//!  72+16k  4    CRC-32C of bytes [0, 72 + 16k)
//! ```
//!
//! A chain belongs to one map generation, or to two after a failed commit:
//! when writing map `g + 1` fails after it began (a sync error), that map
//! may be on the medium or not. Every data page written before it was
//! synced, so a new chain starts at once (no image is lost), belonging to
//! `g` and `g + 1`, and imaging the pages either map names on disk; the
//! next commit is `g + 2`, so that chain is never replayed over it.
//!
//! [`replay`] follows the chain from the first page while each descriptor
//! checks out (magic, checksum, volume, generation, position, sequence,
//! the first descriptor's epoch) and every image it lists matches its
//! checksum; the first record that does not ends the chain. A record is
//! written whole before any of its pages is written in place (the barrier),
//! so a record torn by a crash names pages whose in-place copies are still
//! whole.
//!
//! # Costs
//!
//! The first write-back after each map commit of a page that was on disk
//! costs an extra page written and one drive sync per batch; a checkpoint
//! costs a sync. An anonymous space ([`crate::Vm::new`]) has no journal and
//! pays nothing.

use crate::error::VmError;
use crate::page_map::PageSet;
use runtable::{PageNumber, Volume};

/// The descriptor's magic.
const MAGIC: &[u8; 8] = b"CEDARJNL";
/// The descriptor's format version.
const VERSION: u32 = 1;
/// Bytes before the entries.
const FIXED_BYTES: usize = 72;
/// Bytes per entry.
const ENTRY_BYTES: usize = 16;
/// Bytes of the checksum.
const CRC_BYTES: usize = 4;

/// Journal pages on a volume of `volume_pages` virtual pages: 1/64 of it,
/// at least 16 and at most 2048.
pub(crate) fn journal_pages_for(volume_pages: u64) -> u64 {
    (volume_pages / 64).clamp(16, 2048)
}

/// Images one descriptor of a `page_size`-byte page lists at most.
fn entries_per_descriptor(page_size: usize) -> usize {
    (page_size - FIXED_BYTES - CRC_BYTES) / ENTRY_BYTES
}

/// A chain's epoch: different, with overwhelming odds, from every epoch
/// written before (the std hasher's random keys, the clock and a counter).
fn fresh_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    hasher.write_u64(now);
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// A descriptor as read.
#[derive(Debug, PartialEq, Eq)]
struct Descriptor {
    /// The map generations the chain belongs to.
    generations: (u64, u64),
    epoch: u64,
    sequence: u64,
    position: u64,
    /// (space page, CRC-32C of its image).
    entries: Vec<(u64, u32)>,
}

/// A descriptor's page of `page_size` bytes.
fn encode(volume_id: u128, d: &Descriptor, page_size: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(page_size);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&(d.entries.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&volume_id.to_le_bytes());
    bytes.extend_from_slice(&d.epoch.to_le_bytes());
    bytes.extend_from_slice(&d.sequence.to_le_bytes());
    bytes.extend_from_slice(&d.position.to_le_bytes());
    bytes.extend_from_slice(&d.generations.0.to_le_bytes());
    bytes.extend_from_slice(&d.generations.1.to_le_bytes());
    for &(page, crc) in &d.entries {
        bytes.extend_from_slice(&page.to_le_bytes());
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
    }
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.resize(page_size, 0);
    bytes
}

/// The descriptor in `bytes` (one page), if it is one of volume
/// `volume_id`.
fn decode(bytes: &[u8], volume_id: u128) -> Option<Descriptor> {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    if bytes.len() < FIXED_BYTES + CRC_BYTES || &bytes[..8] != MAGIC || u32_at(8) != VERSION {
        return None;
    }
    let k = u32_at(12) as usize;
    if k == 0 || k > entries_per_descriptor(bytes.len()) {
        return None;
    }
    let end = FIXED_BYTES + k * ENTRY_BYTES;
    if crc32c::crc32c(&bytes[..end]) != u32_at(end) {
        return None;
    }
    if u128::from_le_bytes(bytes[16..32].try_into().unwrap_or([0; 16])) != volume_id {
        return None;
    }
    let entries = (0..k)
        .map(|i| {
            let at = FIXED_BYTES + i * ENTRY_BYTES;
            (u64_at(at), u32_at(at + 8))
        })
        .collect();
    let generations = (u64_at(56), u64_at(64));
    if generations.0 > generations.1 {
        return None;
    }
    Some(Descriptor {
        generations,
        epoch: u64_at(32),
        sequence: u64_at(40),
        position: u64_at(48),
        entries,
    })
}

/// The journal of a persistent space: where it is and where its chain
/// stands. Lives in the monitor (m).
#[derive(Debug)]
pub(crate) struct Journal {
    /// The volume's virtual page where the journal starts.
    first_page: u64,
    /// Its pages.
    pages: u64,
    page_size: usize,
    volume_id: u128,
    /// The next free page of the journal (where the next record goes).
    next: u64,
    /// The current chain's epoch and next sequence number.
    epoch: u64,
    sequence: u64,
    /// The map generations the chain belongs to: the newest map's, or,
    /// after a failed commit, it and the one that failed.
    generations: (u64, u64),
    /// Pages with an image in the current chain.
    journaled: PageSet,
    /// A bit per space page: whether the newest map (or, after a failed
    /// commit, either map) names a disk copy of it — only those need an
    /// image.
    on_disk: Vec<u64>,
    /// Images written, and checkpoints taken (for the stats).
    pub(crate) images_written: u64,
    pub(crate) checkpoints: u64,
}

impl Journal {
    /// An empty journal of `pages` pages from the volume's virtual page
    /// `first_page`, whose next chain belongs to map `generation`.
    pub(crate) fn new(
        first_page: u64,
        pages: u64,
        page_size: usize,
        volume_id: u128,
        generation: u64,
    ) -> Journal {
        Journal {
            first_page,
            pages,
            page_size,
            volume_id,
            next: 0,
            epoch: fresh_epoch(),
            sequence: 0,
            generations: (generation, generation),
            journaled: PageSet::default(),
            on_disk: Vec::new(),
            images_written: 0,
            checkpoints: 0,
        }
    }

    /// The most pages one [`Journal::record`] takes: what fits in an empty
    /// journal with its descriptors. Write-back batches are cut to this.
    pub(crate) fn max_batch(&self) -> u64 {
        let e = entries_per_descriptor(self.page_size) as u64;
        let fits = |n: u64| n + n.div_ceil(e) <= self.pages;
        // A lower bound (n + ⌈n/e⌉ ≤ pages for n = pages - ⌈pages/(e+1)⌉),
        // then up to the largest that fits.
        let mut n = self.pages - self.pages.div_ceil(e + 1);
        while fits(n + 1) {
            n += 1;
        }
        n
    }

    /// Starts a new chain (empty, nothing journaled). Only when every
    /// in-place write so far is whole on the medium (the drives synced
    /// since), so that no image is needed any more.
    fn restart(&mut self) {
        self.next = 0;
        self.sequence = 0;
        self.epoch = fresh_epoch();
        self.journaled.clear();
    }

    /// A map of `generation` was committed (written and synced), naming a
    /// disk copy of the pages whose bits are set in `on_disk` (see
    /// [`bitset`]): a new chain for it.
    pub(crate) fn committed(&mut self, generation: u64, on_disk: Vec<u64>) {
        self.generations = (generation, generation);
        self.on_disk = on_disk;
        self.restart();
    }

    /// Writing map `generation` (naming `on_disk`) failed after it began:
    /// it may be on the medium or not. Every data page written before it
    /// was synced, so a new chain starts without a sync, belonging to the
    /// newest map before it and to `generation`, and imaging the pages
    /// either names. The caller makes the next map `generation + 1`, so
    /// that this chain is never replayed over it.
    pub(crate) fn commit_failed(&mut self, generation: u64, on_disk: Vec<u64>) {
        if self.on_disk.len() < on_disk.len() {
            self.on_disk.resize(on_disk.len(), 0);
        }
        for (mine, theirs) in self.on_disk.iter_mut().zip(on_disk) {
            *mine |= theirs;
        }
        self.generations = (self.generations.0, generation);
        self.restart();
    }

    /// Whether the newest map (or, after a failed commit, either map) names
    /// a disk copy of `page`: it must have an image in the chain before it
    /// is written in place.
    pub(crate) fn named(&self, page: u64) -> bool {
        self.on_disk
            .get((page / 64) as usize)
            .is_some_and(|word| word >> (page % 64) & 1 != 0)
    }

    /// Whether `page` must get an image before it is written in place: it
    /// is named, and the chain has no image of it.
    #[cfg(test)]
    fn needs_image(&self, page: u64) -> bool {
        self.named(page) && !self.journaled.contains(&page)
    }

    /// Before the pages of `images` — (space page, the bytes about to be
    /// written in place), every one [`Journal::named`], at most
    /// [`Journal::max_batch`] — are written in place: writes an image of
    /// each that has none in the chain yet, and syncs the drives. On `Ok`,
    /// they may be written in place.
    ///
    /// When those images do not fit after the chain so far, a checkpoint
    /// first: the drives synced (every in-place write so far is whole) and
    /// a new chain — in which **every** page of `images` needs an image
    /// again (an image in the old chain is gone with it: a page of this
    /// batch relying on it would be unprotected when written in place).
    pub(crate) fn record(
        &mut self,
        volume: &mut Volume,
        images: &[(u64, &[u8])],
    ) -> Result<(), VmError> {
        let e = entries_per_descriptor(self.page_size);
        let needed_pages = |n: usize| n as u64 + n.div_ceil(e) as u64;
        let mut need: Vec<&(u64, &[u8])> = images
            .iter()
            .filter(|(page, _)| !self.journaled.contains(page))
            .collect();
        if need.is_empty() {
            return Ok(());
        }
        if needed_pages(images.len()) > self.pages {
            return Err(VmError::Config {
                field: "journal",
                reason: format!(
                    "a write-back batch of {} pages is more than the journal's {} pages hold",
                    images.len(),
                    self.pages
                ),
            });
        }
        if self.next + needed_pages(need.len()) > self.pages {
            volume.channel().sync_all().map_err(VmError::Sync)?;
            self.restart();
            self.checkpoints += 1;
            need = images.iter().collect();
        }
        // The records, laid out as they go to the journal's pages.
        let mut bytes = Vec::with_capacity(needed_pages(need.len()) as usize * self.page_size);
        let mut at = self.next;
        let mut sequence = self.sequence;
        for group in need.chunks(e) {
            let descriptor = Descriptor {
                generations: self.generations,
                epoch: self.epoch,
                sequence,
                position: at,
                entries: group
                    .iter()
                    .map(|(page, image)| (*page, crc32c::crc32c(image)))
                    .collect(),
            };
            bytes.extend_from_slice(&encode(self.volume_id, &descriptor, self.page_size));
            for (_, image) in group {
                bytes.extend_from_slice(image);
            }
            at += 1 + group.len() as u64;
            sequence += 1;
        }
        let remapped = self.write_pages(volume, self.next, &bytes)?;
        if remapped {
            // Journal pages moved off bad spots: the run table that says
            // where they are is committed (and synced) before they count.
            volume.commit()?;
        }
        volume.channel().sync_all().map_err(VmError::Sync)?;
        self.next = at;
        self.sequence = sequence;
        self.journaled.extend(need.iter().map(|(page, _)| *page));
        self.images_written += need.len() as u64;
        Ok(())
    }

    /// Writes `bytes` (whole pages) to the journal from its page `from`:
    /// runs of consecutive disk pages on one drive as one transfer, each
    /// drive's runs in flight together; a run that fails is written page by
    /// page, a page on a bad spot moved to a spare. `Ok(true)`: the run
    /// table changed and must be committed before the pages count.
    fn write_pages(&self, volume: &mut Volume, from: u64, bytes: &[u8]) -> Result<bool, VmError> {
        let count = (bytes.len() / self.page_size) as u64;
        // Runs: (first page of `bytes`, pages, disk address).
        let mut runs: Vec<(u64, u64, runtable::DiskAddr)> = Vec::new();
        for k in 0..count {
            let disk = volume.translate(PageNumber(self.first_page + from + k))?;
            match runs.last_mut() {
                Some((_, len, d)) if d.drive == disk.drive && d.page.0 + *len == disk.page.0 => {
                    *len += 1
                }
                _ => runs.push((k, 1, disk)),
            }
        }
        let mut drives: Vec<disk_channel::DriveId> = runs.iter().map(|r| r.2.drive).collect();
        drives.sort_unstable();
        drives.dedup();
        let mut failed: Vec<u64> = Vec::new();
        for drive in drives {
            let mine: Vec<&(u64, u64, runtable::DiskAddr)> =
                runs.iter().filter(|r| r.2.drive == drive).collect();
            let mut transfers: Vec<disk_channel::Transfer<'_>> = mine
                .iter()
                .map(|&&(k, len, disk)| disk_channel::Transfer::Write {
                    page: disk.page,
                    data: &bytes[k as usize * self.page_size..(k + len) as usize * self.page_size],
                })
                .collect();
            let results = volume.channel().transfer_all(drive, &mut transfers);
            drop(transfers);
            for (i, &&(k, len, _)) in mine.iter().enumerate() {
                let ok = results.as_ref().is_ok_and(|r| r[i].is_ok());
                if !ok {
                    failed.extend(k..k + len);
                }
            }
        }
        let mut remapped = false;
        for k in failed {
            let page = PageNumber(self.first_page + from + k);
            let data = &bytes[k as usize * self.page_size..(k + 1) as usize * self.page_size];
            remapped |= write_or_remap(volume, page, data)?;
        }
        Ok(remapped)
    }
}

/// Writes `data` to the volume's virtual page `page`; on a media error,
/// moves the page to a spare and writes it there. `Ok(true)`: it moved (the
/// run table must be committed). (The map slots, the journal and virtual
/// copies' materializations write this way.)
pub(crate) fn write_or_remap(
    volume: &mut Volume,
    page: PageNumber,
    data: &[u8],
) -> Result<bool, VmError> {
    let disk = volume.translate(page)?;
    let error = match volume.channel().write(disk.drive, disk.page, data, None) {
        Ok(()) => return Ok(false),
        Err(e) => e,
    };
    if !error.is_media_error() {
        return Err(VmError::Io {
            page,
            disk,
            source: error,
        });
    }
    let Ok(spare) = volume.remap_bad_page(disk) else {
        return Err(VmError::Io {
            page,
            disk,
            source: error,
        });
    };
    volume
        .channel()
        .write(spare.drive, spare.page, data, None)
        .map_err(|source| VmError::Io {
            page,
            disk: spare,
            source,
        })?;
    Ok(true)
}

/// A bit per page of `pages` pages, set where `set(page)`.
pub(crate) fn bitset(pages: u64, set: impl Fn(u64) -> bool) -> Vec<u64> {
    let mut bits = vec![0u64; pages.div_ceil(64) as usize];
    for page in (0..pages).filter(|&p| set(p)) {
        bits[(page / 64) as usize] |= 1 << (page % 64);
    }
    bits
}

/// Reads the volume's virtual page `page` into `buf`, the error naming
/// the page and its disk address.
pub(crate) fn read_page(volume: &Volume, page: u64, buf: &mut [u8]) -> Result<(), VmError> {
    let page = PageNumber(page);
    let disk = volume.translate(page)?;
    volume
        .channel()
        .read(disk.drive, disk.page, buf, None)
        .map_err(|source| VmError::Io { page, disk, source })
}

/// The highest map generation the chain at the journal's first page (from
/// `first_page`) belongs to, if one starts there: a new space on the
/// volume must start past it, so that the chain is never replayed into it.
pub(crate) fn chain_generation(volume: &Volume, first_page: u64) -> Option<u64> {
    let mut page = vec![0u8; volume.page_size()];
    read_page(volume, first_page, &mut page).ok()?;
    decode(&page, volume.geometry().volume_id)
        .filter(|d| d.position == 0 && d.sequence == 0)
        .map(|d| d.generations.1)
}

/// At open, before anything else touches the space: follows the journal's
/// chain (`pages` pages from the volume's virtual page `first_page`) that
/// belongs to map `generation` (the newest map's) and writes every intact
/// image back in place, record by record, then syncs. `on_disk(page)`
/// says whether the map names a disk copy of a space page (only those
/// ever get images; another is passed over). Returns the pages written
/// back.
///
/// A record is taken only whole (every image matching its checksum): it
/// was made durable before any of its pages was written in place, so a
/// torn one names pages whose in-place copies are still whole — it, and
/// what follows, end the chain. So does a descriptor that cannot be read.
/// An image that cannot be read (a bad spot since) is passed over: that
/// page keeps what its in-place copy holds. An image whose place is a bad
/// spot (moved to a spare by a run table that a crash kept from being
/// committed) moves the page to a spare again, and the table is committed.
pub(crate) fn replay(
    volume: &mut Volume,
    first_page: u64,
    pages: u64,
    generation: u64,
    on_disk: impl Fn(u64) -> bool,
) -> Result<u64, VmError> {
    let page_size = volume.page_size();
    let volume_id = volume.geometry().volume_id;
    let mut descriptor = vec![0u8; page_size];
    let (mut at, mut sequence, mut epoch) = (0u64, 0u64, None);
    let (mut written, mut remapped) = (0u64, false);
    while at < pages {
        if read_page(volume, first_page + at, &mut descriptor).is_err() {
            break;
        }
        let Some(d) = decode(&descriptor, volume_id) else {
            break;
        };
        let continues = (d.generations.0..=d.generations.1).contains(&generation)
            && d.position == at
            && d.sequence == sequence
            && epoch.is_none_or(|e| e == d.epoch)
            && at + 1 + d.entries.len() as u64 <= pages;
        if !continues {
            break;
        }
        let mut record: Vec<(u64, Vec<u8>)> = Vec::with_capacity(d.entries.len());
        let mut whole = true;
        for (i, &(page, crc)) in d.entries.iter().enumerate() {
            let mut image = vec![0u8; page_size];
            if read_page(volume, first_page + at + 1 + i as u64, &mut image).is_err() {
                continue;
            }
            if crc32c::crc32c(&image) != crc {
                whole = false;
                break;
            }
            record.push((page, image));
        }
        if !whole {
            break;
        }
        for (page, image) in record {
            if on_disk(page) {
                remapped |= write_or_remap(volume, PageNumber(page), &image)?;
                written += 1;
            }
        }
        epoch = Some(d.epoch);
        sequence += 1;
        at += 1 + d.entries.len() as u64;
    }
    if remapped {
        volume.commit()?;
    }
    if written > 0 {
        volume.channel().sync_all().map_err(VmError::Sync)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_round_trips_and_damage_is_caught() {
        let d = Descriptor {
            generations: (8, 9),
            epoch: 0xdead_beef_1234,
            sequence: 3,
            position: 17,
            entries: vec![(5, 0xabcd), (6, 0x1234_5678)],
        };
        let bytes = encode(77, &d, 4096);
        assert_eq!(bytes.len(), 4096);
        assert_eq!(decode(&bytes, 77), Some(d));
        assert_eq!(decode(&bytes, 78), None, "another volume's");
        let end = FIXED_BYTES + 2 * ENTRY_BYTES + CRC_BYTES;
        let backwards = Descriptor {
            generations: (10, 9),
            epoch: 1,
            sequence: 0,
            position: 0,
            entries: vec![(5, 0xabcd)],
        };
        assert_eq!(
            decode(&encode(77, &backwards, 4096), 77),
            None,
            "generations out of order"
        );
        for at in 0..end {
            let mut torn = bytes.clone();
            torn[at] ^= 0x04;
            assert_eq!(decode(&torn, 77), None, "a flipped bit at {at} went unseen");
        }
        assert_eq!(decode(&[0; 4096], 77), None);
    }

    #[test]
    fn a_full_batch_fits_an_empty_journal_and_one_more_page_does_not() {
        for (pages, page_size) in [(16u64, 4096usize), (2048, 4096), (300, 65536), (253, 4096)] {
            let journal = Journal::new(0, pages, page_size, 1, 1);
            let n = journal.max_batch();
            let e = entries_per_descriptor(page_size) as u64;
            assert!(n + n.div_ceil(e) <= pages, "{pages} pages, {page_size}");
            assert!(
                n + 1 + (n + 1).div_ceil(e) > pages,
                "{pages} pages, {page_size}"
            );
        }
    }

    #[test]
    fn only_pages_named_on_disk_and_not_yet_journaled_need_an_image() {
        let mut journal = Journal::new(0, 16, 4096, 1, 1);
        journal.committed(2, bitset(200, |p| p % 3 == 0));
        assert!(journal.needs_image(0) && journal.needs_image(129));
        assert!(!journal.needs_image(1) && !journal.needs_image(130));
        assert!(!journal.needs_image(201), "past the space");
        journal.journaled.insert(129);
        assert!(!journal.needs_image(129));
        journal.committed(3, bitset(200, |p| p == 129));
        assert!(journal.needs_image(129), "a new map starts a new chain");
        assert!(!journal.needs_image(0));
        journal.journaled.insert(129);
        journal.commit_failed(4, bitset(200, |p| p == 7));
        assert_eq!(journal.generations, (3, 4));
        assert!(
            journal.needs_image(129) && journal.needs_image(7),
            "either map's"
        );
        assert!(!journal.needs_image(0));
    }

    #[test]
    fn epochs_differ() {
        let epochs: std::collections::HashSet<u64> = (0..1000).map(|_| fresh_epoch()).collect();
        assert_eq!(epochs.len(), 1000);
    }
}
