//! The page pipeline: every page the engine reads goes through here, whatever pass produced it.
//!
//! - [`Model`] fetches one page of an endpoint and maps it to store rows (type-erased, so the
//!   passes are written once for every table). Every page, in every pass shape, is refused when
//!   it is empty while `X-Total` says rows remain.
//! - [`PassCtx::commit_page`] commits one page in one place: archive (on the blocking pool),
//!   then rows, cursor, fetch-log row, changed users and deletions in one fenced transaction,
//!   then the pass's stats and a progress event.
//! - The page sources: [`keyset`] (a keyset walk with `ft_api::KeysetPager`, which checks that
//!   ids ascend above the cursor; used for listings, user batches and the network-wide window),
//!   [`fetch_ids`] (one batch of ids, and which of them the API no longer returns). The range
//!   splits of the deletion check live in `relations.rs` and commit through the same call.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use ft_api::endpoints::ListEndpoint;
use ft_api::{
    FtClient, IdWindows, Identified, KeysetPager, Page, PageStep, PagingError, Query, RequestMeta,
};
use ft_store::{
    ApplyPage, CursorUpdate, Fence, FetchLogEntry, Lane, Quarantined, Rows, Store, Table,
};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::sync::watch;

use crate::archive::Archive;
use crate::error::{Result, SyncError};
use crate::mapping::Mapped;
use crate::progress::{Progress, ProgressTx};
use crate::{CURSOR_FORMAT, blocking};

/// How long an in-flight request may still finish after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The login prefix of an anonymised user (`3b3-<id>`).
const ANONYMISED_LOGIN_PREFIX: &str = "3b3-";

/// Ids asked for in one `filter[id]` request.
pub(crate) const ID_BATCH: usize = 100;

/// A boxed future, for the object-safe [`Model`].
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One page, fetched and mapped.
pub(crate) struct Fetched {
    /// The page's rows (after a model's local filter, if any).
    pub(crate) mapped: Mapped,
    /// The raw JSON of the rows kept, for the archive.
    pub(crate) raw: Vec<Box<RawValue>>,
    /// The id of every item the API returned, in its order (before any local filter), the
    /// quarantined ones included when they have an id.
    pub(crate) ids: Vec<i64>,
    /// Items the API sent, stored or quarantined (`ids` misses a quarantined one without id).
    pub(crate) sent: usize,
    /// `X-Total`.
    pub(crate) total: Option<u64>,
    /// The effective page size.
    pub(crate) per_page: u32,
    pub(crate) meta: RequestMeta,
    /// Items that could not be decoded or mapped: set aside, committed with the page.
    pub(crate) quarantine: Vec<Quarantined>,
}

