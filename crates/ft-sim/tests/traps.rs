//! The real API's traps (issue #16): each is off by default and does what the real API does
//! when switched on; `with_real_api_traps` turns them all on.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{client, generous, get, get_json, header, ids, keyset_all, token};
use ft_sim::{Drift, Limits, PageSizeLimit, Sim, SimHandle, TrapDrift, Traps};
use serde_json::Value;

async fn start(seed: u64, campuses: u32, traps: Traps) -> (SimHandle, reqwest::Client, String) {
    let sim = Sim::builder()
        .seed(seed)
        .campuses(campuses)
        .users_per_campus(60)
        .limits(generous())
        .traps(traps)
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    (sim, client, token)
}

fn by_id(rows: &[Value]) -> BTreeMap<i64, Value> {
    rows.iter()
        .map(|r| (r["id"].as_i64().expect("id"), r.clone()))
        .collect()
}

fn is_descending(ids: &[i64]) -> bool {
    ids.windows(2).all(|w| w[0] > w[1])
}

fn is_ascending(ids: &[i64]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test]
async fn projects_users_routes_ignore_sort_when_the_trap_is_on() {
    let traps = Traps {
        ignore_sort_on: Traps::real_api().ignore_sort_on,
        ..Traps::default()
    };
    let (sim, client, token) = start(31, 1, traps).await;
    let (plain, plain_client, plain_token) = start(31, 1, Traps::default()).await;
    let user = sim.truth().table("projects_users").last().expect("rows")["user"]["id"]
        .as_i64()
        .expect("user id");
    let low = sim.truth().ids("projects_users")[100];
    let keyset = format!("sort=id&range[id]={low},999999999&page[size]=50");
    for path in [
        "/v2/projects_users".to_owned(),
        format!("/v2/users/{user}/projects_users"),
        format!(
            "/v2/projects/{}/projects_users",
            sim.truth()
                .ids("projects")
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    ] {
        let url = format!("{path}?{keyset}");
        let (trap_headers, trapped) = get_json(&client, &sim, &token, &url).await;
        let (plain_headers, sorted) = get_json(&plain_client, &plain, &plain_token, &url).await;
        let (trapped, sorted) = (ids(&trapped), ids(&sorted));
        assert!(trapped.len() > 1, "{path}: enough rows to see an order");
        assert!(
            is_descending(&trapped),
            "{path}: newest first despite sort=id"
        );
        assert!(is_ascending(&sorted), "{path}: sorted without the trap");
        assert!(
            trapped.iter().all(|&id| id >= 100),
            "{path}: range[id] still applies"
        );
        assert_eq!(
            header(&trap_headers, "x-total"),
            header(&plain_headers, "x-total"),
            "{path}: the same rows, in another order"
        );
    }
    // No Sort Error either: the parameter is not looked at.
    let response = get(
        &client,
        &sim,
        &token,
        "/v2/projects_users?sort=no_such_field",
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = get(
        &plain_client,
        &plain,
        &plain_token,
        "/v2/projects_users?sort=no_such_field",
    )
    .await;
    assert_eq!(response.status(), 400);
    // Other routes still sort.
    let (_, cursus_users) = get_json(&client, &sim, &token, "/v2/cursus_users?sort=id").await;
    assert!(is_ascending(&ids(&cursus_users)));
}

#[tokio::test]
async fn filter_lists_over_the_limit_get_an_html_502() {
    let traps = Traps {
        filter_list_limit: Some(100),
        ..Traps::default()
    };
    let (sim, client, token) = start(32, 2, traps).await;
    let user_ids = sim.truth().ids("users");
    let list = |n: usize| {
        user_ids[..n]
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };

    let (headers, body) = get_json(
        &client,
        &sim,
        &token,
        &format!("/v2/users?filter[id]={}&page[size]=100", list(100)),
    )
    .await;
    assert_eq!(ids(&body).len(), 100, "100 values are fine");
    assert_eq!(header(&headers, "x-total"), "100");

    for path in ["/v2/users", "/v2/cursus_users", "/v2/projects_users"] {
        let response = get(
            &client,
            &sim,
            &token,
            &format!("{path}?filter[user_id]={}", list(101)),
        )
        .await;
        assert_eq!(response.status(), 502, "{path}: 101 values");
        assert!(header(response.headers(), "content-type").starts_with("text/html"));
        let text = response.text().await.expect("body");
        assert!(text.contains("502 Bad Gateway"), "{text}");
        assert!(serde_json::from_str::<Value>(&text).is_err(), "not JSON");
    }
    let last = sim.ledger().pop().expect("ledger");
    assert!(last.counted && last.status == 502, "the 502 is counted");

    let (plain, plain_client, plain_token) = start(32, 2, Traps::default()).await;
    let (headers, _) = get_json(
        &plain_client,
        &plain,
        &plain_token,
        &format!("/v2/users?filter[id]={}", list(101)),
    )
    .await;
    assert_eq!(header(&headers, "x-total"), "101", "off by default");
}

fn anonymised_ids(sim: &SimHandle) -> Vec<i64> {
    sim.truth()
        .table("users")
        .iter()
        .filter(|u| u["login"].as_str().is_some_and(|l| l.starts_with("3b3-")))
        .map(|u| u["id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test]
async fn anonymised_users_are_hidden_from_show_and_filter_id_but_stay_listed_and_embedded() {
    let traps = Traps {
        hide_anonymised_users: true,
        ..Traps::default()
    };
    let (sim, client, token) = start(33, 2, traps).await;
    let truth = sim.truth();
    let hidden = anonymised_ids(&sim);
    assert!(!hidden.is_empty(), "the dataset has anonymised users");
    let anon = hidden[0];
    let visible = truth
        .ids("users")
        .into_iter()
        .find(|id| !hidden.contains(id))
        .expect("a normal user");

    for key in [anon.to_string(), format!("3b3-{anon}")] {
        let response = get(&client, &sim, &token, &format!("/v2/users/{key}")).await;
        assert_eq!(response.status(), 404, "show {key}");
        assert_eq!(
            response.json::<Value>().await.expect("JSON"),
            serde_json::json!({})
        );
    }
    let response = get(&client, &sim, &token, &format!("/v2/users/{visible}")).await;
    assert_eq!(response.status(), 200);

    let (headers, body) = get_json(
        &client,
        &sim,
        &token,
        &format!("/v2/users?filter[id]={anon},{visible}"),
    )
    .await;
    assert_eq!(ids(&body), vec![visible], "filter[id] leaves them out");
    assert_eq!(header(&headers, "x-total"), "1");

    // Still listed by keyset, and still embedded in relation rows.
    let listed = keyset_all(&client, &sim, &token, "/v2/users", "").await;
    assert_eq!(listed.len(), truth.table("users").len());
    let row = by_id(&listed)[&anon].clone();
    assert_eq!(row["login"], format!("3b3-{anon}"));
    assert_eq!(row["email"], format!("3b3-{anon}@student.42.fr"));
    assert_eq!(row["first_name"], "3b3");
    assert_eq!(row["last_name"], anon.to_string());
    let (_, cursus_users) = get_json(
        &client,
        &sim,
        &token,
        &format!("/v2/cursus_users?filter[user_id]={anon}"),
    )
    .await;
    let cursus_users = cursus_users.as_array().expect("array");
    assert!(!cursus_users.is_empty());
    for cu in cursus_users {
        assert_eq!(cu["user"]["login"], format!("3b3-{anon}"));
    }

    // Off by default.
    let (plain, plain_client, plain_token) = start(33, 2, Traps::default()).await;
    let response = get(
        &plain_client,
        &plain,
        &plain_token,
        &format!("/v2/users/{anon}"),
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn anonymisation_drift_scrubs_the_user_and_every_embedded_copy_without_bumping_them() {
    let (sim, client, token) = start(34, 2, Traps::default()).await;
    let before = sim.truth();
    let report = sim.drift_traps(&TrapDrift {
        anonymise_users: 3,
        ..TrapDrift::default()
    });
    let after = sim.truth();
    assert!(!report.anonymised_users.is_empty(), "some users were due");
    assert_eq!(report.updated["users"], report.anonymised_users);
    let stamp = report
        .at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let users = by_id(after.table("users"));
    for &id in &report.anonymised_users {
        let old = &by_id(before.table("users"))[&id];
        assert!(!old["login"].as_str().expect("login").starts_with("3b3-"));
        let due =
            chrono::DateTime::parse_from_rfc3339(old["anonymize_date"].as_str().expect("date"))
                .expect("date");
        assert!(due <= report.at, "only users whose date has come");
        let user = &users[&id];
        assert_eq!(user["login"], format!("3b3-{id}"));
        assert_eq!(user["email"], format!("3b3-{id}@student.42.fr"));
        assert_eq!(user["first_name"], "3b3");
        assert_eq!(user["last_name"], id.to_string());
        assert_eq!(user["updated_at"], stamp.as_str());
        assert_eq!(user["image"]["link"], Value::Null);
    }
    // Relation rows show the scrubbed user while their own updated_at stays put.
    let mut embedded = 0;
    for table in ["cursus_users", "projects_users", "locations"] {
        let (old, new) = (by_id(before.table(table)), by_id(after.table(table)));
        for (row_id, row) in &new {
            let user = row["user"]["id"].as_i64().expect("user id");
            if report.anonymised_users.contains(&user) {
                embedded += 1;
                assert_eq!(
                    row["user"], users[&user],
                    "{table} {row_id} embeds the new user"
                );
                assert_eq!(row.get("updated_at"), old[row_id].get("updated_at"));
                assert!(report.refreshed_embedded_users[table].contains(row_id));
            } else {
                assert_eq!(row, &old[row_id], "{table} {row_id} untouched");
            }
        }
    }
    assert!(embedded > 0, "the anonymised users have relation rows");
    // The truth is what the listings serve, anonymised users included.
    let listed = keyset_all(&client, &sim, &token, "/v2/users", "").await;
    assert_eq!(listed, after.table("users"));

    // Same seed, same anonymisations.
    let (twin, _, _) = start(34, 2, Traps::default()).await;
    let again = twin.drift_traps(&TrapDrift {
        anonymise_users: 3,
        ..TrapDrift::default()
    });
    assert_eq!(again.anonymised_users, report.anonymised_users);
}

#[tokio::test]
async fn deletions_of_coalitions_users_and_locations_and_replaced_projects_users() {
    let (sim, _, _) = start(35, 2, Traps::default()).await;
    let before = sim.truth();
    let report = sim.drift_traps(&TrapDrift {
        delete_coalitions_users: 2,
        delete_locations: 3,
        replace_projects_users: 2,
        ..TrapDrift::default()
    });
    let after = sim.truth();
    assert_eq!(report.deleted["coalitions_users"].len(), 2);
    assert_eq!(report.deleted["locations"].len(), 3);
    for table in ["coalitions_users", "locations"] {
        let now = after.ids(table);
        assert_eq!(
            now.len(),
            before.ids(table).len() - report.deleted[table].len()
        );
        assert!(report.deleted[table].iter().all(|id| !now.contains(id)));
    }
    let old_locations = by_id(before.table("locations"));
    for id in &report.deleted["locations"] {
        assert!(
            !old_locations[id]["end_at"].is_null(),
            "only closed sessions go"
        );
    }

    assert_eq!(report.replaced_projects_users.len(), 2);
    let (old_pu, new_pu) = (
        by_id(before.table("projects_users")),
        by_id(after.table("projects_users")),
    );
    let highest = *old_pu.keys().last().expect("rows");
    for &(old_id, new_id) in &report.replaced_projects_users {
        assert!(!new_pu.contains_key(&old_id), "the old row is gone");
        assert!(new_id > highest, "the new row has a new, higher id");
        let (old, new) = (&old_pu[&old_id], &new_pu[&new_id]);
        assert_eq!(new["user"]["id"], old["user"]["id"]);
        assert_eq!(new["project"]["id"], old["project"]["id"]);
        assert_eq!(new["status"], "in_progress");
        assert_eq!(new["created_at"], new["updated_at"]);
    }
    assert_eq!(new_pu.len(), old_pu.len());
}

#[tokio::test]
async fn campus_transfers_move_the_users_scope() {
    let (sim, client, token) = start(36, 3, Traps::default()).await;
    let before = sim.truth();
    let report = sim.drift_traps(&TrapDrift {
        campus_transfers: 4,
        ..TrapDrift::default()
    });
    let after = sim.truth();
    assert_eq!(report.campus_transfers.len(), 4);
    let old_cursus_users = by_id(before.table("cursus_users"));
    for &(user, from, to) in &report.campus_transfers {
        assert_ne!(from, to);
        let memberships: Vec<&Value> = after
            .table("campus_users")
            .iter()
            .filter(|cu| cu["user_id"] == user)
            .collect();
        let primary: Vec<i64> = memberships
            .iter()
            .filter(|cu| cu["is_primary"] == true)
            .map(|cu| cu["campus_id"].as_i64().expect("campus"))
            .collect();
        assert_eq!(
            primary,
            vec![to],
            "user {user}: one primary campus, the new one"
        );
        assert!(
            memberships.iter().any(|cu| cu["campus_id"] == from),
            "the old membership stays, not primary"
        );

        let in_scope =
            |campus: i64| format!("/v2/users?filter[primary_campus_id]={campus}&filter[id]={user}");
        let (_, now) = get_json(&client, &sim, &token, &in_scope(to)).await;
        assert_eq!(ids(&now), vec![user]);
        let (_, old) = get_json(&client, &sim, &token, &in_scope(from)).await;
        assert!(ids(&old).is_empty());

        let mine: Vec<i64> = after
            .table("cursus_users")
            .iter()
            .filter(|cu| cu["user"]["id"] == user)
            .map(|cu| cu["id"].as_i64().expect("id"))
            .collect();
        let scoped = |campus: i64| {
            format!("/v2/cursus_users?filter[campus_id]={campus}&filter[user_id]={user}&sort=id")
        };
        let (_, now) = get_json(&client, &sim, &token, &scoped(to)).await;
        assert_eq!(ids(&now), mine, "cursus_users follow the user");
        let (_, old) = get_json(&client, &sim, &token, &scoped(from)).await;
        assert!(ids(&old).is_empty());
        for row in now.as_array().expect("array") {
            let id = row["id"].as_i64().expect("id");
            assert_eq!(
                row["updated_at"], old_cursus_users[&id]["updated_at"],
                "moving scope does not bump the row"
            );
        }
    }
    assert!(report.updated["campus_users"].len() >= 4);
}

/// Which of twelve small pages came back cut.
async fn cut_pattern((sim, client, token): (SimHandle, reqwest::Client, String)) -> Vec<bool> {
    let mut cut = Vec::new();
    for page in 1..=12 {
        let body = get(
            &client,
            &sim,
            &token,
            &format!("/v2/users?page={page}&per_page=5"),
        )
        .await
        .bytes()
        .await
        .expect("body");
        cut.push(serde_json::from_slice::<Value>(&body).is_err());
    }
    cut
}

#[tokio::test]
async fn cut_bodies_keep_a_correct_length_and_close_the_connection() {
    let traps = Traps {
        cut_body_rate: 1.0,
        ..Traps::default()
    };
    let (sim, client, token) = start(37, 1, traps).await;
    let response = get(&client, &sim, &token, "/v2/users?page[size]=50").await;
    assert_eq!(response.status(), 200);
    let length: usize = header(response.headers(), "content-length")
        .parse()
        .expect("Content-Length");
    assert_eq!(header(response.headers(), "connection"), "close");
    let bytes = response
        .bytes()
        .await
        .expect("the whole (cut) body arrives");
    assert_eq!(bytes.len(), length);
    assert!(
        serde_json::from_slice::<Value>(&bytes).is_err(),
        "cut mid-JSON"
    );
    let error = get(&client, &sim, &token, "/v2/users/999999").await;
    assert_eq!(error.status(), 404, "only 200s are cut");
    assert_eq!(
        error.json::<Value>().await.expect("JSON"),
        serde_json::json!({})
    );

    // Half the pages, the same ones for the same seed.
    let half = Traps {
        cut_body_rate: 0.5,
        ..Traps::default()
    };
    let first = cut_pattern(start(38, 1, half.clone()).await).await;
    let second = cut_pattern(start(38, 1, half).await).await;
    assert_eq!(first, second);
    assert!(first.contains(&true) && first.contains(&false), "{first:?}");
}

#[tokio::test]
async fn projects_time_out_above_thirty_per_page() {
    let traps = Traps {
        page_size_limits: vec![PageSizeLimit {
            route: "/v2/projects".to_owned(),
            max_per_page: 30,
            delay: Duration::from_millis(20),
        }],
        ..Traps::default()
    };
    let (sim, client, token) = start(39, 1, traps).await;
    for query in ["per_page=31", "page[size]=100", "per_page=500"] {
        let response = get(&client, &sim, &token, &format!("/v2/projects?{query}")).await;
        assert_eq!(response.status(), 504, "{query}");
        assert!(header(response.headers(), "content-type").starts_with("text/html"));
        assert!(
            response
                .text()
                .await
                .expect("body")
                .contains("Gateway Time-out")
        );
    }
    let (headers, body) = get_json(&client, &sim, &token, "/v2/projects?per_page=30").await;
    assert_eq!(ids(&body).len(), 30);
    assert_eq!(header(&headers, "x-per-page"), "30");
    let (_, body) = get_json(&client, &sim, &token, "/v2/projects").await;
    assert_eq!(ids(&body).len(), 30, "the default page size is fine");
    let (_, body) = get_json(&client, &sim, &token, "/v2/projects_users?per_page=100").await;
    assert_eq!(ids(&body).len(), 100, "other routes keep 100");
    let (_, body) = get_json(&client, &sim, &token, "/v2/cursus/21/projects?per_page=100").await;
    assert!(
        ids(&body).len() > 30,
        "only the configured route is limited"
    );
}

#[tokio::test]
async fn the_preset_turns_every_trap_on_and_drops_retry_after() {
    assert_eq!(Traps::default(), Traps::default(), "off is the default");
    let sim = Sim::builder()
        .seed(40)
        .campuses(2)
        .users_per_campus(60)
        .limits(Limits {
            per_second: 1000,
            per_hour: 6,
            ..Limits::default()
        })
        .with_real_api_traps()
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;

    let (_, body) = get_json(&client, &sim, &token, "/v2/projects_users?sort=id").await;
    assert!(is_descending(&ids(&body)), "sort ignored");
    let anon = anonymised_ids(&sim)[0];
    let status = get(&client, &sim, &token, &format!("/v2/users/{anon}"))
        .await
        .status();
    assert_eq!(status, 404, "anonymised users hidden");
    let long = (1..=101)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let status = get(
        &client,
        &sim,
        &token,
        &format!("/v2/users?filter[id]={long}"),
    )
    .await
    .status();
    assert_eq!(status, 502, "long filter lists");
    let status = get(&client, &sim, &token, "/v2/projects?per_page=100")
        .await
        .status();
    assert_eq!(status, 504, "page-size limit");
    let status = get(&client, &sim, &token, "/v2/cursus/21/projects?per_page=100")
        .await
        .status();
    assert_eq!(status, 504, "page-size limit on the nested route");

    // The budget of 6 per "hour" is spent, whatever the answers were: a 429 without Retry-After.
    for _ in 0..2 {
        get(&client, &sim, &token, "/v2/campus").await;
    }
    let response = get(&client, &sim, &token, "/v2/campus").await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_none());

    // Every drift step brings the trap drift along.
    let report = sim.drift(Drift::default());
    assert_eq!(report.anonymised_users.len(), 1);
    assert_eq!(report.campus_transfers.len(), 1);
    assert_eq!(report.replaced_projects_users.len(), 1);
    assert_eq!(report.deleted["locations"].len(), 2);
    assert!(!report.deleted["coalitions_users"].is_empty());
    // And nothing of it without the preset.
    let (plain, _, _) = start(40, 2, Traps::default()).await;
    let report = plain.drift(Drift::default());
    assert!(report.anonymised_users.is_empty() && report.deleted.is_empty());
}
