//! Upsert rules on both backends: every column round-trips, older updated_at never wins,
//! duplicates collapse to the last copy, and big batches are chunked under the bind limits.

use crate::common;

use common::*;
use ft_store::test_support::TestDb;
use ft_store::{ApplyPage, IdsWhere, Rows, Table};

#[test]
fn every_table_round_trips_every_column_on_insert_and_update() {
    for db in TestDb::all() {
        let store = db.store();
        for version in [1, 2] {
            for rows in one_of_each(version) {
                let table = rows.table();
                let outcome = store.apply_page(ApplyPage::rows(rows.clone())).unwrap();
                assert_eq!(outcome.written, 1, "{} {table}", db.backend());
                assert_eq!(
                    canonical(store.load_rows(table).unwrap()),
                    canonical(rows),
                    "{} {table} version {version}",
                    db.backend()
                );
            }
        }
        for table in Table::ALL {
            assert_eq!(store.count(*table, true).unwrap(), 1, "{table}");
        }
    }
}

#[test]
fn an_older_updated_at_never_overwrites_a_newer_one() {
    for db in TestDb::all() {
        let store = db.store();
        let backend = db.backend();
        let apply = |rows: Vec<_>| {
            store
                .apply_page(ApplyPage::rows(Rows::Users(rows)))
                .unwrap()
        };
        let login_of = |id: i64| {
            users_of(store.load_rows(Table::Users).unwrap())
                .into_iter()
                .find(|u| u.id == id)
                .map(|u| u.login)
        };

        apply(vec![user(1, "newer", Some(ts(20)))]);
        let stale = apply(vec![user(1, "older", Some(ts(10)))]);
        assert_eq!((stale.written, stale.stale), (0, 1), "{backend}");
        assert_eq!(login_of(1).as_deref(), Some("newer"), "{backend}");

        // Equal updated_at overwrites: piscine levels change without touching updated_at.
        let equal = apply(vec![user(1, "same-time", Some(ts(20)))]);
        assert_eq!((equal.written, equal.stale), (1, 0), "{backend}");
        assert_eq!(login_of(1).as_deref(), Some("same-time"), "{backend}");

        // Newer wins; sub-second differences count.
        let newer = ts(20) + chrono::TimeDelta::milliseconds(1);
        apply(vec![user(1, "a-bit-newer", Some(newer))]);
        assert_eq!(login_of(1).as_deref(), Some("a-bit-newer"), "{backend}");
        apply(vec![user(1, "a-bit-older", Some(ts(20)))]);
        assert_eq!(login_of(1).as_deref(), Some("a-bit-newer"), "{backend}");

        // A missing timestamp on either side overwrites.
        apply(vec![user(1, "incoming-null", None)]);
        assert_eq!(login_of(1).as_deref(), Some("incoming-null"), "{backend}");
        apply(vec![user(1, "stored-null", Some(ts(5)))]);
        assert_eq!(login_of(1).as_deref(), Some("stored-null"), "{backend}");

        // In one batch, fresh rows are written while stale ones are skipped.
        let mixed = apply(vec![
            user(1, "stale-again", Some(ts(1))),
            user(2, "fresh", Some(ts(1))),
        ]);
        assert_eq!((mixed.written, mixed.stale), (1, 1), "{backend}");
        assert_eq!(login_of(1).as_deref(), Some("stored-null"), "{backend}");
        assert_eq!(login_of(2).as_deref(), Some("fresh"), "{backend}");
    }
}

#[test]
fn tables_without_updated_at_always_overwrite() {
    for db in TestDb::all() {
        let store = db.store();
        for version in [5, 3] {
            let rows = one_of_each(version).remove(0);
            assert_eq!(rows.table(), Table::Campuses);
            store.apply_page(ApplyPage::rows(rows.clone())).unwrap();
            assert_eq!(
                canonical(store.load_rows(Table::Campuses).unwrap()),
                canonical(rows)
            );
        }
    }
}

#[test]
fn duplicate_ids_in_one_batch_keep_the_last_copy() {
    for db in TestDb::all() {
        let store = db.store();
        let outcome = store
            .apply_page(ApplyPage::rows(Rows::Users(vec![
                user(1, "first", Some(ts(1))),
                user(2, "other", Some(ts(1))),
                user(1, "last", Some(ts(1))),
            ])))
            .unwrap();
        assert_eq!(
            (outcome.received, outcome.duplicates, outcome.written),
            (3, 1, 2),
            "{}",
            db.backend()
        );
        let users = users_of(store.load_rows(Table::Users).unwrap());
        let logins: Vec<_> = users.iter().map(|u| (u.id, u.login.as_str())).collect();
        assert_eq!(logins, vec![(1, "last"), (2, "other")], "{}", db.backend());
    }
}

