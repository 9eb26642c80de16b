//! Passes that are not one keyset walk over one scope: achievements_users by batches of users
//! (or the network-wide window when that is cheaper), deletions found by `X-Total` probes,
//! missing parent users, and the relation worker that refreshes every relation of changed
//! users. Their pages go through the same pipeline as every other page.

use std::collections::HashSet;

use ft_api::models::AchievementsUser;
use ft_api::{FtClient, ID_MAX, Query, check_ascending, check_in_window};
use ft_store::{Column, CursorUpdate, IdsWhere, Table};

use crate::blocking;
use crate::error::{Result, SyncError};
use crate::listing::{campuses_of, coalitions_of, scope_request, union_over_campuses};
use crate::pipeline::{
    BoxFuture, CursorPlan, Fetched, ID_BATCH, Keyset, Model, PageCommit, PassCtx, PassCursor,
    PassEnd, Resume, fetch_ids, keyset,
};
use crate::resource::{
    ACHIEVEMENTS_USERS, COALITIONS_USERS, CURSUS_USERS, CampusFilter, PROJECTS_USERS, USERS,
};
use crate::scope::FILTER_LIST_MAX;
use crate::task::{PassMode, TaskPayload};

/// Reads every row of `users` (in the window, if any) by keyset, committing page by page. With
/// `detect_deletions` (only meaningful without a window: the API then returns every row of
/// these users), the last page marks deleted the stored rows it did not see; it also carries
/// `cursor_at_end`.
async fn read_user_batch(
    ctx: &mut PassCtx<'_>,
    model: &dyn Model,
    users: &[i64],
    window: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
    detect_deletions: bool,
    cursor_at_end: Option<CursorUpdate>,
) -> Result<PassEnd> {
    let expect = if detect_deletions {
        let store = ctx.store.clone();
        let (table, users) = (model.table(), users.to_vec());
        Some(blocking(move || store.live_ids(table, IdsWhere::In(Column::UserId, &users))).await?)
    } else {
        None
    };
    let mut base = model.filter(Query::new(), "user_id", users);
    if let Some((since, until)) = window {
        base = base.range_time("updated_at", since, until);
    }
    keyset(
        ctx,
        Keyset {
            model,
            path: model.path_for(None)?,
            base,
            resume: Resume::default(),
            cursor: CursorPlan::AtEnd(cursor_at_end),
            enqueue_reason: None,
            expect,
            yield_after_page: false,
        },
    )
    .await
}

/// The cursor that remembers which user batches of an achievements_users pass are done.
const BATCHES_SUFFIX: &str = ".batches";

/// achievements_users of the network-wide window that belong to a set of users: the window
/// spans every campus, so the rows of other campuses' users are skipped (the walk still moves
/// past them).
struct AchievementsOf<'a> {
    users: &'a HashSet<i64>,
}

impl Model for AchievementsOf<'_> {
    fn table(&self) -> Table {
        ACHIEVEMENTS_USERS.table()
    }
    fn path(&self) -> &'static str {
        ACHIEVEMENTS_USERS.path()
    }
    fn path_for(&self, campus: Option<i64>) -> Result<String> {
        ACHIEVEMENTS_USERS.path_for(campus)
    }
    fn filter(&self, query: Query, name: &str, values: &[i64]) -> Query {
        ACHIEVEMENTS_USERS.filter(query, name, values)
    }
    fn max_per_page(&self) -> u32 {
        ACHIEVEMENTS_USERS.max_per_page()
    }
    fn fetch<'a>(
        &'a self,
        client: &'a FtClient,
        path: &'a str,
        query: &'a Query,
    ) -> BoxFuture<'a, Result<Fetched>> {
        Box::pin(async move {
            let page = client
                .get_page_lenient::<AchievementsUser>(path, query)
                .await?;
            let mut fetched = Fetched::map(page, ACHIEVEMENTS_USERS.map, |a| {
                a.user_id.is_some_and(|u| self.users.contains(&u))
            })?;
            // A row that did not decode is skipped like the others when its `user_id` can be
            // read and is not one of these users': another campus's bad row is not ours to
            // quarantine (it would never be released by this mirror).
            fetched
                .quarantine
                .retain(|q| user_id_of(&q.raw).is_none_or(|u| self.users.contains(&u)));
            Ok(fetched)
        })
    }
}

