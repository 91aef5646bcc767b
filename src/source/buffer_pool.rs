//! Read buffers kept for reuse across the process. A steady stream then
//! reads into warm memory instead of zero-filling and faulting in a fresh
//! buffer per read; a buffer goes back to the pool once every line cut from
//! it (a [`Bytes`] slice sharing it) is dropped.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// Free buffers kept: enough for the reads between two output
/// acknowledgements; more would only hold memory while idle.
const POOL_SIZE: usize = 16;
/// Larger buffers (for lines longer than a read) are not kept.
const MAX_POOLED: usize = 1 << 20;

static POOL: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

/// A buffer of exactly `size` bytes: a pooled one if there is one, else new.
pub(super) fn take(size: usize) -> Box<[u8]> {
    if size <= MAX_POOLED {
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = pool.iter().position(|buf| buf.len() == size) {
            return pool.swap_remove(i);
        }
    }
    vec![0; size].into_boxed_slice()
}

/// Keeps a buffer for a later read, unless it is too big or the pool is full.
pub(super) fn recycle(buf: Box<[u8]>) {
    if !buf.is_empty() && buf.len() <= MAX_POOLED {
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < POOL_SIZE {
            pool.push(buf);
        }
    }
}

/// The first `len` bytes of `buf`, shared by every slice cut from them; the
/// buffer is recycled when the last slice is dropped.
pub(super) fn into_bytes(buf: Box<[u8]>, len: usize) -> Bytes {
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
    fn a_dropped_buffer_is_reused_for_the_same_size() {
        let mut buf = take(4096 + 17);
        buf[0] = 42;
        let bytes = into_bytes(buf, 1);
        assert_eq!(&bytes[..], [42]);
        let ptr = bytes.as_ptr();
        drop(bytes);
        let again = take(4096 + 17);
        assert_eq!(again.as_ptr(), ptr);
        recycle(again);
    }

    #[test]
    fn big_buffers_are_not_kept() {
        let big = take(MAX_POOLED + 1);
        recycle(big);
        let pool = POOL.lock().unwrap();
        assert!(pool.iter().all(|buf| buf.len() <= MAX_POOLED));
    }
}
