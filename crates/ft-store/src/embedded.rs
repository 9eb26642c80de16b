//! Copies of a user embedded in other rows (`"user": {...}` inside cursus_users, projects_users
//! and locations, `teams[].users[]` inside projects_users, `login` and `url` beside `user_id` in
//! achievements_users). The API does not touch those rows when it anonymises a user (their
//! `updated_at` stays), so no delta brings them again: without this the mirror would keep the
//! personal fields of an anonymised user inside them (issue #16).

use diesel::prelude::*;

use crate::error::StoreError;
use crate::raw_json::RawJsonText;
use crate::rows::Table;
use crate::store::{Store, with_tx};

/// The tables whose rows embed their user.
pub const EMBEDDING_USER: [Table; 4] = [
    Table::CursusUsers,
    Table::ProjectsUsers,
    Table::Locations,
    Table::AchievementsUsers,
];

/// `embedded` with every key it shares with `user` set to `user`'s value; `None` when nothing
/// changes.
fn refreshed(embedded: &serde_json::Value, user: &serde_json::Value) -> Option<serde_json::Value> {
    let (Some(copy), Some(user)) = (embedded.as_object(), user.as_object()) else {
        return None;
    };
    let mut out = copy.clone();
    let mut changed = false;
    for (key, value) in out.iter_mut() {
        if let Some(fresh) = user.get(key)
            && fresh != value
        {
            *value = fresh.clone();
            changed = true;
        }
    }
    changed.then_some(serde_json::Value::Object(out))
}

/// Refreshes, anywhere in `value`, each user object (one with an `id` and a `login`) of a user
/// in `users`: the row's own `user`, and its entries in `teams[].users[]`. Returns whether
/// anything changed.
fn refresh_all(
    value: &mut serde_json::Value,
    users: &std::collections::HashMap<i64, serde_json::Value>,
) -> bool {
    match value {
        serde_json::Value::Object(map) => {
            // An achievements_user names its user by `user_id`, with the user's `login` and
            // `url` beside its own `id`: only those two are the user's.
            if map.contains_key("login")
                && let Some(user) = map
                    .get("user_id")
                    .and_then(|id| id.as_i64())
                    .and_then(|id| users.get(&id))
            {
                let mut changed = false;
                for key in ["login", "url"] {
                    if let (Some(fresh), Some(old)) = (user.get(key), map.get_mut(key))
                        && fresh != old
                    {
                        *old = fresh.clone();
                        changed = true;
                    }
                }
                return changed;
            }
            if map.contains_key("login")
                && let Some(user) = map
                    .get("id")
                    .and_then(|id| id.as_i64())
                    .and_then(|id| users.get(&id))
                && let Some(fresh) = refreshed(&serde_json::Value::Object(map.clone()), user)
            {
                *value = fresh;
                return true;
            }
            let mut changed = false;
            for child in map.values_mut() {
                changed |= refresh_all(child, users);
            }
            changed
        }
        serde_json::Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= refresh_all(item, users);
            }
            changed
        }
        _ => false,
    }
}

/// The user ids listed in a projects_user's `teams[].users[]`.
fn team_members(row: &serde_json::Value) -> impl Iterator<Item = i64> + '_ {
    row.get("teams")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|team| team.get("users").and_then(serde_json::Value::as_array))
        .flatten()
        .filter_map(|member| member.get("id").and_then(serde_json::Value::as_i64))
}

/// Rewrites the embedded copies of `users` (id, stored raw JSON) in one table; returns how many
/// rows changed.
macro_rules! refresh_table {
    ($conn:expr, $t:ident, $users:expr) => {{
        let users: &std::collections::HashMap<i64, serde_json::Value> = $users;
        let ids: Vec<i64> = users.keys().copied().collect();
        refresh_table!($conn, $t, users, &ids)
    }};
    // The rows of the users `$ids` (not necessarily those of `$users`: teammates).
    ($conn:expr, $t:ident, $users:expr, $ids:expr) => {{
        use crate::schema::$t as t;
        let users: &std::collections::HashMap<i64, serde_json::Value> = $users;
        let ids: &[i64] = $ids;
        let mut changed = 0;
        for chunk in ids.chunks(500) {
            let rows: Vec<(i64, String)> = t::table
                .filter(t::user_id.eq_any(chunk))
                .select((t::id, t::raw))
                .load($conn)
                .map_err(StoreError::q("read embedded users", stringify!($t)))?;
            for (id, raw) in rows {
                let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&raw) else {
                    continue;
                };
                if !refresh_all(&mut value, users) {
                    continue;
                }
                diesel::update(t::table.filter(t::id.eq(id)))
                    .set(t::raw.eq(RawJsonText(value.to_string())))
                    .execute($conn)
                    .map_err(StoreError::q("rewrite embedded user", stringify!($t)))?;
                changed += 1;
            }
        }
        Ok::<usize, StoreError>(changed)
    }};
}

