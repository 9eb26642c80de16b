//! The one shared request budget in front of every request, token requests included.
//!
//! # Why the buckets can never exceed the server's limits
//!
//! The server allows at most `L` requests in any window of length `W` (42: `L = 2, W = 1 s` and
//! `L = 1200, W = 3600 s`). Each limit gets a token bucket from the `ratelimit` crate with capacity
//! `B` (tokens it can hold) and a refill of `r` tokens per second. A request is sent only after it
//! took a token from *both* buckets.
//!
//! 1. A bucket holds at most `B` tokens at the start of any interval and gains at most `r·T` during
//!    an interval of length `T`, so at most `B + r·T` tokens can be taken in it. Takes are whole
//!    tokens, so the count is at most `floor(B + r·T)`.
//! 2. A request reaches the server some time after its token was taken. If that delay varies by at
//!    most `J` (the *jitter margin*, [`DEFAULT_JITTER_MARGIN`] unless configured), the requests the
//!    server sees in any window of length `W` took their tokens within an interval of length
//!    `W + J`.
//! 3. So the server sees at most `floor(B + r·(W + J))` requests in any window. We choose
//!    `r = (L + 1 - B) / (W + J + 1 ms)`, which makes `B + r·(W + J) < L + 1`, hence at most `L`.
//!
//! With 42's defaults and `J = 100 ms`: the per-second bucket has `B = 1` and refills 2 tokens per
//! 1.101 s (1.82/s); the hourly bucket has `B = 12` and refills 1189 tokens per 3600.101 s, so any
//! hour sees at most `floor(12 + 1189·3600.1/3600.101) = 1200`. Note that a naive bucket of
//! 1200/h with any capacity `B ≥ 1` allows `B + 1200 ≥ 1201` requests in some hour: one too many.
//!
//! "Taken together or not at all": the hourly token is taken first; if the per-second bucket is
//! empty, the hourly token is given back (see [`Bucket::give_back`]) so a wait for the per-second
//! budget never burns hourly budget. A token given back may be reused only while the bucket could
//! not have hit its capacity in between, which keeps step 1 exact.
//!
//! # Server headers
//!
//! `X-*-RateLimit-Limit` replaces the configured limit (an application with higher limits goes
//! faster, one with lower limits slows down at once). `X-*-RateLimit-Remaining` tells how much of
//! the window the server has seen used; whatever exceeds our own sends in that window is another
//! consumer of the same application, and the limit we pace for is lowered by that amount until it
//! disappears. A 429 pauses the whole budget for `Retry-After`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratelimit::{Ratelimiter, TryWaitError};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::RateConfig;
use crate::event::BudgetSnapshot;

/// The default allowance for variation in the delay between taking a token and the request
/// reaching the server (network latency jitter, scheduling); see the module docs.
pub const DEFAULT_JITTER_MARGIN: Duration = Duration::from_millis(100);

/// A small extra length added to the refill period so the inequality in step 3 is strict.
const STRICTNESS: Duration = Duration::from_millis(1);

/// Token-bucket parameters derived from a limit; see the module docs for the proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketParams {
    /// Capacity `B`: the largest burst.
    pub burst: u64,
    /// Tokens added per `period` (`L + 1 - B`).
    pub tokens: u64,
    /// The refill period (`W + J + 1 ms`).
    pub period: Duration,
}

impl BucketParams {
    /// Derives safe parameters for "at most `limit` requests in any window of length `window`"
    /// given the latency jitter margin, with the given burst (clamped to `1..=limit`).
    pub fn derive(limit: u32, window: Duration, margin: Duration, burst: u64) -> BucketParams {
        let limit = u64::from(limit.max(1));
        let burst = burst.clamp(1, limit);
        BucketParams {
            burst,
            tokens: limit + 1 - burst,
            period: window + margin + STRICTNESS,
        }
    }

    /// The steady refill rate in tokens per second.
    pub fn rate_per_sec(&self) -> f64 {
        self.tokens as f64 / self.period.as_secs_f64()
    }