impl Fetched {
    /// Maps a decoded page, keeping the items `keep` accepts (all ids are kept in `ids`). An
    /// item the client could not decode, or that does not map on its own, is quarantined and
    /// the rest of the page goes on.
    pub(crate) fn map<M: Identified + TableOf>(
        page: Page<M>,
        map: fn(&Page<M>) -> Result<Mapped>,
        keep: impl Fn(&M) -> bool,
    ) -> Result<Fetched> {
        let table = M::table();
        let mut quarantine: Vec<Quarantined> = page
            .rejected
            .iter()
            .map(|r| Quarantined {
                resource: table.as_str().to_owned(),
                item_id: r.id,
                reason: r.error.clone(),
                raw: r.raw.get().to_owned(),
            })
            .collect();
        // Every id the server sent, in its order: decoded items fill the gaps between the
        // rejected ones' positions.
        let sent = page.items.len() + page.rejected.len();
        let mut ids = Vec::with_capacity(sent);
        let mut decoded = page.items.iter().map(Identified::id);
        let mut rejected = page.rejected.iter().peekable();
        for position in 0..sent {
            match rejected.peek() {
                Some(r) if r.index == position => {
                    ids.extend(r.id);
                    rejected.next();
                }
                _ => ids.extend(decoded.next()),
            }
        }
        let page = if page.items.iter().all(&keep) {
            page
        } else {
            let (items, raw) = page
                .items
                .into_iter()
                .zip(page.raw)
                .filter(|(item, _)| keep(item))
                .unzip();
            Page { items, raw, ..page }
        };
        let (total, per_page, meta) = (page.total, page.per_page, page.meta.clone());
        let (mapped, raw) = match map(&page) {
            Ok(mapped) => (mapped, page.raw),
            // Some item does not map: map them one by one, quarantine the ones that fail.
            Err(SyncError::Data { .. }) => {
                let Page {
                    items,
                    raw: raws,
                    page: page_no,
                    per_page,
                    total,
                    links,
                    meta,
                    ..
                } = page;
                // A page of these items, with the page's own metadata.
                let page_of = |items: Vec<M>, raw: Vec<Box<RawValue>>| Page {
                    items,
                    raw,
                    page: page_no,
                    per_page,
                    total,
                    links: links.clone(),
                    meta: meta.clone(),
                    rejected: Vec::new(),
                };
                // The mapping of no item, to gather the items that map into.
                let mut all = map(&page_of(Vec::new(), Vec::new()))?;
                let mut kept_raw = Vec::new();
                for (item, raw) in items.into_iter().zip(raws) {
                    let id = item.id();
                    let one = page_of(vec![item], vec![raw]);
                    match map(&one) {
                        Ok(mapped) => {
                            all.append(mapped);
                            kept_raw.extend(one.raw);
                        }
                        Err(e) => quarantine.push(Quarantined {
                            resource: table.as_str().to_owned(),
                            item_id: Some(id),
                            reason: e.to_string(),
                            raw: one.raw[0].get().to_owned(),
                        }),
                    }
                }
                (all, kept_raw)
            }
            Err(e) => return Err(e),
        };
        Ok(Fetched {
            mapped,
            raw,
            ids,
            sent,
            total,
            per_page,
            meta,
            quarantine,
        })
    }
}

/// Fetches pages of one endpoint and maps them to rows.
pub(crate) trait Model: Send + Sync {
    /// The table the rows go to.
    fn table(&self) -> Table;
    /// The endpoint's path template.
    fn path(&self) -> &'static str;
    /// The path to request for a campus (or none).
    fn path_for(&self, campus: Option<i64>) -> Result<String>;
    /// `filter[name]=values`, checked against the endpoint's declared filters.
    fn filter(&self, query: Query, name: &str, values: &[i64]) -> Query;
    /// The largest page the endpoint serves reliably.
    fn max_per_page(&self) -> u32 {
        ft_api::DEFAULT_PER_PAGE
    }
    /// Fetches and maps one page.
    fn fetch<'a>(
        &'a self,
        client: &'a FtClient,
        path: &'a str,
        query: &'a Query,
    ) -> BoxFuture<'a, Result<Fetched>>;
}

/// A [`Model`] for one endpoint and its mapper.
pub(crate) struct Typed<M: 'static> {
    pub(crate) endpoint: ListEndpoint<M>,
    pub(crate) map: fn(&Page<M>) -> Result<Mapped>,
}

impl<M> Typed<M> {
    pub(crate) const fn new(
        endpoint: ListEndpoint<M>,
        map: fn(&Page<M>) -> Result<Mapped>,
    ) -> Self {
        Typed { endpoint, map }
    }
}

/// The table a model's rows go to.
pub(crate) trait TableOf {
    fn table() -> Table;
}

macro_rules! table_of {
    ($($model:ty => $table:ident),* $(,)?) => {
        $(impl TableOf for $model {
            fn table() -> Table {
                Table::$table
            }
        })*
    };
}

