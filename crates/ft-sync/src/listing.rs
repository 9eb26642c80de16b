//! Runs one task: looks its listing up in the registry and runs the pass it declares.
//!
//! Keyset listings are walked with `sort=id` and `range[id]=<last id + 1>,<ID_MAX>`, so rows
//! inserted, deleted or re-dated while we read cannot shift a page boundary (offset paging over
//! the API's newest-first default order drops and repeats rows). `X-Total` counts the rows that
//! remain after the filters, so a pass ends on the page whose item count reaches it, and costs
//! exactly `ceil(rows / per_page)` requests (one for an empty scope). Re-reads ask for stored
//! ids again, 100 per request.
//!
//! Each page's rows, the cursor advance and its fetch-log row are committed in one transaction
//! (`pipeline.rs`), fenced by the task's lease. After a crash the pass resumes after the last
//! committed id; at most the one page that was in flight is fetched again.

use ft_api::Query;

use crate::blocking;
use crate::error::{Result, SyncError};
use crate::pipeline::{
    CursorPlan, ID_BATCH, Keyset, Model, PageCommit, PassCtx, PassCursor, PassEnd, PassStats,
    fetch_ids,
};
use crate::resource::{CampusFilter, Listing, Pass, StoredIds, USERS};
use crate::scope::FILTER_LIST_MAX;
use crate::task::{PassMode, TaskPayload};
use ft_store::{IdsWhere, Table};

/// Runs the pass the task's listing declares, resuming where the cursor says an earlier attempt
/// of the same pass stopped.
pub(crate) async fn run_pass(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
) -> Result<(PassEnd, PassStats)> {
    let end = match payload.listing.resource().pass {
        Pass::Keyset(filter) => walk(ctx, payload, filter).await?,
        Pass::Reread(ids) => reread(ctx, payload, ids).await?,
        Pass::AchievementsUsers => crate::relations::achievements_users(ctx, payload).await?,
        Pass::Deletions(filter) => crate::relations::deletions(ctx, payload, filter).await?,
        Pass::MissingUsers => crate::relations::missing_users(ctx, payload).await?,
        Pass::RelationUsers => crate::relations::relation_users(ctx, payload).await?,
    };
    Ok((end, ctx.stats))
}

/// The campuses of a campus-scoped task (one, or a set): none is an error, never campus 0.
pub(crate) fn campuses_of(payload: &TaskPayload) -> Result<Vec<i64>> {
    let campuses = payload.campuses();
    if campuses.is_empty() {
        return Err(SyncError::Invalid {
            what: format!("task for {}", payload.listing.as_str()),
            detail: "campus-scoped task has no campus id".to_owned(),
        });
    }
    Ok(campuses)
}

