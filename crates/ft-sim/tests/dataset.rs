//! Point 1 (dataset) and the truth invariant: deterministic from the seed, realistic shapes,
//! and every listing serves the same JSON per row as the truth.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{client, generous, keyset_all, token};
use ft_sim::Sim;
use serde_json::Value;

fn is_api_timestamp(text: &str) -> bool {
    // 2017-11-22T13:41:00.825Z
    let bytes = text.as_bytes();
    text.len() == 24
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[19] == b'.'
        && bytes[23] == b'Z'
        && chrono::DateTime::parse_from_rfc3339(text).is_ok()
}

#[tokio::test]
async fn same_seed_same_data_other_seed_other_data() {
    let a = Sim::builder()
        .seed(11)
        .campuses(2)
        .users_per_campus(30)
        .start()
        .await;
    let b = Sim::builder()
        .seed(11)
        .campuses(2)
        .users_per_campus(30)
        .start()
        .await;
    let c = Sim::builder()
        .seed(12)
        .campuses(2)
        .users_per_campus(30)
        .start()
        .await;
    assert_eq!(a.truth(), b.truth());
    assert_ne!(a.truth().table("users"), c.truth().table("users"));
    assert_eq!(
        a.credentials(),
        b.credentials(),
        "credentials also come from the seed"
    );
}

