//! One rate limiter shared by every API call, fed by Hetzner's `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` headers.
//!
//! Hetzner's budget is a token bucket (3600 requests per hour per project, refilled
//! continuously); `RateLimit-Reset` is the UNIX time at which it is full again. When the
//! remaining budget reaches zero (or a 429 arrives), calls wait until the bucket has
//! refilled by one request: `(reset - now) / (limit - remaining)`.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub struct RateLimiter {
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    limit: Option<u64>,
    remaining: Option<u64>,
    /// UNIX seconds when the bucket is full.
    reset: Option<u64>,
    /// When `remaining` was last set from a response.
    seen_at: Option<f64>,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl RateLimiter {
    /// Records the headers of a response.
    pub fn observe(&self, headers: &reqwest::header::HeaderMap) {
        let num = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let (limit, remaining, reset) = (
            num("ratelimit-limit"),
            num("ratelimit-remaining"),
            num("ratelimit-reset"),
        );
        if let Ok(mut s) = self.state.lock() {
            if limit.is_some() {
                s.limit = limit;
            }
            if remaining.is_some() {
                s.remaining = remaining;
                s.seen_at = Some(now_secs());
            }
            if reset.is_some() {
                s.reset = reset;
            }
        }
    }

    /// Marks the budget as used up (after a 429).
    pub fn exhausted(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.remaining = Some(0);
            s.seen_at = Some(now_secs());
        }
    }

    /// How long until one more request is allowed, given the last headers.
    fn delay(&self) -> Duration {
        let Ok(mut s) = self.state.lock() else {
            return Duration::ZERO;
        };
        match s.remaining {
            Some(0) => {}
            Some(n) => {
                // Count this request against the budget until the next headers arrive.
                s.remaining = Some(n - 1);
                return Duration::ZERO;
            }
            None => return Duration::ZERO,
        }
        let now = now_secs();
        let (Some(limit), Some(reset)) = (s.limit, s.reset) else {
            return Duration::from_secs(1);
        };
        let until_full = (reset as f64 - s.seen_at.unwrap_or(now)).max(0.0);
        let per_token = if limit > 0 {
            until_full / limit as f64
        } else {
            1.0
        };
        let ready_at = s.seen_at.unwrap_or(now) + per_token;
        Duration::from_secs_f64((ready_at - now).max(0.0))
    }

    /// Sleeps until the budget allows another request (at most `max`).
    pub async fn wait_for_budget(&self, max: Duration) {
        let d = self.delay().min(max);
        if !d.is_zero() {
            tracing::info!(
                wait_ms = d.as_millis() as u64,
                "waiting for the API rate limit"
            );
            tokio::time::sleep(d).await;
            if let Ok(mut s) = self.state.lock() {
                // One token has refilled; the next response corrects the estimate.
                if s.remaining == Some(0) {
                    s.remaining = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(limit: u64, remaining: u64, reset_in: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        let reset = now_secs() as u64 + reset_in;
        h.insert("ratelimit-limit", HeaderValue::from(limit));
        h.insert("ratelimit-remaining", HeaderValue::from(remaining));
        h.insert("ratelimit-reset", HeaderValue::from(reset));
        h
    }

    #[test]
    fn no_wait_while_budget_remains() {
        let r = RateLimiter::default();
        r.observe(&headers(3600, 2, 10));
        assert_eq!(r.delay(), Duration::ZERO);
        assert_eq!(r.delay(), Duration::ZERO);
        // Budget counted down locally to zero: now we wait.
        assert!(r.delay() > Duration::ZERO);
    }

    #[test]
    fn exhausted_waits_one_token() {
        let r = RateLimiter::default();
        r.observe(&headers(10, 0, 10));
        let d = r.delay();
        assert!(
            d > Duration::from_millis(500) && d <= Duration::from_millis(1100),
            "{d:?}"
        );
    }
}
