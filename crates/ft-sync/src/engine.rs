//! The engine: plans requests into durable tasks and drives workers over the queue.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ft_api::{ClientEvent, FtClient};
use ft_store::{Lane, NewTask, Store, Table, TaskFilter, TaskState};
use tokio::sync::watch;

use crate::archive::Archive;
use crate::blocking;
use crate::config::{EngineConfig, Mode, SyncRequest};
use crate::error::{Result, SyncError};
use crate::progress::{Progress, ProgressTx};
use crate::resource::{Listing, Pass, ScopeShape, Stage, listings_for};
use crate::task::{PAYLOAD_VERSION, PassMode, TaskPayload, scope_of};
use crate::worker::{self, Drain, WorkerTally};

/// The clock that fixes delta windows ("changed up to now"). It should agree with the API
/// server's clock; tests inject the simulator's. Leases and schedules always use real time.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The sync engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    client: FtClient,
    store: Store,
    config: EngineConfig,
    clock: Clock,
}

/// What one run of the engine shares between its workers.
pub(crate) struct Inner {
    pub(crate) client: FtClient,
    pub(crate) store: Store,
    pub(crate) config: RunConfig,
    pub(crate) progress: ProgressTx,
}

/// The engine settings a worker reads.
pub(crate) struct RunConfig {
    pub(crate) worker_id: String,
    pub(crate) lease: Duration,
    pub(crate) per_page: u32,
    pub(crate) max_attempts: i32,
    pub(crate) archive: Option<Archive>,
    pub(crate) max_relation_users: usize,
}

/// Whether and how the plan reads one scope.
enum ScopeDue {
    /// Its last pass is younger than its freshness target.
    Fresh,
    /// A plan still in flight completed it.
    DoneInUnfinishedPlan,
    /// Read it: whole (`None`) or from `since`; `first`: it never completed before (for a
    /// deletion check: the listing it checks never did).
    Read {
        since: Option<DateTime<Utc>>,
        first: bool,
    },
}

/// How long a delta request leaves alone a scope that a still unfinished plan completed.
const UNFINISHED_PLAN_DELTA_SKIP: chrono::Duration = chrono::Duration::minutes(10);

/// What planning did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanSummary {
    /// Tasks added to the queue.
    pub enqueued: usize,
    /// Listings that already had a live task, left as they were.
    pub already_queued: usize,
    /// Of the enqueued tasks, how many read a whole scope (no watermark yet, or `--full`).
    pub full: usize,
    /// Of the enqueued tasks, how many read only what changed since the watermark.
    pub delta: usize,
    /// Scopes left out because their last pass is younger than their freshness target.
    pub fresh: usize,
    /// Scopes left out because a plan still in flight (pending or running tasks) already
    /// completed them: a restart resumes that plan instead of reading them again.
    pub done_in_unfinished_plan: usize,
    /// Deletion checks left to the next sync: this plan reads their rows whole for the first
    /// time, so there is nothing stale to find yet.
    pub first_read_deletions: usize,
}

/// What a run did: the CLI prints it and the engine stores it in `sync_runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    /// Row id in `sync_runs`.
    pub run_id: i64,
    /// Tasks completed.
    pub tasks_done: u64,
    /// Tasks that ended in `error`.
    pub tasks_failed: u64,
    /// Tasks parked or scheduled for a retry, still pending.
    pub tasks_pending: u64,
    /// Rows upserted.
    pub rows_written: u64,
    /// Pages committed.
    pub pages: u64,
    /// HTTP requests sent, token requests included.
    pub requests: u64,
    /// 429 responses received (zero when pacing works).
    pub responses_429: u64,
    /// Time spent waiting for budget or backing off.
    #[serde(with = "duration_ms")]
    pub waited: Duration,
    /// One line per failed task.
    pub errors: Vec<String>,
    /// When the first client secret to expire stops working (the soonest over the client's
    /// applications), as the token endpoint last said: `ft42 status` reads it from the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_valid_until: Option<chrono::DateTime<chrono::Utc>>,
}

