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

use std::collections::HashSet;

use chrono::{NaiveDateTime, Utc};
use ft_api::{FtClient, Page, Query};
use ft_store::{ApplyPage, CursorUpdate, Fence, FetchLogEntry, Lane, Store, Table};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::archive::Archive;
use crate::error::{Result, SyncError};
use crate::mapping::{self, Mapped};
use crate::progress::{Progress, ProgressTx};
use crate::task::{PassMode, TaskPayload};
use crate::{CURSOR_FORMAT, blocking};

/// Upper bound of the keyset range: larger than any 42 id.
pub(crate) const ID_MAX: i64 = i64::MAX;

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
    /// `/v2/projects_users?filter[campus]=:id`: one listing per campus is never dearer than
    /// per-user batches (same rows, no per-batch page rounding).
    ProjectsUsers,
    /// `/v2/achievements_users` by batches of the campus's users (`filter[user_id]`, 100 ids),
    /// or, for a delta, the network-wide window when its `X-Total` says that is cheaper.
    AchievementsUsers,
    /// `/v2/blocs?filter[campus_id]=:id`, with the coalitions embedded in them.
    Blocs,
    /// `/v2/coalitions_users?filter[coalition_id]=<the campus's coalitions>`.
    CoalitionsUsers,
    /// `/v2/locations?filter[campus_id]=:id`, windowed on `begin_at` (no usable `updated_at`).
    Locations,
    /// The campus's locally open sessions re-read by id, so `end_at` gets filled in.
    OpenLocations,
    /// Deleted cursus_users of a campus, found by `X-Total` probes and id sets.
    CursusUsersDeletions,
    /// Deleted projects_users of a campus, found the same way.
    ProjectsUsersDeletions,
    /// Deleted coalitions_users of a campus, found the same way.
    CoalitionsUsersDeletions,
    /// Deleted locations of a campus, found the same way.
    LocationsDeletions,
    /// Users that relation rows refer to but the database lacks, fetched by id.
    MissingUsers,
    /// The relation worker: every relation of the users in the changed-user queue.
    RelationUsers,
}

/// What a listing belongs to, for `ft42 sync <what>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Reference data read once for every campus; campuses are known after it.
    Global,
    /// Campus-scoped listings that read only the API.
    Campus,
    /// Campus-scoped work that also reads what the campus listings stored.
    AfterCampus,
    /// Work over everything stored.
    Last,
}

impl Listing {
    /// Reference data first, then users, then what hangs off users.
    pub(crate) const USERS: [Listing; 9] = [
        Listing::Campuses,
        Listing::Cursus,
        Listing::Projects,
        Listing::Achievements,
        Listing::Users,
        Listing::CampusUsers,
        Listing::CursusUsers,
        Listing::PiscineLevels,
        Listing::CursusUsersDeletions,
    ];

    /// projects_users and achievements_users, with their parents.
    pub(crate) const RELATIONS: [Listing; 5] = [
        Listing::ProjectsUsers,
        Listing::AchievementsUsers,
        Listing::ProjectsUsersDeletions,
        Listing::MissingUsers,
        Listing::RelationUsers,
    ];

    /// Blocs, coalitions and coalitions_users.
    pub(crate) const COALITIONS: [Listing; 4] = [
        Listing::Blocs,
        Listing::CoalitionsUsers,
        Listing::CoalitionsUsersDeletions,
        Listing::MissingUsers,
    ];

    /// Locations.
    pub(crate) const LOCATIONS: [Listing; 4] = [
        Listing::Locations,
        Listing::OpenLocations,
        Listing::LocationsDeletions,
        Listing::MissingUsers,
    ];

