//! Retry policies, with Apache Curator's names and formulas.
//!
//! A policy answers one question: after `retry_count` failed attempts that took `elapsed` so
//! far, should the operation be tried again, and after how long a sleep? [`Client::with_retry`]
//! and every retried helper of [`Client`] ask it after each retryable failure.
//!
//! [`Client`]: crate::Client
//! [`Client::with_retry`]: crate::Client::with_retry

use std::fmt::Debug;
use std::time::Duration;

use crate::Error;

/// Decides whether, and after how long, a failed operation is tried again.
///
/// `retry_count` is 0 on the first retry. Policies are shared between tasks, so they must be
/// `Send + Sync`; they keep no state between calls.
pub trait RetryPolicy: Send + Sync + Debug {
    /// The sleep before retry number `retry_count` (0-based), or `None` to give up.
    fn allow_retry(&self, retry_count: u32, elapsed: Duration) -> Option<Duration>;

    /// Whether `error` is worth retrying at all. By default: connection loss, timeouts, a moved
    /// session and an expired session (see [`Error::is_retryable`]).
    fn allow_retry_on(&self, error: &Error) -> bool {
        error.is_retryable()
    }
}

/// Curator caps the exponent so that `1 << (retry_count + 1)` cannot overflow an `i32`.
const MAX_RETRIES_LIMIT: u32 = 29;

/// Retries a fixed number of times, sleeping `base × r` with `r` a random integer in
/// `[1, 2^(retry_count + 1))`, and at most `max_sleep` (Curator's `ExponentialBackoffRetry`).
///
/// `max_retries` is capped at 29, like Curator's.
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{ExponentialBackoffRetry, RetryPolicy};
///
/// let policy = ExponentialBackoffRetry::new(Duration::from_millis(100), 3);
/// let sleep = policy.allow_retry(2, Duration::ZERO).unwrap();
/// assert!(sleep >= Duration::from_millis(100) && sleep < Duration::from_millis(800));
/// assert!(policy.allow_retry(3, Duration::ZERO).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct ExponentialBackoffRetry {
    base_sleep: Duration,
    max_retries: u32,
    max_sleep: Duration,
}

impl ExponentialBackoffRetry {
    /// `max_retries` retries, starting from `base_sleep`, with no bound on a single sleep.
    pub fn new(base_sleep: Duration, max_retries: u32) -> Self {
        Self::with_max_sleep(base_sleep, max_retries, Duration::MAX)
    }

    /// Like [`new`](Self::new), but no single sleep is longer than `max_sleep`.
    pub fn with_max_sleep(base_sleep: Duration, max_retries: u32, max_sleep: Duration) -> Self {
        Self {
            base_sleep,
            max_retries: max_retries.min(MAX_RETRIES_LIMIT),
            max_sleep,
        }
    }

    /// The number of retries this policy allows, after the cap of 29.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    fn sleep_for(&self, retry_count: u32) -> Duration {
        let exponent = retry_count.min(MAX_RETRIES_LIMIT) + 1;
        let multiplier = fastrand::u32(1..(1u32 << exponent));
        self.base_sleep
            .saturating_mul(multiplier)
            .min(self.max_sleep)
    }
}

impl RetryPolicy for ExponentialBackoffRetry {
    fn allow_retry(&self, retry_count: u32, _elapsed: Duration) -> Option<Duration> {
        (retry_count < self.max_retries).then(|| self.sleep_for(retry_count))
    }
}

/// [`ExponentialBackoffRetry`] with every sleep bounded by `max_sleep`
/// (Curator's `BoundedExponentialBackoffRetry`).
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{BoundedExponentialBackoffRetry, RetryPolicy};
///
/// let policy = BoundedExponentialBackoffRetry::new(
///     Duration::from_millis(100), Duration::from_millis(300), 10);
/// assert!(policy.allow_retry(9, Duration::ZERO).unwrap() <= Duration::from_millis(300));
/// ```
#[derive(Debug, Clone)]
pub struct BoundedExponentialBackoffRetry(ExponentialBackoffRetry);