    /// The largest number of takes this bucket allows in an interval of length `t`
    /// (`floor(B + r·t)`).
    pub fn max_takes_in(&self, t: Duration) -> u64 {
        // Integer arithmetic in nanoseconds keeps the bound exact.
        let t = t.as_nanos();
        let p = self.period.as_nanos().max(1);
        self.burst + (u128::from(self.tokens) * t / p) as u64
    }
}

/// The burst of the per-second bucket: one, which gives the highest steady rate.
fn second_burst(_limit: u32) -> u64 {
    1
}

/// The burst of the hourly bucket: 1% of the limit (at least 1), so a fresh client starts at once
/// while the steady rate stays at 99% of the limit.
fn hour_burst(limit: u32) -> u64 {
    u64::from(limit / 100).max(1)
}

/// Adapts the injectable clock to the `ratelimit` crate's clock.
struct RlClock {
    clock: Arc<dyn Clock>,
    origin: Instant,
}

impl ratelimit::Clock for RlClock {
    fn elapsed(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.origin)
    }
}

/// What a successful take consumed, so it can be given back exactly.
#[derive(Debug, Clone, Copy)]
enum Taken {
    Fresh,
    Refund(Instant),
}

/// One `ratelimit` bucket plus a slot for a token given back.
struct Bucket {
    rl: Ratelimiter<RlClock>,
    params: BucketParams,
    /// A token given back, usable until the instant stored (see `give_back`).
    refund_until: Option<Instant>,
}

impl Bucket {
    fn new(params: BucketParams, clock: Arc<dyn Clock>) -> Bucket {
        let origin = clock.now();
        let rl = ratelimit::Builder::with_clock(params.tokens, RlClock { clock, origin })
            .period(params.period)
            .max_tokens(params.burst)
            .initial_available(params.burst)
            .build()
            .expect("derived bucket parameters are valid: burst >= 1, period > 0");
        Bucket {
            rl,
            params,
            refund_until: None,
        }
    }

    fn set_params(&mut self, params: BucketParams) {
        if params == self.params {
            return;
        }
        self.rl.set_max_tokens(params.burst);
        self.rl.set_rate_per(params.tokens, params.period);
        self.params = params;
        self.refund_until = None;
    }

    fn take(&mut self, now: Instant) -> Result<Taken, Duration> {
        if let Some(until) = self.refund_until.take()
            && now < until
        {
            return Ok(Taken::Refund(until));
        }
        match self.rl.try_wait() {
            Ok(()) => Ok(Taken::Fresh),
            Err(TryWaitError::Insufficient(d)) => Err(d),
            // Capacity is at least one token, so this is unreachable today; waiting one refill
            // interval is the safe answer should it ever happen.
            Err(_) => Err(self.params.period / self.params.tokens.max(1) as u32),
        }
    }

    /// Undoes a take that could not be used because the other bucket was empty.
    ///
    /// `ratelimit` cannot add tokens, so the token is kept aside. Reusing it later is the same as
    /// never having taken it *unless* the bucket would have hit its capacity in between and
    /// dropped refill. Right after our take the bucket held `k` tokens with `k < available + 1`;
    /// without the take it would hold `k + 1` and reach capacity `B` after `(B - k - 1)/r` at
    /// the earliest, which is at least `(B - available - 2)/r`. The refund expires then.
    fn give_back(&mut self, taken: Taken, now: Instant) {
        match taken {
            Taken::Refund(until) => self.refund_until = Some(until),
            Taken::Fresh => {
                let available = self.rl.available();
                let headroom = self.params.burst.saturating_sub(available + 2);
                if headroom > 0 {
                    let per_token = self.params.period.as_secs_f64() / self.params.tokens as f64;
                    let valid = Duration::from_secs_f64(per_token * headroom as f64);
                    self.refund_until = Some(now + valid);
                }
            }
        }
    }
}