    /// Every listing.
    pub(crate) const ALL: [Listing; 20] = [
        Listing::Campuses,
        Listing::Cursus,
        Listing::Projects,
        Listing::Achievements,
        Listing::Users,
        Listing::CampusUsers,
        Listing::CursusUsers,
        Listing::PiscineLevels,
        Listing::ProjectsUsers,
        Listing::AchievementsUsers,
        Listing::Blocs,
        Listing::CoalitionsUsers,
        Listing::Locations,
        Listing::OpenLocations,
        Listing::CursusUsersDeletions,
        Listing::ProjectsUsersDeletions,
        Listing::CoalitionsUsersDeletions,
        Listing::LocationsDeletions,
        Listing::MissingUsers,
        Listing::RelationUsers,
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
            Listing::ProjectsUsers => "projects_users",
            Listing::AchievementsUsers => "achievements_users",
            Listing::Blocs => "blocs",
            Listing::CoalitionsUsers => "coalitions_users",
            Listing::Locations => "locations",
            Listing::OpenLocations => "open_locations",
            Listing::CursusUsersDeletions => "cursus_users_deletions",
            Listing::ProjectsUsersDeletions => "projects_users_deletions",
            Listing::CoalitionsUsersDeletions => "coalitions_users_deletions",
            Listing::LocationsDeletions => "locations_deletions",
            Listing::MissingUsers => "missing_users",
            Listing::RelationUsers => "relation_users",
        }
    }

    /// The table the listing's rows go to.
    pub(crate) fn table(self) -> Table {
        match self {
            Listing::Campuses => Table::Campuses,
            Listing::Cursus => Table::Cursus,
            Listing::Projects => Table::Projects,
            Listing::Achievements => Table::Achievements,
            Listing::Users | Listing::MissingUsers => Table::Users,
            Listing::CampusUsers => Table::CampusUsers,
            Listing::CursusUsers | Listing::PiscineLevels | Listing::CursusUsersDeletions => {
                Table::CursusUsers
            }
            Listing::ProjectsUsers | Listing::ProjectsUsersDeletions | Listing::RelationUsers => {
                Table::ProjectsUsers
            }
            Listing::AchievementsUsers => Table::AchievementsUsers,
            Listing::Blocs => Table::Blocs,
            Listing::CoalitionsUsers | Listing::CoalitionsUsersDeletions => Table::CoalitionsUsers,
            Listing::Locations | Listing::OpenLocations | Listing::LocationsDeletions => {
                Table::Locations
            }
        }
    }

    /// When the listing can be planned and run.
    pub(crate) fn stage(self) -> Stage {
        match self {
            Listing::Campuses | Listing::Cursus | Listing::Projects | Listing::Achievements => {
                Stage::Global
            }
            Listing::Users
            | Listing::CampusUsers
            | Listing::CursusUsers
            | Listing::ProjectsUsers
            | Listing::Blocs
            | Listing::Locations => Stage::Campus,
            Listing::PiscineLevels
            | Listing::AchievementsUsers
            | Listing::CoalitionsUsers
            | Listing::OpenLocations
            | Listing::CursusUsersDeletions
            | Listing::ProjectsUsersDeletions
            | Listing::CoalitionsUsersDeletions
            | Listing::LocationsDeletions => Stage::AfterCampus,
            Listing::MissingUsers | Listing::RelationUsers => Stage::Last,
        }
    }

    /// Whether the listing is walked once per campus.
    pub(crate) fn campus_scoped(self) -> bool {
        matches!(self.stage(), Stage::Campus | Stage::AfterCampus) && self != Listing::PiscineLevels
    }

    /// Whether the listing must wait until the campus-scoped listings were planned (it reads
    /// what they store).
    pub(crate) fn after_campuses(self) -> bool {
        self.stage() != Stage::Global
    }

    /// Whether a delta can be asked for: rows carry a usable change time (`updated_at`, or
    /// `begin_at` for locations).
    pub(crate) fn has_updated_at(self) -> bool {
        matches!(
            self,
            Listing::Projects
                | Listing::Users
                | Listing::CampusUsers
                | Listing::CursusUsers
                | Listing::ProjectsUsers
                | Listing::AchievementsUsers
                | Listing::CoalitionsUsers
                | Listing::Locations
        )
    }

    /// The field a delta window ranges over.
    fn time_field(self) -> &'static str {
        match self {
            Listing::Locations => "begin_at",
            _ => "updated_at",
        }
    }

    /// Listings of the same scope whose rows this one reads from the store: it waits for them.
    pub(crate) fn reads_from(self) -> &'static [Listing] {
        match self {
            Listing::PiscineLevels => &[Listing::CursusUsers],
            Listing::AchievementsUsers => &[Listing::CampusUsers],
            Listing::CoalitionsUsers => &[Listing::Blocs],
            Listing::OpenLocations => &[Listing::Locations],
            Listing::CursusUsersDeletions => &[Listing::CursusUsers, Listing::CampusUsers],
            Listing::ProjectsUsersDeletions => &[Listing::ProjectsUsers, Listing::CampusUsers],
            Listing::CoalitionsUsersDeletions => &[Listing::CoalitionsUsers, Listing::Blocs],
            Listing::LocationsDeletions => &[Listing::Locations, Listing::OpenLocations],
            _ => &[],
        }
    }

    /// Queue priority: parents before children, so a full sync fills tables in order.
    pub(crate) fn priority(self) -> i32 {
        match self {
            Listing::Campuses => 100,
            Listing::Cursus => 95,
            Listing::Projects => 90,
            Listing::Achievements => 85,
            Listing::Users => 80,
            Listing::CampusUsers => 75,
            Listing::CursusUsers => 70,
            Listing::Blocs => 68,
            Listing::ProjectsUsers => 65,
            Listing::Locations => 60,
            Listing::CoalitionsUsers => 55,
            Listing::AchievementsUsers => 50,
            Listing::PiscineLevels => 48,
            Listing::OpenLocations => 46,
            Listing::CursusUsersDeletions => 40,
            Listing::ProjectsUsersDeletions => 39,
            Listing::CoalitionsUsersDeletions => 38,
            Listing::LocationsDeletions => 37,
            Listing::MissingUsers => 20,
            Listing::RelationUsers => 10,
        }
    }

    /// The endpoint and the filters that define a keyset listing's scope (no paging, sort or
    /// window yet).
    pub(crate) fn request(self, payload: &TaskPayload) -> Result<(String, Query)> {
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
            Listing::CursusUsers | Listing::CursusUsersDeletions => (
                "/v2/cursus_users".to_owned(),
                Query::new().filter("campus_id", [campus()?]),
            ),
            Listing::ProjectsUsers | Listing::ProjectsUsersDeletions => (
                "/v2/projects_users".to_owned(),
                Query::new().filter("campus", [campus()?]),
            ),
            Listing::Blocs => (
                "/v2/blocs".to_owned(),
                Query::new().filter("campus_id", [campus()?]),
            ),
            Listing::Locations | Listing::LocationsDeletions => (
                "/v2/locations".to_owned(),
                Query::new().filter("campus_id", [campus()?]),
            ),
            Listing::PiscineLevels => ("/v2/cursus_users".to_owned(), Query::new()),
            Listing::OpenLocations => ("/v2/locations".to_owned(), Query::new()),
            Listing::AchievementsUsers => ("/v2/achievements_users".to_owned(), Query::new()),
            Listing::CoalitionsUsers | Listing::CoalitionsUsersDeletions => {
                ("/v2/coalitions_users".to_owned(), Query::new())
            }
            Listing::MissingUsers => ("/v2/users".to_owned(), Query::new()),
            Listing::RelationUsers => ("/v2/projects_users".to_owned(), Query::new()),
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
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PassStats {
    pub(crate) rows: u64,
    pub(crate) pages: u64,
}

/// One committed page: what goes to the archive and the database together.
pub(crate) struct Commit<'p> {
    pub(crate) table: Table,
    pub(crate) scope: &'p str,
    pub(crate) page_no: i64,
    pub(crate) raw: &'p [Box<serde_json::value::RawValue>],
    pub(crate) apply: ApplyPage,
    /// Rows found deleted, for the archive's deletion records.
    pub(crate) deleted: Option<(Table, Vec<i64>)>,
}