#[test]
fn batches_beyond_the_bind_parameter_limit_are_chunked() {
    // 3,000 users x 23 bound columns = 69,000 parameters: above PostgreSQL's 65,535 and
    // SQLite's 32,766, so one statement would fail.
    for db in TestDb::all() {
        let store = db.store();
        let rows: Vec<_> = (1..=3_000)
            .map(|id| user(id, &format!("u{id}"), Some(ts(id))))
            .collect();
        let outcome = store
            .apply_page(ApplyPage::rows(Rows::Users(rows)))
            .unwrap();
        assert_eq!(outcome.written, 3_000, "{}", db.backend());
        assert_eq!(store.count(Table::Users, false).unwrap(), 3_000);
        let ids = store.live_ids(Table::Users, IdsWhere::All).unwrap();
        assert_eq!(ids, (1..=3_000).collect::<Vec<_>>());
    }
}

#[test]
fn upserting_a_deleted_row_revives_it() {
    for db in TestDb::all() {
        let store = db.store();
        store
            .apply_page(ApplyPage::rows(Rows::Users(vec![user(
                1,
                "a",
                Some(ts(1)),
            )])))
            .unwrap();
        assert_eq!(store.mark_deleted(Table::Users, &[1], ts(2)).unwrap(), 1);
        assert_eq!(store.count(Table::Users, false).unwrap(), 0);
        assert_eq!(
            store.raw_rows(Table::Users).unwrap()[0].deleted_at,
            Some(ts(2))
        );
        store
            .apply_page(ApplyPage::rows(Rows::Users(vec![user(
                1,
                "a",
                Some(ts(1)),
            )])))
            .unwrap();
        assert_eq!(
            store.count(Table::Users, false).unwrap(),
            1,
            "{}",
            db.backend()
        );
        assert_eq!(store.raw_rows(Table::Users).unwrap()[0].deleted_at, None);
    }
}

#[test]
fn raw_json_is_kept_as_received() {
    for db in TestDb::all() {
        let store = db.store();
        let raw =
            r#"{"id": 7, "login": "zoé", "nested": {"list": [1, 2.5, null, "x"]}, "emoji": "🚀"}"#;
        let mut row = user(7, "zoé", Some(ts(1)));
        row.raw = raw.into();
        store
            .apply_page(ApplyPage::rows(Rows::Users(vec![row])))
            .unwrap();
        let stored = store.raw_rows(Table::Users).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].id, 7);
        assert_eq!(stored[0].raw, json(raw), "{}", db.backend());
    }
}

#[test]
fn odd_batch_sizes_are_written_completely() {
    // 1,234 = 1,000 + 2 x 100 + 3 x 10 + 4 x 1: every statement size SQLite uses, and an
    // update pass over the same ids with one row changed in each run.
    for db in TestDb::all() {
        let store = db.store();
        let page = |final_mark: i64| -> Vec<_> {
            (1..=1_234)
                .map(|id| {
                    let mut row = projects_user(id, id / 7, Some(ts(1)));
                    row.final_mark = Some(final_mark + id % 3);
                    row
                })
                .collect()
        };
        let first = store
            .apply_page(ApplyPage::rows(Rows::ProjectsUsers(page(50))))
            .unwrap();
        assert_eq!(first.written, 1_234, "{}", db.backend());
        let second = store
            .apply_page(ApplyPage::rows(Rows::ProjectsUsers(page(90))))
            .unwrap();
        assert_eq!(second.written, 1_234, "{}", db.backend());
        let Rows::ProjectsUsers(stored) = store.load_rows(Table::ProjectsUsers).unwrap() else {
            panic!("load_rows(ProjectsUsers) returned another table");
        };
        assert_eq!(stored.len(), 1_234);
        for (row, id) in stored.iter().zip(1..) {
            assert_eq!(
                (row.id, row.final_mark),
                (id, Some(90 + id % 3)),
                "{}",
                db.backend()
            );
        }
    }
}
