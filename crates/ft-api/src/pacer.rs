//! The one shared request budget in front of every request, token requests included.
//!
//! # What the server counts, and the rule that keeps us under it
//!
//! The server allows at most `L` requests in any window of length `W` (42: `L = 2, W = 1 s` and
//! `L = 1200, W = 3600 s`), counting *arrivals*: two requests share a window when they reach the
//! server less than `W` apart. The pacer keeps a log of every request that may still count, each
//! with an *arrival bound* `u`: an instant no earlier than its arrival at the server.
//!
//! * Our own request sent at `s`: while it is in flight, `u = ∞` (it may still arrive); once its
//!   answer (or its failure) came back at `r`, `u = r`, because the server saw it before it
//!   answered. This is the margin *measured* per request: `r - s`, the request's latency. With a
//!   fixed margin `M` configured instead, `u = s + M` (the old rule; `M = 0` assumes arrival at
//!   the instant of sending, which a real network breaks).
//! * A request an earlier process sent (the persisted request log or rate ledger, see
//!   [`crate::SharedBudget::history`]): `u = s + SEEDED_ALLOWANCE`.
//! * A request the server counted that we cannot account for (another consumer of the
//!   application, or history we do not have), learned from `X-*-RateLimit-Remaining`: `u` = the
//!   instant that answer came back (we cannot know when it was sent, so it is assumed to leave
//!   the window no earlier than one full window from now).
//!
//! **Rule**: a request may be sent at `t` only if fewer than `L` entries have `u > t - W`, i.e.
//! once the `L`-th largest bound `u_L` satisfies `t ≥ u_L + W`.
//!
//! **Proof** that the server never sees more than `L` arrivals in a window `[a, a + W)`: suppose
//! it saw `L + 1`, and let `n` be the one we sent last, at `t`. The `L` others reached the server
//! at or after `a`, so each has `u ≥ a`; they were all in the log when `n` was sent (our own
//! ones were sent before it; others were counted by the server before answering a request of
//! ours whose answer we had read, or are in the persisted log). So `u_L ≥ a` and `t ≥ a + W`;
//! `n` arrived at or after `t`, outside the window: a contradiction. No assumption about latency
//! is made: a slow request simply keeps its slot longer.
//!
//! # Spending what the server says is left
//!
//! A fresh process sends one request at a time until the first answer from the API, then paces
//! by the log: the server's `X-Hourly-RateLimit-Remaining` `R` (after that request) says it
//! counts `L - R` requests; those of ours that certainly arrived before that request and within
//! the window are in the log, and the rest become entries with `u` = now. So `R` more requests
//! may go at the per-second rate, then each request waits for the oldest counted one to leave
//! the window. Every answer refreshes these unseen entries (a co-consumer lowers the budget, one
//! that stopped raises it back). The per-second window is handled the same way.
//!
//! A 429 pauses the whole budget for `Retry-After`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::RateConfig;
use crate::event::BudgetSnapshot;

/// The fixed margin of earlier versions, kept for callers that configure one explicitly with
/// [`crate::FtClientBuilder::jitter_margin`]; the default is to measure each request's latency
/// (see the module docs). Also the margin reported before any latency was measured.
pub const DEFAULT_JITTER_MARGIN: Duration = Duration::from_millis(100);

/// How long after its send instant a request from the persisted history may have reached the
/// server (its latency was measured by another process, or not at all).
const SEEDED_ALLOWANCE: Duration = Duration::from_secs(1);

/// How many recent latencies the reported margin is the maximum of.
const LATENCY_SAMPLES: usize = 64;

/// While a request waits for another one's answer, it re-checks at least this often.
const COMPLETION_POLL: Duration = Duration::from_millis(50);

/// Token-bucket parameters; kept as a description of the budget's steady rate.
///
/// The pacer no longer uses token buckets (see the module docs); [`crate::FtClient::bucket_params`]
/// describes the sliding-window log in these terms: `burst` = `L`, `tokens` = `L` per
/// `period` = `W` + the current margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketParams {
    /// Capacity `B`: the largest burst.
    pub burst: u64,
    /// Tokens added per `period`.
    pub tokens: u64,
    /// The refill period.
    pub period: Duration,
}

