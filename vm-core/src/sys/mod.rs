//! The machine-dependent part of vm-core: every call to `mmap`, `madvise`,
//! `process_madvise`, `mincore` and the futex system calls lives below
//! this module, and so does nearly all of the crate's `unsafe` (in the
//! spirit of Mach's and 4.4BSD's `pmap`). The rest of the crate is
//! machine-independent.
//!
//! | file | owns |
//! |---|---|
//! | `region` | the reserved address range that holds resident pages; the page-state array |
//! | `shared_mapping` | shared mappings for the `shm` segments |
//! | [`futex`] | shared futex wait/wake, the process id, liveness of a process |

pub mod futex;
pub(crate) mod park;
pub(crate) mod region;
pub(crate) mod shared_mapping;
