//! The listings the engine walks, and the pass that walks one of them page by page.
//!
//! Every pass uses keyset pagination: `sort=id` with `range[id]=<last id + 1>,<max>`, so rows
//! inserted, deleted or re-dated while we read cannot shift a page boundary (offset paging over
//! the API's newest-first default order drops and repeats rows). `X-Total` counts the rows that
//! remain after the filters, so a pass ends on the page whose item count reaches it, and costs
//! exactly `ceil(rows / per_page)` requests (one for an empty scope).
//!
//! Each page's rows, the cursor advance and its fetch-log row are committed in one transaction
//! (`Store::apply_page`), fenced by the task's lease. After a crash the pass resumes after the
//! last committed id; at most the one page that was in flight is fetched again.

use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use ft_api::{FtClient, Page, Query};
use ft_store::{ApplyPage, CursorUpdate, Fence, FetchLogEntry, Store, Table};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{Result, SyncError};
use crate::mapping::{self, Mapped};
use crate::progress::{Progress, ProgressTx};
use crate::task::{PassMode, TaskPayload};
use crate::{CURSOR_FORMAT, blocking};

/// Upper bound of the keyset range: larger than any 42 id.
const ID_MAX: i64 = i64::MAX;

/// How long an in-flight request may still finish after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A listing the engine knows how to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Listing {
    /// `/v2/campus` (optionally restricted by id).
    Campuses,
    /// `/v2/cursus`.
    Cursus,
    /// `/v2/projects`.
    Projects,
    /// `/v2/achievements`.
    Achievements,
    /// `/v2/campus/:id/users`.
    Users,
    /// `/v2/campus_users?filter[campus_id]=:id`.
    CampusUsers,
    /// `/v2/cursus_users?filter[campus_id]=:id` (they carry `blackholed_at`).
    CursusUsers,
    /// Active piscine cursus_users re-read by id, 100 per request: their `level` changes
    /// without touching `updated_at`, so no delta window ever sees it.
    PiscineLevels,
}

impl Listing {
    /// Reference data first, then users, then what hangs off users.
    pub(crate) const PART_ONE: [Listing; 8] = [
        Listing::Campuses,
        Listing::Cursus,
        Listing::Projects,
        Listing::Achievements,
        Listing::Users,
        Listing::CampusUsers,
        Listing::CursusUsers,
        Listing::PiscineLevels,
    ];

    /// The resource name used for tasks, cursors and progress.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Listing::Campuses => "campuses",
            Listing::Cursus => "cursus",
            Listing::Projects => "projects",
            Listing::Achievements => "achievements",
            Listing::Users => "users",
            Listing::CampusUsers => "campus_users",
            Listing::CursusUsers => "cursus_users",
            Listing::PiscineLevels => "piscine_levels",
        }
    }

    /// Whether the listing is walked once per campus.
    pub(crate) fn campus_scoped(self) -> bool {
        matches!(
            self,
            Listing::Users | Listing::CampusUsers | Listing::CursusUsers
        )
    }

    /// Whether the listing must wait until the campus-scoped listings were planned (it reads
    /// what they store).
    pub(crate) fn after_campuses(self) -> bool {
        self.campus_scoped() || self == Listing::PiscineLevels
    }

    /// Whether rows carry a usable `updated_at`, so a delta can be asked for.
    pub(crate) fn has_updated_at(self) -> bool {
        !matches!(
            self,
            Listing::Campuses | Listing::Cursus | Listing::Achievements | Listing::PiscineLevels
        )
    }

    /// Queue priority: parents before children, so a full sync fills tables in order.
    pub(crate) fn priority(self) -> i32 {
        match self {
            Listing::Campuses => 100,
            Listing::Cursus => 95,
            Listing::Projects => 90,
            Listing::Achievements => 85,
            Listing::Users => 80,
            Listing::CampusUsers => 70,
            Listing::CursusUsers => 60,
            Listing::PiscineLevels => 50,
        }
    }

    /// The endpoint and the filters that define the scope (no paging, sort or window yet).
    fn request(self, payload: &TaskPayload) -> Result<(String, Query)> {
        let campus = || {
            payload.campus_id.ok_or_else(|| SyncError::Data {
                what: format!("task for {}", self.as_str()),
                detail: "campus-scoped task has no campus id".to_owned(),
            })
        };
        Ok(match self {
            Listing::Campuses => {
                let mut q = Query::new();
                if let Some(ids) = &payload.ids {
                    q = q.filter("id", ids.iter().copied());
                }
                ("/v2/campus".to_owned(), q)
            }
            Listing::Cursus => ("/v2/cursus".to_owned(), Query::new()),
            Listing::Projects => ("/v2/projects".to_owned(), Query::new()),
            Listing::Achievements => ("/v2/achievements".to_owned(), Query::new()),
            Listing::Users => (format!("/v2/campus/{}/users", campus()?), Query::new()),
            Listing::CampusUsers => (
                "/v2/campus_users".to_owned(),
                Query::new().filter("campus_id", [campus()?]),
            ),
            Listing::CursusUsers => (
                "/v2/cursus_users".to_owned(),
                Query::new().filter("campus_id", [campus()?]),
            ),
            Listing::PiscineLevels => ("/v2/cursus_users".to_owned(), Query::new()),
        })
    }
}