table_of!(
    ft_api::models::Campus => Campuses,
    ft_api::models::Cursus => Cursus,
    ft_api::models::Project => Projects,
    ft_api::models::Achievement => Achievements,
    ft_api::models::User => Users,
    ft_api::models::CampusUser => CampusUsers,
    ft_api::models::CursusUser => CursusUsers,
    ft_api::models::ProjectsUser => ProjectsUsers,
    ft_api::models::AchievementsUser => AchievementsUsers,
    ft_api::models::Bloc => Blocs,
    ft_api::models::CoalitionsUser => CoalitionsUsers,
    ft_api::models::Location => Locations,
);

impl<M> Model for Typed<M>
where
    M: DeserializeOwned + Identified + TableOf + Send + Sync + 'static,
{
    fn table(&self) -> Table {
        M::table()
    }

    fn path(&self) -> &'static str {
        self.endpoint.path()
    }

    fn path_for(&self, campus: Option<i64>) -> Result<String> {
        self.endpoint
            .path_for(campus)
            .map_err(|e| SyncError::Invalid {
                what: "task".to_owned(),
                detail: e.to_string(),
            })
    }

    fn filter(&self, query: Query, name: &str, values: &[i64]) -> Query {
        self.endpoint.filter(query, name, values.iter().copied())
    }

    fn max_per_page(&self) -> u32 {
        self.endpoint.max_per_page()
    }

    fn fetch<'a>(
        &'a self,
        client: &'a FtClient,
        path: &'a str,
        query: &'a Query,
    ) -> BoxFuture<'a, Result<Fetched>> {
        Box::pin(async move {
            let page = client.get_page_lenient::<M>(path, query).await?;
            Fetched::map(page, self.map, |_| true)
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
    /// Where raw pages go, if anywhere.
    pub(crate) archive: Option<&'a Archive>,
    /// The task's queue priority and lane: a backfill task yields to anything more urgent.
    pub(crate) priority: i32,
    pub(crate) lane: Lane,
    /// Users one relation-worker task takes from the changed-user queue.
    pub(crate) max_relation_users: usize,
    /// The task's scope (`campus:12`, `campuses:1-3,12`, `global`): cursors, fetch log and
    /// archive use it.
    pub(crate) scope: String,
    /// For a campus-set task, its members' scopes (`campus:1`, ...): completing the pass moves
    /// their watermarks and drops the set's own cursor (see `crate::scope`).
    pub(crate) members: Vec<String>,
    /// What this attempt committed so far.
    pub(crate) stats: PassStats,
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PassEnd {
    /// Every page was read and committed; the watermark moved to the pass's upper bound.
    Complete,
    /// Shutdown was asked for; the cursor holds the last committed page.
    Interrupted,
    /// A backfill task stepped aside after a committed page because more urgent work is due;
    /// it resumes from its cursor.
    Yielded,
}

/// What a pass did, for the run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PassStats {
    pub(crate) rows: u64,
    pub(crate) pages: u64,
}

/// One page to commit.
pub(crate) struct PageCommit {
    pub(crate) table: Table,
    /// The endpoint requested, for the fetch log.
    pub(crate) path: String,
    pub(crate) page_no: i64,
    pub(crate) fetched: Fetched,
    /// Whether the page's rows are stored; otherwise only the request is logged.
    pub(crate) keep_rows: bool,
    pub(crate) cursor: Option<CursorUpdate>,
    /// Queue the users this page brought in for a relation refresh, with this reason.
    pub(crate) enqueue_reason: Option<String>,
    /// Ids of `table` the API no longer has.
    pub(crate) deleted: Vec<i64>,
    /// Rows of the whole listing so far and in all, for progress; `None`: this attempt's count.
    pub(crate) progress: Option<(u64, Option<u64>)>,
}

impl PassCtx<'_> {
    /// Archives the page, then commits it in one fenced transaction (the archive always holds
    /// at least what the database holds), then counts it and reports progress.
    pub(crate) async fn commit_page(&mut self, commit: PageCommit) -> Result<()> {
        let PageCommit {
            table,
            path,
            page_no,
            fetched,
            keep_rows,
            cursor,
            enqueue_reason,
            deleted,
            progress,
        } = commit;
        let Fetched {
            mapped,
            raw,
            sent,
            meta,
            quarantine,
            ..
        } = fetched;
        let fetch_log = FetchLogEntry {
            at: Utc::now().naive_utc(),
            endpoint: path,
            scope: self.scope.clone(),
            page: Some(page_no),
            status: i32::from(meta.status),
            items: sent as i64,
            retries: meta.retries as i32,
            wait_ms: meta.waited.as_millis() as i64,
            token_refreshed: meta.token_refreshed,
            task_id: Some(self.fence.task_id),
            request_id: meta.request_id,
        };
        let (rows, also, raw) = if keep_rows {
            (mapped.rows, mapped.also, raw)
        } else {
            (Rows::empty(table), Vec::new(), Vec::new())
        };
        let enqueue_users = match &enqueue_reason {
            Some(reason) => mapped
                .user_ids
                .iter()
                .map(|&id| (id, reason.clone()))
                .collect(),
            None => Vec::new(),
        };
        // Anonymised users (`3b3-<id>`): their copies inside other rows are not sent again by
        // the API (those rows keep their updated_at), so they are scrubbed in the page's own
        // transaction, once its rows are stored.
        let anonymised: Vec<i64> = match &rows {
            Rows::Users(users) => users
                .iter()
                .filter(|u| u.login.starts_with(ANONYMISED_LOGIN_PREFIX))
                .map(|u| u.id)
                .collect(),
            _ => Vec::new(),
        };
        let quarantine = if keep_rows { quarantine } else { Vec::new() };
        for q in &quarantine {
            tracing::warn!(
                table = table.as_str(),
                id = q.item_id,
                reason = %q.reason,
                "a row the API sent cannot be stored; it is quarantined (see `ft42 status`) and the rest of its page is committed"
            );
        }
        let kept = raw.len() as u64;
        let mark_deleted = (!deleted.is_empty()).then_some((table, deleted));
        let (cursor, also_cursors, drop_cursor) = self.spread_completion(cursor);
        let apply = ApplyPage {
            rows,
            cursor,
            fetch_log: Some(fetch_log),
            fence: Some(self.fence.clone()),
            enqueue_users,
            mark_deleted: mark_deleted.clone(),
            also,
            also_cursors,
            drop_cursor,
            quarantine,
            refresh_embedded: anonymised,
        };
        if let Some(archive) = self.archive.cloned() {
            let (scope, task_id) = (self.scope.clone(), self.fence.task_id);
            tokio::task::spawn_blocking(move || {
                archive.write_page(table, &scope, task_id, page_no, &raw)?;
                if let Some((table, ids)) = &mark_deleted {
                    archive.write_deletions(*table, &scope, task_id, ids)?;
                }
                Ok::<_, SyncError>(())
            })
            .await
            .map_err(|e| SyncError::Join(e.to_string()))??;
        }
        let store = self.store.clone();
        let outcome = blocking(move || store.apply_page(apply))
            .await
            .map_err(|e| lease_or(e, self.fence))?;
        if outcome.embedded_rewritten > 0 {
            tracing::info!(
                rows = outcome.embedded_rewritten,
                "copies of anonymised users inside other rows scrubbed"
            );
        }
        self.stats.pages += 1;
        self.stats.rows += kept;
        let (rows, total) = progress.unwrap_or((self.stats.rows, None));
        let _ = self.progress.send(Progress::Page {
            task_id: self.fence.task_id,
            rows,
            total,
            pages_done: self.stats.pages,
        });
        Ok(())
    }

    /// What saving `cursor` writes: itself, or, when it completes a campus-set pass, the same
    /// completion in each member's cursor while the set's own cursor is dropped.
    #[allow(clippy::type_complexity)]
    fn spread_completion(
        &self,
        cursor: Option<CursorUpdate>,
    ) -> (
        Option<CursorUpdate>,
        Vec<CursorUpdate>,
        Option<(String, String)>,
    ) {
        match cursor {
            Some(c) if c.pass_until.is_none() && !self.members.is_empty() => {
                let members = self
                    .members
                    .iter()
                    .map(|m| CursorUpdate {
                        scope: m.clone(),
                        ..c.clone()
                    })
                    .collect();
                (None, members, Some((c.resource, c.scope)))
            }
            other => (other, Vec::new(), None),
        }
    }

    /// Saves a pass's completion outside a page (a pass with nothing to read), fenced like a
    /// page and spread to a campus set's members.
    pub(crate) async fn save_completion(&self, cursor: CursorUpdate) -> Result<()> {
        let (cursor, also_cursors, drop_cursor) = self.spread_completion(Some(cursor));
        let apply = ApplyPage {
            cursor,
            fence: Some(self.fence.clone()),
            also_cursors,
            drop_cursor,
            // No rows: any table's empty batch will do.
            ..ApplyPage::rows(Rows::empty(Table::Users))
        };
        let store = self.store.clone();
        blocking(move || store.apply_page(apply))
            .await
            .map_err(|e| lease_or(e, self.fence))?;
        Ok(())
    }

    /// Whether this task should step aside now: it is backfill and hot work is due.
    pub(crate) async fn should_yield(&self) -> Result<bool> {
        if self.lane != Lane::Backfill {
            return Ok(false);
        }
        let store = self.store.clone();
        let priority = self.priority;
        let now = Utc::now().naive_utc();
        blocking(move || store.due_above(priority, now)).await
    }

    pub(crate) fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Rows per request on `model`'s endpoint: the configured size, at most what it serves.
    pub(crate) fn per_page(&self, model: &dyn Model) -> u32 {
        self.per_page.min(model.max_per_page()).max(1)
    }

    /// Fetches one page through `model`, giving up on it (returning `None`) when shutdown is
    /// asked for and the request does not finish within the grace period. Nothing was committed
    /// for such a page. A page that is empty while `X-Total` says rows remain is refused here,
    /// for every pass shape: it is never taken for the end of anything.
    pub(crate) async fn fetch(
        &mut self,
        model: &dyn Model,
        path: &str,
        query: &Query,
    ) -> Result<Option<Fetched>> {
        let request = model.fetch(self.client, path, query);
        tokio::pin!(request);
        let first = tokio::select! {
            page = &mut request => Some(page),
            _ = self.shutdown.wait_for(|stop| *stop) => None,
        };
        let fetched = match first {
            Some(page) => page?,
            None => match tokio::time::timeout(SHUTDOWN_GRACE, request).await {
                Ok(page) => page?,
                Err(_) => return Ok(None),
            },
        };
        if let Some(remaining) = fetched.total.filter(|&t| t > 0 && fetched.sent == 0) {
            return Err(SyncError::Paging {
                endpoint: path.to_owned(),
                source: PagingError::EmptyPage { remaining },
            });
        }
        Ok(Some(fetched))
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

/// The cursor after a pass read its whole window: the watermark moves up to the window's upper
/// bound (never down) and the in-flight position is cleared.
pub(crate) fn pass_complete(
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
        expected_rows: None,
    }
}

/// Where an unfinished pass stands after a committed page; the watermark stays where it was.
pub(crate) struct PassPosition {
    pub(crate) since: Option<NaiveDateTime>,
    pub(crate) until: NaiveDateTime,
    pub(crate) last_id: Option<i64>,
    pub(crate) page: i64,
    pub(crate) rows: i64,
    pub(crate) expected_rows: Option<i64>,
}

impl PassPosition {
    pub(crate) fn cursor(
        self,
        resource: &str,
        scope: &str,
        watermark: Option<NaiveDateTime>,
    ) -> CursorUpdate {
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
            expected_rows: self.expected_rows,
        }
    }
}