impl Store {
    /// Brings the copies of these users embedded in other rows up to date with their stored
    /// `users` row: every key of an embedded copy takes the stored user's value. Searched: the
    /// users' own rows (see [`EMBEDDING_USER`]), and their teammates' projects_users rows,
    /// which list them in `teams[].users[]` (teammates are read off the users' own
    /// projects_users teams). Called for anonymised users (`3b3-<id>`), whose personal fields
    /// must not survive anywhere in the mirror. Returns the rows rewritten; one transaction.
    pub fn refresh_embedded_users(&self, user_ids: &[i64]) -> Result<usize, StoreError> {
        if user_ids.is_empty() {
            return Ok(0);
        }
        with_tx!(self, |conn| {
            use crate::schema::users as u;
            let mut users = std::collections::HashMap::new();
            for chunk in user_ids.chunks(500) {
                let rows: Vec<(i64, String)> = u::table
                    .filter(u::id.eq_any(chunk))
                    .select((u::id, u::raw))
                    .load(conn)
                    .map_err(StoreError::q("read", "users"))?;
                for (id, raw) in rows {
                    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&raw) {
                        users.insert(id, value);
                    }
                }
            }
            let own = refresh_table!(conn, cursus_users, &users)?
                + refresh_table!(conn, projects_users, &users)?
                + refresh_table!(conn, locations, &users)?
                + refresh_table!(conn, achievements_users, &users)?;
            // Teammates: everyone in a team of these users' projects_users rows.
            let mut teammates = std::collections::BTreeSet::new();
            let ids: Vec<i64> = users.keys().copied().collect();
            for chunk in ids.chunks(500) {
                use crate::schema::projects_users as pu;
                let raws: Vec<String> = pu::table
                    .filter(pu::user_id.eq_any(chunk))
                    .select(pu::raw)
                    .load(conn)
                    .map_err(StoreError::q("read teams", "projects_users"))?;
                for raw in raws {
                    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&raw) {
                        teammates.extend(team_members(&value).filter(|id| !users.contains_key(id)));
                    }
                }
            }
            let teammates: Vec<i64> = teammates.into_iter().collect();
            Ok::<usize, StoreError>(own + refresh_table!(conn, projects_users, &users, &teammates)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_keys_of_the_embedded_copy_are_refreshed() {
        let copy = json!({"id": 7, "login": "jdoe", "url": "u/jdoe"});
        let user = json!({"id": 7, "login": "3b3-7", "url": "u/3b3-7", "email": "3b3-7@x"});
        assert_eq!(
            refreshed(&copy, &user),
            Some(json!({"id": 7, "login": "3b3-7", "url": "u/3b3-7"}))
        );
        assert_eq!(refreshed(&user, &user), None);
        assert_eq!(refreshed(&json!(null), &user), None);
    }

    #[test]
    fn user_objects_are_refreshed_wherever_they_are_nested() {
        let users = std::collections::HashMap::from([(
            7,
            json!({"id": 7, "login": "3b3-7", "url": "u/3b3-7"}),
        )]);
        let mut row = json!({
            "id": 1,
            "project": {"id": 7, "name": "a project with id 7 but no login"},
            "teams": [{"id": 9, "users": [
                {"id": 7, "login": "jdoe", "leader": true},
                {"id": 8, "login": "other"}
            ]}],
            "user": {"id": 7, "login": "jdoe", "url": "u/jdoe"}
        });
        assert!(refresh_all(&mut row, &users));
        assert_eq!(
            row["user"],
            json!({"id": 7, "login": "3b3-7", "url": "u/3b3-7"})
        );
        assert_eq!(
            row["teams"][0]["users"],
            json!([{"id": 7, "login": "3b3-7", "leader": true}, {"id": 8, "login": "other"}])
        );
        assert_eq!(row["project"]["name"], "a project with id 7 but no login");
        assert!(!refresh_all(&mut row, &users), "idempotent");
        let mut achievement =
            json!({"id": 500, "achievement_id": 3, "login": "jdoe", "url": "u/jdoe", "user_id": 7});
        assert!(refresh_all(&mut achievement, &users));
        assert_eq!(
            achievement,
            json!({"id": 500, "achievement_id": 3, "login": "3b3-7", "url": "u/3b3-7", "user_id": 7})
        );
    }
}