#[tokio::test]
async fn dataset_has_the_realistic_shape() {
    let sim = Sim::builder()
        .seed(5)
        .campuses(2)
        .users_per_campus(250)
        .start()
        .await;
    let truth = sim.truth();
    let users = truth.table("users");
    assert_eq!(users.len(), 500);
    assert_eq!(truth.ids("campuses"), vec![1, 2]);
    assert_eq!(truth.ids("cursus"), vec![9, 21]);
    assert!(
        (55..=70).contains(&truth.table("projects").len()),
        "about 60 projects"
    );
    assert_eq!(truth.table("achievements").len(), 40);
    assert_eq!(truth.table("blocs").len(), 2);
    assert_eq!(truth.table("coalitions").len(), 8);
    for bloc in truth.table("blocs") {
        assert_eq!(
            bloc["coalitions"].as_array().expect("coalitions").len(),
            4,
            "four coalitions per campus bloc"
        );
        assert_eq!(bloc["cursus_id"], 21);
    }

    // Per-user relations.
    let per_user = |table: &str| -> BTreeMap<i64, usize> {
        let mut counts = BTreeMap::new();
        for row in truth.table(table) {
            let user = row
                .get("user_id")
                .and_then(Value::as_i64)
                .or_else(|| row["user"]["id"].as_i64())
                .expect("user id");
            *counts.entry(user).or_default() += 1;
        }
        counts
    };
    let cursus_users = per_user("cursus_users");
    assert!(
        cursus_users.values().all(|&n| (1..=2).contains(&n)),
        "1-2 cursus_users per user"
    );
    assert_eq!(cursus_users.len(), 500);
    let projects = per_user("projects_users");
    let avg = truth.table("projects_users").len() as f64 / 500.0;
    assert!(
        (10.0..=30.0).contains(&avg),
        "projects_users per user: {avg}"
    );
    assert!(projects.values().any(|&n| n >= 25));
    let avg_locations = truth.table("locations").len() as f64 / 500.0;
    assert!(
        (12.0..=28.0).contains(&avg_locations),
        "locations per user: {avg_locations}"
    );
    let avg_achievements = truth.table("achievements_users").len() as f64 / 500.0;
    assert!(
        (5.0..=15.0).contains(&avg_achievements),
        "achievements per user: {avg_achievements}"
    );
    assert!(
        per_user("coalitions_users").values().all(|&n| n == 1),
        "at most one coalitions_user per user"
    );
    let campus_count = per_user("campus_users");
    assert!(
        campus_count.values().any(|&n| n == 2),
        "some users are on two campuses"
    );
    assert!(campus_count.values().all(|&n| (1..=2).contains(&n)));

    // The variety the reference asks for.
    let cu = truth.table("cursus_users");
    assert!(cu.iter().any(|r| !r["blackholed_at"].is_null()));
    let now = sim.now().to_rfc3339();
    assert!(
        cu.iter()
            .any(|r| r["begin_at"].as_str().expect("begin_at") > now.as_str()),
        "some future begin_at"
    );
    assert!(
        cu.iter()
            .all(|r| r["user"]["id"].is_i64() && r["cursus"]["id"].is_i64())
    );
    let pu = truth.table("projects_users");
    let marks: BTreeSet<Option<i64>> = pu.iter().map(|r| r["final_mark"].as_i64()).collect();
    assert!(
        marks.contains(&None)
            && marks.contains(&Some(-42))
            && marks.contains(&Some(0))
            && marks.contains(&Some(125))
    );
    let statuses: BTreeSet<&str> = pu
        .iter()
        .map(|r| r["status"].as_str().expect("status"))
        .collect();
    for status in [
        "finished",
        "in_progress",
        "waiting_for_correction",
        "searching_a_group",
        "parent",
    ] {
        assert!(
            statuses.contains(status),
            "status {status} present: {statuses:?}"
        );
    }
    assert!(
        users
            .iter()
            .any(|u| u["login"].as_str().expect("login").starts_with("3b3-")),
        "anonymised users"
    );
    for user in users
        .iter()
        .filter(|u| u["login"].as_str().expect("login").starts_with("3b3-"))
    {
        let id = user["id"].as_i64().expect("id");
        assert_eq!(user["login"], format!("3b3-{id}"));
        assert_eq!(user["email"], format!("3b3-{id}@student.42.fr"));
        let erased = chrono::DateTime::parse_from_rfc3339(
            user["anonymize_date"].as_str().expect("anonymize_date"),
        )
        .expect("date");
        assert!(
            erased < sim.now(),
            "anonymised users were anonymised in the past"
        );
    }
    assert!(
        users
            .iter()
            .any(|u| u["image"]["link"].is_null() && u["image"]["versions"]["micro"].is_null())
    );
    assert!(users.iter().any(|u| u["image"]["link"].is_string()));
    assert!(
        users.iter().any(|u| u.get("pronoun").is_some()),
        "a few unknown extra fields"
    );
    assert!(
        truth
            .table("locations")
            .iter()
            .any(|l| l.get("floor").is_some()),
        "legacy location keys"
    );
    assert!(
        truth
            .table("locations")
            .iter()
            .any(|l| l["end_at"].is_null()),
        "open sessions"
    );
    assert!(
        users.iter().any(|u| u["usual_first_name"].is_null())
            && users.iter().any(|u| u["phone"].is_null())
    );

    // Formats.
    for user in users {
        assert!(is_api_timestamp(
            user["created_at"].as_str().expect("created_at")
        ));
        assert!(is_api_timestamp(
            user["updated_at"].as_str().expect("updated_at")
        ));
        assert!(user["pool_year"].is_string() || user["pool_year"].is_null());
        if let Some(date) = user["anonymize_date"].as_str() {
            assert!(
                date.ends_with("+02:00"),
                "campus offset on anonymize_date: {date}"
            );
        }
    }
    assert!(
        truth
            .table("projects_users")
            .iter()
            .all(|r| r["updated_at"].as_str().is_some_and(is_api_timestamp))
    );
}

#[tokio::test]
async fn every_table_equals_a_keyset_scan_of_its_canonical_listing() {
    let sim = Sim::builder()
        .seed(6)
        .campuses(2)
        .users_per_campus(25)
        .limits(generous())
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    let truth = sim.truth();
    let canonical = [
        ("campuses", "/v2/campus"),
        ("users", "/v2/users"),
        ("campus_users", "/v2/campus_users"),
        ("cursus", "/v2/cursus"),
        ("cursus_users", "/v2/cursus_users"),
        ("projects", "/v2/projects"),
        ("projects_users", "/v2/projects_users"),
        ("achievements", "/v2/achievements"),
        ("achievements_users", "/v2/achievements_users"),
        ("locations", "/v2/locations"),
        ("coalitions", "/v2/coalitions"),
        ("blocs", "/v2/blocs"),
        ("coalitions_users", "/v2/coalitions_users"),
    ];
    assert_eq!(truth.tables.len(), canonical.len());
    for (table, path) in canonical {
        let served = keyset_all(&client, &sim, &token, path, "").await;
        assert_eq!(
            served.as_slice(),
            truth.table(table),
            "{table} served by {path} equals the truth"
        );
    }
}