/// A pass's own cursor: where it resumes, and where its watermark goes when it completes.
#[derive(Debug, Clone)]
pub(crate) struct PassCursor {
    pub(crate) resource: String,
    pub(crate) since: Option<NaiveDateTime>,
    pub(crate) until: NaiveDateTime,
    pub(crate) watermark: Option<NaiveDateTime>,
}

impl PassCursor {
    /// Reads the cursor of `resource` in the context's scope.
    pub(crate) async fn load(
        ctx: &PassCtx<'_>,
        resource: &str,
        since: Option<NaiveDateTime>,
        until: NaiveDateTime,
    ) -> Result<(PassCursor, Resume)> {
        let store = ctx.store.clone();
        let (r, s) = (resource.to_owned(), ctx.scope.clone());
        let cursor = blocking(move || store.cursor(&r, &s)).await?;
        let watermark = cursor.as_ref().and_then(|c| c.watermark);
        // Resume only the very pass this task planned: same window bounds. A cursor left by
        // an older, different pass (another window) is ignored and the new pass starts over.
        let resume = match &cursor {
            Some(c) if c.pass_until == Some(until) && c.pass_since == since => Resume {
                after: c.last_id,
                pages: c.page.max(0) as u64,
                rows: c.rows.max(0) as u64,
            },
            _ => Resume::default(),
        };
        let pass = PassCursor {
            resource: resource.to_owned(),
            since,
            until,
            watermark,
        };
        Ok((pass, resume))
    }

