//! Points 5, 6 and 7: pagination, the query language, and the endpoints with their filters.

use crate::common;

use std::collections::BTreeSet;

use common::{client, generous, get, get_json, header, ids, keyset_all, token};
use ft_sim::{Drift, Sim, SimHandle};
use serde_json::Value;

async fn setup(seed: u64) -> (SimHandle, reqwest::Client, String) {
    let sim = Sim::builder()
        .seed(seed)
        .campuses(2)
        .users_per_campus(60)
        .limits(generous())
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    (sim, client, token)
}

async fn status_and_body(
    client: &reqwest::Client,
    sim: &SimHandle,
    token: &str,
    url: &str,
) -> (u16, Value) {
    let response = get(client, sim, token, url).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn pagination_syntaxes_defaults_clamping_links_and_past_the_end() {
    let (sim, client, token) = setup(1).await;
    let total = sim.truth().table("users").len();
    assert_eq!(total, 120);

    let (headers, default_page) = get_json(&client, &sim, &token, "/v2/users").await;
    assert_eq!(header(&headers, "x-per-page"), "30");
    assert_eq!(header(&headers, "x-page"), "1");
    assert_eq!(header(&headers, "x-total"), "120", "X-Total counts items");
    assert_eq!(default_page.as_array().expect("array").len(), 30);

    let (_, classic) = get_json(&client, &sim, &token, "/v2/users?page=2&per_page=7").await;
    let (headers, bracket) = get_json(
        &client,
        &sim,
        &token,
        "/v2/users?page[number]=2&page[size]=7",
    )
    .await;
    assert_eq!(classic, bracket, "both syntaxes are the same page");
    let link = header(&headers, "link");
    let base = sim.base_url();
    for rel in ["first", "prev", "next", "last"] {
        assert!(link.contains(&format!("rel=\"{rel}\"")), "{rel} in {link}");
    }
    assert!(
        link.contains(&format!("<{base}/v2/users?")),
        "absolute links: {link}"
    );
    assert!(
        link.contains("page%5Bnumber%5D=18"),
        "last page is ceil(120/7) = 18: {link}"
    );

    let (headers, _) = get_json(&client, &sim, &token, "/v2/users?per_page=500").await;
    assert_eq!(header(&headers, "x-per-page"), "100", "clamped to 100");
    let (headers, first) = get_json(&client, &sim, &token, "/v2/users?per_page=100").await;
    let link = header(&headers, "link");
    assert!(
        !link.contains("rel=\"prev\"") && link.contains("rel=\"next\""),
        "{link}"
    );
    assert!(
        link.contains("page=2&per_page=100"),
        "classic syntax answered in kind: {link}"
    );
    assert_eq!(first.as_array().expect("array").len(), 100);
    let (headers, last) = get_json(&client, &sim, &token, "/v2/users?per_page=100&page=2").await;
    assert_eq!(last.as_array().expect("array").len(), 20);
    assert!(!header(&headers, "link").contains("rel=\"next\""));
    let (headers, past) = get_json(&client, &sim, &token, "/v2/users?per_page=100&page=9").await;
    assert_eq!(past, Value::Array(Vec::new()), "[] past the end");
    assert_eq!(header(&headers, "x-total"), "120");
}

#[tokio::test]
async fn filters_ranges_and_sorts() {
    let (sim, client, token) = setup(2).await;
    let truth = sim.truth();

    // filter: comma = OR, several filters AND, X-Total after filters.
    let users = truth.ids("users");
    let pick = format!("{},{},{}", users[3], users[10], users[50]);
    let (headers, body) = get_json(
        &client,
        &sim,
        &token,
        &format!("/v2/users?filter[id]={pick}&sort=id"),
    )
    .await;
    assert_eq!(ids(&body), vec![users[3], users[10], users[50]]);
    assert_eq!(header(&headers, "x-total"), "3");
    let login = truth.table("users")[10]["login"]
        .as_str()
        .expect("login")
        .to_owned();
    let (_, body) = get_json(
        &client,
        &sim,
        &token,
        &format!("/v2/users?filter[id]={pick}&filter[login]={login}"),
    )
    .await;
    assert_eq!(ids(&body), vec![users[10]], "filters AND together");

    // range: inclusive bounds, ids and timestamps in several spellings.
    let (headers, body) = get_json(
        &client,
        &sim,
        &token,
        &format!("/v2/users?range[id]={},{}&sort=-id", users[5], users[9]),
    )
    .await;
    assert_eq!(
        ids(&body),
        users[5..=9].iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(header(&headers, "x-total"), "5");
    let stamp = truth.table("users")[7]["updated_at"]
        .as_str()
        .expect("updated_at")
        .to_owned();
    let (_, body) = get_json(
        &client,
        &sim,
        &token,
        &format!("/v2/users?range[updated_at]={stamp},{stamp}"),
    )
    .await;
    assert!(
        ids(&body).contains(&users[7]),
        "an exact stamp matches both inclusive bounds"
    );
    let parsed = chrono::DateTime::parse_from_rfc3339(&stamp).expect("stamp");
    let offset = parsed
        .with_timezone(&chrono::FixedOffset::east_opt(7200).expect("offset"))
        .to_rfc3339();
    let encoded = offset.replace('+', "%2B");
    let (_, body) = get_json(
        &client,
        &sim,
        &token,
        &format!("/v2/users?range[updated_at]={encoded},{encoded}"),
    )
    .await;
    assert!(
        ids(&body).contains(&users[7]),
        "offsets are accepted: {offset}"
    );
    let (status, body) = status_and_body(
        &client,
        &sim,
        &token,
        "/v2/users?range[updated_at]=yesterday,today",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("RFC 3339")
    );

    // Errors name the allowed fields.
    let (status, body) =
        status_and_body(&client, &sim, &token, "/v2/users?filter[campus_id]=1").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "Filter Error");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("You can only filter on: [id, login")
    );
    let (status, body) = status_and_body(&client, &sim, &token, "/v2/coalitions?sort=score").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("Sort Error")));
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("The score field is not sortable")
    );
    let (status, _) = status_and_body(
        &client,
        &sim,
        &token,
        "/v2/users?range[primary_campus_id]=1,2",
    )
    .await;
    assert_eq!(status, 400, "virtual filters cannot be ranged");

    // Sorts: several keys, defaults newest first.
    let (_, body) = get_json(&client, &sim, &token, "/v2/users?per_page=100").await;
    let served = ids(&body);
    let mut expected = users.clone();
    expected.reverse();
    assert_eq!(served, expected[..100], "users default to id desc");
    let (_, body) = get_json(&client, &sim, &token, "/v2/cursus_users?per_page=100").await;
    let created: Vec<&str> = body
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["created_at"].as_str().expect("created"))
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "cursus_users default to created_at desc"
    );
    let (_, body) = get_json(&client, &sim, &token, "/v2/locations?per_page=100").await;
    let begins: Vec<&str> = body
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["begin_at"].as_str().expect("begin"))
        .collect();
    assert!(
        begins.windows(2).all(|w| w[0] >= w[1]),
        "locations default to begin_at desc"
    );
    let (_, body) = get_json(
        &client,
        &sim,
        &token,
        "/v2/projects_users?sort=-final_mark,id&per_page=100",
    )
    .await;
    let rows = body.as_array().expect("array");
    assert!(
        rows.first().expect("row")["final_mark"].is_null(),
        "descending puts nulls first"
    );
    let marks: Vec<i64> = rows
        .iter()
        .filter_map(|r| r["final_mark"].as_i64())
        .collect();
    assert!(marks.windows(2).all(|w| w[0] >= w[1]));
}

