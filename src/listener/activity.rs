//! Whether a connection is doing anything: requests in progress, and since
//! when it has had none. hyper bounds an HTTP/1.1 connection's idle time with
//! its header timer but has no such limit for HTTP/2, where a client that
//! sends only the connection preface would hold a `max_connections` slot
//! forever; the accept loop closes such connections with this.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(super) struct Activity(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

/// Held while a request is handled.
#[derive(Debug)]
pub(super) struct Busy(Activity);

impl Activity {
    pub(super) fn new(now: Instant) -> Self {
        Self(Arc::new(Inner {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(now),
        }))
    }

    /// Marks a request as started; it ends when the guard is dropped.
    pub(super) fn start(&self) -> Busy {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// How long the connection has had no request in progress, as of
    /// `now`; `None` while one is.
    pub(super) fn idle_for(&self, now: Instant) -> Option<Duration> {
        let since = *self
            .0
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (self.0.in_flight.load(Ordering::SeqCst) == 0).then(|| now.saturating_duration_since(since))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let inner = &self.0.0;
        // Stamp before the count drops, so an idle reading never sees the
        // stamp of an earlier request.
        *inner
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_counts_from_the_end_of_the_last_request() {
        let start = Instant::now();
        let activity = Activity::new(start);
        let later = start + Duration::from_secs(5);
        assert_eq!(activity.idle_for(later), Some(Duration::from_secs(5)));
        let busy = activity.start();
        let second = activity.start();
        assert_eq!(activity.idle_for(later), None);
        drop(busy);
        assert_eq!(activity.idle_for(later), None, "one still in progress");
        drop(second);
        let idle = activity.idle_for(Instant::now() + Duration::from_secs(1));
        assert!(idle.is_some_and(|d| d >= Duration::from_secs(1) && d < Duration::from_secs(5)));
    }
}