impl PassCtx<'_> {
    /// Archives the page, then commits it in one fenced transaction: the archive always holds
    /// at least what the database holds.
    pub(crate) async fn commit(&self, commit: Commit<'_>) -> Result<()> {
        if let Some(archive) = self.archive {
            archive.write_page(
                commit.table,
                commit.scope,
                self.fence.task_id,
                commit.page_no,
                commit.raw,
            )?;
            if let Some((table, ids)) = &commit.deleted {
                archive.write_deletions(*table, commit.scope, self.fence.task_id, ids)?;
            }
        }
        let store = self.store.clone();
        let apply = commit.apply;
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
}

/// Walks one listing over one scope, resuming where the cursor says an earlier attempt of the
/// same pass stopped.
pub(crate) async fn run_pass(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
) -> Result<(PassEnd, PassStats)> {
    use ft_api::models as m;
    let listing = payload.listing;
    match listing {
        Listing::Campuses => walk::<m::Campus>(ctx, payload, None, mapping::campuses).await,
        Listing::Cursus => walk::<m::Cursus>(ctx, payload, None, mapping::cursus).await,
        Listing::Projects => walk::<m::Project>(ctx, payload, None, mapping::projects).await,
        Listing::Achievements => {
            walk::<m::Achievement>(ctx, payload, None, mapping::achievements).await
        }
        Listing::Users => walk::<m::User>(ctx, payload, None, mapping::users).await,
        Listing::CampusUsers => {
            walk::<m::CampusUser>(ctx, payload, None, mapping::campus_users).await
        }
        Listing::CursusUsers => {
            walk::<m::CursusUser>(ctx, payload, None, mapping::cursus_users).await
        }
        Listing::ProjectsUsers => {
            walk::<m::ProjectsUser>(ctx, payload, None, mapping::projects_users).await
        }
        Listing::Blocs => walk::<m::Bloc>(ctx, payload, None, mapping::blocs).await,
        Listing::Locations => walk::<m::Location>(ctx, payload, None, mapping::locations).await,
        Listing::CoalitionsUsers => {
            let campus = payload.campus_id.unwrap_or_default();
            let store = ctx.store.clone();
            let coalitions = blocking(move || store.campus_coalition_ids(campus)).await?;
            if coalitions.is_empty() {
                tracing::info!(
                    campus,
                    "no coalitions stored for this campus; nothing to read"
                );
                return finish_empty(ctx, payload).await;
            }
            let base = Query::new().filter("coalition_id", coalitions);
            walk::<m::CoalitionsUser>(ctx, payload, Some(base), mapping::coalitions_users).await
        }
        Listing::PiscineLevels => {
            let until = payload.until.naive_utc();
            let campuses = payload.ids.clone();
            let store = ctx.store.clone();
            let ids =
                blocking(move || store.active_piscine_cursus_user_ids(campuses.as_deref(), until))
                    .await?;
            by_ids::<m::CursusUser>(ctx, payload, ids, mapping::cursus_users).await
        }
        Listing::OpenLocations => {
            let campus = payload.campus_id.unwrap_or_default();
            let store = ctx.store.clone();
            let ids = blocking(move || store.open_location_ids(campus)).await?;
            by_ids::<m::Location>(ctx, payload, ids, mapping::locations).await
        }
        Listing::AchievementsUsers => crate::relations::achievements_users(ctx, payload).await,
        Listing::CursusUsersDeletions
        | Listing::ProjectsUsersDeletions
        | Listing::CoalitionsUsersDeletions
        | Listing::LocationsDeletions => crate::relations::deletions(ctx, payload).await,
        Listing::MissingUsers => crate::relations::missing_users(ctx, payload).await,
        Listing::RelationUsers => crate::relations::relation_users(ctx, payload).await,
    }
}