#[tokio::test]
async fn endpoint_specific_filters() {
    let (sim, client, token) = setup(3).await;
    let truth = sim.truth();
    let primary: std::collections::BTreeMap<i64, i64> = truth
        .table("campus_users")
        .iter()
        .filter(|cu| cu["is_primary"] == true)
        .map(|cu| {
            (
                cu["user_id"].as_i64().expect("user"),
                cu["campus_id"].as_i64().expect("campus"),
            )
        })
        .collect();

    // cursus_users: campus_id is the user's primary campus; user_id lists; cursus_id; active.
    let rows = keyset_all(
        &client,
        &sim,
        &token,
        "/v2/cursus_users",
        "&filter[campus_id]=2&filter[cursus_id]=21",
    )
    .await;
    let expected: BTreeSet<i64> = truth
        .table("cursus_users")
        .iter()
        .filter(|r| r["cursus_id"] == 21 && primary[&r["user"]["id"].as_i64().expect("user")] == 2)
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(
        rows.iter()
            .map(|r| r["id"].as_i64().expect("id"))
            .collect::<BTreeSet<_>>(),
        expected
    );
    let some_users: Vec<i64> = primary.keys().take(5).copied().collect();
    let list = some_users
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rows = keyset_all(
        &client,
        &sim,
        &token,
        "/v2/cursus_users",
        &format!("&filter[user_id]={list}"),
    )
    .await;
    let expected = truth
        .table("cursus_users")
        .iter()
        .filter(|r| some_users.contains(&r["user"]["id"].as_i64().expect("user")))
        .count();
    assert_eq!(rows.len(), expected);
    let now = sim
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let active = keyset_all(
        &client,
        &sim,
        &token,
        "/v2/cursus_users",
        "&filter[active]=true",
    )
    .await;
    assert!(!active.is_empty());
    assert!(
        active
            .iter()
            .all(|r| r["begin_at"].as_str().expect("begin") <= now.as_str()
                && r["end_at"].as_str().is_none_or(|e| e > now.as_str()))
    );

    // projects_users: user_id lists, campus, project_id.
    let rows = keyset_all(
        &client,
        &sim,
        &token,
        "/v2/projects_users",
        &format!("&filter[user_id]={list}&filter[campus]=1"),
    )
    .await;
    assert!(
        rows.iter()
            .all(|r| primary[&r["user"]["id"].as_i64().expect("user")] == 1
                && some_users.contains(&r["user"]["id"].as_i64().expect("user")))
    );
    let project = truth.table("projects_users")[0]["project"]["id"]
        .as_i64()
        .expect("project");
    let rows = keyset_all(
        &client,
        &sim,
        &token,
        "/v2/projects_users",
        &format!("&filter[project_id]={project}"),
    )
    .await;
    let expected = truth
        .table("projects_users")
        .iter()
        .filter(|r| r["project"]["id"] == project)
        .count();
    assert_eq!(rows.len(), expected);

    // campus_users, locations.
    let rows = keyset_all(
        &client,
        &sim,
        &token,
        "/v2/campus_users",
        "&filter[campus_id]=2",
    )
    .await;
    assert_eq!(
        rows.len(),
        truth
            .table("campus_users")
            .iter()
            .filter(|r| r["campus_id"] == 2)
            .count()
    );
    let rows = keyset_all(
        &client,
        &sim,
        &token,
        "/v2/campus_users",
        &format!("&filter[user_id]={}", some_users[0]),
    )
    .await;
    assert!(!rows.is_empty() && rows.iter().all(|r| r["user_id"] == some_users[0]));
    let open = keyset_all(
        &client,
        &sim,
        &token,
        "/v2/locations",
        "&filter[active]=true",
    )
    .await;
    assert_eq!(
        open.len(),
        truth
            .table("locations")
            .iter()
            .filter(|l| l["end_at"].is_null())
            .count()
    );
    let begin = truth.table("locations")[0]["begin_at"]
        .as_str()
        .expect("begin")
        .to_owned();
    let ranged = keyset_all(
        &client,
        &sim,
        &token,
        "/v2/campus/1/locations",
        &format!("&range[begin_at]={begin},2100-01-01T00:00:00.000Z"),
    )
    .await;
    assert!(
        ranged.iter().all(
            |l| l["campus_id"] == 1 && l["begin_at"].as_str().expect("begin") >= begin.as_str()
        )
    );
}