    /// The cursor of a pass that reads its whole scope every time (re-reads, deletion checks,
    /// the relation worker): no `since`, bounded by the task's plan time.
    pub(crate) async fn unwindowed(
        ctx: &PassCtx<'_>,
        payload: &crate::task::TaskPayload,
    ) -> Result<PassCursor> {
        let until = payload.until.naive_utc();
        Ok(PassCursor::load(ctx, payload.listing.as_str(), None, until)
            .await?
            .0)
    }

    /// The cursor once the pass is complete.
    pub(crate) fn complete(&self, scope: &str) -> CursorUpdate {
        pass_complete(&self.resource, scope, self.watermark, self.until)
    }

    /// The cursor after a page that did not end the pass.
    pub(crate) fn at(
        &self,
        scope: &str,
        last_id: Option<i64>,
        page: u64,
        rows: u64,
        expected: Option<u64>,
    ) -> CursorUpdate {
        PassPosition {
            since: self.since,
            until: self.until,
            last_id,
            page: page as i64,
            rows: rows as i64,
            expected_rows: expected.map(|e| e as i64),
        }
        .cursor(&self.resource, scope, self.watermark)
    }

    /// Records a pass that had nothing to read as complete, for freshness reporting.
    pub(crate) async fn finish(&self, ctx: &PassCtx<'_>) -> Result<PassEnd> {
        ctx.save_completion(self.complete(&ctx.scope)).await?;
        Ok(PassEnd::Complete)
    }
}

