//! What the client logs: the secret-expiry warning, and never a secret or a token.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use ft_api::{Clock, ManualClock, Query};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_secret_expiring_soon_is_warned_about_and_no_secret_is_ever_logged() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so the default subscriber covers every task.
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    let now = clock.utc().timestamp();
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "tok-very-secret-value", "token_type": "bearer", "expires_in": 7200,
            "scope": "public", "created_at": now, "secret_valid_until": now + 3 * 86400
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 1, "new_field": 2}])))
        .mount(&server)
        .await;
    let client = builder(&server, clock).build().unwrap();
    let status = client.ensure_token().await.unwrap();
    assert!(status.secret_valid_until.is_some());
    client
        .get_page::<ft_api::models::Cursus>("/v2/cursus", &Query::new())
        .await
        .unwrap();

    let log = capture.text();
    assert!(
        log.contains("INFO") && log.contains("the client secret expires in 3 days"),
        "{log}"
    );
    assert!(log.contains("schema drift"), "{log}");
    assert!(log.contains("retrying"), "{log}");
    assert!(
        !log.contains(SECRET),
        "the client secret leaked into the log:\n{log}"
    );
    assert!(
        !log.contains("tok-very-secret-value"),
        "the access token leaked:\n{log}"
    );
}