/// Limits as announced by the server, and what it last said remains.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateHeaders {
    pub(crate) secondly_limit: Option<u32>,
    pub(crate) secondly_remaining: Option<u32>,
    pub(crate) hourly_limit: Option<u32>,
    pub(crate) hourly_remaining: Option<u32>,
    pub(crate) app_id: Option<String>,
}

struct State {
    second: Bucket,
    hour: Bucket,
    /// The limits the server allows (configured, replaced by limit headers).
    base: RateConfig,
    /// The limits paced for: `base` minus another consumer's use of the same window.
    effective: (u32, u32),
    /// A server-imposed pause (429) for everyone.
    blocked_until: Option<Instant>,
    /// Our own takes, to tell our use of a server window from another consumer's.
    sent: VecDeque<Instant>,
    secondly_remaining_seen: Option<u32>,
    hourly_remaining_seen: Option<u32>,
    app_id: Option<String>,
}

/// The shared budget.
pub(crate) struct Pacer {
    clock: Arc<dyn Clock>,
    /// Waiters queue here one at a time (tokio's mutex is fair), so the budget goes out in order
    /// of arrival and nobody starves.
    turn: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    margin: Duration,
    follow_server_limits: bool,
    /// Callers inside `acquire` (queued or sleeping): how busy this budget is, for choosing
    /// between applications.
    waiting: AtomicUsize,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("margin", &self.margin)
            .field("follow_server_limits", &self.follow_server_limits)
            .finish_non_exhaustive()
    }
}

impl Pacer {
    pub(crate) fn new(
        config: RateConfig,
        margin: Duration,
        follow_server_limits: bool,
        clock: Arc<dyn Clock>,
    ) -> Pacer {
        let second = Bucket::new(
            Self::second_params(config.per_second, margin),
            clock.clone(),
        );
        let hour = Bucket::new(
            Self::hour_params(config.per_hour, config.hour, margin),
            clock.clone(),
        );
        Pacer {
            clock,
            turn: tokio::sync::Mutex::new(()),
            state: Mutex::new(State {
                second,
                hour,
                base: config,
                effective: (config.per_second, config.per_hour),
                blocked_until: None,
                sent: VecDeque::new(),
                secondly_remaining_seen: None,
                hourly_remaining_seen: None,
                app_id: None,
            }),
            margin,
            follow_server_limits,
            waiting: AtomicUsize::new(0),
        }
    }

    fn second_params(limit: u32, margin: Duration) -> BucketParams {
        BucketParams::derive(limit, Duration::from_secs(1), margin, second_burst(limit))
    }

