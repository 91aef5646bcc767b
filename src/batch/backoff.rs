//! Retry waits as kube-apiserver's webhook client computes them: the first
//! wait is `initial_backoff`, each next one 1.5 times longer, each stretched
//! by a random 0–20 % jitter; unlike kube-apiserver (which gives up after five
//! attempts and drops the batch) the wait is capped at `max_backoff` and
//! retries go on, because audit events must not be lost. A `Retry-After`
//! from the server lengthens a wait, never shortens it.

use std::time::Duration;

/// Growth factor between waits (kube-apiserver's `Factor: 1.5`).
const FACTOR: f64 = 1.5;
/// Each wait is stretched by up to this fraction (kube-apiserver's `Jitter: 0.2`).
const JITTER: f64 = 0.2;
/// A `Retry-After` longer than this is taken as this, so a confused server
/// cannot park an output for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Exponential backoff with jitter and a cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    jitter: Jitter,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
            jitter: Jitter::seeded(),
        }
    }

    /// The same, with a fixed jitter seed (tests).
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The wait before the next attempt; `retry_after` is the server's hint.
    pub fn next_wait(&mut self, retry_after: Option<Duration>) -> Duration {
        let wait = self.nth_wait(self.attempt, retry_after);
        self.attempt = self.attempt.saturating_add(1);
        wait
    }

    /// The wait after `failed` failures of one request or event (0 for the
    /// first failure), for callers that count attempts per request.
    pub fn nth_wait(&mut self, failed: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = i32::try_from(failed).unwrap_or(i32::MAX).min(64);
        let base = self.initial.as_secs_f64() * FACTOR.powi(exponent);
        let jittered = base * (1.0 + JITTER * self.jitter.next_unit());
        let wait = Duration::try_from_secs_f64(jittered)
            .unwrap_or(self.max)
            .min(self.max);
        match retry_after {
            Some(hint) => wait.max(hint.min(MAX_RETRY_AFTER)),
            None => wait,
        }
    }

    /// How many waits were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Progress was made: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A tiny xorshift generator for jitter: no cryptographic needs, and no
/// extra crate; seeded from a v4 UUID's random bits.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn seeded() -> Self {
        let bits = uuid::Uuid::new_v4().as_u128();
        #[allow(clippy::cast_possible_truncation)] // Folding 128 random bits into 64.
        Self::from_seed((bits as u64) ^ ((bits >> 64) as u64))
    }

    pub fn from_seed(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A number in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        #[allow(clippy::cast_precision_loss)] // 53 bits fit an f64 exactly.
        let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
        unit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_by_one_and_a_half_with_up_to_twenty_percent_jitter() {
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(3600));
        for base in [10.0, 15.0, 22.5, 33.75, 50.625] {
            let wait = backoff.next_wait(None).as_secs_f64();
            assert!(wait >= base && wait <= base * 1.2, "{wait} for {base}");
        }
    }

    #[test]
    fn jitter_is_spread_out() {
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let waits: Vec<f64> = (0..200)
            .map(|_| backoff.next_wait(None).as_secs_f64())
            .collect();
        let (min, max) = waits
            .iter()
            .fold((f64::MAX, 0.0_f64), |(lo, hi), &w| (lo.min(w), hi.max(w)));
        assert!(min >= 10.0 && max <= 10.0, "capped at max: {min}..{max}");
        let mut free = Backoff::new(Duration::from_secs(10), Duration::from_secs(100));
        let stretched: Vec<f64> = (0..200)
            .map(|_| {
                free.reset();
                free.next_wait(None).as_secs_f64()
            })
            .collect();
        let lo = stretched.iter().copied().fold(f64::MAX, f64::min);
        let hi = stretched.iter().copied().fold(0.0, f64::max);
        assert!(lo < 10.5 && hi > 11.5 && hi <= 12.0, "{lo}..{hi}");
    }

    #[test]
    fn waits_stop_growing_at_the_cap() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let last = (0..50).map(|_| backoff.next_wait(None)).last().unwrap();
        assert_eq!(last, Duration::from_secs(5));
    }

    #[test]
    fn retry_after_lengthens_but_never_shortens() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(
            backoff.next_wait(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        let wait = backoff.next_wait(Some(Duration::from_millis(1)));
        assert!(wait >= Duration::from_millis(1500), "{wait:?}");
        assert_eq!(
            backoff.next_wait(Some(Duration::from_secs(86_400))),
            MAX_RETRY_AFTER
        );
    }
}
