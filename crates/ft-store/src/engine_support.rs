//! Queue and read helpers the sync engine needs beyond the basic queue API.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::error::StoreError;
use crate::rows::Table;
use crate::schema::tasks;
use crate::store::{Backend, Store, with_conn};
use crate::tasks::TaskState;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

impl Store {
    /// When a task may next become claimable, or `None` when no task is pending or running:
    /// how long a worker that found nothing runnable should wait before it looks again.
    ///
    /// That is the earliest `next_run_at` among pending tasks, or `lease_expires_at` among
    /// running ones. Running tasks count because with several workers (on PostgreSQL) a task
    /// held by another process is not finished: if that process died, its task is taken over
    /// when the lease expires, so the workers still running must not all return before then
    /// (a live worker's heartbeat keeps moving the lease, and its task ends done, pending or
    /// failed).
    pub fn next_pending_at(&self) -> Result<Option<NaiveDateTime>, StoreError> {
        let (pending, leased) = with_conn!(self, |conn| {
            let pending = tasks::table
                .filter(tasks::state.eq(TaskState::Pending.as_str()))
                .select(diesel::dsl::min(tasks::next_run_at))
                .first::<Option<NaiveDateTime>>(conn)
                .map_err(StoreError::q("next pending", "tasks"))?;
            let leased = tasks::table
                .filter(tasks::state.eq(TaskState::Running.as_str()))
                .select(diesel::dsl::min(tasks::lease_expires_at))
                .first::<Option<NaiveDateTime>>(conn)
                .map_err(StoreError::q("next lease expiry", "tasks"))?;
            Ok::<_, StoreError>((pending, leased))
        })?;
        Ok(pending.into_iter().chain(leased).min())
    }

    /// Puts every running task leased to `owner` back to pending, without spending an attempt.
    ///
    /// A worker calls this when it starts: tasks its own earlier process held when it died are
    /// its to resume at once, instead of after their leases expire. The next claim bumps the
    /// fencing token, so the dead process could not commit even if it came back.
    pub fn release_leases(&self, owner: &str) -> Result<usize, StoreError> {
        let now = crate::now();
        with_conn!(self, |conn| diesel::update(
            tasks::table
                .filter(tasks::state.eq(TaskState::Running.as_str()))
                .filter(tasks::lease_owner.eq(owner))
        )
        .set((
            tasks::state.eq(TaskState::Pending.as_str()),
            tasks::lease_expires_at.eq(None::<NaiveDateTime>),
            tasks::last_error.eq(Some("released by its restarted worker")),
            tasks::updated_at.eq(now),
        ))
        .execute(conn)
        .map_err(StoreError::q("release leases", "tasks")))
    }

    /// Ends the pending or running tasks with this dedupe key in `error` with `reason` (a
    /// `--force` run replaces them). A worker still running one loses its fence and cannot
    /// commit.
    pub fn cancel_live(&self, dedupe_key: &str, reason: &str) -> Result<usize, StoreError> {
        let now = crate::now();
        with_conn!(self, |conn| diesel::update(
            tasks::table
                .filter(tasks::dedupe_key.eq(dedupe_key))
                .filter(
                    tasks::state.eq_any([TaskState::Pending.as_str(), TaskState::Running.as_str()])
                )
        )
        .set((
            tasks::state.eq(TaskState::Error.as_str()),
            tasks::last_error.eq(Some(reason)),
            tasks::finished_at.eq(Some(now)),
            tasks::updated_at.eq(now),
        ))
        .execute(conn)
        .map_err(StoreError::q("cancel", "tasks")))
    }

    /// Ids of live cursus_users in a piscine cursus (`cursus.kind = 'piscine'`) that are active
    /// at `now` (begun, not ended), optionally only for users with a campus_user in `campuses`;
    /// sorted. Their `level` changes without touching `updated_at`, so the engine re-reads them
    /// by id.
    pub fn active_piscine_cursus_user_ids(
        &self,
        campuses: Option<&[i64]>,
        now: NaiveDateTime,
    ) -> Result<Vec<i64>, StoreError> {
        let (p1, p2) = match self.backend() {
            Backend::Postgres => ("$1", "$2"),
            Backend::Sqlite => ("?", "?"),
        };
        let campus_clause = match campuses {
            // Ids are integers, so they are written into the statement as they are; binding
            // them one by one could exceed SQLite's parameter limit for large lists.
            Some(ids) if !ids.is_empty() => {
                let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!(
                    " AND cu.user_id IN (SELECT user_id FROM campus_users \
                       WHERE deleted_at IS NULL AND campus_id IN ({}))",
                    list.join(",")
                )
            }
            Some(_) => return Ok(Vec::new()),
            None => String::new(),
        };
        let sql = format!(
            "SELECT cu.id AS id FROM cursus_users cu \
             WHERE cu.deleted_at IS NULL \
               AND cu.cursus_id IN (SELECT id FROM cursus WHERE kind = 'piscine' AND deleted_at IS NULL) \
               AND (cu.begin_at IS NULL OR cu.begin_at <= {p1}) \
               AND (cu.end_at IS NULL OR cu.end_at > {p2}){campus_clause} \
             ORDER BY cu.id"
        );
        let ids: Vec<Id> = with_conn!(self, |conn| diesel::sql_query(&sql)
            .bind::<diesel::sql_types::Timestamp, _>(now)
            .bind::<diesel::sql_types::Timestamp, _>(now)
            .load(conn)
            .map_err(StoreError::q("active piscine ids", "cursus_users")))?;
        Ok(ids.into_iter().map(|row| row.id).collect())
    }