/// Everything a pass needs from the worker that runs it.
pub(crate) struct PassCtx<'a> {
    pub(crate) client: &'a FtClient,
    pub(crate) store: &'a Store,
    pub(crate) fence: &'a Fence,
    pub(crate) progress: &'a ProgressTx,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) per_page: u32,
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PassEnd {
    /// Every page was read and committed; the watermark moved to the pass's upper bound.
    Complete,
    /// Shutdown was asked for; the cursor holds the last committed page.
    Interrupted,
}

/// What a pass did, for the run summary.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PassStats {
    pub(crate) rows: u64,
    pub(crate) pages: u64,
}

/// Walks one listing over one scope, resuming where the cursor says an earlier attempt of the
/// same pass stopped.
pub(crate) async fn run_pass(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
) -> Result<(PassEnd, PassStats)> {
    match payload.listing {
        Listing::Campuses => walk::<ft_api::models::Campus>(ctx, payload, mapping::campuses).await,
        Listing::Cursus => walk::<ft_api::models::Cursus>(ctx, payload, mapping::cursus).await,
        Listing::Projects => walk::<ft_api::models::Project>(ctx, payload, mapping::projects).await,
        Listing::Achievements => {
            walk::<ft_api::models::Achievement>(ctx, payload, mapping::achievements).await
        }
        Listing::Users => walk::<ft_api::models::User>(ctx, payload, mapping::users).await,
        Listing::CampusUsers => {
            walk::<ft_api::models::CampusUser>(ctx, payload, mapping::campus_users).await
        }
        Listing::CursusUsers => {
            walk::<ft_api::models::CursusUser>(ctx, payload, mapping::cursus_users).await
        }
        Listing::PiscineLevels => piscine_levels(ctx, payload).await,
    }
}

/// Ids asked for in one `filter[id]` request.
const ID_BATCH: usize = 100;

