//! Reusable frame buffers: a frame-sized allocation costs page faults on
//! every frame (about 900 of them for 720p RGBA), so sources take buffers from
//! a pool and the last frame holding one gives it back.
//!
//! The pool keeps at most `capacity` idle buffers (drop policy: a buffer
//! returned to a full pool is freed); it never blocks.

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::frame::FrameBytes;

/// A bounded set of idle byte buffers of one size.
#[derive(Debug, Clone)]
pub struct BufferPool {
    idle_tx: Sender<Vec<u8>>,
    idle_rx: Receiver<Vec<u8>>,
}

impl BufferPool {
    /// A pool that keeps up to `capacity` idle buffers.
    pub fn new(capacity: usize) -> Self {
        let (idle_tx, idle_rx) = bounded(capacity.max(1));
        Self { idle_tx, idle_rx }
    }

    /// A buffer of exactly `len` bytes (contents unspecified: reused buffers
    /// hold an older frame), reused when one of that size is idle.
    pub fn take(&self, len: usize) -> PooledBuffer {
        let data = match self.idle_rx.try_recv() {
            Ok(buffer) if buffer.len() == len => buffer,
            _ => vec![0u8; len],
        };
        PooledBuffer { data, home: Some(self.idle_tx.clone()) }
    }

    /// Number of idle buffers.
    pub fn idle(&self) -> usize {
        self.idle_rx.len()
    }
}

/// A buffer that goes back to its pool when dropped.
#[derive(Debug)]
pub struct PooledBuffer {
    data: Vec<u8>,
    home: Option<Sender<Vec<u8>>>,
}

impl PooledBuffer {
    /// Writable access while the buffer is not yet shared.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

impl FrameBytes for PooledBuffer {
    fn bytes(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            match home.try_send(std::mem::take(&mut self.data)) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_buffers_are_reused_and_the_pool_stays_bounded() {
        let pool = BufferPool::new(2);
        let buffers: Vec<_> = (0..5).map(|_| pool.take(64)).collect();
        let first = buffers[0].bytes().as_ptr();
        drop(buffers);
        assert_eq!(pool.idle(), 2, "a full pool frees what it cannot keep");
        let reused = pool.take(64);
        assert_eq!(reused.bytes().as_ptr(), first);
        assert_eq!(pool.take(32).bytes().len(), 32, "a buffer of another size is never handed out");
    }
}
