//! End-to-end acknowledgements. A source hands every event of a batch a clone
//! of one [`Ack`]; each output settles its clone once the event is durable
//! (file flushed, remote 2xx). When the last clone is gone the source's
//! [`AckWaiter`] resolves: `Delivered` only if every clone was settled.
//! An `Ack` dropped without settling (shutdown, crash path, bug) marks the
//! batch failed, so a position can never advance past an unwritten event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::oneshot;

/// The outcome a source learns for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatus {
    /// Every copy of every event was written, accepted, dead-lettered or
    /// deliberately dropped by a filter.
    Delivered,
    /// At least one copy was abandoned before it was safe.
    Failed,
}

struct Shared {
    failed: AtomicBool,
    notify: Option<oneshot::Sender<BatchStatus>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(notify) = self.notify.take() {
            let status = if self.failed.load(Ordering::Acquire) {
                BatchStatus::Failed
            } else {
                BatchStatus::Delivered
            };
            // The source may have stopped waiting; nothing to report then.
            let _ = notify.send(status);
        }
    }
}

/// One event copy's share of its batch acknowledgement.
#[must_use = "an Ack dropped without `settle` marks its batch failed"]
pub struct Ack {
    shared: Option<Arc<Shared>>,
}

/// Resolves when every [`Ack`] of a batch is settled or dropped.
pub struct AckWaiter {
    receiver: oneshot::Receiver<BatchStatus>,
}

impl Ack {
    /// An acknowledgement nobody waits for (e.g. events made by `split`'s
    /// parent after delivery, or sources without positions).
    pub fn none() -> Self {
        Self { shared: None }
    }

    /// Starts a batch: clone the returned `Ack` into each event.
    pub fn batch() -> (Self, AckWaiter) {
        let (sender, receiver) = oneshot::channel();
        let shared = Arc::new(Shared {
            failed: AtomicBool::new(false),
            notify: Some(sender),
        });
        (
            Self {
                shared: Some(shared),
            },
            AckWaiter { receiver },
        )
    }

    /// This copy is safe: written durably, accepted remotely, dead-lettered,
    /// or dropped on purpose.
    pub fn settle(mut self) {
        self.shared = None;
    }

    /// This copy could not be delivered; the batch will report `Failed`.
    pub fn fail(mut self) {
        if let Some(shared) = self.shared.take() {
            shared.failed.store(true, Ordering::Release);
        }
    }

    /// Whether some source waits for this acknowledgement.
    pub fn is_tracked(&self) -> bool {
        self.shared.is_some()
    }
}

impl Clone for Ack {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.failed.store(true, Ordering::Release);
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack")
            .field("tracked", &self.is_tracked())
            .finish()
    }
}

impl AckWaiter {
    /// Waits for the batch's outcome.
    pub async fn wait(self) -> BatchStatus {
        self.receiver.await.unwrap_or(BatchStatus::Failed)
    }

    /// The outcome if it is known already.
    pub fn try_status(&mut self) -> Option<BatchStatus> {
        match self.receiver.try_recv() {
            Ok(status) => Some(status),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(BatchStatus::Failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivered_when_every_copy_is_settled() {
        let (ack, waiter) = Ack::batch();
        let copies: Vec<Ack> = (0..3).map(|_| ack.clone()).collect();
        ack.settle();
        for copy in copies {
            copy.settle();
        }
        assert_eq!(waiter.wait().await, BatchStatus::Delivered);
    }

    #[tokio::test]
    async fn failed_when_one_copy_is_dropped_unsettled() {
        let (ack, waiter) = Ack::batch();
        let copy = ack.clone();
        ack.settle();
        drop(copy);
        assert_eq!(waiter.wait().await, BatchStatus::Failed);
    }

    #[tokio::test]
    async fn failed_when_one_copy_fails() {
        let (ack, waiter) = Ack::batch();
        let copy = ack.clone();
        copy.fail();
        ack.settle();
        assert_eq!(waiter.wait().await, BatchStatus::Failed);
    }

    #[test]
    fn pending_until_the_last_copy_settles() {
        let (ack, mut waiter) = Ack::batch();
        let copy = ack.clone();
        ack.settle();
        assert_eq!(waiter.try_status(), None);
        copy.settle();
        assert_eq!(waiter.try_status(), Some(BatchStatus::Delivered));
    }
}