/// Records a pass that had nothing to read as complete, for freshness reporting.
pub(crate) async fn finish_empty(
    ctx: &PassCtx<'_>,
    payload: &TaskPayload,
) -> Result<(PassEnd, PassStats)> {
    let resource = payload.listing.as_str();
    let scope = payload.scope();
    let until = payload.until.naive_utc();
    let store = ctx.store.clone();
    let (r, sc) = (resource.to_owned(), scope.clone());
    blocking(move || {
        let watermark = store.cursor(&r, &sc)?.and_then(|c| c.watermark);
        store.save_cursor(&pass_complete(&r, &sc, watermark, until))
    })
    .await?;
    Ok((PassEnd::Complete, PassStats::default()))
}

/// Ids asked for in one `filter[id]` request.
pub(crate) const ID_BATCH: usize = 100;

/// Re-reads rows by id, 100 per request, resuming after the last committed batch. An id the
/// API no longer returns is marked deleted (and recorded in the archive): nothing is dropped
/// silently, and nothing gone is kept silently.
async fn by_ids<M>(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
    ids: Vec<i64>,
    map: MapFn<M>,
) -> Result<(PassEnd, PassStats)>
where
    M: DeserializeOwned + Send + 'static,
{
    let listing = payload.listing;
    let resource = listing.as_str();
    let table = listing.table();
    let scope = payload.scope();
    let until = payload.until.naive_utc();
    let (endpoint, _) = listing.request(payload)?;
    let cursor = {
        let store = ctx.store.clone();
        let (r, s) = (resource.to_owned(), scope.clone());
        blocking(move || store.cursor(&r, &s)).await?
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
        if ctx.stopping() {
            return Ok((PassEnd::Interrupted, stats));
        }
        let query = Query::new()
            .filter("id", batch.iter().copied())
            .sort(["id"])
            .per_page(ID_BATCH as u32);
        let page: Page<M> = match fetch(ctx, &endpoint, &query).await? {
            Some(page) => page,
            None => return Ok((PassEnd::Interrupted, stats)),
        };
        let mapped = map(&page)?;
        let returned: HashSet<i64> = mapped.rows.ids().into_iter().collect();
        let gone: Vec<i64> = batch
            .iter()
            .copied()
            .filter(|id| !returned.contains(id))
            .collect();
        if !gone.is_empty() {
            tracing::info!(resource, count = gone.len(), ids = ?gone, "rows no longer returned by the API; marking them deleted");
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
                expected_rows: None,
            }
            .cursor(resource, &scope, watermark)
        };
        let n = page.items.len() as u64;
        let deleted = (!gone.is_empty()).then_some((table, gone));
        let apply = ApplyPage {
            rows: mapped.rows,
            cursor: Some(cursor),
            fetch_log: Some(fetch_log(ctx, &endpoint, &scope, (i + 1) as i64, &page)),
            fence: Some(ctx.fence.clone()),
            enqueue_users: Vec::new(),
            mark_deleted: deleted.clone(),
            also: mapped.also,
        };
        ctx.commit(Commit {
            table,
            scope: &scope,
            page_no: (i + 1) as i64,
            raw: &page.raw,
            apply,
            deleted,
        })
        .await?;
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
        return finish_empty(ctx, payload).await;
    }
    Ok((PassEnd::Complete, stats))
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

