//! A token bucket limiting batches per second, as kube-apiserver's
//! `--audit-webhook-batch-throttle-qps`/`-burst`: the bucket starts full with
//! `burst` tokens and refills at `qps` tokens per second.

use std::time::Duration;

use tokio::time::Instant;

/// Limits how often batches leave.
#[derive(Debug)]
pub struct Throttle {
    qps: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl Throttle {
    pub fn new(qps: f64, burst: u32) -> Self {
        Self {
            qps,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            updated: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.updated = now;
    }

    /// How long until a token is free (zero when one is).
    pub fn delay(&mut self) -> Duration {
        self.refill(Instant::now());
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.qps)
        }
    }

    /// Takes a token; call when [`Self::delay`] is zero.
    pub fn take(&mut self) {
        self.tokens -= 1.0;
    }

    /// Waits for a token and takes it.
    pub async fn acquire(&mut self) {
        loop {
            let delay = self.delay();
            if delay.is_zero() {
                self.tokens -= 1.0;
                return;
            }
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_goes_at_once_then_qps_paces() {
        let mut throttle = Throttle::new(10.0, 15);
        let start = Instant::now();
        for _ in 0..15 {
            throttle.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        for _ in 0..10 {
            throttle.acquire().await;
        }
        // Ten more tokens at 10 per second take one second.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(999) && elapsed <= Duration::from_millis(1001),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_refills_up_to_burst_only() {
        let mut throttle = Throttle::new(2.0, 3);
        for _ in 0..3 {
            throttle.acquire().await;
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        for _ in 0..4 {
            throttle.acquire().await;
        }
        // Three from the refilled bucket, the fourth half a second later.
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }
}
