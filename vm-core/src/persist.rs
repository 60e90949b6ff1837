//! The persistent address space: a volume that remembers its intervals.
//!
//! A VM made with [`Vm::create`] keeps, in its volume, a **space map**: for
//! every page of the address space, whether it is allocated, whether it
//! starts an interval, whether it has a copy on disk, whether it is
//! read-only, and its interval's advice. [`Vm::open`] reads the map back
//! and reattaches the address space as of the last completed
//! [`AddressSpace::flush`] or [`AddressSpace::sync`]: every interval
//! allocated then is allocated again **at the same addresses** — a
//! [`crate::VAddr`] stored in the VM still points where it did — with its
//! contents, protection and advice. In transparent mode
//! ([`VmConfig::transparent`](crate::VmConfig::transparent)) the region is
//! mapped where it was the last time the space was transparent
//! (`MAP_FIXED_NOREPLACE`), so machine pointers stored in the space hold
//! too; where that range is taken in the opening process, `open` in
//! transparent mode fails with [`VmError::TransparentUnavailable`] saying
//! so, and the space still opens without transparent mode. [`Vm::new`]
//! stays the Cedar VM: an anonymous space that forgets everything when it
//! is dropped.
//!
//! # Where the map lives
//!
//! In the volume's own virtual space: its top `2 × m` pages hold two map
//! slots of `m` pages each; just below them is the space's double-write
//! journal (`journal`: 1/64 of the volume, 16 to 2048 pages); the address
//! space is the pages below that ([`Vm::persistent_pages`] says how many).
//! The map and the journal go through the run table like any page, so they
//! are striped, remapped off bad spots and checked by the scavenger's rules
//! with the rest. The VM's region never covers them.
//!
//! ```text
//!  offset size  field (little-endian)
//!   0      8    magic "CEDARMAP"
//!   8      4    format version (2; 1 for a space made before the journal)
//!  12      4    length in bytes, CRC included: 64 + n + 4
//!  16     16    volume id
//!  32      8    generation (≥ 1)
//!  40      8    n: pages in the address space
//!  48      8    page size
//!  56      8    the region's machine address when the space was last
//!               in transparent mode (0: never; a map of the first
//!               version always has 0 here)
//!  64      n    one byte per page: bit 0 allocated, bit 1 starts an
//!               interval, bit 2 on disk, bit 3 read-only, bits 4-5 the
//!               interval's advice (0 normal, 1 sequential, 2 random)
//!  64+n    4    CRC-32C of bytes [0, 64 + n)
//! ```
//!
//! Generation `g` goes to slot `g mod 2`, so writing a map never
//! overwrites the newest complete one; `open` takes the newest slot whose
//! checksum and fields check out.
//!
//! # The durability contract
//!
//! - After [`AddressSpace::sync`]`(interval)` or [`AddressSpace::flush`]
//!   returns `Ok`, every write made before it to the pages it covers (all
//!   pages, for `flush`) survives a crash — the process killed, or the
//!   drives losing every write they had not synced — and so does the shape
//!   of the whole space (which intervals exist, their protection and
//!   advice) as of that moment.
//! - Writes after the last sync may survive or not, **page by page**: a
//!   page reads as it was at the last sync, or as it was written later —
//!   never torn, even where the drive tears a write in the middle of a
//!   page. Pages are written back in place; before a page the newest map
//!   names on disk is first rewritten in place, an image of what is about
//!   to be written goes to the journal and the drives are synced, and
//!   [`Vm::open`] writes every intact image of the newest map's chain back
//!   in place before anything reads the space (see `journal`). The map
//!   itself is never trusted torn: its checksum catches it and the previous
//!   map is used.
//! - A crash during `flush` or `sync` leaves either the previous synced
//!   shape of the space or the new one, never a mix: data pages are made
//!   durable (written, drives synced) before the map that names them is
//!   written, and the map is written to the slot not holding the newest
//!   one, then synced.
//!
//! This is file semantics: what a database's own commit protocol is built
//! on.
//!
//! # Costs and limits
//!
//! The map is one byte per page of the space (a 1 GiB space of 4 KiB pages:
//! 256 KiB); at every `flush` and `sync` it is built anew under the monitor
//! (a pass over the allocated pages) and only its pages that changed since
//! that slot was last written are written (its first and last always). Two
//! copies of it are kept in memory for that. Its length field limits a
//! persistent space to 2^32 - 68 pages.
//!
//! The journal costs, after each map commit, one extra page written per
//! page that was on disk and is rewritten, and one drive sync per
//! write-back batch holding such pages (an eviction batch, or a `clean`,
//! `sync` or `flush` cut to the journal's size); a full journal costs a
//! sync to start anew. [`crate::VmStats`] counts both
//! (`journal_images`, `journal_checkpoints`).
//!
//! Pages freed in a persistent space are not reused until the next map is
//! written: the map on disk still names them, and a crash before then
//! brings the freed interval back with its own contents.

