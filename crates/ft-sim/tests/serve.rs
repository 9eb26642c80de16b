//! The standalone server entry point used by the `ft-sim` binary and `ft42 sim serve`.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ft_sim::{ServeOptions, SimError};

#[tokio::test]
async fn serve_reports_ready_serves_and_stops_on_shutdown() {
    let options = ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        users_per_campus: 20,
        ..ServeOptions::default()
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let seen: Arc<Mutex<Option<(String, ft_sim::AppCredentials)>>> = Arc::default();
    let slot = Arc::clone(&seen);
    let ready = move |sim: &ft_sim::SimHandle| {
        *slot.lock().expect("lock") = Some((sim.base_url(), sim.credentials()));
    };
    let server = tokio::spawn(ft_sim::serve(options, ready, async {
        let _ = rx.await;
    }));
    let (base, creds) = loop {
        if let Some(found) = seen.lock().expect("lock").clone() {
            break found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let client = common::client();
    let token = client
        .post(format!("{base}/oauth/token"))
        .basic_auth(&creds.client_id, Some(&creds.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(token.status(), 200);
    tx.send(()).expect("shutdown");
    let summary = server.await.expect("join").expect("serve");
    assert_eq!(summary.requests, 1);
    assert_eq!(summary.too_many_requests, 0);
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let options = ServeOptions {
        addr,
        users_per_campus: 1,
        ..ServeOptions::default()
    };
    let error = ft_sim::serve(options, |_| {}, async {})
        .await
        .expect_err("port in use");
    assert!(matches!(error, SimError::Bind { .. }));
    assert!(error.to_string().contains("choose another port"), "{error}");
}
