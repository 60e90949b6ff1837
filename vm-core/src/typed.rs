//! Typed access to an interval: [`VmArray`], a fixed-length array of plain
//! old data (`T: bytemuck::Pod`) living in a fresh interval of the VM,
//! read and written element by element or slice by slice through the
//! copying API (so it works in every mode, paged or real-memory-only), and
//! freed when dropped. Every access is fallible: in a paged VM a read may
//! meet an I/O error, and that error is a value.
//!
//! `bytemuck` (well kept, no `unsafe` in our code for this) supplies the
//! `Pod` bound: any bit pattern is a valid `T`, so bytes read back from the
//! VM are always a valid value.

use crate::error::VmError;
use crate::space::AddressSpace;
use crate::vocabulary::VAddr;
use bytemuck::Pod;
use runtable::Interval;
use std::marker::PhantomData;

/// A fixed-length array of `T` in its own interval of an address space;
/// the interval is freed when the array is dropped.
pub struct VmArray<'a, T: Pod> {
    space: &'a AddressSpace,
    interval: Interval,
    base: u64,
    len: u64,
    _element: PhantomData<T>,
}

impl<'a, T: Pod> VmArray<'a, T> {
    /// An array of `len` zeroed elements in a fresh interval of `space`.
    pub fn new(space: &'a AddressSpace, len: u64) -> Result<VmArray<'a, T>, VmError> {
        let element = size_of::<T>() as u64;
        let bytes = len
            .checked_mul(element)
            .ok_or(VmError::CantAllocateVirtual { pages: u64::MAX })?;
        let pages = bytes.div_ceil(space.page_size() as u64).max(1);
        let interval = space.allocate(pages)?;
        Ok(VmArray {
            space,
            base: space.address_of(interval.page).0,
            interval,
            len,
            _element: PhantomData,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The interval the array lives in.
    pub fn interval(&self) -> Interval {
        self.interval
    }

    fn address(&self, start: u64, count: usize) -> Result<VAddr, VmError> {
        let end = start.checked_add(count as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(VmError::OutOfBounds {
                index: start,
                count: count as u64,
                len: self.len,
            });
        }
        Ok(VAddr(self.base + start * size_of::<T>() as u64))
    }

    /// Element `i`.
    pub fn get(&self, i: u64) -> Result<T, VmError> {
        let mut value = T::zeroed();
        self.space
            .read(self.address(i, 1)?, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// Sets element `i`.
    pub fn set(&self, i: u64, value: T) -> Result<(), VmError> {
        self.space
            .write(self.address(i, 1)?, bytemuck::bytes_of(&value))
    }

    /// Reads elements `[start, start + out.len())` in one call.
    pub fn read_slice(&self, start: u64, out: &mut [T]) -> Result<(), VmError> {
        let at = self.address(start, out.len())?;
        self.space.read(at, bytemuck::cast_slice_mut(out))
    }

    /// Writes `values` at `start` in one call.
    pub fn write_slice(&self, start: u64, values: &[T]) -> Result<(), VmError> {
        let at = self.address(start, values.len())?;
        self.space.write(at, bytemuck::cast_slice(values))
    }
}

impl<T: Pod> Drop for VmArray<'_, T> {
    fn drop(&mut self) {
        // The interval was allocated by this array and nothing else frees
        // it; a page still latched by a leaked guard makes `free` fail, and
        // then the interval stays allocated (leaked, never reused unsafely).
        let _ = self.space.free(self.interval);
    }
}