/// Where a keyset walk starts: after `after`, with `pages` and `rows` already committed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Resume {
    pub(crate) after: Option<i64>,
    pub(crate) pages: u64,
    pub(crate) rows: u64,
}

/// Which cursor a keyset walk moves.
pub(crate) enum CursorPlan {
    /// The pass's own cursor: every page moves it, the last one completes it.
    Pass(PassCursor),
    /// Only the last page carries this cursor (or none): the walk is one step of a larger pass.
    AtEnd(Option<CursorUpdate>),
}

/// A keyset walk (see `ft_api::KeysetPager`).
pub(crate) struct Keyset<'a> {
    pub(crate) model: &'a dyn Model,
    pub(crate) path: String,
    /// The scope's filters and time window.
    pub(crate) base: Query,
    pub(crate) resume: Resume,
    pub(crate) cursor: CursorPlan,
    pub(crate) enqueue_reason: Option<String>,
    /// Stored ids the walk must see again: those it did not see are marked deleted with its
    /// last page. Only meaningful when the walk reads every row of a set (no time window).
    pub(crate) expect: Option<Vec<i64>>,
    /// Whether a backfill steps aside after a page when hotter work is due.
    pub(crate) yield_after_page: bool,
}

/// How a walk asks for its pages: by keyset, or by id windows once the server showed that it
/// does not sort the listing.
enum Walker {
    Keyset(KeysetPager),
    Windows(IdWindows),
}

