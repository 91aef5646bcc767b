//! The in-flight window of one file: the batches read from it that the
//! outputs have not all acknowledged yet, in file order, each with the offset
//! just past its last line. The committed offset (the one saved as the
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

    /// Registers a batch whose last line ends at `end`; returns its number.
    pub(super) fn push(&mut self, end: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back(Pending {
            seq,
            end,
            status: None,
        });
        seq
    }

    /// Lines up to `end` produced nothing to deliver (blank or bad lines):
    /// they count as delivered once everything before them is.
    pub(super) fn push_done(&mut self, end: u64) {
        if self.frozen {
            return;
        }
        if self.pending.is_empty() {
            self.committed = self.committed.max(end);
        } else {
            let seq = self.push(end);
            self.settle(seq, BatchStatus::Delivered);
        }
    }

    /// Records a batch's outcome; returns whether the committed offset moved.
    pub(super) fn settle(&mut self, seq: u64, status: BatchStatus) -> bool {
        let Some(index) = self.pending.iter().position(|p| p.seq == seq) else {
            return false;
        };
        if self.frozen {
            self.pending.remove(index);
            return false;
        }
        self.pending[index].status = Some(status);
        let before = self.committed;
        while let Some(front) = self.pending.front() {
            match front.status {
                Some(BatchStatus::Delivered) => {
                    self.committed = front.end;
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
        let a = w.push(100);
        let b = w.push(200);
        let c = w.push(300);
        assert!(!w.settle(b, Delivered));
        assert_eq!(w.committed(), 0);
        assert!(w.settle(a, Delivered));
        assert_eq!(w.committed(), 200);
        w.push_done(350);
        assert_eq!(w.committed(), 200, "waits for the batch before it");
        w.settle(c, Delivered);
        assert_eq!(w.committed(), 350);
        assert!(w.is_idle());
        w.push_done(400);
        assert_eq!(w.committed(), 400);
    }

    #[test]
    fn a_failed_batch_freezes_the_position() {
        let mut w = AckWindow::new(10);
        let a = w.push(100);
        let b = w.push(200);
        let c = w.push(300);
        w.settle(b, Failed);
        w.settle(a, Delivered);
        assert_eq!(w.committed(), 100);
        assert!(w.is_frozen());
        assert!(!w.is_idle());
        w.settle(c, Delivered);
        assert_eq!(w.committed(), 100);
        assert!(w.is_idle());
        w.push_done(400);
        assert_eq!(w.committed(), 100);
    }

    #[test]
    fn unknown_sequence_numbers_are_ignored() {
        let mut w = AckWindow::new(0);
        assert!(!w.settle(7, Delivered));
        assert_eq!(w.committed(), 0);
    }
}
