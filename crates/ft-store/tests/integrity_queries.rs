//! Orphans, duplicates, all ids and samples, the queries behind ft-integrity.

use crate::common;

use common::{projects_user, ts, user};
use ft_store::test_support::TestDb;
use ft_store::{ApplyPage, Rows, StoreError, Table};

#[test]
fn orphans_are_counted_and_sampled_against_live_parents_only() {
    for db in TestDb::all() {
        let store = db.store();
        store
            .apply_page(ApplyPage::rows(Rows::Users(vec![
                user(1, "ada", Some(ts(1))),
                user(2, "bob", Some(ts(1))),
            ])))
            .unwrap();
        // Rows 10 and 11 hang off user 1; 12 off missing user 99; 13 and 14 off user 2, which
        // is then marked deleted; 15 is itself deleted and never counts.
        let rows = [(10, 1), (11, 1), (12, 99), (13, 2), (14, 2), (15, 98)]
            .map(|(id, user_id)| projects_user(id, user_id, Some(ts(1))));
        store
            .apply_page(ApplyPage::rows(Rows::ProjectsUsers(rows.to_vec())))
            .unwrap();
        store.mark_deleted(Table::Users, &[2], ts(5)).unwrap();
        store
            .mark_deleted(Table::ProjectsUsers, &[15], ts(5))
            .unwrap();

        let (count, sample) = store
            .orphans(Table::ProjectsUsers, "user_id", Table::Users, 10)
            .unwrap();
        assert_eq!((count, sample), (3, vec![12, 13, 14]), "{:?}", db.backend());
        let (count, sample) = store
            .orphans(Table::ProjectsUsers, "user_id", Table::Users, 2)
            .unwrap();
        assert_eq!((count, sample), (3, vec![12, 13]), "the sample is capped");

        // Every projects_user names project 1314, which is not stored.
        let (count, _) = store
            .orphans(Table::ProjectsUsers, "project_id", Table::Projects, 10)
            .unwrap();
        assert_eq!(count, 5);

        // A column name that is not a column is refused before any SQL runs.
        let err = store
            .orphans(Table::ProjectsUsers, "user_id; DROP", Table::Users, 10)
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownColumn { .. }), "{err}");
    }
}

#[test]
fn duplicates_group_live_rows_by_value_with_optional_case_folding() {
    for db in TestDb::all() {
        let store = db.store();
        let mut a = user(1, "ada", Some(ts(1)));
        let mut b = user(2, "ada", Some(ts(1)));
        let c = user(3, "bob", Some(ts(1)));
        let mut d = user(4, "bob2", Some(ts(1)));
        let mut e = user(5, "ada", Some(ts(1)));
        a.email = Some("Ada@Example.org".into());
        b.email = Some("ada@example.org".into());
        d.email = None;
        e.email = Some(String::new());
        store
            .apply_page(ApplyPage::rows(Rows::Users(vec![a, b, c, d, e])))
            .unwrap();
        store.mark_deleted(Table::Users, &[5], ts(5)).unwrap();

        let logins = store.duplicates(Table::Users, "login", false).unwrap();
        assert_eq!(
            logins,
            vec![("ada".to_owned(), vec![1, 2])],
            "deleted row 5 ignored"
        );

        let exact = store.duplicates(Table::Users, "email", false).unwrap();
        assert!(exact.is_empty(), "{exact:?}");
        let folded = store.duplicates(Table::Users, "email", true).unwrap();
        assert_eq!(folded, vec![("ada@example.org".to_owned(), vec![1, 2])]);
    }
}

#[test]
fn all_ids_include_deleted_rows_and_samples_only_live_ones() {
    for db in TestDb::all() {
        let store = db.store();
        let users: Vec<_> = (1..=6)
            .map(|id| user(id, &format!("u{id}"), Some(ts(1))))
            .collect();
        store
            .apply_page(ApplyPage::rows(Rows::Users(users)))
            .unwrap();
        store.mark_deleted(Table::Users, &[3], ts(5)).unwrap();
        assert_eq!(store.all_ids(Table::Users).unwrap(), vec![1, 2, 3, 4, 5, 6]);

        let all = store.sample_rows(Table::Users, 100).unwrap();
        let ids: Vec<i64> = all.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 2, 4, 5, 6]);
        assert_eq!(all[0].raw["login"], "u1");
        let some = store.sample_rows(Table::Users, 2).unwrap();
        assert_eq!(some.len(), 2);
        assert!(some.iter().all(|r| r.id != 3 && r.deleted_at.is_none()));
    }
}