impl Walker {
    fn query(&self) -> Query {
        match self {
            Walker::Keyset(p) => p.query(),
            Walker::Windows(w) => w.query(),
        }
    }

    fn advance(
        &mut self,
        ids: &[i64],
        total: Option<u64>,
        per_page: u32,
    ) -> std::result::Result<PageStep, PagingError> {
        match self {
            Walker::Keyset(p) => p.advance(ids, total, per_page),
            Walker::Windows(w) => w.advance(ids, total, per_page),
        }
    }
}

/// Walks a listing by keyset, committing page by page. A page whose ids do not ascend above the
/// cursor (the server ignored `sort` or `range[id]`) is not committed: the walk goes on from
/// the same cursor in id windows, which are correct whatever the order of rows.
pub(crate) async fn keyset(ctx: &mut PassCtx<'_>, walk: Keyset<'_>) -> Result<PassEnd> {
    let Keyset {
        model,
        path,
        base,
        resume,
        cursor,
        enqueue_reason,
        expect,
        yield_after_page,
    } = walk;
    let table = model.table();
    let per_page = ctx.per_page(model);
    let mut walker =
        Walker::Keyset(KeysetPager::new(base.clone(), per_page).resume_after(resume.after));
    let (mut pages, mut rows) = (resume.pages, resume.rows);
    let mut seen: HashSet<i64> = HashSet::new();
    loop {
        if ctx.stopping() {
            return Ok(PassEnd::Interrupted);
        }
        let Some(fetched) = ctx.fetch(model, &path, &walker.query()).await? else {
            return Ok(PassEnd::Interrupted);
        };
        // Quarantined items without an id cannot move the cursor, but they were sent: they
        // count towards `X-Total` and the page's fullness, so the pager is told of the rows it
        // can see against what remains of the others.
        let unidentified = fetched.sent.saturating_sub(fetched.ids.len());
        let (visible_total, visible_per_page) = (
            fetched.total.map(|t| t.saturating_sub(unidentified as u64)),
            fetched
                .per_page
                .saturating_sub(u32::try_from(unidentified).unwrap_or(u32::MAX))
                .max(1),
        );
        let step = match walker.advance(&fetched.ids, visible_total, visible_per_page) {
            Ok(step) => step,
            Err(source @ (PagingError::NotAscending { .. } | PagingError::BelowCursor { .. }))
                if matches!(walker, Walker::Keyset(_)) =>
            {
                let after = match &walker {
                    Walker::Keyset(p) => p.after(),
                    Walker::Windows(w) => w.after(),
                };
                tracing::warn!(endpoint = %path, error = %source, "the server does not sort this listing by id; reading it in id windows instead");
                walker = Walker::Windows(IdWindows::after_unsorted(
                    base.clone(),
                    per_page,
                    after,
                    &fetched.ids,
                    fetched.total,
                ));
                continue;
            }
            Err(source) => {
                return Err(SyncError::Paging {
                    endpoint: path.clone(),
                    source,
                });
            }
        };
        let n = fetched.ids.len() as u64;
        if expect.is_some() {
            seen.extend(fetched.ids.iter().copied());
        }
        let deleted = match (&expect, step.done) {
            (Some(expected), true) => {
                let gone: Vec<i64> = expected
                    .iter()
                    .copied()
                    .filter(|id| !seen.contains(id))
                    .collect();
                if !gone.is_empty() {
                    tracing::info!(%table, scope = %ctx.scope, count = gone.len(), ids = ?gone, "rows no longer returned; marking them deleted");
                }
                gone
            }
            _ => Vec::new(),
        };
        let cursor_update = match (&cursor, step.done) {
            (CursorPlan::Pass(pass), true) => Some(pass.complete(&ctx.scope)),
            (CursorPlan::Pass(pass), false) => Some(pass.at(
                &ctx.scope,
                step.after,
                pages + 1,
                rows + n,
                step.remaining.map(|r| rows + r),
            )),
            (CursorPlan::AtEnd(at_end), true) => at_end.clone(),
            (CursorPlan::AtEnd(_), false) => None,
        };
        let total = step.remaining.map(|r| rows + r);
        ctx.commit_page(PageCommit {
            table,
            path: path.clone(),
            page_no: (pages + 1) as i64,
            fetched,
            keep_rows: true,
            cursor: cursor_update,
            enqueue_reason: enqueue_reason.clone(),
            deleted,
            progress: matches!(cursor, CursorPlan::Pass(_)).then_some((rows + n, total)),
        })
        .await?;
        pages += 1;
        rows += n;
        if step.done {
            return Ok(PassEnd::Complete);
        }
        if yield_after_page && ctx.should_yield().await? {
            return Ok(PassEnd::Yielded);
        }
    }
}