/// Re-reads the active piscine cursus_users of the payload's campuses by id, 100 per request,
/// resuming after the last committed batch. An id the API no longer returns is marked deleted
/// (cursus_users disappear when an applicant leaves a piscine); nothing is dropped silently.
async fn piscine_levels(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
) -> Result<(PassEnd, PassStats)> {
    let resource = payload.listing.as_str();
    let scope = payload.scope();
    let until = payload.until.naive_utc();
    let (cursor, ids) = {
        let store = ctx.store.clone();
        let (r, s) = (resource.to_owned(), scope.clone());
        let campuses = payload.ids.clone();
        blocking(move || {
            Ok((
                store.cursor(&r, &s)?,
                store.active_piscine_cursus_user_ids(campuses.as_deref(), until)?,
            ))
        })
        .await?
    };
    let watermark = cursor.as_ref().and_then(|c| c.watermark);
    let resume_after = match &cursor {
        Some(c) if c.pass_until == Some(until) => c.last_id,
        _ => None,
    };
    let todo: Vec<i64> = ids
        .into_iter()
        .filter(|id| resume_after.is_none_or(|last| *id > last))
        .collect();
    let mut stats = PassStats::default();
    let batches: Vec<&[i64]> = todo.chunks(ID_BATCH).collect();
    for (i, batch) in batches.iter().enumerate() {
        if *ctx.shutdown.borrow() {
            return Ok((PassEnd::Interrupted, stats));
        }
        let query = Query::new()
            .filter("id", batch.iter().copied())
            .sort(["id"])
            .per_page(ID_BATCH as u32);
        let page: Page<ft_api::models::CursusUser> =
            match fetch(ctx, "/v2/cursus_users", &query).await? {
                Some(page) => page,
                None => return Ok((PassEnd::Interrupted, stats)),
            };
        let mapped = mapping::cursus_users(&page)?;
        let returned: std::collections::HashSet<i64> = page.items.iter().map(|c| c.id).collect();
        let gone: Vec<i64> = batch
            .iter()
            .copied()
            .filter(|id| !returned.contains(id))
            .collect();
        if !gone.is_empty() {
            tracing::info!(count = gone.len(), ids = ?gone, "cursus_users no longer returned by the API; marking them deleted");
        }
        let last = i + 1 == batches.len();
        let cursor = if last {
            pass_complete(resource, &scope, watermark, until)
        } else {
            PassPosition {
                since: None,
                until,
                last_id: batch.last().copied(),
                page: (i + 1) as i64,
                rows: 0,
            }
            .cursor(resource, &scope, watermark)
        };
        let n = page.items.len() as u64;
        let apply = ApplyPage {
            rows: mapped.rows,
            cursor: Some(cursor),
            fetch_log: Some(fetch_log(
                ctx,
                "/v2/cursus_users",
                &scope,
                (i + 1) as i64,
                &page,
            )),
            fence: Some(ctx.fence.clone()),
            enqueue_users: Vec::new(),
            mark_deleted: (!gone.is_empty()).then_some((Table::CursusUsers, gone)),
        };
        let store = ctx.store.clone();
        blocking(move || store.apply_page(apply))
            .await
            .map_err(|e| lease_or(e, ctx.fence))?;
        stats.pages += 1;
        stats.rows += n;
        let _ = ctx.progress.send(Progress::Page {
            task_id: ctx.fence.task_id,
            rows: stats.rows,
            total: None,
            pages_done: stats.pages,
        });
    }
    if batches.is_empty() {
        // Nothing to re-check: still record that the pass ran, for freshness reporting.
        let store = ctx.store.clone();
        let update = pass_complete(resource, &scope, watermark, until);
        blocking(move || store.save_cursor(&update)).await?;
    }
    Ok((PassEnd::Complete, stats))
}

/// The cursor after a pass read its whole window: the watermark moves up to the window's upper
/// bound (never down) and the in-flight position is cleared.
fn pass_complete(
    resource: &str,
    scope: &str,
    watermark: Option<NaiveDateTime>,
    until: NaiveDateTime,
) -> CursorUpdate {
    CursorUpdate {
        resource: resource.to_owned(),
        scope: scope.to_owned(),
        watermark: Some(watermark.map_or(until, |w| w.max(until))),
        pass_since: None,
        pass_until: None,
        last_id: None,
        page: 0,
        rows: 0,
        format_version: CURSOR_FORMAT,
    }
}

/// Where an unfinished pass stands after a committed page; the watermark stays where it was.
struct PassPosition {
    since: Option<NaiveDateTime>,
    until: NaiveDateTime,
    last_id: Option<i64>,
    page: i64,
    rows: i64,
}

impl PassPosition {
    fn cursor(self, resource: &str, scope: &str, watermark: Option<NaiveDateTime>) -> CursorUpdate {
        CursorUpdate {
            resource: resource.to_owned(),
            scope: scope.to_owned(),
            watermark,
            pass_since: self.since,
            pass_until: Some(self.until),
            last_id: self.last_id,
            page: self.page,
            rows: self.rows,
            format_version: CURSOR_FORMAT,
        }
    }
}

/// The fetch-log row for one page.
fn fetch_log<M>(
    ctx: &PassCtx<'_>,
    endpoint: &str,
    scope: &str,
    page_no: i64,
    page: &Page<M>,
) -> FetchLogEntry {
    FetchLogEntry {
        at: Utc::now().naive_utc(),
        endpoint: endpoint.to_owned(),
        scope: scope.to_owned(),
        page: Some(page_no),
        status: i32::from(page.meta.status),
        items: page.items.len() as i64,
        retries: page.meta.retries as i32,
        wait_ms: page.meta.waited.as_millis() as i64,
        token_refreshed: page.meta.token_refreshed,
        task_id: Some(ctx.fence.task_id),
        request_id: page.meta.request_id.clone(),
    }
}

type MapFn<M> = fn(&Page<M>) -> Result<Mapped>;

