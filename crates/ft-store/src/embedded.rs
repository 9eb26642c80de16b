//! Copies of a user embedded in other rows (`"user": {...}` inside cursus_users, projects_users
//! and locations, `teams[].users[]` inside projects_users, `login` and `url` beside `user_id` in
//! achievements_users). The API does not touch those rows when it anonymises a user (their
//! `updated_at` stays), so no delta brings them again: without this the mirror would keep the
//! personal fields of an anonymised user inside them (issue #16).

use diesel::prelude::*;

use crate::apply::IDS_PER_STATEMENT;
use crate::error::StoreError;
use crate::raw_json::RawJsonText;
use crate::store::{Store, with_tx};

/// Sets the keys of `copy` that `user` has (all of them, or only those in `only`) to `user`'s
/// values; returns whether anything changed.
fn copy_user_fields(
    copy: &mut serde_json::Map<String, serde_json::Value>,
    user: &serde_json::Value,
    only: Option<&[&str]>,
) -> bool {
    let Some(user) = user.as_object() else {
        return false;
    };
    let mut changed = false;
    for (key, value) in copy.iter_mut() {
        if only.is_some_and(|keys| !keys.contains(&key.as_str())) {
            continue;
        }
        if let Some(fresh) = user.get(key)
            && fresh != value
        {
            *value = fresh.clone();
            changed = true;
        }
    }
    changed
}

/// Refreshes, anywhere in `value`, each user object (one with an `id` and a `login`) of a user
/// in `users`: the row's own `user`, and its entries in `teams[].users[]`. Returns whether
/// anything changed.
fn refresh_all(
    value: &mut serde_json::Value,
    users: &std::collections::HashMap<i64, serde_json::Value>,
) -> bool {
    let user_by = |map: &serde_json::Map<String, serde_json::Value>, key: &str| {
        map.get(key)
            .and_then(serde_json::Value::as_i64)
            .and_then(|id| users.get(&id))
    };
    match value {
        serde_json::Value::Object(map) => {
            // An achievements_user names its user by `user_id`, with the user's `login` and
            // `url` beside its own `id`: only those two are the user's.
            if map.contains_key("login")
                && let Some(user) = user_by(map, "user_id")
            {
                return copy_user_fields(map, user, Some(&["login", "url"]));
            }
            if map.contains_key("login")
                && let Some(user) = user_by(map, "id")
                && copy_user_fields(map, user, None)
            {
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

/// Rewrites the embedded copies of `users` in the rows of the users `ids` (not necessarily
/// those of `users`: teammates) in one table, calling `each` with every row read (its JSON,
/// before the rewrite); returns how many rows changed.
macro_rules! refresh_table {
    ($conn:expr, $t:ident, $users:expr, $ids:expr, $each:expr) => {{
        use crate::schema::$t as t;
        let users: &std::collections::HashMap<i64, serde_json::Value> = $users;
        let ids: &[i64] = $ids;
        let each: &mut dyn FnMut(&serde_json::Value) = $each;
        let mut changed = 0;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let rows: Vec<(i64, String)> = t::table
                .filter(t::user_id.eq_any(chunk))
                .select((t::id, t::raw))
                .load($conn)
                .map_err(StoreError::q("read embedded users", stringify!($t)))?;
            for (id, raw) in rows {
                let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&raw) else {
                    continue;
                };
                each(&value);
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

/// Defines the body of [`Store::refresh_embedded_users`] for one backend's connection, so that
/// it also runs inside another transaction (a page's, see [`crate::ApplyPage`]).
macro_rules! refresh_embedded_fn {
    ($name:ident, $conn_ty:ty) => {
        pub(crate) fn $name(conn: &mut $conn_ty, user_ids: &[i64]) -> Result<usize, StoreError> {
            use crate::schema::users as u;
            let mut users = std::collections::HashMap::new();
            for chunk in user_ids.chunks(IDS_PER_STATEMENT) {
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
            let ids: Vec<i64> = users.keys().copied().collect();
            // Teammates: everyone in a team of these users' projects_users rows.
            let mut teammates = std::collections::BTreeSet::new();
            let own = refresh_table!(conn, cursus_users, &users, &ids, &mut |_| {})?
                + refresh_table!(conn, projects_users, &users, &ids, &mut |row| {
                    teammates.extend(team_members(row).filter(|id| !users.contains_key(id)));
                })?
                + refresh_table!(conn, locations, &users, &ids, &mut |_| {})?
                + refresh_table!(conn, achievements_users, &users, &ids, &mut |_| {})?;
            let teammates: Vec<i64> = teammates.into_iter().collect();
            Ok(own + refresh_table!(conn, projects_users, &users, &teammates, &mut |_| {})?)
        }
    };
}

refresh_embedded_fn!(refresh_embedded_pg, diesel::PgConnection);
refresh_embedded_fn!(refresh_embedded_sqlite, diesel::SqliteConnection);

impl Store {
    /// Brings the copies of these users embedded in other rows up to date with their stored
    /// `users` row: every key of an embedded copy takes the stored user's value. Searched: the
    /// users' own rows in cursus_users, projects_users, locations and achievements_users, and
    /// their teammates' projects_users rows, which list them in `teams[].users[]` (teammates
    /// are read off the users' own projects_users teams). Called for anonymised users
    /// (`3b3-<id>`), whose personal fields must not survive anywhere in the mirror; the sync
    /// does it in the users page's own transaction ([`crate::ApplyPage::refresh_embedded`]).
    /// Returns the rows rewritten; one transaction.
    pub fn refresh_embedded_users(&self, user_ids: &[i64]) -> Result<usize, StoreError> {
        if user_ids.is_empty() {
            return Ok(0);
        }
        with_tx!(self,
            pg: |conn| refresh_embedded_pg(conn, user_ids),
            sqlite: |conn| refresh_embedded_sqlite(conn, user_ids)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_keys_of_the_embedded_copy_are_refreshed() {
        let user = json!({"id": 7, "login": "3b3-7", "url": "u/3b3-7", "email": "3b3-7@x"});
        let mut copy = json!({"id": 7, "login": "jdoe", "url": "u/jdoe"});
        let map = copy.as_object_mut().unwrap();
        assert!(copy_user_fields(map, &user, None));
        assert_eq!(copy, json!({"id": 7, "login": "3b3-7", "url": "u/3b3-7"}));
        let mut same = user.clone();
        assert!(!copy_user_fields(
            same.as_object_mut().unwrap(),
            &user,
            None
        ));
        assert_eq!(same, user);
        let users = std::collections::HashMap::from([(7, user)]);
        assert!(!refresh_all(&mut json!(null), &users));
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
