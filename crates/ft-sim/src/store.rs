//! The in-memory dataset: one ordered map per table plus the indexes that keep campus and
//! user filters cheap at 50,000 users.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::model::{
    Achievement, AchievementsUser, Bloc, Campus, CampusUser, Coalition, CoalitionsUser, Cursus,
    CursusUser, Location, Project, ProjectsUser, Record, RenderCtx, UserRow,
};

/// One table: rows by id, plus an index from user id to that user's row ids (ascending).
pub(crate) struct Table<R> {
    pub(crate) rows: BTreeMap<i64, R>,
    pub(crate) by_user: HashMap<i64, Vec<i64>>,
    /// The id the next inserted row gets; ids only grow, like database sequences.
    pub(crate) next_id: i64,
    /// All ids, ascending: counts rows in an id range by binary search, so a keyset page over
    /// a million rows does not walk them all just to fill `X-Total`.
    pub(crate) sorted_ids: Vec<i64>,
}

impl<R: Record> Table<R> {
    pub(crate) fn new(first_id: i64) -> Self {
        Self {
            rows: BTreeMap::new(),
            by_user: HashMap::new(),
            next_id: first_id,
            sorted_ids: Vec::new(),
        }
    }

    /// Hands out the next id.
    pub(crate) fn allocate_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Inserts a row whose id came from `allocate_id` (or is above every existing id).
    pub(crate) fn insert(&mut self, row: R) {
        let id = row.id();
        if id >= self.next_id {
            self.next_id = id + 1;
        }
        if let Some(user_id) = row.user_id() {
            let ids = self.by_user.entry(user_id).or_default();
            // Ids arrive in ascending order almost always; keep the list sorted either way.
            match ids.last() {
                Some(&last) if last > id => {
                    let at = ids.partition_point(|&x| x < id);
                    ids.insert(at, id);
                }
                _ => ids.push(id),
            }
        }
        if self.rows.insert(id, row).is_none() {
            match self.sorted_ids.last() {
                Some(&last) if last > id => {
                    let at = self.sorted_ids.partition_point(|&x| x < id);
                    self.sorted_ids.insert(at, id);
                }
                _ => self.sorted_ids.push(id),
            }
        }
    }

    /// Rows with an id in `lo..=hi`.
    pub(crate) fn count_id_range(&self, lo: i64, hi: i64) -> usize {
        if lo > hi {
            return 0;
        }
        self.sorted_ids.partition_point(|&x| x <= hi) - self.sorted_ids.partition_point(|&x| x < lo)
    }

    /// Removes a row and its index entry.
    pub(crate) fn remove(&mut self, id: i64) -> Option<R> {
        let row = self.rows.remove(&id)?;
        if let Ok(at) = self.sorted_ids.binary_search(&id) {
            self.sorted_ids.remove(at);
        }
        if let Some(user_id) = row.user_id()
            && let Some(ids) = self.by_user.get_mut(&user_id)
        {
            ids.retain(|&x| x != id);
            if ids.is_empty() {
                self.by_user.remove(&user_id);
            }
        }
        Some(row)
    }

