//! Embedded copies of anonymised users (issue #16): their own rows and their teammates'.

use crate::common;

use common::*;
use ft_store::test_support::TestDb;
use ft_store::{ApplyPage, Rows, Table};

/// A projects_user of `user_id` in a team of `members` (id, login).
fn team_row(id: i64, user_id: i64, members: &[(i64, &str)]) -> ft_store::rows::ProjectsUserRow {
    let mut row = projects_user(id, user_id, Some(ts(10)));
    let login = members
        .iter()
        .find(|(m, _)| *m == user_id)
        .map_or("someone", |(_, l)| *l);
    row.raw = serde_json::json!({
        "id": id,
        "user": {"id": user_id, "login": login, "url": format!("u/{login}")},
        "teams": [{"id": 77, "users": members.iter().map(|(m, l)| serde_json::json!({
            "id": m, "login": l, "url": format!("u/{l}"), "leader": *m == members[0].0
        })).collect::<Vec<_>>()}]
    })
    .to_string();
    row
}

/// Three projects_users: users 1 and 2 in team 77, user 3 alone.
fn team_rows() -> ApplyPage {
    let team = [(1, "jdoe"), (2, "asmith")];
    ApplyPage::rows(Rows::ProjectsUsers(vec![
        team_row(10, 1, &team),
        team_row(20, 2, &team),
        team_row(30, 3, &[(3, "solo")]),
    ]))
}

/// A users page with user 1 anonymised.
fn anonymised_user_1() -> ApplyPage {
    let mut anonymised = user(1, "3b3-1", Some(ts(20)));
    anonymised.raw = serde_json::json!({"id": 1, "login": "3b3-1", "url": "u/3b3-1"}).to_string();
    ApplyPage::rows(Rows::Users(vec![anonymised]))
}

/// User 1 is anonymised; 2 worked with them in team 77; 3 did not. Refreshing user 1 rewrites
/// their own row and user 2's team entry for them; user 3's row and user 2's own entries stay.
#[test]
fn an_anonymised_user_is_rewritten_in_their_teammates_rows() {
    for db in TestDb::all() {
        let store = db.store();
        store.apply_page(team_rows()).unwrap();
        store.apply_page(anonymised_user_1()).unwrap();

        let rewritten = store.refresh_embedded_users(&[1]).unwrap();
        assert_eq!(rewritten, 2, "{}: own row and the teammate's", db.backend());
        let rows = store.raw_rows(Table::ProjectsUsers).unwrap();
        let raw = |id: i64| rows.iter().find(|r| r.id == id).unwrap().raw.clone();
        for id in [10, 20] {
            let text = raw(id).to_string();
            assert!(!text.contains("jdoe"), "row {id} still names jdoe: {text}");
            assert_eq!(raw(id)["teams"][0]["users"][0]["login"], "3b3-1", "{text}");
        }
        assert_eq!(
            raw(20)["user"]["login"],
            "asmith",
            "the teammate stays themself"
        );
        assert_eq!(raw(20)["teams"][0]["users"][1]["login"], "asmith");
        assert_eq!(
            raw(30)["user"]["login"],
            "solo",
            "no shared team: untouched"
        );
        assert_eq!(store.refresh_embedded_users(&[1]).unwrap(), 0, "idempotent");
    }
}

/// The sync scrubs in the users page's own transaction: the page names the users to refresh,
/// and the rewrite sees the row the page just stored.
#[test]
fn a_users_page_rewrites_the_embedded_copies_it_names_in_its_own_transaction() {
    for db in TestDb::all() {
        let store = db.store();
        store.apply_page(team_rows()).unwrap();
        let outcome = store
            .apply_page(ApplyPage {
                refresh_embedded: vec![1],
                ..anonymised_user_1()
            })
            .unwrap();
        assert_eq!(outcome.embedded_rewritten, 2, "{}", db.backend());
        let rows = store.raw_rows(Table::ProjectsUsers).unwrap();
        for row in rows.iter().filter(|r| r.id != 30) {
            assert!(!row.raw.to_string().contains("jdoe"), "{}", row.raw);
        }
        let outcome = store.apply_page(team_rows()).unwrap();
        assert_eq!(
            outcome.embedded_rewritten, 0,
            "nothing named, nothing rewritten"
        );
    }
}
