//! End-to-end acknowledgements. A source hands every event of a batch a clone
//! of one [`Ack`]; each output settles its clone once the event is durable
//! (file flushed, remote 2xx). When the last clone is gone the source's
//! [`AckWaiter`] resolves: `Delivered` only if every clone was settled.
//! An `Ack` dropped without settling (shutdown, crash path, bug) marks the
//! batch failed, so a position can never advance past an unwritten event.
//! An event made from lines of several batches (a joined legacy request and
//! response) carries an [`Ack::join`] of their shares, which settles or fails
//! every one of them.

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

/// Who learns a batch's outcome.
enum Notify {
    /// An [`AckWaiter`], awaited by the source.
    Waiter(oneshot::Sender<BatchStatus>),
    /// A function run by whoever drops the last share: for a source whose
    /// reader is a plain thread, so no task has to wait only to forward it.
    Callback(Box<dyn FnOnce(BatchStatus) + Send + Sync>),
}

struct Shared {
    failed: AtomicBool,
    /// Who learns the outcome; `None` for a join, which reports to `joined`
    /// instead.
    notify: Option<Notify>,
    /// The shares a join stands for: settled when every copy of the join is
    /// settled, failed otherwise. Held inline, so a batch costs no more
    /// allocations than before.
    joined: Option<(Ack, Ack)>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some((first, second)) = self.joined.take() {
            if self.failed.load(Ordering::Acquire) {
                first.fail();
                second.fail();
            } else {
                first.settle();
                second.settle();
            }
        }
        if let Some(notify) = self.notify.take() {
            let status = if self.failed.load(Ordering::Acquire) {
                BatchStatus::Failed
            } else {
                BatchStatus::Delivered
            };
            match notify {
                // The source may have stopped waiting; nothing to report then.
                Notify::Waiter(sender) => {
                    let _ = sender.send(status);
                }
                Notify::Callback(callback) => callback(status),
            }
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
        (
            Self::notifying(Notify::Waiter(sender)),
            AckWaiter { receiver },
        )
    }

    /// Starts a batch whose outcome is passed to `on_done`, on the thread
    /// that settles or drops its last share. `on_done` must be quick and
    /// must not block (an unbounded channel send, say).
    pub fn batch_then(on_done: impl FnOnce(BatchStatus) + Send + Sync + 'static) -> Self {
        Self::notifying(Notify::Callback(Box::new(on_done)))
    }

    fn notifying(notify: Notify) -> Self {
        Self {
            shared: Some(Arc::new(Shared {
                failed: AtomicBool::new(false),
                notify: Some(notify),
                joined: None,
            })),
        }
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

    /// One share standing for both `self` and `other`, for an event made
    /// from lines of two batches: settling every copy of it settles both,
    /// failing or dropping one fails both. Allocates only when both are
    /// tracked and belong to different batches; otherwise returns the
    /// tracked one (or either, if they are the same batch).
    pub fn join(self, other: Ack) -> Ack {
        let same_batch = match (&self.shared, &other.shared) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => true,
        };
        if same_batch {
            // Either both are one batch (two shares of it, one suffices) or
            // at least one is untracked: keep the tracked one.
            return if self.is_tracked() {
                other.settle();
                self
            } else {
                self.settle();
                other
            };
        }
        Self {
            shared: Some(Arc::new(Shared {
                failed: AtomicBool::new(false),
                notify: None,
                joined: Some((self, other)),
            })),
        }
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
    fn a_callback_learns_the_outcome_when_the_last_copy_goes() {
        for (fail_one, expected) in [(false, BatchStatus::Delivered), (true, BatchStatus::Failed)] {
            let (tx, rx) = std::sync::mpsc::channel();
            let ack = Ack::batch_then(move |status| tx.send(status).unwrap());
            let copy = ack.clone();
            ack.settle();
            assert!(rx.try_recv().is_err(), "one copy is still out");
            if fail_one {
                drop(copy);
            } else {
                copy.settle();
            }
            assert_eq!(rx.try_recv(), Ok(expected));
        }
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

    #[test]
    fn a_join_holds_both_batches_until_every_copy_settles() {
        let (request, mut request_waiter) = Ack::batch();
        let (response, mut response_waiter) = Ack::batch();
        let joined = request.clone().join(response.clone());
        // The batches' own handles are done; only the join keeps them open.
        request.settle();
        response.settle();
        let copy = joined.clone();
        joined.settle();
        assert_eq!(request_waiter.try_status(), None);
        assert_eq!(response_waiter.try_status(), None);
        copy.settle();
        assert_eq!(request_waiter.try_status(), Some(BatchStatus::Delivered));
        assert_eq!(response_waiter.try_status(), Some(BatchStatus::Delivered));
    }

    #[test]
    fn a_failed_join_fails_both_batches() {
        let (request, mut request_waiter) = Ack::batch();
        let (response, mut response_waiter) = Ack::batch();
        let joined = request.clone().join(response.clone());
        request.settle();
        response.settle();
        joined.fail();
        assert_eq!(request_waiter.try_status(), Some(BatchStatus::Failed));
        assert_eq!(response_waiter.try_status(), Some(BatchStatus::Failed));
    }

    #[test]
    fn a_dropped_join_fails_both_batches() {
        let (request, mut request_waiter) = Ack::batch();
        let (response, mut response_waiter) = Ack::batch();
        let joined = request.clone().join(response.clone());
        request.settle();
        response.settle();
        let copy = joined.clone();
        joined.settle();
        drop(copy);
        assert_eq!(request_waiter.try_status(), Some(BatchStatus::Failed));
        assert_eq!(response_waiter.try_status(), Some(BatchStatus::Failed));
    }

    #[test]
    fn joining_an_untracked_or_the_same_batch_adds_no_level() {
        let (ack, mut waiter) = Ack::batch();
        let with_none = Ack::none().join(ack.clone());
        assert!(with_none.is_tracked());
        assert!(Ack::none().join(Ack::none()).shared.is_none());
        let with_itself = ack.clone().join(ack.clone());
        for joined in [&with_none, &with_itself] {
            let shared = joined.shared.as_ref().expect("tracked");
            assert!(shared.notify.is_some(), "still the batch's own share");
        }
        ack.settle();
        with_none.settle();
        assert_eq!(waiter.try_status(), None);
        with_itself.settle();
        assert_eq!(waiter.try_status(), Some(BatchStatus::Delivered));
    }

    #[test]
    fn joins_nest() {
        let (a, mut a_waiter) = Ack::batch();
        let (b, mut b_waiter) = Ack::batch();
        let (c, mut c_waiter) = Ack::batch();
        let joined = a.clone().join(b.clone()).join(c.clone());
        a.settle();
        b.settle();
        c.settle();
        assert_eq!(a_waiter.try_status(), None);
        joined.settle();
        for waiter in [&mut a_waiter, &mut b_waiter, &mut c_waiter] {
            assert_eq!(waiter.try_status(), Some(BatchStatus::Delivered));
        }
    }
}