use crate::config::VmConfig;
use crate::error::VmError;
use crate::journal::{self, Journal};
use crate::monitor::{Monitor, SpaceMapState};
use crate::space::{AddressSpace, Backing, Vm};
use crate::state::{ON_DISK, READ_ONLY};
use crate::vocabulary::Advice;
use runtable::{PageNumber, Volume};

/// The map's magic.
const MAGIC: &[u8; 8] = b"CEDARMAP";
/// The map's format version: 2 has the journal below the slots; maps of
/// version 1 (no journal) are still read, and such a space is written as
/// version 1 again.
const VERSION: u32 = 2;
/// Bytes before the per-page bytes.
const FIXED_BYTES: usize = 64;
/// Bytes of the checksum.
const CRC_BYTES: usize = 4;

const ALLOCATED: u8 = 1;
const STARTS: u8 = 2;
const STORED: u8 = 4;
const PROTECTED: u8 = 8;
const ADVICE_SHIFT: u32 = 4;

/// Where the map slots and the journal sit in a volume of `volume_pages`
/// virtual pages of `page_size` bytes (the map slots at the top, the
/// journal just below them): `(pages left for the address space, pages
/// per map slot, journal pages)`, or `None` if the volume is too small to
/// hold them and a page.
fn map_layout(volume_pages: u64, page_size: usize) -> Option<(u64, u64, u64)> {
    let slot_pages = slot_pages_for(volume_pages, page_size);
    let journal_pages = journal::journal_pages_for(volume_pages);
    let space = volume_pages.checked_sub(2 * slot_pages + journal_pages)?;
    // The length field is 32 bits.
    let fits = FIXED_BYTES as u64 + space + (CRC_BYTES as u64) <= u64::from(u32::MAX);
    (space > 0 && fits).then_some((space, slot_pages, journal_pages))
}

/// Pages per map slot on a volume of `volume_pages` pages: room for a byte
/// per page of the volume (more than the space has, so it always fits).
fn slot_pages_for(volume_pages: u64, page_size: usize) -> u64 {
    (FIXED_BYTES as u64 + volume_pages + CRC_BYTES as u64).div_ceil(page_size as u64)
}

fn advice_code(advice: Advice) -> u8 {
    match advice {
        Advice::Sequential => 1,
        Advice::Random => 2,
        _ => 0,
    }
}

fn advice_of(code: u8) -> Advice {
    match code {
        1 => Advice::Sequential,
        2 => Advice::Random,
        _ => Advice::Normal,
    }
}