/// Fetches one batch of ids (`filter[id]`, without any scope filter) and says which of them
/// the API did not return.
pub(crate) async fn fetch_ids(
    ctx: &mut PassCtx<'_>,
    model: &dyn Model,
    ids: &[i64],
) -> Result<Option<(Fetched, Vec<i64>)>> {
    let path = model.path_for(None)?;
    let query = model
        .filter(Query::new(), "id", ids)
        .sort(["id"])
        .per_page(ID_BATCH as u32);
    let Some(fetched) = ctx.fetch(model, &path, &query).await? else {
        return Ok(None);
    };
    let returned: HashSet<i64> = fetched.ids.iter().copied().collect();
    let gone = ids
        .iter()
        .copied()
        .filter(|id| !returned.contains(id))
        .collect();
    Ok(Some((fetched, gone)))
}

#[cfg(test)]
mod tests;

impl PassCtx<'_> {
    /// Which of `batch` (asked for by id) are really gone. When the API returned none of them,
    /// the answer alone cannot tell a batch of deleted rows from a response that lost
    /// everything (a gateway, an app key that cannot see the rows): one row expected to exist,
    /// `canary` (or a live stored row outside the batch), is asked for by id, and only when it
    /// comes back are the missing ids taken as deleted; otherwise nothing is deleted and the
    /// next check asks again. The canary's page is committed like any other, numbered
    /// `*page_no + 1` (the counter moves on).
    pub(crate) async fn verified_gone(
        &mut self,
        model: &dyn Model,
        batch: &[i64],
        gone: Vec<i64>,
        canary: Option<i64>,
        page_no: &mut i64,
    ) -> Result<Vec<i64>> {
        if gone.is_empty() || gone.len() < batch.len() {
            return Ok(gone);
        }
        let canary = match canary {
            Some(id) => Some(id),
            None => {
                let store = self.store.clone();
                let (table, batch) = (model.table(), batch.to_vec());
                blocking(move || store.live_id_outside(table, &batch)).await?
            }
        };
        let Some(canary) = canary else {
            tracing::warn!(table = %model.table(), count = gone.len(), "the API returned none of the ids asked for and no other row can confirm the answer; nothing is marked deleted");
            return Ok(Vec::new());
        };
        let Some((fetched, canary_gone)) = fetch_ids(self, model, &[canary]).await? else {
            return Ok(Vec::new());
        };
        *page_no += 1;
        self.commit_page(PageCommit {
            table: model.table(),
            path: model.path().to_owned(),
            page_no: *page_no,
            fetched,
            keep_rows: true,
            cursor: None,
            enqueue_reason: None,
            deleted: Vec::new(),
            progress: None,
        })
        .await?;
        if canary_gone.is_empty() {
            Ok(gone)
        } else {
            tracing::warn!(table = %model.table(), count = gone.len(), canary, "the API returned none of the ids asked for, nor a row it should have; nothing is marked deleted");
            Ok(Vec::new())
        }
    }
}
