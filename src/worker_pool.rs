//! A fixed set of named OS threads taking jobs from one queue in the order
//! they were queued: for blocking work (reading and decoding file ranges,
//! compressing and appending output files) that must not run on the async
//! runtime's threads. tokio's blocking pool would do the work too, but it
//! grows a thread per waiting job and keeps no order between jobs; both
//! users here need at most one thread per core and first-in, first-out.
//!
//! A job that panics is dropped (with whatever channel or ack it held, so
//! its waiter learns it failed) and its thread goes on with the next job.
//! The threads end once the returned sender and every clone are dropped.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};

/// Starts `threads` threads (at least one) named `name-N`. Each runs the
/// handler `new_worker` made for it, so a thread can keep scratch space
/// between jobs.
pub(crate) fn start<J, W>(
    name: &str,
    threads: usize,
    mut new_worker: impl FnMut() -> W,
) -> io::Result<Sender<J>>
where
    J: Send + 'static,
    W: FnMut(J) + Send + 'static,
{
    let (queue, jobs) = channel::<J>();
    let jobs = Arc::new(Mutex::new(jobs));
    for n in 0..threads.max(1) {
        let jobs = Arc::clone(&jobs);
        let mut worker = new_worker();
        std::thread::Builder::new()
            .name(format!("{name}-{n}"))
            .spawn(move || {
                while let Some(job) = next_job(&jobs) {
                    if std::panic::catch_unwind(AssertUnwindSafe(|| worker(job))).is_err() {
                        tracing::error!("A job on a worker thread panicked; it was dropped.");
                    }
                }
            })?;
    }
    Ok(queue)
}

/// The next job, or `None` once the queue is closed and empty. The lock is
/// held only while waiting, so the other threads take the jobs behind it.
fn next_job<J>(jobs: &Mutex<Receiver<J>>) -> Option<J> {
    jobs.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .recv()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_job_and_ends_when_the_queue_closes() {
        let (done_tx, done) = channel();
        let queue = start("test-pool", 2, || {
            let done_tx = done_tx.clone();
            move |n: u32| done_tx.send(n).unwrap()
        })
        .unwrap();
        drop(done_tx);
        for n in 0..100 {
            queue.send(n).unwrap();
        }
        drop(queue);
        let mut seen: Vec<u32> = done.iter().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_job_drops_only_itself() {
        let queue = start("test-pool", 1, || {
            |(n, reply): (u32, Sender<u32>)| {
                assert_ne!(n, 1, "job 1 panics");
                reply.send(n).unwrap();
            }
        })
        .unwrap();
        let mut replies = Vec::new();
        for n in 0..3 {
            let (reply, answer) = channel();
            queue.send((n, reply)).unwrap();
            replies.push(answer);
        }
        drop(queue);
        let answers: Vec<Option<u32>> = replies.iter().map(|r| r.recv().ok()).collect();
        assert_eq!(answers, [Some(0), None, Some(2)], "the one thread went on");
    }
}