async fn walk<M>(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
    map: MapFn<M>,
) -> Result<(PassEnd, PassStats)>
where
    M: DeserializeOwned + Send + 'static,
{
    let listing = payload.listing;
    let resource = listing.as_str();
    let scope = payload.scope();
    let (endpoint, base) = listing.request(payload)?;
    let since = payload.since.map(|t| t.naive_utc());
    let until = payload.until.naive_utc();

    let cursor = {
        let store = ctx.store.clone();
        let (r, s) = (resource.to_owned(), scope.clone());
        blocking(move || store.cursor(&r, &s)).await?
    };
    let watermark = cursor.as_ref().and_then(|c| c.watermark);
    // Resume only the very pass this task planned: same window bounds. A cursor left by an
    // older, different pass (another window) is ignored and the new pass starts at the top.
    let (mut last_id, mut pages, mut rows) = match &cursor {
        Some(c) if c.pass_until == Some(until) && c.pass_since == since => {
            (c.last_id, c.page.max(0) as u64, c.rows.max(0) as u64)
        }
        _ => (None, 0, 0),
    };
    let mut stats = PassStats::default();

    loop {
        if *ctx.shutdown.borrow() {
            return Ok((PassEnd::Interrupted, stats));
        }
        let mut query = base.clone().sort(["id"]).per_page(ctx.per_page);
        if let Some(last) = last_id {
            query = query.range("id", last + 1, ID_MAX);
        }
        if payload.mode == PassMode::Delta
            && let Some(since) = payload.since
        {
            query = query.range_time("updated_at", since, payload.until);
        }
        let page: Page<M> = match fetch(ctx, &endpoint, &query).await? {
            Some(page) => page,
            None => return Ok((PassEnd::Interrupted, stats)),
        };

        let n = page.items.len() as u64;
        let mapped = map(&page)?;
        let max_id = mapped.max_id;
        let remaining = page.total;
        let done = match remaining {
            Some(total) => n >= total,
            None => n < u64::from(page.per_page.max(1)),
        };
        if n == 0 && !done {
            // X-Total promised rows but the page is empty: never take that for the end of
            // the listing. The task is retried and reads the same page again.
            return Err(SyncError::Data {
                what: format!("{endpoint} page after id {last_id:?}"),
                detail: format!(
                    "empty page while X-Total says {} rows remain",
                    remaining.unwrap_or(0)
                ),
            });
        }

        let cursor = if done {
            pass_complete(resource, &scope, watermark, until)
        } else {
            PassPosition {
                since,
                until,
                last_id: max_id.or(last_id),
                page: (pages + 1) as i64,
                rows: (rows + n) as i64,
            }
            .cursor(resource, &scope, watermark)
        };
        let enqueue_users = if payload.enqueue_changed_users {
            mapped
                .user_ids
                .iter()
                .map(|&id| (id, format!("{resource} delta")))
                .collect()
        } else {
            Vec::new()
        };
        let log = fetch_log(ctx, &endpoint, &scope, (pages + 1) as i64, &page);
        let apply = ApplyPage {
            rows: mapped.rows,
            cursor: Some(cursor),
            fetch_log: Some(log),
            fence: Some(ctx.fence.clone()),
            enqueue_users,
            mark_deleted: None,
        };
        let store = ctx.store.clone();
        blocking(move || store.apply_page(apply))
            .await
            .map_err(|e| lease_or(e, ctx.fence))?;

        pages += 1;
        rows += n;
        stats.pages += 1;
        stats.rows += n;
        last_id = max_id.or(last_id);
        let _ = ctx.progress.send(Progress::Page {
            task_id: ctx.fence.task_id,
            rows,
            total: remaining.map(|r| rows - n + r),
            pages_done: pages,
        });
        if done {
            return Ok((PassEnd::Complete, stats));
        }
    }
}

/// Fetches one page, giving up on it (returning `None`) when shutdown is asked for and the
/// request does not finish within the grace period. Nothing was committed for such a page.
async fn fetch<M>(ctx: &mut PassCtx<'_>, endpoint: &str, query: &Query) -> Result<Option<Page<M>>>
where
    M: DeserializeOwned + Send + 'static,
{
    let request = ctx.client.get_page::<M>(endpoint, query);
    tokio::pin!(request);
    tokio::select! {
        page = &mut request => return Ok(Some(page?)),
        _ = ctx.shutdown.wait_for(|stop| *stop) => {}
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, request).await {
        Ok(page) => Ok(Some(page?)),
        Err(_) => Ok(None),
    }
}

/// Turns the store's lease error into the engine's, keeping every other error as it is.
pub(crate) fn lease_or(e: SyncError, fence: &Fence) -> SyncError {
    match e {
        SyncError::Store(ft_store::StoreError::LeaseLost { .. }) => SyncError::LeaseLost {
            task_id: fence.task_id,
        },
        other => other,
    }
}