/// The `user_id` of a raw row, when it is there and a number (as ft-api reads a rejected
/// item's `id`).
fn user_id_of(raw: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct UserIdOnly {
        user_id: i64,
    }
    serde_json::from_str::<UserIdOnly>(raw)
        .ok()
        .map(|v| v.user_id)
}

/// achievements_users of a campus: the API has no campus filter for them, so a full pass reads
/// them by batches of 100 users (and marks deleted the rows of those users it did not get back).
/// A delta first asks the network-wide window for its size (one request): when reading that
/// window costs no more requests than one request per batch of users, the window is read and
/// the rows of other campuses' users are skipped.
pub(crate) async fn achievements_users(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
) -> Result<PassEnd> {
    let resource = payload.listing.as_str();
    let batches_resource = format!("{resource}{BATCHES_SUFFIX}");
    let campuses = campuses_of(payload)?;
    let since = payload.since.map(|t| t.naive_utc());
    let until = payload.until.naive_utc();
    let (pass, resume_window) = PassCursor::load(ctx, resource, since, until).await?;
    let (mut batch_pass, resume_batches) =
        PassCursor::load(ctx, &batches_resource, since, until).await?;
    batch_pass.watermark = None;
    let users = users_of(ctx, &campuses, false).await?;
    if users.is_empty() {
        tracing::info!(
            scope = %ctx.scope,
            "no users stored for these campuses; no achievements_users to read"
        );
        return pass.finish(ctx).await;
    }
    let batch_count = users.len().div_ceil(ID_BATCH) as u64;
    let path = ACHIEVEMENTS_USERS.path_for(None)?;
    let window = match (payload.mode, payload.since) {
        (PassMode::Delta, Some(since)) => Some((since, payload.until)),
        _ => None,
    };

    // Resume the path an earlier attempt chose, or choose one.
    let use_window = match (resume_batches.after, resume_window.after, window) {
        (Some(_), _, _) => false,
        (None, Some(_), _) => true,
        (None, None, Some((since, until))) => {
            let probe =
                Query::new()
                    .sort(["id"])
                    .per_page(1)
                    .range_time("updated_at", since, until);
            let total = ctx.client.probe_total(&path, &probe).await?;
            let window_cost = total.div_ceil(u64::from(ctx.per_page.max(1))).max(1);
            tracing::info!(
                scope = %ctx.scope,
                window_rows = total,
                window_cost,
                batch_cost = batch_count,
                "achievements_users delta: choosing the cheaper path"
            );
            window_cost <= batch_count
        }
        _ => false,
    };

    if use_window {
        let (since, until) = window.unwrap_or((payload.until, payload.until));
        let campus_users: HashSet<i64> = users.iter().copied().collect();
        let model = AchievementsOf {
            users: &campus_users,
        };
        return keyset(
            ctx,
            Keyset {
                model: &model,
                path,
                base: Query::new().range_time("updated_at", since, until),
                resume: resume_window,
                cursor: CursorPlan::Pass(pass),
                enqueue_reason: None,
                expect: None,
                yield_after_page: true,
            },
        )
        .await;
    }

    // By batches of users, resuming after the last finished batch.
    let todo: Vec<i64> = users
        .into_iter()
        .filter(|u| resume_batches.after.is_none_or(|last| *u > last))
        .collect();
    let chunks: Vec<&[i64]> = todo.chunks(ID_BATCH).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let position = batch_pass.at(&ctx.scope, chunk.last().copied(), (i + 1) as u64, 0, None);
        let end = read_user_batch(
            ctx,
            &ACHIEVEMENTS_USERS,
            chunk,
            window,
            window.is_none(),
            Some(position),
        )
        .await?;
        if end != PassEnd::Complete {
            return Ok(end);
        }
        if i + 1 < chunks.len() && ctx.should_yield().await? {
            return Ok(PassEnd::Yielded);
        }
    }
    ctx.save_completion(pass.complete(&ctx.scope)).await?;
    let store = ctx.store.clone();
    let (br, sc) = (batches_resource, ctx.scope.clone());
    blocking(move || store.delete_cursor(&br, &sc).map(|_| ())).await?;
    Ok(PassEnd::Complete)
}