/// The encoded map of generation `generation`.
fn encode(
    version: u32,
    volume_id: u128,
    generation: u64,
    page_size: usize,
    base: u64,
    pages: &[u8],
) -> Vec<u8> {
    let length = FIXED_BYTES + pages.len() + CRC_BYTES;
    let mut bytes = Vec::with_capacity(length);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&(length as u32).to_le_bytes());
    bytes.extend_from_slice(&volume_id.to_le_bytes());
    bytes.extend_from_slice(&generation.to_le_bytes());
    bytes.extend_from_slice(&(pages.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&(page_size as u64).to_le_bytes());
    bytes.extend_from_slice(&base.to_le_bytes());
    bytes.extend_from_slice(pages);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// A map slot as read.
enum Slot {
    /// All zeros: never written.
    Blank,
    /// Not a valid map: why.
    Bad(String),
    /// A valid map: its format version, its generation, the region's
    /// address in transparent mode (0: never), and its per-page bytes.
    Map {
        version: u32,
        generation: u64,
        base: u64,
        pages: Vec<u8>,
    },
}

/// Decodes a slot's bytes for a volume `volume_id` of `page_size`-byte pages.
fn decode(bytes: &[u8], volume_id: u128, page_size: usize) -> Slot {
    if bytes.iter().all(|&b| b == 0) {
        return Slot::Blank;
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    if bytes.len() < FIXED_BYTES + CRC_BYTES || &bytes[..8] != MAGIC {
        return Slot::Bad("no space map there (wrong magic)".into());
    }
    let version = u32_at(8);
    if !(1..=VERSION).contains(&version) {
        return Slot::Bad(format!(
            "space map version {version} is not one this code reads (1 to {VERSION})"
        ));
    }
    let length = u32_at(12) as usize;
    if !(FIXED_BYTES + CRC_BYTES..=bytes.len()).contains(&length) {
        return Slot::Bad(format!("its length {length} does not fit its slot"));
    }
    let stored = u32::from_le_bytes(
        bytes[length - CRC_BYTES..length]
            .try_into()
            .unwrap_or([0; 4]),
    );
    if crc32c::crc32c(&bytes[..length - CRC_BYTES]) != stored {
        return Slot::Bad("checksum mismatch (a torn or damaged map)".into());
    }
    let id = u128::from_le_bytes(bytes[16..32].try_into().unwrap_or([0; 16]));
    if id != volume_id {
        return Slot::Bad(format!("left over from another volume ({id:032x})"));
    }
    let generation = u64_at(32);
    let pages = u64_at(40) as usize;
    // A generation past the volume's own limit is a damaged field (with a
    // valid checksum): counting on from it would wrap.
    if generation == 0
        || generation > runtable::GENERATION_MAX
        || pages != length - FIXED_BYTES - CRC_BYTES
    {
        return Slot::Bad("its generation or page count is impossible".into());
    }
    if u64_at(48) != page_size as u64 {
        return Slot::Bad(format!(
            "written for pages of {} bytes, not {page_size}",
            u64_at(48)
        ));
    }
    Slot::Map {
        version,
        generation,
        base: u64_at(56),
        pages: bytes[FIXED_BYTES..FIXED_BYTES + pages].to_vec(),
    }
}

/// Reads map slot `slot` of `state` from `volume`.
fn read_slot(volume: &Volume, state: &SpaceMapState, slot: u64) -> Result<Vec<u8>, VmError> {
    let page_size = volume.page_size();
    let mut bytes = vec![0u8; state.slot_pages as usize * page_size];
    let start = state.first_page + slot * state.slot_pages;
    for (k, chunk) in bytes.chunks_mut(page_size).enumerate() {
        journal::read_page(volume, start + k as u64, chunk)?;
    }
    Ok(bytes)
}

/// Writes `bytes` (padded to whole pages) into map slot `slot`, skipping
/// the pages that hold the same bytes in `before` (what that slot was last
/// known to hold; empty if unknown): a map changes in a few pages from one
/// generation to the next — its first page (the generation) and last (the
/// checksum) always, the pages of the intervals touched since.
///
/// A page that cannot be written (a bad spot: a media error) moves to a
/// spare and is written there; `Ok(true)` says the run table changed and
/// must be committed before the map counts.
fn write_slot(
    volume: &mut Volume,
    state: &SpaceMapState,
    slot: u64,
    bytes: &[u8],
    before: &[u8],
) -> Result<bool, VmError> {
    let mut remapped = false;
    let page_size = volume.page_size();
    let start = state.first_page + slot * state.slot_pages;
    let mut page_bytes = vec![0u8; page_size];
    for k in 0..bytes.len().div_ceil(page_size) {
        let chunk = &bytes[k * page_size..((k + 1) * page_size).min(bytes.len())];
        page_bytes[..chunk.len()].copy_from_slice(chunk);
        page_bytes[chunk.len()..].fill(0);
        if before.get(k * page_size..(k + 1) * page_size) == Some(&page_bytes[..]) {
            continue;
        }
        let page = PageNumber(start + k as u64);
        remapped |= journal::write_or_remap(volume, page, &page_bytes)?;
    }
    Ok(remapped)
}

/// The newest valid map of a space whose map slots are laid out as
/// `state` on `volume`.
struct Newest {
    version: u32,
    generation: u64,
    /// The region's address when the space was last in transparent mode
    /// (0: never).
    base: u64,
    /// The slot it is in.
    slot: u64,
    /// Its per-page bytes.
    pages: Vec<u8>,
    /// What each slot holds (empty if unreadable), for the map writes to
    /// compare against.
    written: [Vec<u8>; 2],
}

/// Reads both map slots and takes the newest valid map; an unreadable slot
/// is a bad one (the other may hold the map). Without one, an error that
/// says what each slot holds.
fn read_newest(volume: &Volume, state: &SpaceMapState) -> Result<Newest, VmError> {
    let (id, page_size) = (volume.geometry().volume_id, volume.page_size());
    let mut newest: Option<(u32, u64, u64, u64, Vec<u8>)> = None;
    let mut why = Vec::new();
    let mut written: [Vec<u8>; 2] = Default::default();
    for slot in 0..2 {
        let (bytes, found) = match read_slot(volume, state, slot) {
            Ok(bytes) => {
                let found = decode(&bytes, id, page_size);
                (bytes, found)
            }
            Err(e) => (Vec::new(), Slot::Bad(format!("unreadable: {e}"))),
        };
        written[slot as usize] = bytes;
        match found {
            Slot::Map {
                version,
                generation,
                base,
                pages,
            } => {
                if newest.as_ref().is_none_or(|(_, g, ..)| generation > *g) {
                    newest = Some((version, generation, slot, base, pages));
                }
            }
            Slot::Blank => why.push(format!("map slot {slot}: never written")),
            Slot::Bad(reason) => why.push(format!("map slot {slot}: {reason}")),
        }
    }
    let Some((version, generation, slot, base, pages)) = newest else {
        return Err(VmError::Config {
            field: "volume",
            reason: format!(
                "it holds no persistent address space ({}); Vm::create makes one",
                why.join("; ")
            ),
        });
    };
    Ok(Newest {
        version,
        generation,
        base,
        slot,
        pages,
        written,
    })
}

/// Where the map slots of a space on `volume` are (they are the volume's
/// top pages, whatever the map's version), or why there are none; no
/// journal yet (`journal_pages` 0: the map's version decides).
fn slots_of(volume: &Volume) -> Result<SpaceMapState, VmError> {
    let slot_pages = slot_pages_for(volume.virtual_pages(), volume.page_size());
    let Some(first_page) = volume
        .virtual_pages()
        .checked_sub(2 * slot_pages)
        .filter(|&f| f > 0)
    else {
        return Err(VmError::Config {
            field: "volume",
            reason: "it is too small to hold a persistent space".into(),
        });
    };
    Ok(SpaceMapState {
        first_page,
        slot_pages,
        generation: 0,
        newest_slot: None,
        base: 0,
        version: VERSION,
        journal_pages: 0,
    })
}

/// The layout of a new persistent space on `volume` (map slots and
/// journal), or why there is none: `(the state, pages the space can
/// have)`.
fn layout_of(volume: &Volume) -> Result<(SpaceMapState, u64), VmError> {
    let Some((space, slot_pages, journal_pages)) =
        map_layout(volume.virtual_pages(), volume.page_size())
    else {
        return Err(VmError::Config {
            field: "virtual_pages",
            reason: format!(
                "a volume of {} pages is too small for a persistent space, its map and journal",
                volume.virtual_pages()
            ),
        });
    };
    let state = SpaceMapState {
        first_page: space + journal_pages,
        slot_pages,
        journal_pages,
        ..slots_of(volume)?
    };
    Ok((state, space))
}

/// The layout for a new persistent space of `config` on `volume`, or why
/// there is none.
fn layout_for(volume: &Volume, config: &VmConfig) -> Result<SpaceMapState, VmError> {
    let (state, space) = layout_of(volume)?;
    if config.virtual_pages > space {
        return Err(VmError::Config {
            field: "virtual_pages",
            reason: format!(
                "{} is more than a persistent space on this volume can have ({space}: its \
                 top {} pages hold the space map and its journal)",
                config.virtual_pages,
                2 * state.slot_pages + state.journal_pages
            ),
        });
    }
    Ok(state)
}

impl SpaceMapState {
    /// The volume's virtual page where the journal starts.
    fn journal_first(&self) -> u64 {
        self.first_page - self.journal_pages
    }

    /// An empty journal for this layout (none for a map of version 1).
    fn journal(&self, volume: &Volume) -> Option<Journal> {
        (self.journal_pages > 0).then(|| {
            Journal::new(
                self.journal_first(),
                self.journal_pages,
                volume.page_size(),
                volume.geometry().volume_id,
                self.generation,
            )
        })
    }
}

impl Vm {
    /// Pages a new persistent space on `volume` can have at most: the
    /// volume's virtual pages less the two map slots at their top and the
    /// journal below them (see the module doc). `None` if the volume is too
    /// small for one. (A space made before the journal may have more: open
    /// it with the size [`AddressSpace::virtual_pages`] of the VM that made
    /// it, or with [`Vm::open_files`], which reads it from the map.)
    pub fn persistent_pages(volume: &Volume) -> Option<u64> {
        map_layout(volume.virtual_pages(), volume.page_size()).map(|(space, ..)| space)
    }

    /// A new **persistent** address space of `config` on `volume`: empty,
    /// and remembered — its empty map is written before this returns, so
    /// [`Vm::open`] finds it even if nothing else ever is. Whatever space
    /// the volume held before is forgotten. `config.virtual_pages` must be
    /// at most [`Vm::persistent_pages`].
    pub fn create(volume: Volume, config: VmConfig) -> Result<Vm, VmError> {
        let mut state = layout_for(&volume, &config)?;
        // Past any map an earlier space left: the newest generation wins at
        // open, so the new map must be newer than the old ones. And past
        // any chain it left in the journal, so that the chain is never
        // replayed into this space (nothing is written before the first
        // map: a create that fails leaves the old space as it was).
        if let Ok(old) = read_newest(&volume, &state) {
            state.generation = old.generation;
        }
        if let Some(chain) = journal::chain_generation(&volume, state.journal_first()) {
            state.generation = state.generation.max(chain);
        }
        let journal = state.journal(&volume);
        let vm = Vm::new(config, Backing::Volume(volume))?;
        {
            let mut monitor = vm.lock_monitor();
            monitor.map = Some(state);
            monitor.journal = journal;
            // Both slots: no older map can come back.
            let written = vm
                .commit_map(&mut monitor)
                .and_then(|()| vm.commit_map(&mut monitor));
            if let Err(e) = written {
                // Not a persistent space after all: dropping the VM must
                // not commit one.
                monitor.map = None;
                return Err(e);
            }
        }
        Ok(vm)
    }

    /// The size, in pages, of the persistent space on `volume` (as
    /// created), read from its newest map: the `virtual_pages` that
    /// [`Vm::open`] needs. Fails as `open` does where the volume holds no
    /// persistent space.
    pub fn space_pages(volume: &Volume) -> Result<u64, VmError> {
        let state = slots_of(volume)?;
        Ok(read_newest(volume, &state)?.pages.len() as u64)
    }

    /// Reopens the persistent address space on `volume` as of its last
    /// completed `flush` or `sync`: every interval allocated then, at the
    /// same addresses, with its contents, protection and advice.
    /// `config.virtual_pages` must be the space's size (as created;
    /// [`Vm::space_pages`] reads it from the volume); the rest of `config`
    /// (budget, fault service) may differ from the run that wrote it.
    pub fn open(mut volume: Volume, config: VmConfig) -> Result<Vm, VmError> {
        let mut state = slots_of(&volume)?;
        let Newest {
            version,
            generation,
            base,
            slot,
            pages,
            written,
        } = read_newest(&volume, &state)?;
        if version == 1 {
            // Made before the journal: the space may reach up to the slots.
            state.version = 1;
        } else {
            state.journal_pages = journal::journal_pages_for(volume.virtual_pages());
            let space = state.first_page.saturating_sub(state.journal_pages);
            if pages.len() as u64 > space {
                return Err(VmError::Config {
                    field: "volume",
                    reason: format!(
                        "its space map names {} pages, more than the {space} below its \
                         journal (a damaged map)",
                        pages.len()
                    ),
                });
            }
        }
        if pages.len() as u64 != config.virtual_pages {
            return Err(VmError::Config {
                field: "virtual_pages",
                reason: format!(
                    "{} differs from the persistent space's {} pages",
                    config.virtual_pages,
                    pages.len()
                ),
            });
        }
        state.generation = generation;
        state.newest_slot = Some(slot);
        state.base = base;
        let on_disk = |page: u64| {
            pages
                .get(page as usize)
                .is_some_and(|&b| b & (ALLOCATED | STORED) == ALLOCATED | STORED)
        };
        // Torn rewrites of synced pages made whole, before anything reads.
        if state.journal_pages > 0 {
            journal::replay(
                &mut volume,
                state.journal_first(),
                state.journal_pages,
                generation,
                on_disk,
            )?;
        }
        let mut journal = state.journal(&volume);
        if let Some(journal) = journal.as_mut() {
            journal.committed(generation, journal::bitset(pages.len() as u64, on_disk));
        }
        // In transparent mode, where the space was (pointers stored in it
        // point there), or nowhere.
        let at = (config.transparent && base != 0).then_some(base as usize);
        let vm = Vm::new_at(config, Backing::Volume(volume), at).map_err(|e| match e {
            VmError::Map { source, .. } if at.is_some() => VmError::TransparentUnavailable {
                reason: format!(
                    "the space was mapped at {base:#x}, and that range cannot be mapped in \
                     this process ({source}): pointers stored in the space would not hold. \
                     Open it without transparent mode (VAddrs and the copying API work), or in \
                     a process where the range is free"
                ),
            },
            e => e,
        })?;
        {
            let mut monitor = vm.lock_monitor();
            let states = vm.states();
            let mut intervals = Vec::new();
            let mut page = 0usize;
            while page < pages.len() {
                let byte = pages[page];
                if byte & ALLOCATED == 0 {
                    page += 1;
                    continue;
                }
                // An interval: this page and the allocated pages after it
                // that do not start one.
                let start = page;
                page += 1;
                while page < pages.len()
                    && pages[page] & ALLOCATED != 0
                    && pages[page] & STARTS == 0
                {
                    page += 1;
                }
                let advice = advice_of((byte >> ADVICE_SHIFT) & 3);
                intervals.push((start as u64, (page - start) as u64, advice));
            }
            for (p, &byte) in pages.iter().enumerate() {
                let mut flags = 0;
                if byte & ALLOCATED != 0 && byte & STORED != 0 {
                    flags |= ON_DISK;
                }
                if byte & ALLOCATED != 0 && byte & PROTECTED != 0 {
                    flags |= READ_ONLY;
                }
                if flags != 0 {
                    states.set_flags(p as u64, flags);
                }
            }
            monitor.restore_allocations(&intervals);
            monitor.map = Some(state);
            monitor.map_written = written;
            monitor.journal = journal;
        }
        Ok(vm)
    }
}

/// A persistent space on drive files, for [`Vm::create_files`] and
/// [`Vm::open_files`]: the one call that picks the drive sizes, formats and
/// makes the space (or reopens it), with the page size said once.
#[derive(Clone, Debug)]
pub struct SpaceFiles {
    /// The drive files, in order (several: the space is striped across
    /// them, 64 pages a stripe).
    pub paths: Vec<std::path::PathBuf>,
    /// Bytes per page (a power of two from 4 KiB).
    pub page_size: usize,
    /// The real-memory budget in bytes.
    pub real_memory_bytes: u64,
    /// How the drives use the kernel's page cache (default: direct I/O,
    /// or drop-behind where the file system refuses it).
    pub cache: disk_channel::CachePolicy,
}

impl SpaceFiles {
    /// One drive file at `path`, 4 KiB pages, 64 MiB of real memory.
    pub fn new(path: impl Into<std::path::PathBuf>) -> SpaceFiles {
        SpaceFiles {
            paths: vec![path.into()],
            page_size: 4096,
            real_memory_bytes: 64 << 20,
            cache: disk_channel::CachePolicy::default(),
        }
    }

    fn drive_options(&self, pages: Option<u64>) -> disk_channel::FileDriveOptions {
        let mut options = match pages {
            Some(pages) => disk_channel::FileDriveOptions::create(self.page_size, pages),
            None => disk_channel::FileDriveOptions::open(self.page_size),
        };
        options.cache = self.cache;
        options
    }

    fn config(&self, space_pages: u64) -> VmConfig {
        VmConfig {
            page_size: self.page_size,
            ..VmConfig::new(
                space_pages,
                (self.real_memory_bytes / self.page_size as u64).max(1),
            )
        }
    }

    fn format_options(&self, volume_pages: u64) -> runtable::FormatOptions {
        let mut options = runtable::FormatOptions::new(self.page_size, volume_pages);
        if self.paths.len() > 1 {
            options.layout = runtable::Layout::Stripe { unit: 64 };
        }
        options
    }
}

impl Vm {
    /// Makes drive files for a persistent space of `space_bytes` (rounded
    /// up to pages) — sized for it, its map, the volume's labels, headers
    /// and spares — and the space on them, empty. Refuses a path that
    /// already holds data (reopen it with [`Vm::open_files`]; remove it to
    /// start anew).
    pub fn create_files(files: &SpaceFiles, space_bytes: u64) -> Result<Vm, VmError> {
        let page = files.page_size as u64;
        if files.paths.is_empty() || space_bytes == 0 {
            return Err(VmError::Config {
                field: "paths",
                reason: "a space needs at least one drive file and one page".into(),
            });
        }
        for path in &files.paths {
            if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
                return Err(VmError::Config {
                    field: "paths",
                    reason: format!(
                        "{} already holds data: Vm::open_files reopens a space; remove the \
                         file to make a new one",
                        path.display()
                    ),
                });
            }
        }
        let space = space_bytes.div_ceil(page);
        // The volume: the space, its journal and its two map slots.
        let mut volume_pages = space;
        let mut tries = 0;
        while map_layout(volume_pages, files.page_size).is_none_or(|(s, ..)| s < space) {
            volume_pages = space
                + 2 * slot_pages_for(volume_pages, files.page_size)
                + journal::journal_pages_for(volume_pages);
            tries += 1;
            if tries > 8 {
                return Err(VmError::Config {
                    field: "space_bytes",
                    reason: format!(
                        "{space} pages is more than a persistent space can have (its map \
                         holds at most 2^32 - 68 pages)"
                    ),
                });
            }
        }
        // The drives: the smallest size whose data pages hold the volume,
        // all drives alike.
        let options = files.format_options(volume_pages);
        let drive_pages = runtable::Volume::drive_pages_for(&options, files.paths.len())?;
        let mut drive_list: Vec<Box<dyn disk_channel::Drive>> = Vec::new();
        for path in &files.paths {
            let drive =
                disk_channel::FileDrive::open(path, &files.drive_options(Some(drive_pages)))
                    .map_err(runtable::VolumeError::from)?;
            drive_list.push(Box::new(drive));
        }
        let channel =
            disk_channel::DiskChannel::new(drive_list).map_err(runtable::VolumeError::from)?;
        let volume = runtable::Volume::format(channel, &options)?;
        let config = files.config(space);
        Vm::create(volume, config)
    }

    /// Reopens the persistent space on `files` (made by
    /// [`Vm::create_files`], or by [`Vm::create`] on a volume of those
    /// drives), as of its last completed `flush` or `sync`.
    pub fn open_files(files: &SpaceFiles) -> Result<Vm, VmError> {
        let mut drive_list: Vec<Box<dyn disk_channel::Drive>> = Vec::new();
        for path in &files.paths {
            let drive = disk_channel::FileDrive::open(path, &files.drive_options(None))
                .map_err(runtable::VolumeError::from)?;
            drive_list.push(Box::new(drive));
        }
        let channel =
            disk_channel::DiskChannel::new(drive_list).map_err(runtable::VolumeError::from)?;
        let volume = runtable::Volume::open(channel).map_err(|e| match e {
            // Said in the caller's terms: the field to change (an embedder's
            // trial read "the drives use 8192" as a fault of the drives).
            runtable::VolumeError::PageSizeMismatch { volume, drives } => VmError::Config {
                field: "page_size",
                reason: format!(
                    "SpaceFiles::page_size is {drives}, but the space on these files was made \
                     with pages of {volume} bytes"
                ),
            },
            e => e.into(),
        })?;
        let pages = Vm::space_pages(&volume)?;
        Vm::open(volume, files.config(pages))
    }
}

impl AddressSpace {
    /// Monitor held on entry and exit; the drives synced just before (every
    /// page the map says is on disk is durable).
    ///
    /// Writes the next generation of the space map, into the slot not
    /// holding the newest one, and syncs. A no-op for an anonymous space.
    pub(crate) fn commit_map(&self, monitor: &mut Monitor) -> Result<(), VmError> {
        let Some(state) = monitor.map else {
            return Ok(());
        };
        let states = self.states();
        let mut pages = vec![0u8; self.virtual_pages as usize];
        for (&start, allocation) in &monitor.allocations {
            let advice = advice_code(allocation.advice) << ADVICE_SHIFT;
            for page in start..start + allocation.count {
                let word = states.load(page);
                let mut byte = ALLOCATED | advice;
                if page == start {
                    byte |= STARTS;
                }
                if word.has(ON_DISK) {
                    byte |= STORED;
                }
                if word.has(READ_ONLY) {
                    byte |= PROTECTED;
                }
                pages[page as usize] = byte;
            }
        }
        let generation = state.generation + 1;
        let volume_id = monitor
            .volume
            .as_ref()
            .map_or(0, |volume| volume.geometry().volume_id);
        // Where the region is now, in transparent mode; else where it was.
        let base = if self.region.is_transparent() {
            self.region.base() as u64
        } else {
            state.base
        };
        let mut bytes = encode(
            state.version,
            volume_id,
            generation,
            self.page_size,
            base,
            &pages,
        );
        bytes.resize(bytes.len().next_multiple_of(self.page_size), 0);
        // The slot not holding the newest map, wherever that was found.
        let slot = state
            .newest_slot
            .map_or(generation % 2, |newest| 1 - newest) as usize;
        // Forget what the slot holds until the write is known complete: a
        // failed write leaves it unknown (and written whole next time).
        let before = std::mem::take(&mut monitor.map_written[slot]);
        let volume = monitor
            .volume
            .as_mut()
            .expect("a persistent space has a volume");
        let written =
            write_slot(volume, &state, slot as u64, &bytes, &before).and_then(|remapped| {
                if remapped {
                    // The map's pages moved off a bad spot: the run table that
                    // says where they are is committed (and synced) first.
                    volume.commit()?;
                }
                volume.channel().sync_all().map_err(VmError::Sync)
            });
        let stored = |p: u64| pages[p as usize] & STORED != 0;
        if let Err(e) = written {
            // This map may be on the medium or not: the journal's chain
            // serves both it and the newest before it, and the next map is
            // one generation further (the chain is never replayed over it).
            // Its slot stays the one to write next.
            if let Some(map) = monitor.map.as_mut() {
                map.generation = generation;
            }
            if let Some(journal) = monitor.journal.as_mut() {
                journal.commit_failed(generation, journal::bitset(pages.len() as u64, stored));
            }
            return Err(e);
        }
        monitor.map_written[slot] = bytes;
        if let Some(map) = monitor.map.as_mut() {
            map.generation = generation;
            map.newest_slot = Some(slot as u64);
        }
        // A new chain: this map names what is on disk now.
        if let Some(journal) = monitor.journal.as_mut() {
            journal.committed(generation, journal::bitset(pages.len() as u64, stored));
        }
        // The pages freed before this map are free at last.
        monitor.release_freed();
        Ok(())
    }

    /// Whether this address space is persistent (made by [`Vm::create`] or
    /// [`Vm::open`]).
    pub fn is_persistent(&self) -> bool {
        self.monitor.lock().map.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_round_trips_and_damage_is_caught() {
        let pages = vec![
            ALLOCATED | STARTS,
            ALLOCATED | STORED,
            0,
            ALLOCATED | STARTS | PROTECTED,
        ];
        let bytes = encode(VERSION, 7, 3, 4096, 0x7f00_1234_5000, &pages);
        match decode(&bytes, 7, 4096) {
            Slot::Map {
                version: VERSION,
                generation,
                base,
                pages: back,
            } => {
                assert_eq!((generation, base), (3, 0x7f00_1234_5000));
                assert_eq!(back, pages);
            }
            _ => panic!("did not decode"),
        }
        for at in 0..bytes.len() {
            let mut torn = bytes.clone();
            torn[at] ^= 0x10;
            assert!(
                !matches!(decode(&torn, 7, 4096), Slot::Map { .. }),
                "a flipped bit at {at} went unseen"
            );
        }
        assert!(matches!(decode(&bytes, 8, 4096), Slot::Bad(_)));
        assert!(matches!(decode(&bytes, 7, 8192), Slot::Bad(_)));
        assert!(matches!(decode(&[0; 100], 7, 4096), Slot::Blank));
    }

    /// A space made before the journal: its map of version 1, its space
    /// reaching up to the map slots (over where the journal now goes). It
    /// opens, keeps the pages there, and is written as version 1 again.
    #[test]
    fn a_space_of_map_version_1_still_opens_and_stays_version_1() {
        use disk_channel::{DiskChannel, Drive, SimDrive};
        const PAGE: usize = 4096;
        let drive = SimDrive::preset("ssd", PAGE)
            .unwrap()
            .with_page_count(600)
            .unwrap();
        let media = drive.share_media();
        let channel = DiskChannel::new(vec![Box::new(drive) as Box<dyn Drive>]).unwrap();
        let mut volume = Volume::format(channel, &runtable::FormatOptions::new(PAGE, 512)).unwrap();
        let (space, slot_pages, journal_pages) = map_layout(512, PAGE).unwrap();
        let n = space + journal_pages;
        // An interval of the top two pages, the last on disk holding "old".
        let mut page = vec![0u8; PAGE];
        page[..3].copy_from_slice(b"old");
        let disk = volume.translate(PageNumber(n - 1)).unwrap();
        volume
            .channel()
            .write(disk.drive, disk.page, &page, None)
            .unwrap();
        let mut pages = vec![0u8; n as usize];
        pages[n as usize - 2] = ALLOCATED | STARTS | STORED;
        pages[n as usize - 1] = ALLOCATED | STORED;
        let id = volume.geometry().volume_id;
        let mut bytes = encode(1, id, 5, PAGE, 0, &pages);
        bytes.resize(bytes.len().next_multiple_of(PAGE), 0);
        let state = SpaceMapState {
            first_page: n,
            slot_pages,
            generation: 5,
            newest_slot: None,
            base: 0,
            version: 1,
            journal_pages: 0,
        };
        write_slot(&mut volume, &state, 1, &bytes, &[]).unwrap();
        let reopen = || {
            let channel =
                DiskChannel::new(vec![Box::new(media.share_media()) as Box<dyn Drive>]).unwrap();
            Volume::open(channel).unwrap()
        };

        let vm = Vm::open(volume, VmConfig::new(n, 6)).unwrap();
        let top = vm.address_of(PageNumber(n - 1));
        let mut back = [0u8; 3];
        vm.read(top, &mut back).unwrap();
        assert_eq!(&back, b"old");
        vm.write(top, b"new").unwrap();
        vm.close().unwrap();
        let vm = Vm::open(reopen(), VmConfig::new(n, 6)).unwrap();
        vm.read(top, &mut back).unwrap();
        assert_eq!(&back, b"new");
        assert_eq!(
            vm.stats().journal_images,
            0,
            "no journal in a version-1 space"
        );
        drop(vm);
        let volume = reopen();
        let newest = read_newest(&volume, &state).unwrap();
        // Written twice since (the close, and the drop's flush).
        assert_eq!((newest.version, newest.generation), (1, 7));
    }

    #[test]
    fn the_map_fits_its_slots_below_the_top_of_the_volume() {
        for (volume_pages, page_size) in [(100u64, 4096usize), (1 << 20, 4096), (5000, 65536)] {
            let (space, slot, journal) = map_layout(volume_pages, page_size).unwrap();
            assert_eq!(space + 2 * slot + journal, volume_pages);
            assert!(journal >= 16);
            assert!(slot * page_size as u64 >= FIXED_BYTES as u64 + space + CRC_BYTES as u64);
        }
        assert!(map_layout(1, 4096).is_none());
    }
}