impl BoundedExponentialBackoffRetry {
    /// `max_retries` retries from `base_sleep`, each sleep at most `max_sleep`.
    pub fn new(base_sleep: Duration, max_sleep: Duration, max_retries: u32) -> Self {
        Self(ExponentialBackoffRetry::with_max_sleep(
            base_sleep,
            max_retries,
            max_sleep,
        ))
    }
}

impl RetryPolicy for BoundedExponentialBackoffRetry {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration) -> Option<Duration> {
        self.0.allow_retry(retry_count, elapsed)
    }
}

/// Retries `n` times with the same sleep each time (Curator's `RetryNTimes`).
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{RetryNTimes, RetryPolicy};
///
/// let policy = RetryNTimes::new(2, Duration::from_millis(50));
/// assert_eq!(policy.allow_retry(1, Duration::ZERO), Some(Duration::from_millis(50)));
/// assert_eq!(policy.allow_retry(2, Duration::ZERO), None);
/// ```
#[derive(Debug, Clone)]
pub struct RetryNTimes {
    n: u32,
    sleep: Duration,
}

impl RetryNTimes {
    /// `n` retries, `sleep` apart.
    pub fn new(n: u32, sleep: Duration) -> Self {
        Self { n, sleep }
    }
}

impl RetryPolicy for RetryNTimes {
    fn allow_retry(&self, retry_count: u32, _elapsed: Duration) -> Option<Duration> {
        (retry_count < self.n).then_some(self.sleep)
    }
}

/// Retries once (Curator's `RetryOneTime`).
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{RetryOneTime, RetryPolicy};
///
/// let policy = RetryOneTime::new(Duration::from_millis(10));
/// assert!(policy.allow_retry(0, Duration::ZERO).is_some());
/// assert!(policy.allow_retry(1, Duration::ZERO).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct RetryOneTime(RetryNTimes);

impl RetryOneTime {
    /// One retry after `sleep`.
    pub fn new(sleep: Duration) -> Self {
        Self(RetryNTimes::new(1, sleep))
    }
}

impl RetryPolicy for RetryOneTime {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration) -> Option<Duration> {
        self.0.allow_retry(retry_count, elapsed)
    }
}

/// Retries, `sleep` apart, until `max_elapsed` has passed since the first attempt
/// (Curator's `RetryUntilElapsed`).
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{RetryPolicy, RetryUntilElapsed};
///
/// let policy = RetryUntilElapsed::new(Duration::from_secs(1), Duration::from_millis(100));
/// assert!(policy.allow_retry(50, Duration::from_millis(900)).is_some());
/// assert!(policy.allow_retry(0, Duration::from_secs(1)).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct RetryUntilElapsed {
    max_elapsed: Duration,
    sleep: Duration,
}

impl RetryUntilElapsed {
    /// Retries until `max_elapsed`, `sleep` apart.
    pub fn new(max_elapsed: Duration, sleep: Duration) -> Self {
        Self { max_elapsed, sleep }
    }
}

impl RetryPolicy for RetryUntilElapsed {
    fn allow_retry(&self, _retry_count: u32, elapsed: Duration) -> Option<Duration> {
        (elapsed < self.max_elapsed).then_some(self.sleep)
    }
}

/// Retries for ever, `sleep` apart (Curator's `RetryForever`).
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{RetryForever, RetryPolicy};
///
/// let policy = RetryForever::new(Duration::from_millis(100));
/// assert!(policy.allow_retry(u32::MAX, Duration::from_secs(3600)).is_some());
/// ```
#[derive(Debug, Clone)]
pub struct RetryForever {
    sleep: Duration,
}

impl RetryForever {
    /// Retries for ever, `sleep` apart.
    pub fn new(sleep: Duration) -> Self {
        Self { sleep }
    }
}

impl RetryPolicy for RetryForever {
    fn allow_retry(&self, _retry_count: u32, _elapsed: Duration) -> Option<Duration> {
        Some(self.sleep)
    }
}

