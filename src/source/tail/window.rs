//! The in-flight window of one file: the batches read from it that the
//! outputs have not all acknowledged yet, in file order, each with the offset
//! just past its last line (known once its range is cut, reported with its
//! acknowledgement). The committed offset (the one saved as the
//! position) is the end of the longest prefix of delivered batches, so a
//! crash can repeat events but never skip one.

use std::collections::VecDeque;

use crate::event::BatchStatus;

#[derive(Debug)]
struct Pending {
    seq: u64,
    end: u64,
    status: Option<BatchStatus>,
}

/// Batches of one file awaiting acknowledgement.
#[derive(Debug)]
pub(super) struct AckWindow {
    committed: u64,
    next_seq: u64,
    pending: VecDeque<Pending>,
    /// A batch failed: the committed offset stays before it for the rest of
    /// this run, so a restart reads those events again.
    frozen: bool,
}

impl AckWindow {
    pub(super) fn new(committed: u64) -> Self {
        Self {
            committed,
            next_seq: 0,
            pending: VecDeque::new(),
            frozen: false,
        }
    }

    /// Registers a batch; returns its number.
    pub(super) fn push(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back(Pending {
            seq,
            end: 0,
            status: None,
        });
        seq
    }

    /// Records a batch's outcome and the offset just past its last line;
    /// returns whether the committed offset moved.
    pub(super) fn settle(&mut self, seq: u64, status: BatchStatus, end: u64) -> bool {
        let Some(index) = self.pending.iter().position(|p| p.seq == seq) else {
            return false;
        };
        if self.frozen {
            self.pending.remove(index);
            return false;
        }
        self.pending[index].status = Some(status);
        self.pending[index].end = end;
        let before = self.committed;
        while let Some(front) = self.pending.front() {
            match front.status {
                Some(BatchStatus::Delivered) => {
                    self.committed = self.committed.max(front.end);
                    self.pending.pop_front();
                }
                Some(BatchStatus::Failed) => {
                    self.frozen = true;
                    self.pending.retain(|p| p.status.is_none());
                    break;
                }
                None => break,
            }
        }
        self.committed != before
    }

    /// The offset safe to save: every line before it was delivered.
    pub(super) fn committed(&self) -> u64 {
        self.committed
    }

    /// No batch is waiting for an acknowledgement.
    pub(super) fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Some batch of this file failed to be delivered in this run.
    pub(super) fn is_frozen(&self) -> bool {
        self.frozen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BatchStatus::{Delivered, Failed};

    #[test]
    fn commits_the_longest_delivered_prefix() {
        let mut w = AckWindow::new(0);
        let a = w.push();
        let b = w.push();
        let c = w.push();
        let d = w.push();
        assert!(!w.settle(b, Delivered, 200));
        assert_eq!(w.committed(), 0);
        assert!(w.settle(a, Delivered, 100));
        assert_eq!(w.committed(), 200);
        w.settle(d, Delivered, 400);
        assert_eq!(w.committed(), 200, "waits for the batch before it");
        // A range inside one long line ends where the one before did.
        w.settle(c, Delivered, 200);
        assert_eq!(w.committed(), 400);
        assert!(w.is_idle());
    }

    #[test]
    fn a_failed_batch_freezes_the_position() {
        let mut w = AckWindow::new(10);
        let a = w.push();
        let b = w.push();
        let c = w.push();
        w.settle(b, Failed, 200);
        w.settle(a, Delivered, 100);
        assert_eq!(w.committed(), 100);
        assert!(w.is_frozen());
        assert!(!w.is_idle());
        w.settle(c, Delivered, 300);
        assert_eq!(w.committed(), 100);
        assert!(w.is_idle());
        let d = w.push();
        w.settle(d, Delivered, 400);
        assert_eq!(w.committed(), 100);
    }

    #[test]
    fn unknown_sequence_numbers_are_ignored() {
        let mut w = AckWindow::new(0);
        assert!(!w.settle(7, Delivered, 10));
        assert_eq!(w.committed(), 0);
    }
}