    /// Whether a pending task with a priority above `priority` is due at `now`: a backfill task
    /// checks this after every page and yields to hot work.
    pub fn due_above(&self, priority: i32, now: NaiveDateTime) -> Result<bool, StoreError> {
        let n: i64 = with_conn!(self, |conn| tasks::table
            .filter(tasks::state.eq(TaskState::Pending.as_str()))
            .filter(tasks::next_run_at.le(now))
            .filter(tasks::priority.gt(priority))
            .count()
            .get_result(conn)
            .map_err(StoreError::q("due above", "tasks")))?;
        Ok(n > 0)
    }

    /// Which of these dedupe keys belong to a pending or running task: a task that reads what
    /// others write waits until they are settled.
    pub fn live_keys(&self, keys: &[String]) -> Result<Vec<String>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<Option<String>> = with_conn!(self, |conn| tasks::table
            .filter(tasks::dedupe_key.eq_any(keys))
            .filter(tasks::state.eq_any([TaskState::Pending.as_str(), TaskState::Running.as_str()]))
            .select(tasks::dedupe_key)
            .distinct()
            .load(conn)
            .map_err(StoreError::q("live keys", "tasks")))?;
        Ok(found.into_iter().flatten().collect())
    }

    /// User ids with a live campus_user in `campus_id` (only the primary memberships when
    /// `primary_only`), sorted.
    pub fn campus_user_ids(
        &self,
        campus_id: i64,
        primary_only: bool,
    ) -> Result<Vec<i64>, StoreError> {
        let primary = if primary_only {
            " AND is_primary = TRUE"
        } else {
            ""
        };
        let sql = format!(
            "SELECT DISTINCT user_id AS id FROM campus_users \
             WHERE campus_id = {campus_id} AND deleted_at IS NULL{primary} ORDER BY 1"
        );
        self.load_ids(&sql, None, Table::CampusUsers)
    }

    /// Ids of the live coalitions of the live blocs of `campus_id`, sorted.
    pub fn campus_coalition_ids(&self, campus_id: i64) -> Result<Vec<i64>, StoreError> {
        let sql = format!(
            "SELECT id FROM coalitions WHERE deleted_at IS NULL AND bloc_id IN \
             (SELECT id FROM blocs WHERE campus_id = {campus_id} AND deleted_at IS NULL) ORDER BY id"
        );
        self.load_ids(&sql, None, Table::Coalitions)
    }

    /// Ids of live open sessions (`end_at` NULL) at `campus_id`, sorted.
    pub fn open_location_ids(&self, campus_id: i64) -> Result<Vec<i64>, StoreError> {
        let sql = format!(
            "SELECT id FROM locations WHERE campus_id = {campus_id} \
             AND end_at IS NULL AND deleted_at IS NULL ORDER BY id"
        );
        self.load_ids(&sql, None, Table::Locations)
    }

    /// User ids that live rows of the user-scoped tables refer to but that are not in `users`,
    /// sorted, at most `limit`: the missing parents the engine fetches.
    pub fn missing_user_ids(&self, limit: i64) -> Result<Vec<i64>, StoreError> {
        let parts: Vec<String> = [
            "campus_users",
            "cursus_users",
            "projects_users",
            "achievements_users",
            "locations",
            "coalitions_users",
        ]
        .iter()
        .map(|t| format!("SELECT user_id FROM {t} WHERE deleted_at IS NULL"))
        .collect();
        let sql = format!(
            "SELECT DISTINCT r.user_id AS id FROM ({}) r \
             WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.user_id) \
             ORDER BY 1 LIMIT {limit}",
            parts.join(" UNION ALL ")
        );
        self.load_ids(&sql, None, Table::Users)
    }
}