impl BucketParams {
    /// The parameters of a token bucket that never allows more than `limit` requests in any
    /// window of length `window` even when requests are delayed by up to `margin`, with the
    /// given burst (clamped to `1..=limit`): `tokens = L + 1 - B` per `W + margin + 1 ms`, so
    /// `floor(B + r·(W + margin)) <= L`.
    pub fn derive(limit: u32, window: Duration, margin: Duration, burst: u64) -> BucketParams {
        let limit = u64::from(limit.max(1));
        let burst = burst.clamp(1, limit);
        BucketParams {
            burst,
            tokens: limit + 1 - burst,
            period: window + margin + Duration::from_millis(1),
        }
    }

    /// The steady refill rate in tokens per second.
    pub fn rate_per_sec(&self) -> f64 {
        self.tokens as f64 / self.period.as_secs_f64()
    }

    /// The largest number of takes a token bucket with these parameters allows in an interval
    /// of length `t` (`floor(B + r·t)`).
    pub fn max_takes_in(&self, t: Duration) -> u64 {
        let t = t.as_nanos();
        let p = self.period.as_nanos().max(1);
        self.burst + (u128::from(self.tokens) * t / p) as u64
    }
}

/// How arrival bounds of our own requests are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Margin {
    /// `u` = the instant the answer came back (∞ while in flight): the default.
    Measured,
    /// `u` = send instant + this.
    Fixed(Duration),
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

/// One of our requests (or one from the persisted history).
#[derive(Debug, Clone, Copy)]
struct Sent {
    id: u64,
    sent: Instant,
    /// When its answer or failure came back; `None` while in flight.
    done: Option<Instant>,
    /// From the persisted history: `u = sent + SEEDED_ALLOWANCE`.
    seeded: bool,
}

struct State {
    /// The limits the server allows (configured, replaced by limit headers).
    base: RateConfig,
    /// A server-imposed pause (429) for everyone.
    blocked_until: Option<Instant>,
    /// Our requests, oldest first.
    sent: VecDeque<Sent>,
    next_id: u64,
    /// Requests the server counted that the log cannot account for, per window (arrival
    /// bounds). Replaced by every answer that carries a `Remaining` header.
    unseen_second: Vec<Instant>,
    unseen_hour: Vec<Instant>,
    /// No answer from the API yet: one request at a time.
    probing: bool,
    /// Recent latencies (answer - send), for the reported margin.
    latencies: VecDeque<Duration>,
    secondly_remaining_seen: Option<u32>,
    hourly_remaining_seen: Option<u32>,
    app_id: Option<String>,
}

/// What stops a request from going now.
enum Wait {
    For(Duration),
    /// The slot is held by requests in flight: wait for an answer.
    Answer,
}

/// The shared budget.
pub(crate) struct Pacer {
    clock: Arc<dyn Clock>,
    /// Waiters queue here one at a time (tokio's mutex is fair), so the budget goes out in order
    /// of arrival and nobody starves.
    turn: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    margin: Margin,
    follow_server_limits: bool,
    /// Callers inside `acquire` (queued or sleeping): how busy this budget is, for choosing
    /// between applications.
    waiting: AtomicUsize,
    /// Signalled when a request's answer comes back.
    answered: tokio::sync::Notify,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("margin", &self.margin)
            .field("follow_server_limits", &self.follow_server_limits)
            .finish_non_exhaustive()
    }
}

/// A request that took budget: report its answer with [`Ticket::answered`]. Dropped without
/// that (a transport error, a cancelled request), it counts as ended at the drop.
pub(crate) struct Ticket<'a> {
    pacer: &'a Pacer,
    id: u64,
    finished: bool,
}

impl Ticket<'_> {
    /// The request really leaves now (after a further wait, for the shared budget).
    pub(crate) fn sending(&self) {
        let now = self.pacer.clock.now();
        let mut st = self.pacer.lock();
        if let Some(s) = st.sent.iter_mut().rev().find(|s| s.id == self.id) {
            s.sent = s.sent.max(now);
        }
    }

    /// The answer came back with these headers; `api` is false for the token endpoint (whose
    /// answers carry no budget figures and do not end the first-request probe).
    pub(crate) fn answered(mut self, headers: &RateHeaders, api: bool) {
        self.finished = true;
        self.pacer.finish(self.id, Some((headers, api)));
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.pacer.finish(self.id, None);
        }
    }
}