mod duration_ms {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

impl Engine {
    /// An engine over this client and store.
    pub fn new(client: FtClient, store: Store, config: EngineConfig) -> Self {
        Engine {
            client,
            store,
            config,
            clock: Arc::new(Utc::now),
        }
    }

    /// Replaces the wall clock (tests use the simulator's clock, whose "now" is not ours).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The store this engine writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The client this engine spends budget through.
    pub fn client(&self) -> &FtClient {
        &self.client
    }

    /// What the queued work still costs and how long it takes at the current rate.
    pub async fn backlog(&self) -> Result<crate::Backlog> {
        let store = self.store.clone();
        let per_page = self.config.per_page;
        let per_hour = self.client.budget().per_hour;
        blocking(move || crate::planner::backlog(&store, per_page, per_hour)).await
    }

    /// Deletes archive day folders past the retention setting.
    async fn prune_archive(&self) {
        let (Some(dir), Some(days)) = (&self.config.export_dir, self.config.archive_retention_days)
        else {
            return;
        };
        let archive = Archive::new(dir);
        let today = Utc::now().date_naive();
        match tokio::task::spawn_blocking(move || archive.prune(days, today)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "archive retention could not prune"),
            Err(e) => tracing::warn!(error = %e, "archive retention task failed"),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Turns a request into queued tasks, one per listing and scope, each with its window
    /// fixed now. Campus-scoped listings need campus ids: with `campuses: None`, the campuses
    /// already in the store are used (see [`Engine::sync`], which fetches them first).
    pub async fn plan(&self, req: &SyncRequest) -> Result<PlanSummary> {
        let listings = listings_for(req.what);
        let campuses = match &req.campuses {
            Some(ids) => ids.clone(),
            None => self.known_campuses().await?,
        };
        self.plan_listings(req, &listings, &campuses, self.now())
            .await
    }

    /// The plan time and mode of every pending or running task.
    async fn unfinished_plans(&self) -> Result<Vec<(DateTime<Utc>, PassMode)>> {
        let store = self.store.clone();
        let tasks = blocking(move || {
            let mut live = Vec::new();
            for state in [TaskState::Pending, TaskState::Running] {
                live.extend(store.tasks(&TaskFilter {
                    state: Some(state),
                    ..TaskFilter::default()
                })?);
            }
            Ok(live)
        })
        .await?;
        Ok(tasks
            .into_iter()
            .filter_map(|t| serde_json::from_value::<TaskPayload>(t.payload).ok())
            .map(|p| (p.until, p.mode))
            .collect())
    }

    async fn known_campuses(&self) -> Result<Vec<i64>> {
        let store = self.store.clone();
        let rows = blocking(move || store.raw_rows(Table::Campuses)).await?;
        Ok(rows
            .into_iter()
            .filter(|r| r.deleted_at.is_none())
            .map(|r| r.id)
            .collect())
    }

    async fn plan_listings(
        &self,
        req: &SyncRequest,
        listings: &[Listing],
        campuses: &[i64],
        now: DateTime<Utc>,
    ) -> Result<PlanSummary> {
        let mut summary = PlanSummary::default();
        let mut tasks = Vec::new();
        let mut modes = Vec::new();
        // Every planned task by dedupe key: its listing, campuses and priority. A task that
        // reads another's rows waits for it and gets a lower priority than it, so a backfill
        // never yields to its own dependants.
        let mut planned: HashMap<String, (Listing, Vec<i64>, i32)> = HashMap::new();
        // Campuses whose listing this plan reads whole: re-reads of the same rows (piscine
        // levels, open sessions) are left out for them.
        let mut read_whole: HashMap<Listing, HashSet<i64>> = HashMap::new();
        let unfinished = self.unfinished_plans().await?;
        let mut campuses = campuses.to_vec();
        campuses.sort_unstable();
        campuses.dedup();
        for &listing in listings {
            let rereads_of = match listing {
                Listing::PiscineLevels => Some(Listing::CursusUsers),
                Listing::OpenLocations => Some(Listing::Locations),
                _ => None,
            };
            // Piscine levels are re-read only on top of deltas: a full read of cursus_users
            // already has every level.
            if listing == Listing::PiscineLevels
                && (req.mode == Mode::Full
                    || rereads_of
                        .and_then(|l| read_whole.get(&l))
                        .is_some_and(|s| !s.is_empty()))
            {
                continue;
            }
            let scope_campuses: Vec<Option<i64>> = if listing.campus_scoped() {
                campuses
                    .iter()
                    .copied()
                    .filter(|c| {
                        !rereads_of
                            .and_then(|l| read_whole.get(&l))
                            .is_some_and(|s| s.contains(c))
                    })
                    .map(Some)
                    .collect()
            } else {
                vec![None]
            };
            // Each scope's pass: full (`None`) or a delta from `since`.
            let mut due: Vec<(Option<i64>, Option<DateTime<Utc>>)> = Vec::new();
            for campus_id in scope_campuses {
                match self
                    .scope_due(req, listing, campus_id, &unfinished, now)
                    .await?
                {
                    ScopeDue::Fresh => summary.fresh += 1,
                    ScopeDue::DoneInUnfinishedPlan => summary.done_in_unfinished_plan += 1,
                    // A deletion check of rows this plan reads whole for the first time has
                    // nothing stale to find: it runs with the next sync.
                    ScopeDue::Read { first: true, .. }
                        if matches!(listing.resource().pass, Pass::Deletions(_))
                            && campus_id.is_some_and(|c| {
                                listing
                                    .resource()
                                    .reads_from
                                    .first()
                                    .and_then(|source| read_whole.get(source))
                                    .is_some_and(|s| s.contains(&c))
                            }) =>
                    {
                        summary.first_read_deletions += 1;
                    }
                    ScopeDue::Read { since, .. } => due.push((campus_id, since)),
                }
            }
            for (campuses_of_task, since) in self.group(listing, due).await? {
                let mode = if since.is_some() {
                    PassMode::Delta
                } else {
                    PassMode::Full
                };
                if mode == PassMode::Full {
                    read_whole
                        .entry(listing)
                        .or_default()
                        .extend(campuses_of_task.iter().copied());
                }
                let (campus_id, campus_set) = match campuses_of_task.as_slice() {
                    [] => (None, None),
                    [one] => (Some(*one), None),
                    set => (None, Some(set.to_vec())),
                };
                // What this task reads must be written first: the producers of its campuses,
                // or for work over everything, every task planned before it.
                let after: Vec<String> = planned
                    .iter()
                    .filter(|(_, (l, cs, _))| match listing.stage() {
                        Stage::Last => true,
                        _ => {
                            (listing.resource().reads_from.contains(l) || rereads_of == Some(*l))
                                && (campuses_of_task.is_empty()
                                    || listing == Listing::PiscineLevels
                                    || cs.iter().any(|c| campuses_of_task.contains(c)))
                        }
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                // A full read of a large scope is backfill; deltas and small re-checks are hot.
                let lane = if mode == PassMode::Full && listing.has_updated_at() {
                    Lane::Backfill
                } else {
                    Lane::Hot
                };
                let base = listing.resource().priority + if lane == Lane::Hot { 1000 } else { 0 };
                let priority = after
                    .iter()
                    .filter_map(|k| planned.get(k))
                    .map(|(_, _, p)| p - 1)
                    .fold(base, i32::min);
                let payload = TaskPayload {
                    version: PAYLOAD_VERSION,
                    listing,
                    campus_id,
                    campus_set,
                    ids: match (listing.resource().scope, &req.campuses) {
                        (ScopeShape::CampusSet, Some(ids)) => Some(ids.clone()),
                        _ => None,
                    },
                    mode,
                    since,
                    until: now,
                    enqueue_changed_users: mode == PassMode::Delta && listing == Listing::Users,
                    after,
                    max_users: match listing {
                        Listing::RelationUsers => req.max_relation_users,
                        _ => None,
                    },
                };
                let scope = payload.scope();
                let key = format!("{}:{scope}", listing.as_str());
                // `--force` replaces a live task of the same campus set too (per-campus ones
                // were cancelled with their cursors): otherwise the new task would be deduped
                // against it and the forced re-read would not happen.
                if req.force && payload.campus_set.is_some() {
                    let (store, k) = (self.store.clone(), key.clone());
                    blocking(move || store.cancel_live(&k, "replaced by a --force run")).await?;
                }
                let task = NewTask {
                    kind: listing.as_str().to_owned(),
                    scope,
                    payload: serde_json::to_value(&payload).map_err(|e| SyncError::Invalid {
                        what: "task payload".to_owned(),
                        detail: e.to_string(),
                    })?,
                    lane,
                    priority,
                    // Queue times are real time; `now` (the data clock) only bounds windows.
                    next_run_at: Utc::now().naive_utc(),
                    dedupe_key: Some(key.clone()),
                };
                planned.insert(key, (listing, campuses_of_task, priority));
                modes.push(mode);
                tasks.push(task);
            }
        }
        // One transaction for the whole plan: a crash while planning leaves all of it or none.
        let store = self.store.clone();
        let ids = blocking(move || store.enqueue_all(&tasks)).await?;
        for (id, mode) in ids.into_iter().zip(modes) {
            match id {
                Some(_) => {
                    summary.enqueued += 1;
                    match mode {
                        PassMode::Full => summary.full += 1,
                        PassMode::Delta => summary.delta += 1,
                    }
                }
                None => summary.already_queued += 1,
            }
        }
        tracing::info!(
            enqueued = summary.enqueued,
            already_queued = summary.already_queued,
            full = summary.full,
            delta = summary.delta,
            fresh = summary.fresh,
            done_in_unfinished_plan = summary.done_in_unfinished_plan,
            first_read_deletions = summary.first_read_deletions,
            "sync planned"
        );
        if let Ok(backlog) = self.backlog().await {
            tracing::info!(
                backfill_requests = backlog.backfill_requests,
                hot_requests = backlog.hot_requests,
                eta_s = backlog.eta.map(|d| d.as_secs()),
                "{}",
                backlog.describe()
            );
        }
        Ok(summary)
    }

    /// Whether one scope of a listing is read by this plan, and how: a `--force` run forgets
    /// its cursor first.
    async fn scope_due(
        &self,
        req: &SyncRequest,
        listing: Listing,
        campus_id: Option<i64>,
        unfinished: &[(DateTime<Utc>, PassMode)],
        now: DateTime<Utc>,
    ) -> Result<ScopeDue> {
        let resource = listing.as_str();
        let scope = scope_of(campus_id);
        let store = self.store.clone();
        let force = req.force;
        let cursor = {
            let (r, s) = (resource.to_owned(), scope.clone());
            blocking(move || {
                if force {
                    store.cancel_live(&format!("{r}:{s}"), "replaced by a --force run")?;
                    store.delete_cursor(&r, &s)?;
                    // An achievements_users pass keeps its batch position apart.
                    store.delete_cursor(&format!("{r}.batches"), &s)?;
                }
                store.cursor(&r, &s)
            })
            .await?
        };
        let watermark = cursor.and_then(|c| c.watermark).map(|w| w.and_utc());
        // Completed by a plan that is still in flight (the run was interrupted, or another
        // worker is on it): a full request does not read it again when that plan read whole
        // scopes too; a delta skips it while it is younger than `UNFINISHED_PLAN_DELTA_SKIP`
        // (a long backfill's early scopes still get their deltas).
        if let Some(w) = watermark
            && !req.force
            && unfinished.iter().any(|&(until, mode)| {
                (until - w).abs() < chrono::Duration::milliseconds(1)
                    && match req.mode {
                        Mode::Full => mode == PassMode::Full,
                        _ => now - w < UNFINISHED_PLAN_DELTA_SKIP,
                    }
            })
        {
            return Ok(ScopeDue::DoneInUnfinishedPlan);
        }
        if let (Some(w), Some(target), false, false) = (
            watermark,
            self.config.freshness.get(resource),
            req.force,
            req.mode == Mode::Full,
        ) && now - w < chrono::Duration::from_std(*target).unwrap_or_default()
        {
            return Ok(ScopeDue::Fresh);
        }
        let since = match (req.mode, watermark) {
            (Mode::Full, _) | (_, None) => None,
            (Mode::Delta | Mode::Auto, Some(w)) if listing.has_updated_at() => {
                let look_back = self
                    .config
                    .look_back
                    .get(resource)
                    .unwrap_or(&self.config.overlap);
                Some(w - chrono::Duration::from_std(*look_back).unwrap_or_default())
            }
            _ => None,
        };
        // For a deletion check: whether the listing it checks never completed in this scope.
        let first = match (
            listing.resource().pass,
            listing.resource().reads_from.first(),
        ) {
            (Pass::Deletions(_), Some(source)) => {
                let store = self.store.clone();
                let (r, s) = (source.as_str().to_owned(), scope.clone());
                blocking(move || store.cursor(&r, &s))
                    .await?
                    .and_then(|c| c.watermark)
                    .is_none()
            }
            _ => watermark.is_none(),
        };
        Ok(ScopeDue::Read { since, first })
    }

    /// Groups the due scopes of one listing into tasks: global listings stay one task;
    /// campus-scoped ones become one campus set per pass shape (every campus due a full read,
    /// every campus due a delta, the delta reading from the oldest `since` among them), cut
    /// where a filter list would get too long (see [`crate::scope`]).
    async fn group(
        &self,
        listing: Listing,
        due: Vec<(Option<i64>, Option<DateTime<Utc>>)>,
    ) -> Result<Vec<(Vec<i64>, Option<DateTime<Utc>>)>> {
        if !listing.campus_scoped() {
            return Ok(due
                .into_iter()
                .map(|(_, since)| (Vec::new(), since))
                .collect());
        }
        let mut full: Vec<i64> = Vec::new();
        let mut delta: Vec<i64> = Vec::new();
        let mut since: Option<DateTime<Utc>> = None;
        for (campus, s) in due {
            let Some(campus) = campus else { continue };
            match s {
                None => full.push(campus),
                Some(s) => {
                    delta.push(campus);
                    since = Some(since.map_or(s, |m: DateTime<Utc>| m.min(s)));
                }
            }
        }
        // The coalitions filter lists each campus's coalitions, not the campus.
        let weights: HashMap<i64, usize> = if listing.resource().filters_by_coalition() {
            let store = self.store.clone();
            let all: Vec<i64> = full.iter().chain(&delta).copied().collect();
            blocking(move || {
                all.into_iter()
                    .map(|c| Ok((c, store.campus_coalition_ids(c)?.len())))
                    .collect::<std::result::Result<_, ft_store::StoreError>>()
            })
            .await?
        } else {
            HashMap::new()
        };
        // A campus with no stored coalitions yet (a first sync plans coalitions_users before
        // blocs are read) counts as `UNKNOWN_COALITIONS` (the network's campuses have 4); a
        // pass that still meets a longer list reads it in chunks.
        let by_coalition = listing.resource().filters_by_coalition();
        let weight = |c: i64| match weights.get(&c) {
            _ if !by_coalition => 1,
            Some(&n) if n > 0 => n,
            _ => crate::scope::UNKNOWN_COALITIONS,
        };
        let mut out = Vec::new();
        for (group, since) in [(full, None), (delta, since)] {
            for set in crate::scope::chunk(&group, weight, crate::scope::FILTER_LIST_MAX) {
                out.push((set, since));
            }
        }
        Ok(out)
    }

    /// Plans `req` and runs the queue until no task is left, then records the run.
    ///
    /// Reference data (campuses among it) is synced first, so that a request for every campus
    /// knows which campuses there are. `shutdown` finishing makes the workers finish the page
    /// in flight, commit it, park their tasks and return.
    pub async fn sync(
        &self,
        req: SyncRequest,
        progress: ProgressTx,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RunSummary> {
        let listings = listings_for(req.what);
        // `what` and `mode` as plain keys too: the daemon looks up the last full sync of
        // everything to catch up a nightly run missed while it was down.
        let params = serde_json::json!({
            "request": format!("{req:?}"),
            "what": format!("{:?}", req.what).to_lowercase(),
            "mode": format!("{:?}", req.mode).to_lowercase(),
        });
        let run = RunHandle::start(self, "sync", params).await?;
        // One plan time for both stages: windows end there, and a scope this plan completed
        // is recognised by it after an interruption.
        let now = self.now();
        let (stop_tx, stop_rx) = watch::channel(false);
        let work = async {
            let mut tally = WorkerTally::default();
            match &req.campuses {
                // Campuses known: the whole plan goes into the queue in one transaction, so a
                // crash at any moment leaves either all of it (a worker finishes it) or none.
                Some(campuses) => {
                    self.plan_listings(&req, &listings, campuses, now).await?;
                }
                // Every campus: sync the reference data first, to learn which campuses exist.
                None => {
                    let (globals, scoped): (Vec<Listing>, Vec<Listing>) =
                        listings.iter().partition(|l| !l.after_campuses());
                    self.plan_listings(&req, &globals, &[], now).await?;
                    tally.absorb(
                        self.drain(&progress, stop_rx.clone(), Drain::UntilIdle)
                            .await?,
                    );
                    if *stop_rx.borrow() {
                        return Ok(tally);
                    }
                    let campuses = self.known_campuses().await?;
                    self.plan_listings(&req, &scoped, &campuses, now).await?;
                }
            }
            tally.absorb(
                self.drain(&progress, stop_rx.clone(), Drain::UntilIdle)
                    .await?,
            );
            Ok(tally)
        };
        let result = until_shutdown(work, shutdown, stop_tx).await;
        self.prune_archive().await;
        run.finish(self, result).await
    }

    /// Runs queued tasks until none is runnable (`once`) or none is pending at all, and
    /// records the run. This is what `ft42 worker` does.
    pub async fn run_until_idle(
        &self,
        once: bool,
        progress: ProgressTx,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RunSummary> {
        let run = RunHandle::start(self, "worker", serde_json::json!({})).await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let drain = if once { Drain::Once } else { Drain::UntilIdle };
        let result = until_shutdown(self.drain(&progress, stop_rx, drain), shutdown, stop_tx).await;
        self.prune_archive().await;
        run.finish(self, result).await
    }

    async fn drain(
        &self,
        progress: &ProgressTx,
        stop: watch::Receiver<bool>,
        drain: Drain,
    ) -> Result<WorkerTally> {
        let inner = Arc::new(Inner {
            client: self.client.clone(),
            store: self.store.clone(),
            config: RunConfig {
                worker_id: self.config.worker_id.clone(),
                lease: self.config.lease,
                per_page: self.config.per_page,
                max_attempts: self.config.max_attempts,
                archive: self.config.export_dir.as_ref().map(Archive::new),
                max_relation_users: self.config.max_relation_users,
            },
            progress: progress.clone(),
        });
        // Tasks this worker id held when its process died are ours again at once: waiting for
        // their leases to expire would only delay the restart.
        {
            let store = self.store.clone();
            let owner = self.config.worker_id.clone();
            blocking(move || store.release_leases(&owner)).await?;
        }
        let forward = forward_waits(&self.client, progress.clone());
        let workers = self.config.concurrency.max(1);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..workers {
            set.spawn(worker::work(inner.clone(), stop.clone(), drain));
        }
        let mut tally = WorkerTally::default();
        let mut first_err = None;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok(t)) => tally.absorb(t),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(SyncError::Join(e.to_string()));
                }
            }
        }
        forward.abort();
        match first_err {
            Some(e) => Err(e),
            None => Ok(tally),
        }
    }
}

/// Runs `work`; when `shutdown` completes first, tells the workers to stop after their current
/// page and keeps waiting for them.
async fn until_shutdown<T>(
    work: impl Future<Output = T>,
    shutdown: impl Future<Output = ()>,
    stop: watch::Sender<bool>,
) -> T {
    tokio::pin!(work);
    tokio::pin!(shutdown);
    let mut asked = false;
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = &mut shutdown, if !asked => {
                asked = true;
                tracing::info!("shutdown asked: finishing the pages in flight");
                let _ = stop.send(true);
            }
        }
    }
}

