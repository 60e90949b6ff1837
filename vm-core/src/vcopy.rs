//! Virtual copy (Mach's `vm_copy`; [`AddressSpace::copy`](crate::AddressSpace::copy)):
//! the table of destination pages that still read their source's contents
//! where the source kept them.
//!
//! A copy writes the source's changed pages back first, so that every
//! source page's contents are at a *place*: its slot in the volume, a
//! mapped file's page, or nowhere (zeros). Each destination page then
//! **links** to that place and stays absent; nothing is copied. Two events
//! end a link:
//!
//! - **The destination page, changed, is written back**: its own slot
//!   holds it from then on. (Faulted, it is read from the place into its
//!   frame, under the monitor, like a page-in from another address, and
//!   stays linked while unchanged: evicted clean, it is dropped and read
//!   from the place again — so reading a copy copies nothing. A whole-page
//!   overwrite reads nothing.)
//! - **The place is about to be overwritten** — the source page written
//!   back to its slot (eviction, `clean`, `flush`), or a shared file's page
//!   written back: whoever owns that slot now. Every destination still
//!   linked to it is *materialized* first: the place's bytes are copied to
//!   the destination's own slot (disk to disk, no frame), which then holds
//!   its copy; the link goes.
//!
//! So a write to either side is invisible to the other, and pages neither
//! side writes are never copied — only read when the destination is. (A
//! destination page's link also goes when it is killed, freed, or
//! materialized; `DontNeed` keeps it.) A file page's place is the file's
//! (device, inode and page), so a write-back through another mapping of
//! the same file in this VM materializes too; a change made to the file
//! outside the VM is not seen (file mappings are not coherent with other
//! writers). A materialization that fails (a read or a write of the
//! drive) leaves its destination linked, and the write-back that needed it
//! fails: nothing is lost, and the write-back is tried again later. A
//! source page's write lands in memory; its place changes only at its
//! write-back, which is the one moment the table must act. Freeing or
//! killing the source changes no place, so they need nothing; freeing or
//! killing a destination page drops its link.
//! A copy of a destination page still linked links to the same place.

use crate::page_map::PageMap;
use std::collections::HashMap;
use std::sync::Arc;

use crate::mapped::MappedFile;

/// Where a page's contents are, for a link.
#[derive(Clone, Debug)]
pub(crate) enum Place {
    /// The volume's slot of this space page.
    Slot(u64),
    /// A mapped file's page.
    File(Arc<MappedFile>, u64),
}

/// A place, as a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Slot(u64),
    /// (device, inode, file page): one file however many times mapped.
    File(u64, u64, u64),
}

impl Place {
    fn key(&self) -> Key {
        match self {
            Place::Slot(page) => Key::Slot(*page),
            Place::File(file, at) => Key::File(file.identity.0, file.identity.1, *at),
        }
    }
}

/// The links of a space (m).
#[derive(Debug, Default)]
pub(crate) struct Links {
    /// Destination page → the place it reads.
    of: PageMap<Place>,
    /// Place → the destination pages linked to it.
    to: HashMap<Key, Vec<u64>>,
    /// Links made, and destinations materialized (for the stats).
    pub(crate) made: u64,
    pub(crate) materialized: u64,
}

impl Links {
    /// Whether there are no links (the common case: every hook returns at
    /// once).
    pub(crate) fn is_empty(&self) -> bool {
        self.of.is_empty()
    }

    /// How many destinations are linked.
    pub(crate) fn len(&self) -> usize {
        self.of.len()
    }

    /// Links destination page `dest` to `place` (replacing any link it
    /// had).
    pub(crate) fn link(&mut self, dest: u64, place: Place) {
        self.unlink(dest);
        self.to.entry(place.key()).or_default().push(dest);
        self.of.insert(dest, place);
        self.made += 1;
    }

    /// The place `page` reads, if it is a linked destination.
    pub(crate) fn place_of(&self, page: u64) -> Option<&Place> {
        self.of.get(&page)
    }

    /// Drops `dest`'s link, if any.
    pub(crate) fn unlink(&mut self, dest: u64) {
        if let Some(place) = self.of.remove(&dest) {
            let key = place.key();
            if let Some(dests) = self.to.get_mut(&key) {
                dests.retain(|&d| d != dest);
                if dests.is_empty() {
                    self.to.remove(&key);
                }
            }
        }
    }

    /// Drops the links of the destinations in `[start, end)`.
    pub(crate) fn unlink_range(&mut self, start: u64, end: u64) {
        if self.of.is_empty() {
            return;
        }
        if end - start <= self.of.len() as u64 {
            for page in start..end {
                self.unlink(page);
            }
        } else {
            let inside: Vec<u64> = self
                .of
                .keys()
                .copied()
                .filter(|p| (start..end).contains(p))
                .collect();
            for page in inside {
                self.unlink(page);
            }
        }
    }

    /// The destinations linked to the slot of space page `page` (to be
    /// materialized before it is overwritten).
    pub(crate) fn linked_to_slot(&self, page: u64) -> Vec<u64> {
        self.to.get(&Key::Slot(page)).cloned().unwrap_or_default()
    }

    /// The destinations linked to page `at` of `file`.
    pub(crate) fn linked_to_file(&self, file: &Arc<MappedFile>, at: u64) -> Vec<u64> {
        self.to
            .get(&Key::File(file.identity.0, file.identity.1, at))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_their_reverse_index_agree() {
        let mut links = Links::default();
        links.link(10, Place::Slot(1));
        links.link(11, Place::Slot(1));
        links.link(12, Place::Slot(2));
        assert_eq!(links.linked_to_slot(1), vec![10, 11]);
        links.link(11, Place::Slot(2));
        assert_eq!(links.linked_to_slot(1), vec![10]);
        assert_eq!(links.linked_to_slot(2), vec![12, 11]);
        links.unlink_range(0, 11);
        assert!(links.linked_to_slot(1).is_empty());
        assert!(links.place_of(10).is_none());
        links.unlink_range(11, 13);
        assert!(links.is_empty() && links.to.is_empty());
    }
}
