//! Work that is not one keyset pass over one scope: achievements_users by batches of users (or
//! the network-wide window when that is cheaper), deletions found by `X-Total` probes, missing
//! parent users, and the relation worker that refreshes every relation of changed users.

use std::collections::HashSet;

use ft_api::models as m;
use ft_api::{Page, Query};
use ft_store::{ApplyPage, Rows, Table};
use serde::de::DeserializeOwned;

use crate::blocking;
use crate::error::{Result, SyncError};
use crate::listing::{
    Commit, ID_BATCH, ID_MAX, Listing, MapFn, PassCtx, PassEnd, PassPosition, PassStats, fetch,
    fetch_log, finish_empty, pass_complete,
};
use crate::mapping;
use crate::progress::Progress;
use crate::task::{PassMode, TaskPayload};

/// How a batch of users was read.
enum BatchEnd {
    /// Every page was read.
    Done,
    /// Shutdown: nothing more was committed.
    Interrupted,
}

/// Everything one user-batch read needs to know.
struct UserBatch<'a> {
    endpoint: &'a str,
    table: Table,
    scope: &'a str,
    users: &'a [i64],
    /// A delta window on `updated_at`, or `None` for every row of these users.
    window: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
    /// Whether rows of these users that the API did not return are marked deleted (only
    /// meaningful without a window: then the API returned every row of these users).
    detect_deletions: bool,
    /// The cursor to save with the batch's last page.
    cursor_at_end: Option<ft_store::CursorUpdate>,
}

/// Reads every row of `batch.users` (in the window, if any) by keyset, committing page by page;
/// the last page carries the deletions and the cursor.
async fn read_user_batch<M>(
    ctx: &mut PassCtx<'_>,
    batch: UserBatch<'_>,
    map: MapFn<M>,
    stats: &mut PassStats,
) -> Result<BatchEnd>
where
    M: DeserializeOwned + Send + 'static,
{
    let local: Vec<i64> = if batch.detect_deletions {
        let store = ctx.store.clone();
        let (table, users) = (batch.table, batch.users.to_vec());
        blocking(move || store.live_ids_in(table, "user_id", &users)).await?
    } else {
        Vec::new()
    };
    let mut returned = HashSet::new();
    let mut last_id: Option<i64> = None;
    let mut page_no = 0i64;
    loop {
        if ctx.stopping() {
            return Ok(BatchEnd::Interrupted);
        }
        let mut query = Query::new()
            .filter("user_id", batch.users.iter().copied())
            .sort(["id"])
            .per_page(ctx.per_page);
        if let Some(last) = last_id {
            query = query.range("id", last + 1, ID_MAX);
        }
        if let Some((since, until)) = batch.window {
            query = query.range_time("updated_at", since, until);
        }
        let page: Page<M> = match fetch(ctx, batch.endpoint, &query).await? {
            Some(page) => page,
            None => return Ok(BatchEnd::Interrupted),
        };
        page_no += 1;
        let n = page.items.len() as u64;
        let mapped = map(&page)?;
        let done = match page.total {
            Some(total) => n >= total,
            None => n < u64::from(page.per_page.max(1)),
        };
        if n == 0 && !done {
            return Err(SyncError::Data {
                what: format!("{} page after id {last_id:?}", batch.endpoint),
                detail: "empty page while X-Total says rows remain".to_owned(),
            });
        }
        returned.extend(mapped.rows.ids());
        let deleted = if done && batch.detect_deletions {
            let gone: Vec<i64> = local
                .iter()
                .copied()
                .filter(|id| !returned.contains(id))
                .collect();
            if !gone.is_empty() {
                tracing::info!(table = %batch.table, count = gone.len(), ids = ?gone, "rows no longer returned for these users; marking them deleted");
            }
            (!gone.is_empty()).then_some((batch.table, gone))
        } else {
            None
        };
        let apply = ApplyPage {
            rows: mapped.rows,
            cursor: if done {
                batch.cursor_at_end.clone()
            } else {
                None
            },
            fetch_log: Some(fetch_log(ctx, batch.endpoint, batch.scope, page_no, &page)),
            fence: Some(ctx.fence.clone()),
            enqueue_users: Vec::new(),
            mark_deleted: deleted.clone(),
            also: mapped.also,
        };
        ctx.commit(Commit {
            table: batch.table,
            scope: batch.scope,
            page_no,
            raw: &page.raw,
            apply,
            deleted,
        })
        .await?;
        stats.pages += 1;
        stats.rows += n;
        last_id = mapped.max_id.or(last_id);
        let _ = ctx.progress.send(Progress::Page {
            task_id: ctx.fence.task_id,
            rows: stats.rows,
            total: None,
            pages_done: stats.pages,
        });
        if done {
            return Ok(BatchEnd::Done);
        }
    }
}