/// Wraps another policy but never retries once the session has expired
/// (Curator's `SessionFailedRetryPolicy`): an operation that must not outlive its session fails
/// with [`Error::SessionExpired`] instead of running again on a new one.
///
/// ```
/// use std::time::Duration;
/// use zk_recipes::retry::{RetryForever, RetryPolicy, SessionFailedRetryPolicy};
/// use zk_recipes::Error;
///
/// let policy = SessionFailedRetryPolicy::new(RetryForever::new(Duration::from_millis(10)));
/// assert!(policy.allow_retry_on(&Error::ConnectionLoss));
/// assert!(!policy.allow_retry_on(&Error::SessionExpired));
/// ```
#[derive(Debug, Clone)]
pub struct SessionFailedRetryPolicy<P> {
    delegate: P,
}

impl<P: RetryPolicy> SessionFailedRetryPolicy<P> {
    /// Retries as `delegate` does, except after a session expiry.
    pub fn new(delegate: P) -> Self {
        Self { delegate }
    }
}

impl<P: RetryPolicy> RetryPolicy for SessionFailedRetryPolicy<P> {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration) -> Option<Duration> {
        self.delegate.allow_retry(retry_count, elapsed)
    }

    fn allow_retry_on(&self, error: &Error) -> bool {
        !matches!(error, Error::SessionExpired) && self.delegate.allow_retry_on(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_follows_curators_formula() {
        let base = Duration::from_millis(10);
        let policy = ExponentialBackoffRetry::new(base, 10);
        for retry in 0..10u32 {
            let upper = base * (1 << (retry + 1));
            for _ in 0..200 {
                let sleep = policy.allow_retry(retry, Duration::ZERO).unwrap();
                assert!(sleep >= base && sleep < upper, "retry {retry}: {sleep:?}");
                assert_eq!(
                    sleep.as_nanos() % base.as_nanos(),
                    0,
                    "a whole multiple of base"
                );
            }
        }
        assert!(policy.allow_retry(10, Duration::ZERO).is_none());
    }

    #[test]
    fn exponential_backoff_caps_retries_at_29_and_never_overflows() {
        let policy = ExponentialBackoffRetry::new(Duration::from_secs(1), 1000);
        assert_eq!(policy.max_retries(), 29);
        assert!(policy.allow_retry(28, Duration::ZERO).is_some());
        assert!(policy.allow_retry(29, Duration::ZERO).is_none());
    }

    #[test]
    fn bounded_exponential_backoff_respects_its_bound() {
        let policy = BoundedExponentialBackoffRetry::new(
            Duration::from_millis(10),
            Duration::from_millis(25),
            20,
        );
        for retry in 0..20 {
            assert!(
                policy.allow_retry(retry, Duration::ZERO).unwrap() <= Duration::from_millis(25)
            );
        }
    }

    #[test]
    fn fixed_policies() {
        let n = RetryNTimes::new(3, Duration::from_millis(7));
        assert_eq!(
            (0..5)
                .map(|i| n.allow_retry(i, Duration::ZERO))
                .collect::<Vec<_>>(),
            vec![
                Some(Duration::from_millis(7)),
                Some(Duration::from_millis(7)),
                Some(Duration::from_millis(7)),
                None,
                None
            ]
        );
        let until = RetryUntilElapsed::new(Duration::from_secs(2), Duration::from_millis(5));
        assert!(until
            .allow_retry(1000, Duration::from_millis(1999))
            .is_some());
        assert!(until.allow_retry(0, Duration::from_secs(2)).is_none());
    }

    #[test]
    fn only_retryable_errors_are_retried() {
        let policy = RetryForever::new(Duration::ZERO);
        assert!(policy.allow_retry_on(&Error::ConnectionLoss));
        assert!(!policy.allow_retry_on(&Error::NoAuth));
        assert!(!policy.allow_retry_on(&Error::InvalidArgument("x".into())));
    }
}