/// The union of a per-campus id read over `campuses`, sorted and deduplicated: the stored ids
/// a campus-set task works on (its coalitions, users, open sessions).
pub(crate) async fn union_over_campuses(
    ctx: &PassCtx<'_>,
    campuses: &[i64],
    read: impl Fn(&ft_store::Store, i64) -> Result<Vec<i64>, ft_store::StoreError> + Send + 'static,
) -> Result<Vec<i64>> {
    let store = ctx.store.clone();
    let campuses = campuses.to_vec();
    blocking(move || {
        let mut out = Vec::new();
        for c in campuses {
            out.extend(read(&store, c)?);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    })
    .await
}

/// The stored coalitions of these campuses (what `filter[coalition_id]` lists for them).
pub(crate) async fn coalitions_of(ctx: &PassCtx<'_>, campuses: &[i64]) -> Result<Vec<i64>> {
    union_over_campuses(ctx, campuses, |store, c| store.campus_coalition_ids(c)).await
}

/// The endpoint and filters that define a listing's scope (no paging, sort or window yet), or
/// `None` when the scope is empty by construction (campuses without stored coalitions).
pub(crate) async fn scope_request(
    ctx: &PassCtx<'_>,
    payload: &TaskPayload,
    model: &dyn Model,
    filter: CampusFilter,
) -> Result<Option<(String, Query)>> {
    let query = Query::new();
    Ok(Some(match filter {
        CampusFilter::None => {
            let query = match &payload.ids {
                Some(ids) => model.filter(query, "id", ids),
                None => query,
            };
            (model.path_for(None)?, query)
        }
        CampusFilter::Path => match campuses_of(payload)?.as_slice() {
            [one] => (model.path_for(Some(*one))?, query),
            // `/v2/users` has no campus filter; its primary campus filter takes a list. A user
            // whose primary campus is outside the set is not read here (mirroring the whole
            // network, there is none); relation rows that refer to them bring them in through
            // missing_users.
            set => (
                USERS.path_for(None)?,
                USERS.filter(query, "primary_campus_id", set),
            ),
        },
        CampusFilter::Filter(name) => (
            model.path_for(None)?,
            model.filter(query, name, &campuses_of(payload)?),
        ),
        CampusFilter::Coalitions => {
            let campuses = campuses_of(payload)?;
            let coalitions = coalitions_of(ctx, &campuses).await?;
            if coalitions.is_empty() {
                tracing::info!(
                    scope = %ctx.scope,
                    "no coalitions stored for these campuses; nothing to read"
                );
                return Ok(None);
            }
            (
                model.path_for(None)?,
                model.filter(query, "coalition_id", &coalitions),
            )
        }
    }))
}

/// A keyset pass over one listing and scope, in a delta window when the payload asks for one.
async fn walk(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
    filter: CampusFilter,
) -> Result<PassEnd> {
    let resource = payload.listing.resource();
    let since = payload.since.map(|t| t.naive_utc());
    let until = payload.until.naive_utc();
    let (pass, resume) = PassCursor::load(ctx, resource.name, since, until).await?;
    if filter == CampusFilter::Coalitions {
        let coalitions = coalitions_of(ctx, &campuses_of(payload)?).await?;
        if coalitions.len() > FILTER_LIST_MAX {
            return walk_coalition_chunks(ctx, payload, pass, &coalitions).await;
        }
    }
    let Some((path, mut base)) = scope_request(ctx, payload, resource.model, filter).await? else {
        return pass.finish(ctx).await;
    };
    if let Some((field, since, until)) = delta_window(payload) {
        base = base.range_time(field, since, until);
    }
    let enqueue_reason = payload
        .enqueue_changed_users
        .then(|| format!("{} delta", resource.name));
    let end = crate::pipeline::keyset(
        ctx,
        Keyset {
            model: resource.model,
            path,
            base,
            resume,
            cursor: CursorPlan::Pass(pass),
            enqueue_reason,
            expect: None,
            yield_after_page: true,
        },
    )
    .await?;
    // Campuses asked for by id must exist: the campus-scoped tasks of the same plan filter by
    // them and would quietly read nothing for an id that does not.
    if let (Listing::Campuses, Some(ids), PassEnd::Complete) = (payload.listing, &payload.ids, end)
    {
        let store = ctx.store.clone();
        let known = blocking(move || store.live_ids(Table::Campuses, IdsWhere::All)).await?;
        let unknown: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| known.binary_search(id).is_err())
            .collect();
        if !unknown.is_empty() {
            return Err(SyncError::UnknownCampuses { ids: unknown });
        }
    }
    Ok(end)
}

/// The time field and bounds of a delta task's window.
fn delta_window(
    payload: &TaskPayload,
) -> Option<(
    &'static str,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
)> {
    match (
        payload.mode,
        payload.since,
        payload.listing.resource().time_field,
    ) {
        (PassMode::Delta, Some(since), Some(field)) => Some((field, since, payload.until)),
        _ => None,
    }
}

/// The cursor that remembers which coalition chunks of a pass are done.
const CHUNKS_SUFFIX: &str = ".chunks";