#[tokio::test]
async fn every_endpoint_answers() {
    let (sim, client, token) = setup(4).await;
    let truth = sim.truth();
    let owner = |table: &str| {
        truth.table(table)[0]["user"]["id"]
            .as_i64()
            .or_else(|| truth.table(table)[0]["user_id"].as_i64())
            .expect("user")
    };
    let user_id = owner("projects_users");
    let user = truth
        .table("users")
        .iter()
        .find(|u| u["id"] == user_id)
        .expect("user");
    let login = user["login"].as_str().expect("login");
    let lists = [
        "/v2/campus".to_owned(),
        "/v2/campus/1/users".to_owned(),
        "/v2/campus/1/locations".to_owned(),
        "/v2/campus/1/campus_users".to_owned(),
        "/v2/users".to_owned(),
        format!("/v2/users/{user_id}/projects_users"),
        format!("/v2/users/{login}/cursus_users"),
        format!("/v2/users/{}/locations", owner("locations")),
        format!(
            "/v2/users/{}/achievements_users",
            owner("achievements_users")
        ),
        format!("/v2/users/{}/coalitions_users", owner("coalitions_users")),
        "/v2/campus_users".to_owned(),
        "/v2/cursus".to_owned(),
        "/v2/cursus_users".to_owned(),
        "/v2/cursus/21/cursus_users".to_owned(),
        "/v2/cursus/9/projects".to_owned(),
        "/v2/cursus/21/users".to_owned(),
        "/v2/projects".to_owned(),
        "/v2/projects_users".to_owned(),
        "/v2/achievements".to_owned(),
        "/v2/achievements_users".to_owned(),
        "/v2/locations".to_owned(),
        "/v2/coalitions".to_owned(),
        "/v2/blocs".to_owned(),
        "/v2/coalitions/1/coalitions_users".to_owned(),
        "/v2/coalitions_users".to_owned(),
    ];
    for url in &lists {
        let (headers, body) = get_json(&client, &sim, &token, url).await;
        assert!(
            !body.as_array().expect("array").is_empty(),
            "{url} lists rows"
        );
        assert!(
            header(&headers, "x-total")
                .parse::<usize>()
                .expect("X-Total")
                > 0,
            "{url}"
        );
    }

    let (_, detail) = get_json(&client, &sim, &token, &format!("/v2/users/{login}")).await;
    assert_eq!(detail["id"], user_id);
    for key in [
        "cursus_users",
        "projects_users",
        "achievements",
        "campus",
        "campus_users",
        "groups",
        "titles",
        "languages_users",
    ] {
        assert!(detail[key].is_array(), "detail has {key}");
    }
    assert!(
        detail["cursus_users"][0].get("user").is_none(),
        "detail cursus_users omit the nested user"
    );
    let (_, by_id) = get_json(&client, &sim, &token, &format!("/v2/users/{user_id}")).await;
    assert_eq!(by_id, detail);
    let (_, campus) = get_json(&client, &sim, &token, "/v2/campus/1").await;
    assert_eq!(&campus, &truth.table("campuses")[0]);
    let slug = truth.table("projects")[0]["slug"]
        .as_str()
        .expect("slug")
        .to_owned();
    let (_, project) = get_json(&client, &sim, &token, &format!("/v2/projects/{slug}")).await;
    assert_eq!(&project, &truth.table("projects")[0]);
    let pu = &truth.table("projects_users")[0];
    let (_, one) = get_json(
        &client,
        &sim,
        &token,
        &format!("/v2/projects_users/{}", pu["id"]),
    )
    .await;
    assert_eq!(&one, pu);

    for (url, status, json) in [
        ("/v2/users/99999999", 404, true),
        ("/v2/campus/77/users", 404, true),
        ("/v2/locations/1", 404, true),
        ("/v2/me", 404, true),
        ("/v2/no_such_route", 404, false),
    ] {
        let response = get(&client, &sim, &token, url).await;
        assert_eq!(response.status().as_u16(), status, "{url}");
        let content_type = header(response.headers(), "content-type");
        assert_eq!(
            content_type.starts_with("application/json"),
            json,
            "{url}: {content_type}"
        );
    }
    // Comma lists in the path.
    let two = format!(
        "/v2/projects/{},{}/projects_users",
        truth.table("projects")[0]["id"],
        truth.table("projects")[1]["id"]
    );
    assert_eq!(get(&client, &sim, &token, &two).await.status(), 200);
}