    fn hour_params(limit: u32, window: Duration, margin: Duration) -> BucketParams {
        BucketParams::derive(limit, window, margin, hour_burst(limit))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until both buckets grant a token, and returns how long that took. `on_wait` is
    /// called before each sleep with its length.
    pub(crate) async fn acquire(&self, mut on_wait: impl FnMut(Duration)) -> Duration {
        let start = self.clock.now();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _queued = QueuedGuard(&self.waiting);
        let _turn = self.turn.lock().await;
        loop {
            let now = self.clock.now();
            let wait = self.lock().try_take(now, self.margin);
            match wait {
                None => break,
                Some(d) => {
                    on_wait(d);
                    self.clock.sleep(d).await;
                }
            }
        }
        self.clock.now().saturating_duration_since(start)
    }

    /// Pauses the whole budget for `d` (after a 429).
    pub(crate) fn pause(&self, d: Duration) {
        let until = self.clock.now() + d;
        let mut st = self.lock();
        st.blocked_until = Some(st.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Applies the rate-limit headers of a response.
    pub(crate) fn observe(&self, h: &RateHeaders) {
        let now = self.clock.now();
        let mut st = self.lock();
        if h.app_id.is_some() {
            st.app_id.clone_from(&h.app_id);
        }
        if h.secondly_remaining.is_some() {
            st.secondly_remaining_seen = h.secondly_remaining;
        }
        if h.hourly_remaining.is_some() {
            st.hourly_remaining_seen = h.hourly_remaining;
        }
        if self.follow_server_limits {
            if let Some(l) = h.secondly_limit.filter(|l| *l > 0) {
                st.base.per_second = l;
            }
            if let Some(l) = h.hourly_limit.filter(|l| *l > 0) {
                st.base.per_hour = l;
            }
        }
        let margin = self.margin;
        let hour_window = st.base.hour;
        let per_second = st.base.per_second;
        let per_hour = st.base.per_hour;
        let foreign_s = h
            .secondly_remaining
            .map(|r| st.foreign_use(per_second, r, Duration::from_secs(1) + margin, now))
            .unwrap_or(0);
        let foreign_h = h
            .hourly_remaining
            .map(|r| st.foreign_use(per_hour, r, hour_window + margin, now))
            .unwrap_or(0);
        let eff = (
            per_second.saturating_sub(foreign_s).max(1),
            per_hour.saturating_sub(foreign_h).max(1),
        );
        if eff != st.effective {
            if eff.0 < st.effective.0 || eff.1 < st.effective.1 {
                tracing::info!(
                    per_second = eff.0,
                    per_hour = eff.1,
                    "another consumer or a lower server limit: pacing for a smaller budget"
                );
            }
            st.effective = eff;
            st.second.set_params(Self::second_params(eff.0, margin));
            st.hour
                .set_params(Self::hour_params(eff.1, hour_window, margin));
        }
    }

    pub(crate) fn snapshot(&self) -> BudgetSnapshot {
        let st = self.lock();
        BudgetSnapshot {
            per_second: st.effective.0,
            per_hour: st.effective.1,
            hourly_remaining_seen: st.hourly_remaining_seen,
            secondly_remaining_seen: st.secondly_remaining_seen,
            app_id: st.app_id.clone(),
        }
    }

    /// The bucket parameters in force: (per-second, hourly).
    pub(crate) fn params(&self) -> (BucketParams, BucketParams) {
        let st = self.lock();
        (st.second.params, st.hour.params)
    }

    /// The server limits in force (configured, replaced by limit headers), without the
    /// reduction for another consumer: what a shared budget must keep across processes.
    pub(crate) fn limits(&self) -> RateConfig {
        self.lock().base
    }

    /// The jitter margin built into the buckets.
    pub(crate) fn margin(&self) -> Duration {
        self.margin
    }

    /// A rough estimate of how long a new caller would wait for this budget: a server pause,
    /// the per-second bucket's next token after our last take, the hourly budget when our own
    /// takes in the window nearly use it up, and one steady interval for each caller already
    /// queued. Used only to choose between applications, never to pace (the buckets do that
    /// exactly; their token counts cannot be read without taking).
    pub(crate) fn estimate_wait(&self) -> Duration {
        let now = self.clock.now();
        let st = self.lock();
        let interval =
            |p: &BucketParams| p.period / u32::try_from(p.tokens.max(1)).unwrap_or(u32::MAX);
        let blocked = st
            .blocked_until
            .map_or(Duration::ZERO, |u| u.saturating_duration_since(now));
        let second = st.sent.back().map_or(Duration::ZERO, |last| {
            (*last + interval(&st.second.params)).saturating_duration_since(now)
        });
        let window = st.base.hour + self.margin;
        let in_hour = st
            .sent
            .iter()
            .rev()
            .take_while(|t| now.saturating_duration_since(**t) <= window)
            .count();
        let hour = if in_hour + 1 >= st.effective.1 as usize {
            interval(&st.hour.params)
        } else {
            Duration::ZERO
        };
        let steady = interval(&st.second.params).max(interval(&st.hour.params));
        let queued = u32::try_from(self.waiting.load(Ordering::SeqCst)).unwrap_or(u32::MAX);
        blocked
            .max(second)
            .max(hour)
            .saturating_add(steady.saturating_mul(queued))
    }
}

/// Decrements the waiter count when an `acquire` ends (or is cancelled).
struct QueuedGuard<'a>(&'a AtomicUsize);

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl State {
    fn try_take(&mut self, now: Instant, margin: Duration) -> Option<Duration> {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Some(until - now);
            }
            self.blocked_until = None;
        }
        let hour = match self.hour.take(now) {
            Ok(t) => t,
            Err(d) => return Some(d),
        };
        match self.second.take(now) {
            Ok(_) => {
                self.record(now, margin);
                None
            }
            Err(d) => {
                self.hour.give_back(hour, now);
                Some(d)
            }
        }
    }

