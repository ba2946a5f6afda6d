//! How long to wait before trying a call again: exponential backoff with jitter for 5xx answers
//! and lost connections, Halo's own `Retry-After` when a 429 carries one, and a slower backoff
//! that outlasts Halo's rolling five-minute window when a 429 carries none. Jitter keeps
//! several clients that were refused together from coming back together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When and how often a refused or failed call is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per call, the first included.
    pub max_attempts: u32,
    /// The first backoff; each retry doubles it.
    pub base_delay: Duration,
    /// No backoff waits longer than this.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is cut to it (Halo's window is 5 minutes).
    pub max_retry_after: Duration,
    /// The first wait after a 429 without `Retry-After`; each retry doubles it.
    pub rate_limit_delay: Duration,
    /// No wait after a 429 without `Retry-After` is longer than this.
    pub rate_limit_max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(330),
            // Hosted Halo counts 300 calls in a rolling five minutes. A 429 without
            // `Retry-After` (whether Halo sends one is not known) may come from calls made
            // minutes ago, by this run or one before it, so the waits add up past the window:
            // 20, 40, 80, then 120 s, at least 310 s over the seven retries with jitter.
            rate_limit_delay: Duration::from_secs(20),
            rate_limit_max_delay: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry): half the exponential step
    /// fixed, half random ("equal jitter"), so waits grow but never collapse to zero.
    pub fn backoff(&self, retry: u32) -> Duration {
        let step = self.exponential(retry);
        let half = step / 2;
        half + half.mul_f64(random_fraction())
    }

    fn exponential(&self, retry: u32) -> Duration {
        doubled(self.base_delay, retry).min(self.max_delay)
    }

    /// The wait a 429 asks for: `Retry-After` (seconds) plus up to a tenth more at random,
    /// or, when the header is missing or unreadable, the rate limit's own backoff (equal
    /// jitter, as [`RetryPolicy::backoff`]).
    pub fn after_rate_limit(&self, retry_after: Option<&str>, retry: u32) -> Duration {
        match retry_after.and_then(parse_retry_after) {
            Some(wait) => {
                let wait = wait.min(self.max_retry_after);
                wait + (wait / 10).mul_f64(random_fraction())
            }
            None => {
                let step = doubled(self.rate_limit_delay, retry).min(self.rate_limit_max_delay);
                let half = step / 2;
                half + half.mul_f64(random_fraction())
            }
        }
    }
}

/// `first` doubled for each retry after the first (retry 1 waits `first`).
fn doubled(first: Duration, retry: u32) -> Duration {
    let doublings = retry.saturating_sub(1).min(20);
    first.saturating_mul(1u32 << doublings)
}

/// `Retry-After` as delta-seconds (`"30"`, and tolerantly `"1.5"`). The HTTP-date form is not
/// read: Halo sends seconds, and an unreadable value falls back to the backoff.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// A number in [0, 1) from a splitmix64 sequence seeded by the clock: jitter only needs to
/// differ between clients and calls, not to be unpredictable.
fn random_fraction() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = STATE
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(seed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_jitter_band_and_is_capped() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = policy.backoff(30);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let policy = RetryPolicy {
            max_retry_after: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        let wait = policy.after_rate_limit(Some("12"), 1);
        assert!(wait >= Duration::from_secs(12) && wait <= Duration::from_millis(13_200));
        let capped = policy.after_rate_limit(Some("3600"), 1);
        assert!(capped >= Duration::from_secs(60) && capped <= Duration::from_secs(66));
        // No header or an HTTP date: the rate limit's backoff instead.
        let fallback = policy.after_rate_limit(Some("Wed, 21 Oct 2015 07:28:00 GMT"), 1);
        assert!(fallback >= policy.rate_limit_delay / 2 && fallback <= policy.rate_limit_delay);
    }

    #[test]
    fn a_429_without_retry_after_waits_out_halos_five_minute_window() {
        let policy = RetryPolicy::default();
        for _ in 0..20 {
            let least: Duration = (1..policy.max_attempts)
                .map(|retry| policy.after_rate_limit(None, retry))
                .sum();
            assert!(least >= Duration::from_secs(300), "{least:?}");
            assert!(least <= Duration::from_secs(620), "{least:?}");
        }
    }

    #[test]
    fn parses_retry_after_seconds() {
        assert_eq!(parse_retry_after(" 5 "), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn jitter_varies() {
        let draws: std::collections::BTreeSet<u64> =
            (0..20).map(|_| (random_fraction() * 1e9) as u64).collect();
        assert!(draws.len() > 10);
    }
}