/// A keyset pass over more coalitions than one filter list may hold (the planner did not know
/// how many coalitions the campuses have, on a first sync): one walk per chunk of 100
/// coalitions, in coalition id order. A chunk's end is recorded with its last page, so a
/// resumed pass skips the chunks already read; a chunk interrupted midway is read again.
async fn walk_coalition_chunks(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
    pass: PassCursor,
    coalitions: &[i64],
) -> Result<PassEnd> {
    let resource = payload.listing.resource();
    let chunks_resource = format!("{}{CHUNKS_SUFFIX}", resource.name);
    let (mut chunk_pass, resume) =
        PassCursor::load(ctx, &chunks_resource, pass.since, pass.until).await?;
    chunk_pass.watermark = None;
    let todo: Vec<i64> = coalitions
        .iter()
        .copied()
        .filter(|c| resume.after.is_none_or(|last| *c > last))
        .collect();
    tracing::info!(scope = %ctx.scope, coalitions = coalitions.len(), left = todo.len(), "coalition filter longer than one list: reading it in chunks");
    let path = resource.model.path_for(None)?;
    for (i, chunk) in todo.chunks(FILTER_LIST_MAX).enumerate() {
        let mut base = resource.model.filter(Query::new(), "coalition_id", chunk);
        if let Some((field, since, until)) = delta_window(payload) {
            base = base.range_time(field, since, until);
        }
        let position = chunk_pass.at(&ctx.scope, chunk.last().copied(), (i + 1) as u64, 0, None);
        let end = crate::pipeline::keyset(
            ctx,
            Keyset {
                model: resource.model,
                path: path.clone(),
                base,
                resume: Default::default(),
                cursor: CursorPlan::AtEnd(Some(position)),
                enqueue_reason: None,
                expect: None,
                yield_after_page: false,
            },
        )
        .await?;
        if end != PassEnd::Complete {
            return Ok(end);
        }
    }
    ctx.save_completion(pass.complete(&ctx.scope)).await?;
    let store = ctx.store.clone();
    let scope = ctx.scope.clone();
    blocking(move || store.delete_cursor(&chunks_resource, &scope).map(|_| ())).await?;
    Ok(PassEnd::Complete)
}

/// Re-reads stored rows by id, 100 per request, resuming after the last committed batch. An id
/// the API no longer returns is marked deleted (and recorded in the archive): nothing is
/// dropped silently, and nothing gone is kept silently.
async fn reread(ctx: &mut PassCtx<'_>, payload: &TaskPayload, ids: StoredIds) -> Result<PassEnd> {
    let resource = payload.listing.resource();
    let until = payload.until.naive_utc();
    // Its window has no `since`: a cursor of the same plan time is this pass's.
    let (pass, resume) = PassCursor::load(ctx, resource.name, None, until).await?;
    let ids = {
        let store = ctx.store.clone();
        match ids {
            StoredIds::ActivePiscines => {
                let campuses = payload.ids.clone();
                blocking(move || store.active_piscine_cursus_user_ids(campuses.as_deref(), until))
                    .await?
            }
            StoredIds::OpenLocations => {
                union_over_campuses(ctx, &campuses_of(payload)?, |store, c| {
                    store.open_location_ids(c)
                })
                .await?
            }
        }
    };
    let resume_after = resume.after;
    let todo: Vec<i64> = ids
        .into_iter()
        .filter(|id| resume_after.is_none_or(|last| *id > last))
        .collect();
    let batches: Vec<&[i64]> = todo.chunks(ID_BATCH).collect();
    if batches.is_empty() {
        // Nothing to re-check: still record that the pass ran, for freshness reporting.
        return pass.finish(ctx).await;
    }
    // Pages are numbered on from the cursor, so a resumed pass never reuses a number.
    let mut page_no = resume.pages as i64;
    for (i, batch) in batches.iter().enumerate() {
        if ctx.stopping() {
            return Ok(PassEnd::Interrupted);
        }
        let Some((fetched, gone)) = fetch_ids(ctx, resource.model, batch).await? else {
            return Ok(PassEnd::Interrupted);
        };
        let gone = ctx
            .verified_gone(resource.model, batch, gone, None, &mut page_no)
            .await?;
        if !gone.is_empty() {
            tracing::info!(resource = resource.name, count = gone.len(), ids = ?gone, "rows no longer returned by the API; marking them deleted");
        }
        page_no += 1;
        let cursor = if i + 1 == batches.len() {
            pass.complete(&ctx.scope)
        } else {
            pass.at(&ctx.scope, batch.last().copied(), page_no as u64, 0, None)
        };
        ctx.commit_page(PageCommit {
            table: resource.table,
            path: resource.model.path().to_owned(),
            page_no,
            fetched,
            keep_rows: true,
            cursor: Some(cursor),
            enqueue_reason: None,
            deleted: gone,
            progress: None,
        })
        .await?;
    }
    Ok(PassEnd::Complete)
}