#[tokio::test]
async fn default_order_meets_page_drift_and_keyset_does_not() {
    let (sim, client, token) = setup(5).await;
    let (_, page1) = get_json(&client, &sim, &token, "/v2/users?per_page=10&page=1").await;
    sim.drift(Drift {
        new_users: 3,
        ..Drift::default()
    });
    let (_, page2) = get_json(&client, &sim, &token, "/v2/users?per_page=10&page=2").await;
    let first: BTreeSet<i64> = ids(&page1).into_iter().collect();
    let overlap = ids(&page2)
        .into_iter()
        .filter(|id| first.contains(id))
        .count();
    assert_eq!(
        overlap, 3,
        "three new users pushed three rows of page 1 onto page 2"
    );

    let all = keyset_all(&client, &sim, &token, "/v2/users", "").await;
    let unique: BTreeSet<i64> = all.iter().map(|u| u["id"].as_i64().expect("id")).collect();
    assert_eq!(unique.len(), all.len());
    assert_eq!(all.len(), 123);
}

#[tokio::test]
async fn cursus_users_route_lists_the_users_of_a_cursus() {
    let (sim, client, token) = setup(6).await;
    let truth = sim.truth();
    let expected: BTreeSet<i64> = truth
        .table("cursus_users")
        .iter()
        .filter(|cu| cu["cursus_id"] == 21)
        .map(|cu| cu["user"]["id"].as_i64().expect("user"))
        .collect();
    let served = keyset_all(&client, &sim, &token, "/v2/cursus/21/users", "").await;
    assert_eq!(
        served
            .iter()
            .map(|u| u["id"].as_i64().expect("id"))
            .collect::<BTreeSet<_>>(),
        expected
    );
    let users: std::collections::BTreeMap<i64, &Value> = truth
        .table("users")
        .iter()
        .map(|u| (u["id"].as_i64().expect("id"), u))
        .collect();
    assert!(
        served
            .iter()
            .all(|u| users[&u["id"].as_i64().expect("id")] == u),
        "same JSON as /v2/users"
    );
}
