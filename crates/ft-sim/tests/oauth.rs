//! Points 2 and 3: OAuth token endpoint, token info, revocation, secret rotation, and the
//! authentication answers of `/v2`.

use crate::common;

use std::time::Duration;

use common::{client, generous, get, header, token};
use ft_sim::Sim;
use serde_json::{Value, json};

async fn post_form(
    client: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = client
        .post(url)
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.expect("JSON body"))
}

#[tokio::test]
async fn token_endpoint_accepts_form_json_basic_and_query() {
    let sim = Sim::builder()
        .seed(1)
        .users_per_campus(5)
        .always_new_token(true)
        .start()
        .await;
    let client = client();
    let creds = sim.credentials();
    let url = sim.token_url();

    let (status, headers, form) = post_form(
        &client,
        &url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = form
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 6, "six keys: {keys:?}");
    for key in [
        "access_token",
        "token_type",
        "expires_in",
        "scope",
        "created_at",
        "secret_valid_until",
    ] {
        assert!(form.get(key).is_some(), "{key} present");
    }
    assert_eq!(form["token_type"], "bearer");
    assert_eq!(form["expires_in"], 7200);
    assert_eq!(form["scope"], "public");
    assert!(
        headers.get("x-hourly-ratelimit-limit").is_none(),
        "no rate headers on /oauth/token"
    );

    let json = client
        .post(&url)
        .json(&json!({"grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.client_secret}))
        .send()
        .await
        .expect("json request");
    assert_eq!(json.status(), 200);
    let basic = client
        .post(&url)
        .basic_auth(&creds.client_id, Some(&creds.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("basic request");
    assert_eq!(basic.status(), 200);
    let query = client
        .post(format!(
            "{url}?grant_type=client_credentials&client_id={}&client_secret={}",
            creds.client_id, creds.client_secret
        ))
        .send()
        .await
        .expect("query request");
    assert_eq!(query.status(), 200);
    let v2 = client
        .post(format!("{}/v2/oauth/token", sim.base_url()))
        .basic_auth(&creds.client_id, Some(&creds.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("v2 token");
    assert_eq!(v2.status(), 200, "the /v2/oauth/token spelling also works");

    let mut tokens = std::collections::BTreeSet::new();
    for response in [json, basic, query] {
        let body: Value = response.json().await.expect("JSON");
        tokens.insert(body["access_token"].as_str().expect("token").to_owned());
    }
    assert_eq!(
        tokens.len(),
        3,
        "always_new_token mints a new token each time"
    );
    assert!(
        tokens
            .iter()
            .all(|t| t != form["access_token"].as_str().expect("token"))
    );
}

#[tokio::test]
async fn live_token_is_reused_until_expiry_then_a_new_one_is_minted() {
    let sim = Sim::builder()
        .seed(2)
        .users_per_campus(5)
        .token_lifetime(Duration::from_secs(3))
        .limits(generous())
        .start()
        .await;
    let client = client();
    let creds = sim.credentials();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", creds.client_id.as_str()),
        ("client_secret", creds.client_secret.as_str()),
    ];
    let (_, _, first) = post_form(&client, &sim.token_url(), &form).await;
    assert_eq!(first["expires_in"], 3);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, second) = post_form(&client, &sim.token_url(), &form).await;
    assert_eq!(
        second["access_token"], first["access_token"],
        "live token reused"
    );
    assert_eq!(second["created_at"], first["created_at"]);
    assert!(
        second["expires_in"].as_u64().expect("expires_in") < 3,
        "remaining lifetime: {second}"
    );

    let token = first["access_token"].as_str().expect("token");
    assert_eq!(get(&client, &sim, token, "/v2/cursus").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = get(&client, &sim, token, "/v2/cursus").await;
    assert_eq!(expired.status(), 401);
    assert!(header(expired.headers(), "www-authenticate").contains("The access token expired"));
    let (_, _, third) = post_form(&client, &sim.token_url(), &form).await;
    assert_ne!(
        third["access_token"], first["access_token"],
        "a new token after expiry"
    );
}

#[tokio::test]
async fn bad_client_and_grant_errors() {
    let sim = Sim::builder().seed(3).users_per_campus(5).start().await;
    let client = client();
    let creds = sim.credentials();
    let (status, headers, body) = post_form(
        &client,
        &sim.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", "s-s4t2ud-wrong"),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert!(
        header(&headers, "www-authenticate")
            .starts_with("Bearer realm=\"42 API\", error=\"invalid_client\"")
    );

    let (status, _, body) = post_form(
        &client,
        &sim.token_url(),
        &[("grant_type", "password"), ("client_id", &creds.client_id)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, _, body) = post_form(
        &client,
        &sim.token_url(),
        &[("client_id", &creds.client_id)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn token_info_revocation_and_secret_rotation() {
    let sim = Sim::builder()
        .seed(4)
        .users_per_campus(5)
        .limits(generous())
        .start()
        .await;
    let client = client();
    let old_creds = sim.credentials();
    let first = token(&client, &sim).await;

    let info = client
        .get(format!("{}/oauth/token/info", sim.base_url()))
        .bearer_auth(&first)
        .send()
        .await
        .expect("info");
    assert_eq!(info.status(), 200);
    let info: Value = info.json().await.expect("JSON");
    assert_eq!(info.as_object().expect("object").len(), 5);
    assert!(info["resource_owner_id"].is_null());
    assert_eq!(info["scopes"], json!(["public"]));
    assert_eq!(info["application"]["uid"], old_creds.client_id.as_str());
    assert!(info["expires_in_seconds"].as_u64().expect("expires") <= 7200);

    sim.revoke_tokens();
    let revoked = get(&client, &sim, &first, "/v2/cursus").await;
    assert_eq!(revoked.status(), 401);
    assert!(header(revoked.headers(), "www-authenticate").contains("The access token was revoked"));
    let second = token(&client, &sim).await;
    assert_ne!(second, first, "a revoked token is never handed out again");
    assert_eq!(
        get(&client, &sim, &second, "/v2/cursus").await.status(),
        200
    );

    let new_creds = sim.rotate_secret();
    assert_eq!(new_creds.client_id, old_creds.client_id);
    assert_ne!(new_creds.client_secret, old_creds.client_secret);
    assert_eq!(sim.credentials(), new_creds);
    let (status, _, body) = post_form(
        &client,
        &sim.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &old_creds.client_id),
            ("client_secret", &old_creds.client_secret),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "the old secret is refused"
    );
    assert_eq!(
        get(&client, &sim, &second, "/v2/cursus").await.status(),
        200,
        "issued tokens stay valid"
    );
    let third = common::token_for(&client, &sim, &new_creds).await;
    assert_eq!(get(&client, &sim, &third, "/v2/cursus").await.status(), 200);
    assert!(
        !format!("{new_creds:?}").contains(&new_creds.client_secret),
        "Debug hides the secret"
    );
}

#[tokio::test]
async fn v2_needs_a_live_token_and_a_user_agent() {
    let sim = Sim::builder()
        .seed(5)
        .users_per_campus(5)
        .limits(generous())
        .start()
        .await;
    let client = client();

    let missing = client
        .get(format!("{}/v2/users", sim.base_url()))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), 401);
    assert!(header(missing.headers(), "content-type").starts_with("application/json"));
    assert_eq!(
        header(missing.headers(), "www-authenticate"),
        "Bearer realm=\"42 API\", error=\"invalid_token\", error_description=\"The access token is invalid\""
    );
    let body: Value = missing.json().await.expect("JSON");
    assert_eq!(body["error"], "Not authorized");

    let unknown = get(&client, &sim, "0123456789abcdef", "/v2/users").await;
    assert_eq!(unknown.status(), 401);

    let token = token(&client, &sim).await;
    let by_param = client
        .get(format!("{}/v2/users?access_token={token}", sim.base_url()))
        .send()
        .await
        .expect("request");
    assert_eq!(by_param.status(), 200, "?access_token= works too");
    let ledger = sim.ledger();
    let entry = ledger
        .iter()
        .rev()
        .find(|e| e.query.contains("access_token"))
        .expect("ledger entry");
    assert_eq!(
        entry.query, "access_token=[redacted]",
        "the ledger never holds a token"
    );

    // No User-Agent: Cloudflare's HTML challenge, even with a valid token.
    let bare = reqwest::Client::new();
    let challenged = bare
        .get(format!("{}/v2/users", sim.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(challenged.status(), 403);
    assert!(header(challenged.headers(), "content-type").starts_with("text/html"));
    assert!(
        challenged
            .text()
            .await
            .expect("body")
            .contains("Just a moment...")
    );

    let ledger = sim.ledger();
    assert!(
        ledger
            .iter()
            .filter(|e| e.status == 401 || e.status == 403)
            .all(|e| !e.counted),
        "auth failures are not counted"
    );
    assert_eq!(ledger.iter().filter(|e| e.counted).count(), 1);
}