/// The relation worker: takes up to `max_relation_users` users from the changed-user queue and
/// reads every row of theirs in projects_users, achievements_users, coalitions_users and
/// cursus_users (100 users per request), marking deleted what the API no longer has for them.
/// Users whose relations were all read leave the queue; after a crash they are taken again
/// once their 15-minute claim runs out.
pub(crate) async fn relation_users(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
) -> Result<PassEnd> {
    let pass = PassCursor::unwindowed(ctx, payload).await?;
    let limit = ctx.max_relation_users.max(1) as i64;
    let store = ctx.store.clone();
    let users = blocking(move || store.relation_queue_take(limit)).await?;
    if users.is_empty() {
        return pass.finish(ctx).await;
    }
    tracing::info!(
        users = users.len(),
        "relation worker: refreshing the relations of changed users"
    );
    let relations: [&dyn Model; 4] = [
        &PROJECTS_USERS,
        &ACHIEVEMENTS_USERS,
        &COALITIONS_USERS,
        &CURSUS_USERS,
    ];
    for chunk in users.chunks(ID_BATCH) {
        for model in relations {
            let end = read_user_batch(ctx, model, chunk, None, true, None).await?;
            if end != PassEnd::Complete {
                return Ok(end);
            }
        }
        let store = ctx.store.clone();
        let done = chunk.to_vec();
        blocking(move || store.relation_queue_done(&done)).await?;
    }
    pass.finish(ctx).await
}

/// Users that relation rows refer to but the database lacks, fetched by id (100 per request),
/// so that foreign keys stay consistent. Their own relations go to the changed-user queue.
pub(crate) async fn missing_users(ctx: &mut PassCtx<'_>, payload: &TaskPayload) -> Result<PassEnd> {
    let pass = PassCursor::unwindowed(ctx, payload).await?;
    let store = ctx.store.clone();
    let ids = blocking(move || store.missing_user_ids(10_000)).await?;
    if ids.is_empty() {
        return pass.finish(ctx).await;
    }
    tracing::info!(
        count = ids.len(),
        "fetching users that relation rows refer to"
    );
    let mut unknown = Vec::new();
    for (i, chunk) in ids.chunks(ID_BATCH).enumerate() {
        if ctx.stopping() {
            return Ok(PassEnd::Interrupted);
        }
        let Some((fetched, gone)) = fetch_ids(ctx, &USERS, chunk).await? else {
            return Ok(PassEnd::Interrupted);
        };
        unknown.extend(gone);
        ctx.commit_page(PageCommit {
            table: Table::Users,
            path: USERS.path().to_owned(),
            page_no: (i + 1) as i64,
            fetched,
            keep_rows: true,
            cursor: None,
            enqueue_reason: Some("missing parent".to_owned()),
            deleted: Vec::new(),
            progress: None,
        })
        .await?;
    }
    if !unknown.is_empty() {
        tracing::warn!(count = unknown.len(), ids = ?unknown, "relation rows refer to users the API does not return; `ft42 integrity` lists them as orphans");
    }
    pass.finish(ctx).await
}

/// The stored users of these campuses (`primary_only`: by primary campus), sorted.
async fn users_of(ctx: &PassCtx<'_>, campuses: &[i64], primary_only: bool) -> Result<Vec<i64>> {
    union_over_campuses(ctx, campuses, move |store, c| {
        store.campus_user_ids(c, primary_only)
    })
    .await
}

