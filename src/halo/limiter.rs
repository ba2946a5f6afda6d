//! The client-side rate limiter: hosted Halo allows 300 requests per rolling 5-minute window
//! and answers 429 past it, so the connector spaces its own calls to stay under the limit
//! instead of learning it from refusals. The window rolls (it remembers when each of the last
//! `requests` calls went out), matching how Halo counts.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `requests` calls in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
}

impl Default for RateLimit {
    /// Hosted Halo's limit: 300 requests per rolling 5 minutes.
    fn default() -> Self {
        RateLimit {
            requests: 300,
            window: Duration::from_secs(300),
        }
    }
}

/// The rolling window's bookkeeping; pure, so the rule is testable without sleeping.
#[derive(Debug)]
pub struct Window {
    limit: RateLimit,
    sent: VecDeque<Instant>,
}

impl Window {
    pub fn new(limit: RateLimit) -> Window {
        Window {
            limit: RateLimit {
                requests: limit.requests.max(1),
                window: limit.window,
            },
            sent: VecDeque::new(),
        }
    }

    /// Takes a slot at `now` if one is free; otherwise says how long until the oldest call in
    /// the window leaves it.
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        while let Some(&oldest) = self.sent.front() {
            if now.saturating_duration_since(oldest) >= self.limit.window {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() < self.limit.requests as usize {
            self.sent.push_back(now);
            return Ok(());
        }
        let oldest = self.sent[0];
        Err((oldest + self.limit.window).saturating_duration_since(now))
    }
}

/// A [`Window`] shared by every call of one client; `acquire` sleeps until a slot is free.
#[derive(Debug)]
pub struct RateLimiter {
    window: Mutex<Window>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            window: Mutex::new(Window::new(limit)),
        }
    }

    /// Blocks until the call may go out.
    pub fn acquire(&self) {
        loop {
            let verdict = {
                let mut window = self
                    .window
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                window.admit(Instant::now())
            };
            match verdict {
                Ok(()) => return,
                // Never spin: a wait of zero still yields a millisecond.
                Err(wait) => {
                    // A pause a person would notice is worth a line at -v; short ones at -vv.
                    if wait >= Duration::from_secs(1) {
                        tracing::info!(
                            wait_ms = wait.as_millis() as u64,
                            "Halo rate limit: pausing"
                        );
                    } else {
                        tracing::debug!(
                            wait_ms = wait.as_millis() as u64,
                            "Halo rate limit: pausing"
                        );
                    }
                    std::thread::sleep(wait.max(Duration::from_millis(1)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u32, seconds: u64) -> RateLimit {
        RateLimit {
            requests,
            window: Duration::from_secs(seconds),
        }
    }

    #[test]
    fn admits_up_to_the_limit_then_names_the_wait() {
        let start = Instant::now();
        let mut window = Window::new(limit(3, 10));
        assert!(window.admit(start).is_ok());
        assert!(window.admit(start + Duration::from_secs(1)).is_ok());
        assert!(window.admit(start + Duration::from_secs(2)).is_ok());
        // The fourth call at t=4 waits until the first (t=0) leaves the window at t=10.
        assert_eq!(
            window.admit(start + Duration::from_secs(4)),
            Err(Duration::from_secs(6))
        );
    }

    #[test]
    fn the_window_rolls() {
        let start = Instant::now();
        let mut window = Window::new(limit(2, 10));
        window.admit(start).unwrap();
        window.admit(start + Duration::from_secs(5)).unwrap();
        assert!(window.admit(start + Duration::from_secs(9)).is_err());
        // At t=10 the first call has left; the one at t=5 stays until t=15.
        assert!(window.admit(start + Duration::from_secs(10)).is_ok());
        assert_eq!(
            window.admit(start + Duration::from_secs(11)),
            Err(Duration::from_secs(4))
        );
    }

    #[test]
    fn a_refused_call_takes_no_slot() {
        let start = Instant::now();
        let mut window = Window::new(limit(1, 10));
        window.admit(start).unwrap();
        for second in 1..5 {
            assert!(window.admit(start + Duration::from_secs(second)).is_err());
        }
        assert!(window.admit(start + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn threads_sharing_one_limiter_stay_under_the_limit_together() {
        // Attachment copies call Halo from several threads through one client.
        let window = Duration::from_millis(400);
        let limiter = RateLimiter::new(RateLimit {
            requests: 4,
            window,
        });
        let sent = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..3 {
                        limiter.acquire();
                        sent.lock().unwrap().push(Instant::now());
                    }
                });
            }
        });
        let mut sent = sent.into_inner().unwrap();
        sent.sort();
        assert_eq!(sent.len(), 12);
        // Any 5 consecutive calls span a window: never 5 within one. (Times are taken just
        // after `acquire`, so a thread paused in between may shift one: on a loaded machine by
        // over 100 ms, hence half a window of margin. Without the limiter the 12 calls come
        // within a millisecond.)
        for five in sent.windows(5) {
            assert!(
                five[4].duration_since(five[0]) >= window / 2,
                "5 calls within {:?}",
                five[4].duration_since(five[0])
            );
        }
    }

    #[test]
    fn default_is_hosted_halos_limit() {
        assert_eq!(RateLimit::default(), limit(300, 300));
    }

    #[test]
    fn a_zero_limit_still_lets_one_call_through() {
        let mut window = Window::new(limit(0, 10));
        assert!(window.admit(Instant::now()).is_ok());
    }
}