/// The fetch-log row for one page.
pub(crate) fn fetch_log<M>(
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

pub(crate) type MapFn<M> = fn(&Page<M>) -> Result<Mapped>;

/// A keyset pass over one listing and scope (`sort=id`, `range[id]=last+1,max`), in a delta
/// window when the payload asks for one. `base` replaces the listing's own filters when they
/// depend on stored data (the coalitions of a campus).
async fn walk<M>(
    ctx: &mut PassCtx<'_>,
    payload: &TaskPayload,
    base: Option<Query>,
    map: MapFn<M>,
) -> Result<(PassEnd, PassStats)>
where
    M: DeserializeOwned + Send + 'static,
{
    let listing = payload.listing;
    let resource = listing.as_str();
    let table = listing.table();
    let scope = payload.scope();
    let (endpoint, own_base) = listing.request(payload)?;
    let base = base.unwrap_or(own_base);
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
        if ctx.stopping() {
            return Ok((PassEnd::Interrupted, stats));
        }
        let mut query = base.clone().sort(["id"]).per_page(ctx.per_page);
        if let Some(last) = last_id {
            query = query.range("id", last + 1, ID_MAX);
        }
        if payload.mode == PassMode::Delta
            && let Some(since) = payload.since
        {
            query = query.range_time(listing.time_field(), since, payload.until);
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
                expected_rows: remaining.map(|r| (rows + r) as i64),
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
            also: mapped.also,
        };
        ctx.commit(Commit {
            table,
            scope: &scope,
            page_no: (pages + 1) as i64,
            raw: &page.raw,
            apply,
            deleted: None,
        })
        .await?;

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
        if ctx.should_yield().await? {
            return Ok((PassEnd::Yielded, stats));
        }
    }
}

/// Fetches one page, giving up on it (returning `None`) when shutdown is asked for and the
/// request does not finish within the grace period. Nothing was committed for such a page.
pub(crate) async fn fetch<M>(
    ctx: &mut PassCtx<'_>,
    endpoint: &str,
    query: &Query,
) -> Result<Option<Page<M>>>
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