impl Pacer {
    pub(crate) fn new(
        config: RateConfig,
        margin: Margin,
        follow_server_limits: bool,
        clock: Arc<dyn Clock>,
    ) -> Pacer {
        Pacer {
            clock,
            turn: tokio::sync::Mutex::new(()),
            state: Mutex::new(State {
                base: config,
                blocked_until: None,
                sent: VecDeque::new(),
                next_id: 0,
                unseen_second: Vec::new(),
                unseen_hour: Vec::new(),
                probing: true,
                latencies: VecDeque::new(),
                secondly_remaining_seen: None,
                hourly_remaining_seen: None,
                app_id: None,
            }),
            margin,
            follow_server_limits,
            waiting: AtomicUsize::new(0),
            answered: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the log allows one more request, records it as sent, and returns how long
    /// that took with the ticket to report its answer on. `on_wait` is called before each
    /// sleep with its length.
    pub(crate) async fn acquire(
        &self,
        mut on_wait: impl FnMut(Duration),
    ) -> (Duration, Ticket<'_>) {
        let start = self.clock.now();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _queued = QueuedGuard(&self.waiting);
        let _turn = self.turn.lock().await;
        loop {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            let now = self.clock.now();
            let wait = {
                let mut st = self.lock();
                match st.wait(now, self.margin, false) {
                    None => {
                        let id = st.next_id;
                        st.next_id += 1;
                        st.sent.push_back(Sent {
                            id,
                            sent: now,
                            done: None,
                            seeded: false,
                        });
                        let waited = now.saturating_duration_since(start);
                        return (
                            waited,
                            Ticket {
                                pacer: self,
                                id,
                                finished: false,
                            },
                        );
                    }
                    Some(w) => w,
                }
            };
            match wait {
                Wait::For(d) => {
                    on_wait(d);
                    self.clock.sleep(d).await;
                }
                Wait::Answer => {
                    tokio::select! {
                        () = answered => {}
                        () = self.clock.sleep(COMPLETION_POLL) => {}
                    }
                }
            }
        }
    }

    fn finish(&self, id: u64, answer: Option<(&RateHeaders, bool)>) {
        let now = self.clock.now();
        {
            let mut st = self.lock();
            let Some(index) = st.sent.iter().rposition(|s| s.id == id) else {
                return;
            };
            st.sent[index].done = Some(now);
            let sent_at = st.sent[index].sent;
            st.latencies
                .push_back(now.saturating_duration_since(sent_at));
            if st.latencies.len() > LATENCY_SAMPLES {
                st.latencies.pop_front();
            }
            if let Some((headers, api)) = answer {
                if api {
                    st.probing = false;
                }
                self.observe_locked(&mut st, headers, id, sent_at, now);
            }
        }
        self.answered.notify_waiters();
    }

    /// Records requests of this application sent by earlier processes (or other processes, on
    /// a shared ledger): each is `offset` from now (negative: in the past).
    pub(crate) fn seed(&self, offsets: &[chrono::TimeDelta]) {
        let now = self.clock.now();
        let mut st = self.lock();
        let mut seeded: Vec<Sent> = Vec::with_capacity(offsets.len());
        for offset in offsets {
            let at = match offset.to_std() {
                Ok(ahead) => now + ahead,
                Err(_) => match (-*offset).to_std() {
                    Ok(ago) => now.checked_sub(ago).unwrap_or(now),
                    Err(_) => continue,
                },
            };
            let id = st.next_id;
            st.next_id += 1;
            seeded.push(Sent {
                id,
                sent: at,
                done: Some(at),
                seeded: true,
            });
        }
        seeded.extend(st.sent.drain(..));
        seeded.sort_by_key(|s| s.sent);
        st.sent = seeded.into();
    }

    /// Pauses the whole budget for `d` (after a 429).
    pub(crate) fn pause(&self, d: Duration) {
        let until = self.clock.now() + d;
        let mut st = self.lock();
        st.blocked_until = Some(st.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Applies the rate-limit headers of an answer that did not come through a ticket.
    #[cfg(test)]
    pub(crate) fn observe(&self, h: &RateHeaders) {
        let now = self.clock.now();
        let mut st = self.lock();
        self.observe_locked(&mut st, h, u64::MAX, now, now);
    }

    /// Applies the rate-limit headers of the answer to request `id` (sent at `sent_at`,
    /// answered at `now`).
    fn observe_locked(
        &self,
        st: &mut State,
        h: &RateHeaders,
        id: u64,
        sent_at: Instant,
        now: Instant,
    ) {
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
        if let Some(r) = h.secondly_remaining {
            let unseen = st.unseen(
                st.base.per_second,
                r,
                Duration::from_secs(1),
                id,
                sent_at,
                now,
            );
            st.unseen_second = vec![now; unseen];
        }
        if let Some(r) = h.hourly_remaining {
            let before = st.unseen_hour.len();
            let unseen = st.unseen(st.base.per_hour, r, st.base.hour, id, sent_at, now);
            st.unseen_hour = vec![now; unseen];
            if unseen > before + 1 && before > 0 {
                tracing::info!(
                    unseen,
                    "another consumer of the application: pacing for a smaller budget"
                );
            }
        }
    }

    pub(crate) fn snapshot(&self) -> BudgetSnapshot {
        let now = self.clock.now();
        let st = self.lock();
        let live = |v: &[Instant], w: Duration| {
            u32::try_from(
                v.iter()
                    .filter(|u| now.saturating_duration_since(**u) < w)
                    .count(),
            )
            .unwrap_or(u32::MAX)
        };
        BudgetSnapshot {
            per_second: st
                .base
                .per_second
                .saturating_sub(live(&st.unseen_second, Duration::from_secs(1)))
                .max(1),
            per_hour: st
                .base
                .per_hour
                .saturating_sub(live(&st.unseen_hour, st.base.hour))
                .max(1),
            hourly_remaining_seen: st.hourly_remaining_seen,
            secondly_remaining_seen: st.secondly_remaining_seen,
            app_id: st.app_id.clone(),
        }
    }

    /// The log described as token buckets: (per-second, hourly), see [`BucketParams`].
    pub(crate) fn params(&self) -> (BucketParams, BucketParams) {
        let margin = self.margin();
        let st = self.lock();
        let p = |limit: u32, window: Duration| BucketParams {
            burst: u64::from(limit),
            tokens: u64::from(limit),
            period: window + margin,
        };
        (
            p(st.base.per_second, Duration::from_secs(1)),
            p(st.base.per_hour, st.base.hour),
        )
    }

    /// The server limits in force (configured, replaced by limit headers), without the
    /// reduction for another consumer: what a shared budget must keep across processes.
    pub(crate) fn limits(&self) -> RateConfig {
        self.lock().base
    }

    /// The margin between sending and arriving that the budget allows for: the fixed one if
    /// configured, else the largest latency among the recent requests
    /// ([`DEFAULT_JITTER_MARGIN`] before any was measured). A shared budget spaces its
    /// reservations by it.
    pub(crate) fn margin(&self) -> Duration {
        match self.margin {
            Margin::Fixed(m) => m,
            Margin::Measured => {
                let st = self.lock();
                st.latencies
                    .iter()
                    .max()
                    .copied()
                    .unwrap_or(DEFAULT_JITTER_MARGIN)
            }
        }
    }

    /// How long a new caller would wait for this budget: when the log next allows a request
    /// (requests in flight counted as arriving one margin after they were sent), plus one
    /// steady interval for each caller already queued. Used only to choose between
    /// applications, never to pace.
    pub(crate) fn estimate_wait(&self) -> Duration {
        let now = self.clock.now();
        let margin = self.margin();
        let mut st = self.lock();
        let first = match st.wait(now, Margin::Fixed(margin), true) {
            None => Duration::ZERO,
            Some(Wait::For(d)) => d,
            Some(Wait::Answer) => margin,
        };
        let interval = |limit: u32, window: Duration| (window + margin) / limit.max(1);
        let steady = interval(st.base.per_second, Duration::from_secs(1))
            .max(interval(st.base.per_hour, st.base.hour));
        let queued = u32::try_from(self.waiting.load(Ordering::SeqCst)).unwrap_or(u32::MAX);
        first.saturating_add(steady.saturating_mul(queued))
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
    /// The arrival bound of one of our requests; `None` = unbounded (in flight).
    fn bound(s: &Sent, margin: Margin) -> Option<Instant> {
        if s.seeded {
            return Some(s.sent + SEEDED_ALLOWANCE);
        }
        match margin {
            Margin::Fixed(m) => Some(s.sent + m),
            Margin::Measured => s.done,
        }
    }

    /// What stops a request from going at `now`, if anything. `estimate` skips the
    /// one-at-a-time probe (for estimates only).
    fn wait(&mut self, now: Instant, margin: Margin, estimate: bool) -> Option<Wait> {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Some(Wait::For(until - now));
            }
            self.blocked_until = None;
        }
        self.prune(now, margin);
        if self.probing && !estimate && self.sent.iter().any(|s| !s.seeded && s.done.is_none()) {
            return Some(Wait::Answer);
        }
        let second = Duration::from_secs(1);
        let limits = [
            (self.base.per_second, second, &self.unseen_second),
            (self.base.per_hour, self.base.hour, &self.unseen_hour),
        ];
        let mut longest: Option<Wait> = None;
        for (limit, window, unseen) in limits {
            // Bounds still in the window; `None` (in flight) sorts last = largest.
            let mut bounds: Vec<Option<Instant>> = self
                .sent
                .iter()
                .map(|s| Self::bound(s, margin))
                .chain(unseen.iter().map(|u| Some(*u)))
                .filter(|u| u.is_none_or(|u| now.saturating_duration_since(u) < window))
                .collect();
            let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
            if bounds.len() < limit {
                continue;
            }
            bounds.sort_by(|a, b| match (a, b) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            });
            // The L-th largest bound.
            let this = match bounds[bounds.len() - limit] {
                None => Wait::Answer,
                Some(u) => Wait::For((u + window).saturating_duration_since(now)),
            };
            longest = Some(match (longest, this) {
                (Some(Wait::Answer), _) | (_, Wait::Answer) => Wait::Answer,
                (Some(Wait::For(a)), Wait::For(b)) => Wait::For(a.max(b)),
                (None, w) => w,
            });
        }
        match longest {
            Some(Wait::For(d)) if d.is_zero() => None,
            other => other,
        }
    }

    /// Forgets requests that can no longer count in any window.
    fn prune(&mut self, now: Instant, margin: Margin) {
        let keep = self.base.hour.max(Duration::from_secs(1));
        while let Some(front) = self.sent.front() {
            match Self::bound(front, margin) {
                Some(u) if now.saturating_duration_since(u) >= keep => {
                    self.sent.pop_front();
                }
                _ => break,
            }
        }
        let hour = self.base.hour;
        self.unseen_hour
            .retain(|u| now.saturating_duration_since(*u) < hour);
        self.unseen_second
            .retain(|u| now.saturating_duration_since(*u) < Duration::from_secs(1));
    }

    /// The requests the server says it counted in its window at the arrival of request `id`
    /// (`limit - remaining`, the request itself included) that the log cannot account for:
    /// ours are subtracted only when they certainly arrived before `id` (answered before `id`
    /// was sent) and certainly still count (sent less than `window` before `id`'s answer), so
    /// the result is never below the truth.
    fn unseen(
        &self,
        limit: u32,
        remaining: u32,
        window: Duration,
        id: u64,
        sent_at: Instant,
        answered_at: Instant,
    ) -> usize {
        let counted = usize::try_from(limit.saturating_sub(remaining)).unwrap_or(usize::MAX);
        let ours = self
            .sent
            .iter()
            .filter(|s| {
                s.id == id
                    || (s.done.is_some_and(|d| d <= sent_at)
                        && answered_at.saturating_duration_since(s.sent) < window)
            })
            .count()
            // The request the answer belongs to, when it is not in the log (tests).
            .max(usize::from(id == u64::MAX));
        counted.saturating_sub(ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn max_in(times: &[Duration], w: Duration) -> usize {
        let (mut best, mut j) = (0, 0);
        for i in 0..times.len() {
            while times[i] - times[j] >= w {
                j += 1;
            }
            best = best.max(i - j + 1);
        }
        best
    }

    /// An API answer with hourly and secondly figures.
    fn headers(l_s: u32, r_s: u32, l_h: u32, r_h: u32) -> RateHeaders {
        RateHeaders {
            secondly_limit: Some(l_s),
            secondly_remaining: Some(r_s),
            hourly_limit: Some(l_h),
            hourly_remaining: Some(r_h),
            app_id: None,
        }
    }

    #[test]
    fn derived_bucket_params_are_safe() {
        for limit in [1u32, 2, 3, 20, 1200] {
            for margin_ms in [0u64, 20, 100] {
                let w = Duration::from_secs(1);
                let m = Duration::from_millis(margin_ms);
                let p = BucketParams::derive(limit, w, m, 1);
                assert!(p.max_takes_in(w + m) <= u64::from(limit));
            }
        }
    }

    /// Drives the pacer greedily on a manual clock (waits cost no real time), each request
    /// answered at once, and checks every sliding window of send instants.
    async fn greedy(pacer: &Pacer, clock: &ManualClock, n: usize) -> Vec<Duration> {
        let mut times = Vec::new();
        for _ in 0..n {
            let (_, ticket) = pacer.acquire(|_| {}).await;
            times.push(clock.elapsed());
            ticket.answered(&RateHeaders::default(), true);
        }
        times
    }

    #[tokio::test]
    async fn greedy_takes_stay_within_every_sliding_window_and_use_all_of_it() {
        let clock = Arc::new(ManualClock::new());
        let config = RateConfig {
            per_second: 20,
            per_hour: 150,
            hour: Duration::from_secs(10),
        };
        let pacer = Pacer::new(config, Margin::Fixed(Duration::ZERO), true, clock.clone());
        let times = greedy(&pacer, &clock, 1000).await;
        assert_eq!(max_in(&times, Duration::from_secs(1)), 20);
        assert_eq!(max_in(&times, Duration::from_secs(10)), 150);
        // The window's 150 go at 20/s, then the next waits for the first to leave the window.
        assert_eq!(times[149], Duration::from_secs(7));
        assert_eq!(times[150], Duration::from_secs(10));
    }

    /// 42's defaults over more than an hour of greedy use, with no margin at all: never more
    /// than 2 in a second or 1200 in an hour, and the hour's 1200 go at 2/s.
    #[tokio::test]
    async fn defaults_hold_over_a_greedy_hour() {
        let clock = Arc::new(ManualClock::new());
        let pacer = Pacer::new(
            RateConfig::default(),
            Margin::Fixed(Duration::ZERO),
            true,
            clock.clone(),
        );
        let times = greedy(&pacer, &clock, 1500).await;
        assert!(max_in(&times, Duration::from_secs(1)) <= 2);
        assert_eq!(max_in(&times, Duration::from_secs(3600)), 1200);
        // 1200 requests at 2/s take 599.5 s, not an hour.
        assert!(times[1199] < Duration::from_secs(600), "{:?}", times[1199]);
    }

    /// With measured margins a request keeps its slot until its answer is back, so arrivals
    /// anywhere between sending and answering stay within the limit.
    #[tokio::test]
    async fn a_request_in_flight_holds_its_slot_until_answered() {
        let clock = Arc::new(ManualClock::new());
        let config = RateConfig {
            per_second: 2,
            per_hour: 1000,
            hour: Duration::from_secs(100),
        };
        let pacer = Pacer::new(config, Margin::Measured, true, clock.clone());
        // End the first-request probe.
        let (_, t) = pacer.acquire(|_| {}).await;
        t.answered(&RateHeaders::default(), true);
        let (_, a) = pacer.acquire(|_| {}).await;
        clock.advance(Duration::from_millis(300));
        // `a` is still in flight and so is the first: the third must wait for the first's
        // window, and after that for an answer.
        let (_, b) = pacer.acquire(|_| {}).await;
        let b_at = clock.elapsed();
        assert!(b_at >= Duration::from_secs(1), "{b_at:?}");
        let blocked = tokio::time::timeout(Duration::from_millis(200), pacer.acquire(|_| {}));
        assert!(
            blocked.await.is_err(),
            "two requests in flight fill the second"
        );
        clock.advance(Duration::from_millis(100));
        let a_done = clock.elapsed();
        a.answered(&RateHeaders::default(), true);
        let (_, c) = pacer.acquire(|_| {}).await;
        // `a` arrived at the latest when it was answered: `c` goes one window later.
        assert!(clock.elapsed() >= a_done + Duration::from_secs(1));
        drop((b, c));
    }

    #[tokio::test]
    async fn the_first_answer_seeds_the_budget_with_what_is_left() {
        let clock = Arc::new(ManualClock::new());
        let config = RateConfig {
            per_second: 100,
            per_hour: 100,
            hour: Duration::from_secs(60),
        };
        let pacer = Pacer::new(config, Margin::Fixed(Duration::ZERO), true, clock.clone());
        let (_, t) = pacer.acquire(|_| {}).await;
        // The server counted 60 this window, ours included: 40 remain.
        t.answered(&headers(100, 99, 100, 40), true);
        let start = clock.elapsed();
        let mut times = Vec::new();
        for _ in 0..45 {
            let (_, t) = pacer.acquire(|_| {}).await;
            times.push(clock.elapsed() - start);
            t.answered(&RateHeaders::default(), true);
        }
        // 40 go at once; the 41st waits for the 59 unseen ones to leave the window, which is
        // assumed to be a whole window after the answer.
        assert!(times[39] < Duration::from_secs(1), "{:?}", times[39]);
        assert!(times[40] >= Duration::from_secs(60), "{:?}", times[40]);
        assert_eq!(pacer.snapshot().per_hour, 100);
    }

    #[tokio::test]
    async fn a_co_consumer_lowers_the_budget_and_one_that_stopped_raises_it() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let pacer = Pacer::new(
            RateConfig::default(),
            Margin::Fixed(DEFAULT_JITTER_MARGIN),
            true,
            clock,
        );
        pacer.observe(&headers(8, 7, 3600, 3599));
        let snap = pacer.snapshot();
        assert_eq!((snap.per_second, snap.per_hour), (8, 3600));
        // The server has seen 600 requests this hour but we sent one: someone else sent 599.
        pacer.observe(&headers(8, 7, 3600, 3000));
        assert_eq!(pacer.snapshot().per_hour, 3600 - 599);
        pacer.observe(&headers(8, 7, 3600, 3500));
        assert_eq!(pacer.snapshot().per_hour, 3600 - 99);
    }

    #[tokio::test]
    async fn a_saturated_history_holds_back_the_first_request() {
        let clock = Arc::new(ManualClock::new());
        let config = RateConfig {
            per_second: 2,
            per_hour: 10,
            hour: Duration::from_secs(60),
        };
        let pacer = Pacer::new(config, Margin::Measured, true, clock.clone());
        // Ten requests of an earlier process, the oldest 30 s ago.
        let offsets: Vec<chrono::TimeDelta> = (0..10)
            .map(|i| chrono::TimeDelta::seconds(-30 + i))
            .collect();
        pacer.seed(&offsets);
        let (_, t) = pacer.acquire(|_| {}).await;
        // The oldest leaves the window 60 s after it was sent (plus the allowance).
        assert!(
            clock.elapsed() >= Duration::from_secs(31),
            "{:?}",
            clock.elapsed()
        );
        drop(t);
    }

    #[tokio::test]
    async fn pause_blocks_everyone() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let pacer = Pacer::new(
            RateConfig::default(),
            Margin::Fixed(Duration::ZERO),
            true,
            clock.clone(),
        );
        pacer.pause(Duration::from_secs(5));
        let (waited, _t) = pacer.acquire(|_| {}).await;
        assert!(waited >= Duration::from_secs(5), "{waited:?}");
    }
}