    fn record(&mut self, now: Instant, margin: Duration) {
        self.sent.push_back(now);
        let keep = self.base.hour.max(Duration::from_secs(1)) + margin + margin;
        while let Some(front) = self.sent.front() {
            if now.saturating_duration_since(*front) > keep {
                self.sent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Requests the server counted in its window beyond our own sends in (a slightly longer)
    /// window: another consumer of the same application.
    fn foreign_use(&self, limit: u32, remaining: u32, window: Duration, now: Instant) -> u32 {
        let used_by_server = limit.saturating_sub(remaining);
        let ours = self
            .sent
            .iter()
            .rev()
            .take_while(|t| now.saturating_duration_since(**t) <= window)
            .count();
        used_by_server.saturating_sub(u32::try_from(ours).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn defaults_never_exceed_the_limits() {
        let margin = DEFAULT_JITTER_MARGIN;
        let s = Pacer::second_params(2, margin);
        let h = Pacer::hour_params(1200, Duration::from_secs(3600), margin);
        assert_eq!(s.max_takes_in(Duration::from_secs(1) + margin), 2);
        assert_eq!(h.max_takes_in(Duration::from_secs(3600) + margin), 1200);
        // A naive 1200/h bucket is one too many.
        let naive = BucketParams {
            burst: 1,
            tokens: 1200,
            period: Duration::from_secs(3600),
        };
        assert_eq!(naive.max_takes_in(Duration::from_secs(3600)), 1201);
    }

    #[test]
    fn derived_params_are_safe_and_efficient_for_many_limits() {
        for limit in [1u32, 2, 3, 8, 20, 100, 300, 1200, 5000] {
            for window_s in [1u64, 10, 3600] {
                for margin_ms in [0u64, 20, 100] {
                    let window = Duration::from_secs(window_s);
                    let margin = Duration::from_millis(margin_ms);
                    for burst in [1, hour_burst(limit)] {
                        let p = BucketParams::derive(limit, window, margin, burst);
                        assert!(
                            p.max_takes_in(window + margin) <= u64::from(limit),
                            "{limit}/{window_s}s margin {margin_ms}: {p:?}"
                        );
                    }
                }
            }
        }
        // With burst 1 the steady rate is L / (W + J + 1 ms): 97.9% of 20/s at J = 20 ms.
        let p = BucketParams::derive(20, Duration::from_secs(1), Duration::from_millis(20), 1);
        assert!(p.rate_per_sec() > 19.5, "{}", p.rate_per_sec());
    }

    /// Drives the pacer greedily on a manual clock (waits cost no real time) and checks every
    /// sliding window.
    #[tokio::test]
    async fn greedy_takes_stay_within_every_sliding_window() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let config = RateConfig {
            per_second: 20,
            per_hour: 300,
            hour: Duration::from_secs(10),
        };
        let pacer = Pacer::new(config, Duration::ZERO, true, clock.clone());
        let start = clock.now();
        let mut times = Vec::new();
        for _ in 0..1000 {
            pacer.acquire(|_| {}).await;
            times.push(clock.now().duration_since(start));
        }
        let max_in = |w: Duration| {
            let mut best = 0;
            let mut j = 0;
            for i in 0..times.len() {
                while times[i] - times[j] > w {
                    j += 1;
                }
                best = best.max(i - j + 1);
            }
            best
        };
        assert!(max_in(Duration::from_secs(1)) <= 20);
        assert!(max_in(Duration::from_secs(10)) <= 300);
        // The per-second bucket binds here (19.98/s against 29.8/s for the hourly one).
        let elapsed = times.last().unwrap().as_secs_f64();
        let rate = 999.0 / elapsed;
        assert!(rate > 19.0, "achieved {rate}/s");
    }

    /// 42's defaults over more than an hour of greedy use, with no jitter margin at all: never
    /// more than 2 in a second or 1200 in an hour.
    #[tokio::test]
    async fn defaults_hold_over_a_greedy_hour() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let pacer = Pacer::new(RateConfig::default(), Duration::ZERO, true, clock.clone());
        let start = clock.now();
        let mut times = Vec::new();
        for _ in 0..1500 {
            pacer.acquire(|_| {}).await;
            times.push(clock.now().duration_since(start));
        }
        let max_in = |w: Duration| {
            let (mut best, mut j) = (0, 0);
            for i in 0..times.len() {
                while times[i] - times[j] > w {
                    j += 1;
                }
                best = best.max(i - j + 1);
            }
            best
        };
        assert!(max_in(Duration::from_secs(1)) <= 2);
        let hour = max_in(Duration::from_secs(3600));
        // Safe, and within a request or two of the limit (the bound is floor(B + r·W) = 1200).
        assert!((1198..=1200).contains(&hour), "{hour}");
    }

    #[tokio::test]
    async fn a_per_second_wait_does_not_burn_hourly_budget() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        // Hourly: burst 100, refilling 0.1/s; per-second: about 2/s. Every acquisition after the
        // first waits for the per-second bucket once, after taking an hourly token.
        let config = RateConfig {
            per_second: 1,
            per_hour: 10_000,
            hour: Duration::from_secs(100_000),
        };
        let pacer = Pacer::new(config, Duration::ZERO, true, clock.clone());
        let n = 10;
        for _ in 0..n {
            pacer.acquire(|_| {}).await;
        }
        let st = pacer.lock();
        let left = st.hour.rl.available() + u64::from(st.hour.refund_until.is_some());
        // Without giving tokens back, each per-second wait would burn one hourly token: about
        // 2n - 1 = 19 used. With give-back only the takes near the bucket's capacity (where the
        // bucket would have dropped refill anyway) cannot be refunded.
        assert!(left >= 100 - n - 2, "hourly tokens left: {left}");
    }

    #[tokio::test]
    async fn headers_raise_limits_and_detect_another_consumer() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let pacer = Pacer::new(RateConfig::default(), DEFAULT_JITTER_MARGIN, true, clock);
        pacer.acquire(|_| {}).await;
        pacer.observe(&RateHeaders {
            secondly_limit: Some(8),
            secondly_remaining: Some(7),
            hourly_limit: Some(3600),
            hourly_remaining: Some(3599),
            app_id: Some("42".into()),
        });
        let snap = pacer.snapshot();
        assert_eq!((snap.per_second, snap.per_hour), (8, 3600));
        assert_eq!(snap.app_id.as_deref(), Some("42"));
        // The server has seen 600 requests this hour but we sent one: someone else sent 599.
        pacer.observe(&RateHeaders {
            hourly_limit: Some(3600),
            hourly_remaining: Some(3000),
            ..RateHeaders::default()
        });
        assert_eq!(pacer.snapshot().per_hour, 3600 - 599);
        let (_, h) = pacer.params();
        assert_eq!(h.burst, 30);
    }

    #[tokio::test]
    async fn pause_blocks_everyone() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let pacer = Pacer::new(RateConfig::default(), Duration::ZERO, true, clock.clone());
        pacer.pause(Duration::from_secs(5));
        let waited = pacer.acquire(|_| {}).await;
        assert!(waited >= Duration::from_secs(5), "{waited:?}");
    }
}
