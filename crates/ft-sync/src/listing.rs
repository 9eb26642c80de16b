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
use crate::resource::{CampusFilter, Pass, StoredIds};
use crate::task::{PassMode, TaskPayload};

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

/// The campus of a campus-scoped task: its absence is an error, never campus 0.
pub(crate) fn campus_of(payload: &TaskPayload) -> Result<i64> {
    payload.campus_id.ok_or_else(|| SyncError::Data {
        what: format!("task for {}", payload.listing.as_str()),
        detail: "campus-scoped task has no campus id".to_owned(),
    })
}

/// The endpoint and filters that define a listing's scope (no paging, sort or window yet), or
/// `None` when the scope is empty by construction (a campus without stored coalitions).
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
        CampusFilter::Path => (model.path_for(Some(campus_of(payload)?))?, query),
        CampusFilter::Filter(name) => (
            model.path_for(None)?,
            model.filter(query, name, &[campus_of(payload)?]),
        ),
        CampusFilter::Coalitions => {
            let campus = campus_of(payload)?;
            let store = ctx.store.clone();
            let coalitions = blocking(move || store.campus_coalition_ids(campus)).await?;
            if coalitions.is_empty() {
                tracing::info!(
                    campus,
                    "no coalitions stored for this campus; nothing to read"
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
    let Some((path, mut base)) = scope_request(ctx, payload, resource.model, filter).await? else {
        return pass.finish(ctx).await;
    };
    if payload.mode == PassMode::Delta
        && let (Some(since), Some(field)) = (payload.since, resource.time_field)
    {
        base = base.range_time(field, since, payload.until);
    }
    let enqueue_reason = payload
        .enqueue_changed_users
        .then(|| format!("{} delta", resource.name));
    crate::pipeline::keyset(
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
    .await
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
                let campus = campus_of(payload)?;
                blocking(move || store.open_location_ids(campus)).await?
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
