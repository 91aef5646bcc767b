//! Read buffers kept for reuse across the process. A steady stream then
//! reads into warm memory instead of zero-filling and faulting in a fresh
//! buffer per read; a buffer goes back to the pool once every line cut from
//! it (a [`Bytes`] slice sharing it) is dropped.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// Free buffers kept: enough for the reads between two output
/// acknowledgements; more would only hold memory while idle.
const POOL_SIZE: usize = 16;
/// Smaller buffers come from the allocator's heap cheaply; bigger ones are
/// fresh mappings that fault in page by page, which is what the pool saves.
const MIN_POOLED: usize = 128 << 10;
/// Larger buffers (for lines longer than a read) are not kept.
const MAX_POOLED: usize = 1 << 20;

static POOL: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

/// A buffer of at least `size` bytes: sizes the pool keeps are rounded up to
/// a power of two, so that reads of slightly different sizes share buffers.
pub(crate) fn take(size: usize) -> Box<[u8]> {
    let Some(capacity) = pooled_capacity(size) else {
        return vec![0; size].into_boxed_slice();
    };
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    match pool.iter().rposition(|buf| buf.len() == capacity) {
        Some(i) => pool.remove(i),
        None => {
            drop(pool);
            vec![0; capacity].into_boxed_slice()
        }
    }
}

/// Keeps a buffer for a later read, in place of the least recently kept
/// one if the pool is full, so the pool follows the sizes in use.
pub(crate) fn recycle(buf: Box<[u8]>) {
    if pooled_capacity(buf.len()) != Some(buf.len()) {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if pool.len() >= POOL_SIZE {
        pool.remove(0);
    }
    pool.push(buf);
}

fn pooled_capacity(size: usize) -> Option<usize> {
    let capacity = size.checked_next_power_of_two()?;
    (MIN_POOLED..=MAX_POOLED)
        .contains(&capacity)
        .then_some(capacity)
}

/// The first `len` bytes of `buf`, shared by every slice cut from them; the
/// buffer is recycled when the last slice is dropped.
pub(crate) fn into_bytes(buf: Box<[u8]>, len: usize) -> Bytes {
    Bytes::from_owner(Filled { buf, len })
}

struct Filled {
    buf: Box<[u8]>,
    len: usize,
}

impl AsRef<[u8]> for Filled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Filled {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_buffer_is_reused_for_a_size_of_the_same_class() {
        // A class no other test reads with, as the pool is process-wide.
        let mut buf = take(2 * MIN_POOLED + 17);
        assert_eq!(buf.len(), 4 * MIN_POOLED);
        buf[0] = 42;
        let bytes = into_bytes(buf, 1);
        assert_eq!(&bytes[..], [42]);
        let ptr = bytes.as_ptr();
        drop(bytes);
        let again = take(4 * MIN_POOLED - 5);
        assert_eq!(again.as_ptr(), ptr);
        recycle(again);
    }

    #[test]
    fn small_and_big_buffers_are_exact_and_not_kept() {
        assert_eq!(take(100).len(), 100);
        assert_eq!(take(MAX_POOLED + 1).len(), MAX_POOLED + 1);
        recycle(vec![0; MAX_POOLED + 1].into_boxed_slice());
        recycle(vec![0; 100].into_boxed_slice());
        let pool = POOL.lock().unwrap();
        assert!(
            pool.iter()
                .all(|buf| buf.len() >= MIN_POOLED && buf.len() <= MAX_POOLED)
        );
    }
}
