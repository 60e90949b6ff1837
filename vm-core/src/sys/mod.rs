//! The machine-dependent part of vm-core: every call to `mmap`, `madvise`,
//! `process_madvise`, `mincore` and the futex system calls lives below
//! this module, and so does nearly all of the crate's `unsafe` (in the
//! spirit of Mach's and 4.4BSD's `pmap`). The rest of the crate is
//! machine-independent.
//!
//! | file | owns |
//! |---|---|
//! | `frame_pool` | copying mode: committed pages that runs are read into and evicted to, moved with `UFFDIO_MOVE` |
//! | `mapping` | an anonymous, lazily committed mapping, without transparent huge pages |
//! | `region` | the reserved address range that holds resident pages; the page-state array |
//! | `shared_mapping` | shared mappings for the `shm` segments |
//! | `uffd` | `userfaultfd` on rustix: open, register, copy, write-protect |
//! | `sigbus` | the SIGBUS handler of transparent mode: the faulting thread serves its own fault |
//! | [`uffd_probe`] | the raw `userfaultfd` alternatives, measured without the VM |
//! | `staging` | each thread's page-aligned staging buffer for installs |
//! | [`futex`] | shared futex wait/wake, the process id, liveness of a process |

pub(crate) mod frame_pool;
pub mod futex;
pub(crate) mod mapping;
pub(crate) mod park;
pub(crate) mod region;
pub(crate) mod shared_mapping;
pub(crate) mod sigbus;
pub(crate) mod staging;
pub(crate) mod uffd;
pub mod uffd_probe;

/// Set in a process's environment, makes transparent mode fail as if the
/// kernel refused `userfaultfd` (to see and test that error).
pub use uffd::REFUSE_ENV as REFUSE_USERFAULTFD_ENV;