/// Shows the client's waits for budget as progress, so a paced run looks waiting, not stuck.
fn forward_waits(client: &FtClient, progress: ProgressTx) -> tokio::task::JoinHandle<()> {
    let mut events = client.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ClientEvent::RateWait { wait, .. }) if wait >= Duration::from_millis(250) => {
                    let _ = progress.send(Progress::Waiting {
                        wait,
                        reason: "request budget".to_owned(),
                    });
                }
                Ok(ClientEvent::Retry { wait, .. }) => {
                    let _ = progress.send(Progress::Waiting {
                        wait,
                        reason: "retrying after an API error".to_owned(),
                    });
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

/// A row in `sync_runs` plus the client counters at its start.
struct RunHandle {
    id: i64,
    before: ft_api::ClientStats,
}

impl RunHandle {
    async fn start(
        engine: &Engine,
        kind: &'static str,
        params: serde_json::Value,
    ) -> Result<RunHandle> {
        let store = engine.store.clone();
        let id = blocking(move || store.start_run(kind, &params)).await?;
        Ok(RunHandle {
            id,
            before: engine.client.stats(),
        })
    }

    async fn finish(self, engine: &Engine, result: Result<WorkerTally>) -> Result<RunSummary> {
        let after = engine.client.stats();
        let (tally, error) = match result {
            Ok(t) => (t, None),
            Err(e) => (WorkerTally::default(), Some(e)),
        };
        let store = engine.store.clone();
        let pending = blocking(move || store.task_counts())
            .await
            .map(|counts| {
                counts
                    .iter()
                    .filter(|c| c.1 == TaskState::Pending)
                    .map(|c| c.2 as u64)
                    .sum()
            })
            .unwrap_or(0);
        let summary = RunSummary {
            run_id: self.id,
            tasks_done: tally.done,
            tasks_failed: tally.failed,
            tasks_pending: pending,
            rows_written: tally.rows,
            pages: tally.pages,
            requests: after.requests.saturating_sub(self.before.requests),
            responses_429: after
                .responses_429
                .saturating_sub(self.before.responses_429),
            waited: after.wait_time.saturating_sub(self.before.wait_time),
            errors: tally.errors.clone(),
            secret_valid_until: engine
                .client
                .applications()
                .iter()
                .filter_map(|a| a.secret_valid_until)
                .min(),
        };
        let status = match (&error, summary.tasks_failed) {
            (Some(_), _) => "error",
            (None, 0) => "ok",
            (None, _) => "partial",
        };
        let mut json = serde_json::to_value(&summary).unwrap_or_default();
        if let Some(e) = &error {
            json["error"] = serde_json::Value::String(e.to_string());
        }
        let store = engine.store.clone();
        let id = self.id;
        blocking(move || store.finish_run(id, status, &json)).await?;
        tracing::info!(
            run_id = id,
            status,
            rows = summary.rows_written,
            requests = summary.requests,
            "run finished"
        );
        match error {
            Some(e) => Err(e),
            None if summary.tasks_failed > 0 => Err(SyncError::TasksFailed {
                failed: summary.tasks_failed as usize,
                first: summary.errors.first().cloned().unwrap_or_default(),
            }),
            None => Ok(summary),
        }
    }
}