/// The local side of a deletion check: the stored live ids the scope's listing should return,
/// sorted.
async fn local_scope_ids(ctx: &PassCtx<'_>, table: Table, campuses: &[i64]) -> Result<Vec<i64>> {
    let store = ctx.store.clone();
    let mut ids = match table {
        Table::CoalitionsUsers => {
            let coalitions = coalitions_of(ctx, campuses).await?;
            blocking(move || store.live_ids(table, IdsWhere::In(Column::CoalitionId, &coalitions)))
                .await?
        }
        Table::Locations => {
            let campuses = campuses.to_vec();
            blocking(move || store.live_ids(table, IdsWhere::In(Column::CampusId, &campuses)))
                .await?
        }
        // The API's campus filter on cursus_users and projects_users is the user's primary
        // campus.
        _ => {
            let users = users_of(ctx, campuses, true).await?;
            blocking(move || store.live_ids(table, IdsWhere::In(Column::UserId, &users))).await?
        }
    };
    ids.sort_unstable();
    Ok(ids)
}

/// Finds the rows of one campus (or campus set) scope that the API no longer has, spending as few requests as
/// `X-Total` allows: one request when the API's count of the scope equals the stored count;
/// otherwise the id range is split where the stored ids are dense, each part asked for its
/// count (the same request returns its first 100 rows, which are compared id by id), until
/// the parts whose counts differ are small enough to list. Candidates are then asked for by id
/// without the scope filter: a row that merely left the scope (a user changed campus) comes
/// back and is kept (updated); only ids the API does not return at all are marked deleted.
pub(crate) async fn deletions(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
    filter: CampusFilter,
) -> Result<PassEnd> {
    deletions_with(ctx, payload, payload.listing.resource().model, filter).await
}

/// [`deletions`] through `model` (a test double in unit tests).
pub(crate) async fn deletions_with(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
    model: &dyn Model,
    filter: CampusFilter,
) -> Result<PassEnd> {
    let table = model.table();
    let campuses = campuses_of(payload)?;
    let pass = PassCursor::unwindowed(ctx, payload).await?;
    let mut page_no = 0i64;
    // More coalitions than one filter list may hold: one check per chunk of them.
    if filter == CampusFilter::Coalitions {
        let coalitions = coalitions_of(ctx, &campuses).await?;
        if coalitions.len() > FILTER_LIST_MAX {
            let path = model.path_for(None)?;
            for chunk in coalitions.chunks(FILTER_LIST_MAX) {
                let store = ctx.store.clone();
                let ids = chunk.to_vec();
                let local = blocking(move || {
                    store.live_ids(table, IdsWhere::In(Column::CoalitionId, &ids))
                })
                .await?;
                let base = model.filter(Query::new(), "coalition_id", chunk);
                let end = check_scope(ctx, model, &path, &base, &local, &mut page_no).await?;
                if end != PassEnd::Complete {
                    return Ok(end);
                }
            }
            return pass.finish(ctx).await;
        }
    }
    let local = local_scope_ids(ctx, table, &campuses).await?;
    let Some((path, base)) = scope_request(ctx, payload, model, filter).await? else {
        return pass.finish(ctx).await;
    };
    let end = check_scope(ctx, model, &path, &base, &local, &mut page_no).await?;
    if end != PassEnd::Complete {
        return Ok(end);
    }
    pass.finish(ctx).await
}