#[tokio::test]
async fn nested_routes_serve_the_same_json_as_the_canonical_listing() {
    let sim = Sim::builder()
        .seed(7)
        .campuses(2)
        .users_per_campus(30)
        .limits(generous())
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    let truth = sim.truth();
    let by_id = |table: &str| -> BTreeMap<i64, Value> {
        truth
            .table(table)
            .iter()
            .map(|r| (r["id"].as_i64().expect("id"), r.clone()))
            .collect()
    };
    let check = |table: &str, items: &[Value]| {
        let rows = by_id(table);
        assert!(!items.is_empty(), "{table}: nested route returned rows");
        for item in items {
            assert_eq!(
                Some(item),
                rows.get(&item["id"].as_i64().expect("id")),
                "{table} row identical"
            );
        }
    };
    let campus_users = keyset_all(&client, &sim, &token, "/v2/campus/2/users", "").await;
    check("users", &campus_users);
    // Users on two campuses appear under both.
    let members: BTreeSet<i64> = truth
        .table("campus_users")
        .iter()
        .filter(|cu| cu["campus_id"] == 2)
        .map(|cu| cu["user_id"].as_i64().expect("user_id"))
        .collect();
    assert_eq!(
        campus_users
            .iter()
            .map(|u| u["id"].as_i64().expect("id"))
            .collect::<BTreeSet<_>>(),
        members
    );

    check(
        "cursus_users",
        &keyset_all(&client, &sim, &token, "/v2/cursus/21/cursus_users", "").await,
    );
    check(
        "locations",
        &keyset_all(&client, &sim, &token, "/v2/campus/1/locations", "").await,
    );
    check(
        "coalitions_users",
        &keyset_all(
            &client,
            &sim,
            &token,
            "/v2/coalitions/1/coalitions_users",
            "",
        )
        .await,
    );
    let user = truth.table("projects_users")[0]["user"]["id"]
        .as_i64()
        .expect("user");
    check(
        "projects_users",
        &keyset_all(
            &client,
            &sim,
            &token,
            &format!("/v2/users/{user}/projects_users"),
            "",
        )
        .await,
    );
    let project = truth.table("projects_users")[0]["project"]["id"]
        .as_i64()
        .expect("project");
    check(
        "projects_users",
        &keyset_all(
            &client,
            &sim,
            &token,
            &format!("/v2/projects/{project}/projects_users"),
            "",
        )
        .await,
    );
}

#[tokio::test]
async fn any_epoch_works_and_all_history_precedes_it() {
    let epoch = chrono::DateTime::parse_from_rfc3339("2015-06-01T00:00:00Z")
        .expect("epoch")
        .to_utc();
    let sim = Sim::builder()
        .seed(9)
        .users_per_campus(80)
        .epoch(epoch)
        .start()
        .await;
    let now = sim.now();
    assert!(
        now >= epoch && now < epoch + chrono::Duration::minutes(5),
        "the clock starts at the epoch"
    );
    let truth = sim.truth();
    for table in [
        "users",
        "cursus_users",
        "projects_users",
        "achievements_users",
        "campus_users",
        "coalitions_users",
    ] {
        for row in truth.table(table) {
            let updated = chrono::DateTime::parse_from_rfc3339(
                row["updated_at"].as_str().expect("updated_at"),
            )
            .expect("stamp");
            assert!(
                updated < epoch,
                "{table} {}: updated_at {updated} before the epoch",
                row["id"]
            );
        }
    }
}