    /// Ids of one user's rows, ascending.
    pub(crate) fn ids_of_user(&self, user_id: i64) -> &[i64] {
        self.by_user
            .get(&user_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    fn render_all(&self, ctx: &RenderCtx<'_>) -> Vec<Value> {
        self.rows.values().map(|row| row.render(ctx)).collect()
    }
}

/// The whole dataset.
pub(crate) struct Store {
    pub(crate) campuses: Table<Campus>,
    pub(crate) users: Table<UserRow>,
    pub(crate) campus_users: Table<CampusUser>,
    pub(crate) cursus: Table<Cursus>,
    pub(crate) cursus_users: Table<CursusUser>,
    pub(crate) projects: Table<Project>,
    pub(crate) projects_users: Table<ProjectsUser>,
    pub(crate) achievements: Table<Achievement>,
    pub(crate) achievements_users: Table<AchievementsUser>,
    pub(crate) locations: Table<Location>,
    pub(crate) coalitions: Table<Coalition>,
    pub(crate) blocs: Table<Bloc>,
    pub(crate) coalitions_users: Table<CoalitionsUser>,
    /// Users per campus, from campus_users (a user on two campuses is in both sets).
    pub(crate) users_by_campus: HashMap<i64, BTreeSet<i64>>,
    /// Login to user id, for `/v2/users/:login` and to keep logins unique.
    pub(crate) logins: HashMap<String, i64>,
}

fn put<R: Record>(
    tables: &mut BTreeMap<String, Vec<Value>>,
    table: &Table<R>,
    ctx: &RenderCtx<'_>,
) {
    tables.insert(R::TABLE.to_owned(), table.render_all(ctx));
}

impl Store {
    pub(crate) fn empty() -> Self {
        Self {
            campuses: Table::new(1),
            users: Table::new(1),
            campus_users: Table::new(1),
            cursus: Table::new(1),
            cursus_users: Table::new(1),
            projects: Table::new(1),
            projects_users: Table::new(1),
            achievements: Table::new(1),
            achievements_users: Table::new(1),
            locations: Table::new(1),
            coalitions: Table::new(1),
            blocs: Table::new(1),
            coalitions_users: Table::new(1),
            users_by_campus: HashMap::new(),
            logins: HashMap::new(),
        }
    }

    /// Adds a campus membership and keeps the campus index in step.
    pub(crate) fn insert_campus_user(&mut self, row: CampusUser) {
        self.users_by_campus
            .entry(row.campus_id)
            .or_default()
            .insert(row.user_id);
        self.campus_users.insert(row);
    }

    /// Renders every table (rows sorted by id), as the canonical listings serve them.
    pub(crate) fn truth(&self, live_users: bool) -> BTreeMap<String, Vec<Value>> {
        let ctx = RenderCtx::new(self, live_users);
        let mut tables = BTreeMap::new();
        put(&mut tables, &self.campuses, &ctx);
        put(&mut tables, &self.users, &ctx);
        put(&mut tables, &self.campus_users, &ctx);
        put(&mut tables, &self.cursus, &ctx);
        put(&mut tables, &self.cursus_users, &ctx);
        put(&mut tables, &self.projects, &ctx);
        put(&mut tables, &self.projects_users, &ctx);
        put(&mut tables, &self.achievements, &ctx);
        put(&mut tables, &self.achievements_users, &ctx);
        put(&mut tables, &self.locations, &ctx);
        put(&mut tables, &self.coalitions, &ctx);
        put(&mut tables, &self.blocs, &ctx);
        put(&mut tables, &self.coalitions_users, &ctx);
        tables
    }

    /// Row counts per table.
    pub(crate) fn counts(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            ("campuses", self.campuses.len()),
            ("users", self.users.len()),
            ("campus_users", self.campus_users.len()),
            ("cursus", self.cursus.len()),
            ("cursus_users", self.cursus_users.len()),
            ("projects", self.projects.len()),
            ("projects_users", self.projects_users.len()),
            ("achievements", self.achievements.len()),
            ("achievements_users", self.achievements_users.len()),
            ("locations", self.locations.len()),
            ("coalitions", self.coalitions.len()),
            ("blocs", self.blocs.len()),
            ("coalitions_users", self.coalitions_users.len()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CampusUser;

    fn row(id: i64, user_id: i64) -> CampusUser {
        CampusUser {
            id,
            user_id,
            campus_id: 1,
            is_primary: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn id_counts_and_user_index_follow_inserts_and_removals() {
        let mut table: Table<CampusUser> = Table::new(1);
        for (id, user) in [(10, 1), (30, 2), (20, 1), (40, 1)] {
            table.insert(row(id, user));
        }
        assert_eq!(table.sorted_ids, vec![10, 20, 30, 40]);
        assert_eq!(table.ids_of_user(1), &[10, 20, 40]);
        assert_eq!(table.count_id_range(15, 40), 3);
        assert_eq!(table.count_id_range(41, 99), 0);
        assert_eq!(table.count_id_range(30, 10), 0);
        assert_eq!(table.next_id, 41);
        assert!(table.remove(20).is_some());
        assert!(table.remove(20).is_none());
        assert_eq!(table.count_id_range(i64::MIN, i64::MAX), 3);
        assert_eq!(table.ids_of_user(1), &[10, 40]);
        table.remove(30);
        assert!(table.ids_of_user(2).is_empty());
        assert!(
            !table.by_user.contains_key(&2),
            "empty index entries are dropped"
        );
    }
}