/// The cursor that remembers which user batches of an achievements_users pass are done.
const BATCHES_SUFFIX: &str = ".batches";

/// achievements_users of a campus: the API has no campus filter for them, so a full pass reads
/// them by batches of 100 users (and marks deleted the rows of those users it did not get back).
/// A delta first asks the network-wide window for its size (one request, whose rows are kept):
/// when reading that window costs no more requests than one request per batch of users, the
/// window is read and the rows of other campuses' users are skipped.
pub(crate) async fn achievements_users(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
) -> Result<(PassEnd, PassStats)> {
    let resource = payload.listing.as_str();
    let batches_resource = format!("{resource}{BATCHES_SUFFIX}");
    let scope = payload.scope();
    let endpoint = "/v2/achievements_users";
    let campus = payload.campus_id.unwrap_or_default();
    let since = payload.since.map(|t| t.naive_utc());
    let until = payload.until.naive_utc();
    let (users, cursor, batch_cursor) = {
        let store = ctx.store.clone();
        let (r, br, sc) = (resource.to_owned(), batches_resource.clone(), scope.clone());
        blocking(move || {
            Ok((
                store.campus_user_ids(campus, false)?,
                store.cursor(&r, &sc)?,
                store.cursor(&br, &sc)?,
            ))
        })
        .await?
    };
    let watermark = cursor.as_ref().and_then(|c| c.watermark);
    let in_flight = |c: &Option<ft_store::Cursor>| {
        c.as_ref()
            .filter(|c| c.pass_until == Some(until) && c.pass_since == since)
            .and_then(|c| c.last_id)
    };
    let mut stats = PassStats::default();
    if users.is_empty() {
        tracing::info!(
            campus,
            "no users stored for this campus; no achievements_users to read"
        );
        return finish_empty(ctx, payload).await;
    }
    let batch_count = users.len().div_ceil(ID_BATCH) as u64;

    // Resume the path an earlier attempt chose, or choose one.
    let resume_batches = in_flight(&batch_cursor);
    let resume_window = in_flight(&cursor);
    let use_window = match (resume_batches, resume_window, payload.mode, payload.since) {
        (Some(_), _, _, _) => false,
        (None, Some(_), _, _) => true,
        (None, None, PassMode::Delta, Some(_)) => {
            let probe = Query::new().sort(["id"]).per_page(1).range_time(
                "updated_at",
                payload.since.unwrap_or_default(),
                payload.until,
            );
            let total = ctx.client.probe_total(endpoint, &probe).await?;
            let window_cost = total.div_ceil(u64::from(ctx.per_page.max(1))).max(1);
            tracing::info!(
                campus,
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
        let campus_users: HashSet<i64> = users.iter().copied().collect();
        let mut last_id = resume_window;
        let (mut pages, mut rows) = cursor
            .as_ref()
            .filter(|_| resume_window.is_some())
            .map_or((0, 0), |c| (c.page.max(0) as u64, c.rows.max(0) as u64));
        loop {
            if ctx.stopping() {
                return Ok((PassEnd::Interrupted, stats));
            }
            let mut query = Query::new().sort(["id"]).per_page(ctx.per_page).range_time(
                "updated_at",
                payload.since.unwrap_or_default(),
                payload.until,
            );
            if let Some(last) = last_id {
                query = query.range("id", last + 1, ID_MAX);
            }
            let page: Page<m::AchievementsUser> = match fetch(ctx, endpoint, &query).await? {
                Some(page) => page,
                None => return Ok((PassEnd::Interrupted, stats)),
            };
            let n = page.items.len() as u64;
            let done = match page.total {
                Some(total) => n >= total,
                None => n < u64::from(page.per_page.max(1)),
            };
            // Keep only this campus's users: the window spans the whole network.
            let keep: Vec<usize> = page
                .items
                .iter()
                .enumerate()
                .filter(|(_, a)| a.user_id.is_some_and(|u| campus_users.contains(&u)))
                .map(|(i, _)| i)
                .collect();
            let max_id = page.items.iter().map(|a| a.id).max();
            let fetch_entry = fetch_log(ctx, endpoint, &scope, (pages + 1) as i64, &page);
            let kept = Page {
                items: keep.iter().map(|&i| page.items[i].clone()).collect(),
                raw: keep.iter().map(|&i| page.raw[i].clone()).collect(),
                page: page.page,
                per_page: page.per_page,
                total: page.total,
                links: page.links.clone(),
                meta: page.meta.clone(),
            };
            let mapped = mapping::achievements_users(&kept)?;
            let cursor = if done {
                pass_complete(resource, &scope, watermark, until)
            } else {
                PassPosition {
                    since,
                    until,
                    last_id: max_id.or(last_id),
                    page: (pages + 1) as i64,
                    rows: (rows + n) as i64,
                    expected_rows: page.total.map(|t| (rows + t) as i64),
                }
                .cursor(resource, &scope, watermark)
            };
            ctx.commit(Commit {
                table: Table::AchievementsUsers,
                scope: &scope,
                page_no: (pages + 1) as i64,
                raw: &kept.raw,
                apply: ApplyPage {
                    rows: mapped.rows,
                    cursor: Some(cursor),
                    fetch_log: Some(fetch_entry),
                    fence: Some(ctx.fence.clone()),
                    enqueue_users: Vec::new(),
                    mark_deleted: None,
                    also: Vec::new(),
                },
                deleted: None,
            })
            .await?;
            pages += 1;
            rows += n;
            stats.pages += 1;
            stats.rows += kept.items.len() as u64;
            last_id = max_id.or(last_id);
            if done {
                return Ok((PassEnd::Complete, stats));
            }
            if ctx.should_yield().await? {
                return Ok((PassEnd::Yielded, stats));
            }
        }
    }

    // By batches of users, resuming after the last finished batch.
    let todo: Vec<i64> = users
        .into_iter()
        .filter(|u| resume_batches.is_none_or(|last| *u > last))
        .collect();
    let window = match payload.mode {
        PassMode::Delta => payload.since.map(|s| (s, payload.until)),
        PassMode::Full => None,
    };
    let chunks: Vec<&[i64]> = todo.chunks(ID_BATCH).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let position = PassPosition {
            since,
            until,
            last_id: chunk.last().copied(),
            page: (i + 1) as i64,
            rows: 0,
            expected_rows: None,
        }
        .cursor(&batches_resource, &scope, None);
        let batch = UserBatch {
            endpoint,
            table: Table::AchievementsUsers,
            scope: &scope,
            users: chunk,
            window,
            detect_deletions: window.is_none(),
            cursor_at_end: Some(position),
        };
        match read_user_batch(ctx, batch, mapping::achievements_users, &mut stats).await? {
            BatchEnd::Done => {}
            BatchEnd::Interrupted => return Ok((PassEnd::Interrupted, stats)),
        }
        if i + 1 < chunks.len() && ctx.should_yield().await? {
            return Ok((PassEnd::Yielded, stats));
        }
    }
    let store = ctx.store.clone();
    let (r, br, sc) = (resource.to_owned(), batches_resource, scope.clone());
    blocking(move || {
        store.save_cursor(&pass_complete(&r, &sc, watermark, until))?;
        store.delete_cursor(&br, &sc).map(|_| ())
    })
    .await?;
    Ok((PassEnd::Complete, stats))
}

/// The relation worker: takes up to `max_relation_users` users from the changed-user queue and
/// reads every row of theirs in projects_users, achievements_users, coalitions_users and
/// cursus_users (100 users per request), marking deleted what the API no longer has for them.
/// Users whose relations were all read leave the queue; after a crash they are taken again
/// once their 15-minute claim runs out.
pub(crate) async fn relation_users(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
) -> Result<(PassEnd, PassStats)> {
    let limit = ctx.max_relation_users.max(1) as i64;
    let store = ctx.store.clone();
    let users = blocking(move || store.relation_queue_take(limit)).await?;
    if users.is_empty() {
        return finish_empty(ctx, payload).await;
    }
    tracing::info!(
        users = users.len(),
        "relation worker: refreshing the relations of changed users"
    );
    let scope = payload.scope();
    let mut stats = PassStats::default();
    for chunk in users.chunks(ID_BATCH) {
        macro_rules! read {
            ($endpoint:expr, $table:expr, $model:ty, $map:expr) => {{
                let batch = UserBatch {
                    endpoint: $endpoint,
                    table: $table,
                    scope: &scope,
                    users: chunk,
                    window: None,
                    detect_deletions: true,
                    cursor_at_end: None,
                };
                match read_user_batch::<$model>(ctx, batch, $map, &mut stats).await? {
                    BatchEnd::Done => {}
                    BatchEnd::Interrupted => return Ok((PassEnd::Interrupted, stats)),
                }
            }};
        }
        read!(
            "/v2/projects_users",
            Table::ProjectsUsers,
            m::ProjectsUser,
            mapping::projects_users
        );
        read!(
            "/v2/achievements_users",
            Table::AchievementsUsers,
            m::AchievementsUser,
            mapping::achievements_users
        );
        read!(
            "/v2/coalitions_users",
            Table::CoalitionsUsers,
            m::CoalitionsUser,
            mapping::coalitions_users
        );
        read!(
            "/v2/cursus_users",
            Table::CursusUsers,
            m::CursusUser,
            mapping::cursus_users
        );
        let store = ctx.store.clone();
        let done = chunk.to_vec();
        blocking(move || store.relation_queue_done(&done)).await?;
    }
    finish_empty(ctx, payload)
        .await
        .map(|(end, _)| (end, stats))
}

/// Users that relation rows refer to but the database lacks, fetched by id (100 per request),
/// so that foreign keys stay consistent. Their own relations go to the changed-user queue.
pub(crate) async fn missing_users(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
) -> Result<(PassEnd, PassStats)> {
    let store = ctx.store.clone();
    let ids = blocking(move || store.missing_user_ids(10_000)).await?;
    if ids.is_empty() {
        return finish_empty(ctx, payload).await;
    }
    tracing::info!(
        count = ids.len(),
        "fetching users that relation rows refer to"
    );
    let scope = payload.scope();
    let endpoint = "/v2/users";
    let mut stats = PassStats::default();
    let mut unknown = Vec::new();
    for (i, chunk) in ids.chunks(ID_BATCH).enumerate() {
        if ctx.stopping() {
            return Ok((PassEnd::Interrupted, stats));
        }
        let query = Query::new()
            .filter("id", chunk.iter().copied())
            .sort(["id"])
            .per_page(ID_BATCH as u32);
        let page: Page<m::User> = match fetch(ctx, endpoint, &query).await? {
            Some(page) => page,
            None => return Ok((PassEnd::Interrupted, stats)),
        };
        let mapped = mapping::users(&page)?;
        let returned: HashSet<i64> = mapped.rows.ids().into_iter().collect();
        unknown.extend(chunk.iter().copied().filter(|id| !returned.contains(id)));
        let n = page.items.len() as u64;
        let enqueue_users = mapped
            .user_ids
            .iter()
            .map(|&id| (id, "missing parent".to_owned()))
            .collect();
        ctx.commit(Commit {
            table: Table::Users,
            scope: &scope,
            page_no: (i + 1) as i64,
            raw: &page.raw,
            apply: ApplyPage {
                rows: mapped.rows,
                cursor: None,
                fetch_log: Some(fetch_log(ctx, endpoint, &scope, (i + 1) as i64, &page)),
                fence: Some(ctx.fence.clone()),
                enqueue_users,
                mark_deleted: None,
                also: Vec::new(),
            },
            deleted: None,
        })
        .await?;
        stats.pages += 1;
        stats.rows += n;
    }
    if !unknown.is_empty() {
        tracing::warn!(count = unknown.len(), ids = ?unknown, "relation rows refer to users the API does not return; `ft42 integrity` lists them as orphans");
    }
    finish_empty(ctx, payload)
        .await
        .map(|(end, _)| (end, stats))
}

/// The local side of a deletion check: which stored ids the scope's listing should return.
async fn local_scope_ids(ctx: &PassCtx<'_>, listing: Listing, campus: i64) -> Result<ScopeIds> {
    let store = ctx.store.clone();
    blocking(move || {
        Ok(match listing {
            Listing::CursusUsersDeletions | Listing::ProjectsUsersDeletions => {
                // The API's campus filter on these listings means the user's primary campus.
                let users = store.campus_user_ids(campus, true)?;
                ScopeIds {
                    ids: store.live_ids_in(listing.table(), "user_id", &users)?,
                    filter: None,
                }
            }
            Listing::CoalitionsUsersDeletions => {
                let coalitions = store.campus_coalition_ids(campus)?;
                if coalitions.is_empty() {
                    return Ok(ScopeIds {
                        ids: Vec::new(),
                        filter: Some(Vec::new()),
                    });
                }
                ScopeIds {
                    ids: store.live_ids_in(Table::CoalitionsUsers, "coalition_id", &coalitions)?,
                    filter: Some(coalitions),
                }
            }
            _ => ScopeIds {
                ids: store.live_ids(Table::Locations, "campus_id", campus)?,
                filter: None,
            },
        })
    })
    .await
}

struct ScopeIds {
    /// Stored live ids in the scope, sorted.
    ids: Vec<i64>,
    /// Coalition ids, for the listing whose scope is a set of coalitions.
    filter: Option<Vec<i64>>,
}

/// Finds the rows of one campus scope that the API no longer has, spending as few requests as
/// `X-Total` allows: one request when the API's count of the scope equals the stored count;
/// otherwise the id range is split where the stored ids are dense, each part asked for its
/// count (the same request returns its first 100 rows, which are compared id by id), until
/// the parts whose counts differ are small enough to list. Candidates are then asked for by id
/// without the scope filter: a row that merely left the scope (a user changed campus) comes
/// back and is kept (updated); only ids the API does not return at all are marked deleted.
pub(crate) async fn deletions(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
) -> Result<(PassEnd, PassStats)> {
    use ft_api::models as m;
    match payload.listing {
        Listing::CursusUsersDeletions => {
            deletions_of::<m::CursusUser>(ctx, payload, mapping::cursus_users).await
        }
        Listing::ProjectsUsersDeletions => {
            deletions_of::<m::ProjectsUser>(ctx, payload, mapping::projects_users).await
        }
        Listing::CoalitionsUsersDeletions => {
            deletions_of::<m::CoalitionsUser>(ctx, payload, mapping::coalitions_users).await
        }
        _ => deletions_of::<m::Location>(ctx, payload, mapping::locations).await,
    }
}

async fn deletions_of<M>(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
    map: MapFn<M>,
) -> Result<(PassEnd, PassStats)>
where
    M: DeserializeOwned + Send + 'static,
{
    let listing = payload.listing;
    let table = listing.table();
    let scope = payload.scope();
    let campus = payload.campus_id.unwrap_or_default();
    let (endpoint, mut base) = listing.request(payload)?;
    let local = local_scope_ids(ctx, listing, campus).await?;
    if let Some(coalitions) = &local.filter {
        if coalitions.is_empty() {
            return finish_empty(ctx, payload).await;
        }
        base = base.filter("coalition_id", coalitions.iter().copied());
    }
    let local = local.ids;
    let in_range = |lo: i64, hi: i64| -> &[i64] {
        let start = local.partition_point(|&id| id < lo);
        let end = local.partition_point(|&id| id <= hi);
        &local[start..end]
    };
    let mut stats = PassStats::default();
    let mut candidates: Vec<i64> = Vec::new();
    let mut ranges: Vec<(i64, i64)> = vec![(1, ID_MAX)];
    let mut page_no = 0i64;
    while let Some((lo, hi)) = ranges.pop() {
        if lo > hi {
            continue;
        }
        if ctx.stopping() {
            return Ok((PassEnd::Interrupted, stats));
        }
        let query = base
            .clone()
            .sort(["id"])
            .per_page(ctx.per_page)
            .range("id", lo, hi);
        let page: Page<M> = match fetch(ctx, &endpoint, &query).await? {
            Some(page) => page,
            None => return Ok((PassEnd::Interrupted, stats)),
        };
        page_no += 1;
        let Some(total) = page.total else {
            return Err(SyncError::Data {
                what: format!("{endpoint} deletion check"),
                detail: "the response has no X-Total header; deletions cannot be found by count"
                    .to_owned(),
            });
        };
        let mapped = map(&page)?;
        let page_ids: HashSet<i64> = mapped.rows.ids().into_iter().collect();
        let page_max = mapped.max_id;
        let local_here = in_range(lo, hi);
        let complete = (page.items.len() as u64) >= total;
        let agree = total == local_here.len() as u64;
        if !complete && page.items.is_empty() {
            return Err(SyncError::Data {
                what: format!("{endpoint} deletion check"),
                detail: format!("empty page while X-Total says {total} rows"),
            });
        }
        // The rows of this page are fresh data whatever the outcome: keep them.
        let covered_to = if complete { hi } else { page_max.unwrap_or(hi) };
        let mut differs = false;
        if !agree || complete {
            let covered = in_range(lo, covered_to);
            let before = candidates.len();
            candidates.extend(covered.iter().copied().filter(|id| !page_ids.contains(id)));
            differs = candidates.len() > before || covered.len() != page_ids.len();
        }
        // Rows are kept only where the id sets differ (new rows the delta missed); elsewhere
        // the delta pass keeps them fresh and only the request is logged.
        let keep_rows = differs || !agree;
        let n = if keep_rows {
            page.items.len() as u64
        } else {
            0
        };
        let fetch_entry = fetch_log(ctx, &endpoint, &scope, page_no, &page);
        let (rows, also, raw) = if keep_rows {
            (mapped.rows, mapped.also, &page.raw[..])
        } else {
            (Rows::empty(table), Vec::new(), &[][..])
        };
        ctx.commit(Commit {
            table,
            scope: &scope,
            page_no,
            raw,
            apply: ApplyPage {
                rows,
                cursor: None,
                fetch_log: Some(fetch_entry),
                fence: Some(ctx.fence.clone()),
                enqueue_users: Vec::new(),
                mark_deleted: None,
                also,
            },
            deleted: None,
        })
        .await?;
        stats.pages += 1;
        stats.rows += n;
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
        } else {
            ranges.push((rest_lo, hi));
        }
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut deleted_total = 0usize;
    for chunk in candidates.chunks(ID_BATCH) {
        if ctx.stopping() {
            return Ok((PassEnd::Interrupted, stats));
        }
        // Asked for by id without the scope filter: a row that only left the scope comes back.
        let query = Query::new()
            .filter("id", chunk.iter().copied())
            .sort(["id"])
            .per_page(ID_BATCH as u32);
        let page: Page<M> = match fetch(ctx, &endpoint, &query).await? {
            Some(page) => page,
            None => return Ok((PassEnd::Interrupted, stats)),
        };
        page_no += 1;
        let mapped = map(&page)?;
        let returned: HashSet<i64> = mapped.rows.ids().into_iter().collect();
        let gone: Vec<i64> = chunk
            .iter()
            .copied()
            .filter(|id| !returned.contains(id))
            .collect();
        if !gone.is_empty() {
            tracing::info!(%table, scope = %scope, count = gone.len(), ids = ?gone, "rows deleted by the API; marking them deleted");
        }
        deleted_total += gone.len();
        let deleted = (!gone.is_empty()).then_some((table, gone));
        let fetch_entry = fetch_log(ctx, &endpoint, &scope, page_no, &page);
        ctx.commit(Commit {
            table,
            scope: &scope,
            page_no,
            raw: &page.raw,
            apply: ApplyPage {
                rows: mapped.rows,
                cursor: None,
                fetch_log: Some(fetch_entry),
                fence: Some(ctx.fence.clone()),
                enqueue_users: Vec::new(),
                mark_deleted: deleted.clone(),
                also: mapped.also,
            },
            deleted,
        })
        .await?;
        stats.pages += 1;
    }
    tracing::info!(%table, scope = %scope, requests = page_no, deleted = deleted_total, "deletion check done");
    finish_empty(ctx, payload)
        .await
        .map(|(end, _)| (end, stats))
}
