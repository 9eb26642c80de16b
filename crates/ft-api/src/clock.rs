//! The injectable clock used by the token cache, the pacer and the retry loop.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// A source of time and a way to wait.
///
/// The client never calls `Instant::now`, `Utc::now` or `tokio::time::sleep` directly, so a test
/// can substitute a clock and make token expiry, pacing and backoff deterministic.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Monotonic time, used for pacing, backoff and elapsed-time limits.
    fn now(&self) -> Instant;
    /// Wall-clock time, used for token expiry and secret validity.
    fn utc(&self) -> DateTime<Utc>;
    /// Waits for `d`.
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The default clock: tokio's monotonic time for pacing and waits, the system's wall clock for
/// token expiry.
///
/// Wall-clock time comes straight from the system (not derived from the monotonic clock), so a
/// machine that was suspended or had its clock corrected still judges token expiry right. Tests
/// that need to move wall-clock time use [`ManualClock`]; tokio's paused clock
/// (`tokio::time::pause`) moves `now` and `sleep` only.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock.
    pub fn new() -> Self {
        SystemClock
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn utc(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(precise_sleep(d))
    }
}

/// How much of a sleep is spent yielding instead of on tokio's timer.
const SPIN: Duration = Duration::from_millis(2);

/// Sleeps for `d`, ending within microseconds of the deadline rather than up to a timer tick
/// (about 1 ms) late.
///
/// The pacer's per-second bucket holds a single token, so time spent late after it refilled is
/// refill the bucket drops: sleeping with tokio's 1 ms timer alone cost about 2% of the allowed
/// rate at 20 requests per second. The last two milliseconds are therefore spent yielding
/// (about 4% of one core at 20 requests per second). Under
/// tokio's paused test clock, yielding does not move time, so the spin gives up after a few
/// milliseconds of real time and falls back to the timer, which auto-advances.
async fn precise_sleep(d: Duration) {
    let deadline = Instant::now() + d;
    if d > SPIN {
        tokio::time::sleep_until(deadline - SPIN).await;
    }
    let spin_started = std::time::Instant::now();
    while Instant::now() < deadline {
        if spin_started.elapsed() > SPIN * 3 {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// A test clock whose time moves only when told to, or when someone sleeps on it.
///
/// `sleep(d)` advances the clock by `d` and returns at once, so backoff, `Retry-After` and pacing
/// waits cost no wall-clock time, and `advance` jumps past a token's expiry. Concurrent sleepers
/// each advance the clock, so time may run faster than in reality, never slower, which keeps
/// every "at most N per window" property intact.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    start_utc: DateTime<Utc>,
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// A clock starting at the current time.
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A clock whose wall-clock time starts at `utc`.
    pub fn starting_at(utc: DateTime<Utc>) -> Self {
        Self {
            start: Instant::now(),
            start_utc: utc,
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) += d;
    }

    /// Total time advanced (by `advance` and by sleeps).
    pub fn elapsed(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }

    fn utc(&self) -> DateTime<Utc> {
        self.start_utc
            + chrono::Duration::from_std(self.elapsed()).unwrap_or(chrono::TimeDelta::MAX)
    }

    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.advance(d);
        Box::pin(tokio::task::yield_now())
    }
}