/// The deletion check of one scope request (`path` + `base` filters) against the stored live
/// ids it should return (`local`, sorted). Pages are numbered on from `page_no`.
async fn check_scope(
    ctx: &mut PassCtx<'_>,
    model: &dyn Model,
    path: &str,
    base: &Query,
    local: &[i64],
    page_no: &mut i64,
) -> Result<PassEnd> {
    let table = model.table();
    let path = path.to_owned();
    let in_range = |lo: i64, hi: i64| -> &[i64] {
        let start = local.partition_point(|&id| id < lo);
        let end = local.partition_point(|&id| id <= hi);
        &local[start..end]
    };
    let mut candidates: Vec<i64> = Vec::new();
    let mut alive: Option<i64> = None;
    let mut ranges: Vec<(i64, i64)> = vec![(1, ID_MAX)];
    while let Some((lo, hi)) = ranges.pop() {
        if lo > hi {
            continue;
        }
        if ctx.stopping() {
            return Ok(PassEnd::Interrupted);
        }
        let query = base
            .clone()
            .sort(["id"])
            .per_page(ctx.per_page(model))
            .range("id", lo, hi);
        let Some(fetched) = ctx.fetch(model, &path, &query).await? else {
            return Ok(PassEnd::Interrupted);
        };
        *page_no += 1;
        let Some(total) = fetched.total else {
            return Err(SyncError::Data {
                what: format!("{path} deletion check"),
                detail: "the response has no X-Total header; deletions cannot be found by count"
                    .to_owned(),
            });
        };
        // `range[id]` must hold; `sort` may be ignored (the apidoc lists none for
        // projects_users): then a partial page proves nothing about which ids of the range it
        // covers, and the range is split until each part fits in one page.
        check_in_window(&fetched.ids, lo, hi).map_err(|source| SyncError::Paging {
            endpoint: path.clone(),
            source,
        })?;
        let sorted = check_ascending(&fetched.ids, Some(lo - 1)).is_ok();
        let page_ids: HashSet<i64> = fetched.ids.iter().copied().collect();
        // A row the API just served: the canary that confirms an all-missing candidate batch.
        alive = alive.or(fetched.ids.last().copied());
        let local_here = in_range(lo, hi);
        let complete = (fetched.ids.len() as u64) >= total;
        let agree = total == local_here.len() as u64;
        // The rows of this page are fresh data whatever the outcome: keep them.
        let covered_to = if complete {
            hi
        } else if sorted {
            fetched.ids.last().copied().unwrap_or(hi)
        } else {
            lo - 1
        };
        let mut differs = false;
        if !agree || complete {
            let covered = in_range(lo, covered_to);
            let before = candidates.len();
            candidates.extend(covered.iter().copied().filter(|id| !page_ids.contains(id)));
            differs = candidates.len() > before || covered.len() != page_ids.len();
        }
        // Rows are kept only where the id sets differ (new rows the delta missed); elsewhere
        // the delta pass keeps them fresh and only the request is logged.
        ctx.commit_page(PageCommit {
            table,
            path: path.clone(),
            page_no: *page_no,
            fetched,
            keep_rows: differs || !agree,
            cursor: None,
            enqueue_reason: None,
            deleted: Vec::new(),
            progress: None,
        })
        .await?;
        if complete || agree {
            continue;
        }
        // Counts differ and the range holds more than a page: split what is left where the
        // stored ids are dense, so each half is asked for its own count.
        let rest_lo = covered_to.saturating_add(1);
        let rest = in_range(rest_lo, hi);
        if rest.len() >= 2 {
            let mid = rest[rest.len() / 2];
            ranges.push((mid, hi));
            ranges.push((rest_lo, mid - 1));
        } else if sorted || rest_lo >= hi {
            ranges.push((rest_lo, hi));
        } else {
            // Unsorted and too few stored ids to split by: halve the range itself.
            let mid = rest_lo + (hi - rest_lo) / 2;
            ranges.push((mid + 1, hi));
            ranges.push((rest_lo, mid));
        }
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut deleted_total = 0usize;
    for chunk in candidates.chunks(ID_BATCH) {
        if ctx.stopping() {
            return Ok(PassEnd::Interrupted);
        }
        // Asked for by id without the scope filter: a row that only left the scope comes back.
        let Some((fetched, gone)) = fetch_ids(ctx, model, chunk).await? else {
            return Ok(PassEnd::Interrupted);
        };
        let gone = ctx
            .verified_gone(model, chunk, gone, alive, page_no)
            .await?;
        *page_no += 1;
        if !gone.is_empty() {
            tracing::info!(%table, scope = %ctx.scope, count = gone.len(), ids = ?gone, "rows deleted by the API; marking them deleted");
        }
        deleted_total += gone.len();
        ctx.commit_page(PageCommit {
            table,
            path: path.clone(),
            page_no: *page_no,
            fetched,
            keep_rows: true,
            cursor: None,
            enqueue_reason: None,
            deleted: gone,
            progress: None,
        })
        .await?;
    }
    tracing::info!(%table, scope = %ctx.scope, requests = *page_no, deleted = deleted_total, "deletion check done");
    Ok(PassEnd::Complete)
}
