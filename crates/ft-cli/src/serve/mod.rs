//! `ft42 serve`, and `ft42 daemon --listen`: a small read-only HTTP server over the mirror.
//!
//! | path           | what                                                             |
//! |----------------|------------------------------------------------------------------|
//! | `/`            | the status page ([`page`]): freshness per campus and table, budget burn, queue ETA, last runs, last backup |
//! | `/metrics`     | Prometheus text, the same as the metrics file (`--metrics-file`)  |
//! | `/status.json` | the same as `ft42 status --json`                                 |
//! | `/healthz`     | `ok` while the process serves                                    |
//!
//! Every answer is read from the database when asked (no cache, no request to the API), so it
//! is the same whichever process synced. Only `GET` and `HEAD` are answered: nothing here can
//! change the mirror. The server listens on loopback unless told otherwise (`--listen`,
//! `FT42_LISTEN`); it has no authentication, so put a proxy in front of it before exposing it.

pub(crate) mod page;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::exit::Exit;

/// What every request reads from.
struct State {
    store: ft_store::Store,
    settings: Settings,
}

/// A bound listener, ready to [`serve`](Server::serve).
pub(crate) struct Server {
    listener: TcpListener,
    state: Arc<State>,
}

impl Server {
    /// Binds `addr` and opens the store (read-only use). Errors name the address and the setting.
    pub(crate) async fn bind(settings: &Settings, addr: SocketAddr) -> anyhow::Result<Server> {
        let store = crate::commands::support::open_store(settings).await?;
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} (--listen, FT42_LISTEN): is another process using the \
                 port? Choose another, or port 0 for any free one"
            )
        })?;
        Ok(Server {
            listener,
            state: Arc::new(State {
                store,
                settings: settings.clone(),
            }),
        })
    }

    /// The address actually bound (the port chosen for port 0).
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers connections until `stop` completes. Connections in progress are dropped then;
    /// every answer is a read, so nothing is lost.
    pub(crate) async fn serve(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Out of file descriptors and the like: wait a little, go on.
                        tracing::warn!(%error, "status server: cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let state = self.state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, state.clone()));
                let served = http1::Builder::new()
                    .timer(TokioTimer::new())
                    // A client that sends its headers slower than this is dropped.
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "status server: connection ended with an error");
                }
            });
        }
    }
}

/// `ft42 serve`: the status page until SIGINT or SIGTERM.
pub(crate) async fn serve(
    settings: &Settings,
    args: &crate::cli::ServeArgs,
) -> anyhow::Result<Exit> {
    let server = Server::bind(settings, args.listen).await?;
    let addr = server.local_addr()?;
    announce(addr);
    server
        .serve(crate::commands::support::shutdown_signal())
        .await;
    tracing::info!("status server stopped");
    Ok(Exit::Ok)
}

/// Logs where the server listens and prints the URL on stdout (scripts and tests read it).
pub(crate) fn announce(addr: SocketAddr) {
    tracing::info!(%addr, "status server listening");
    println!("status page: http://{addr}/");
}

type Answer = Response<Full<Bytes>>;

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Always read fresh, never cached by a proxy; the page loads nothing from anywhere.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
    );
    res
}

const PLAIN: &str = "text/plain; charset=utf-8";

async fn answer(req: Request<Incoming>, state: Arc<State>) -> Result<Answer, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "read-only: only GET and HEAD are answered\n",
        );
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(res);
    }
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let res = match path.as_str() {
        "/" | "/index.html" => {
            read(&state, "text/html; charset=utf-8", |store, settings| {
                let report = crate::commands::status::collect(store, settings)?;
                let names = crate::commands::status::campus_names(store)?;
                Ok(page::render(&report, &names))
            })
            .await
        }
        "/metrics" => {
            read(
                &state,
                "text/plain; version=0.0.4; charset=utf-8",
                |store, settings| crate::metrics::collect(store, settings, Utc::now().naive_utc()),
            )
            .await
        }
        "/status.json" => {
            read(&state, "application/json", |store, settings| {
                let report = crate::commands::status::collect(store, settings)?;
                Ok(serde_json::to_string_pretty(&report)? + "\n")
            })
            .await
        }
        "/healthz" => text(StatusCode::OK, PLAIN, "ok\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: try /, /metrics, /status.json or /healthz\n",
        ),
    };
    tracing::debug!(
        path = %path,
        status = res.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "status server answered"
    );
    // hyper sends no body for HEAD and keeps the length of the GET answer.
    Ok(res)
}

/// Runs a database read off the runtime's threads; a failure is a 500 that points at the log,
/// where the cause is (the page has no login: hosts, users and paths stay in the log).
async fn read(
    state: &Arc<State>,
    content_type: &'static str,
    f: impl FnOnce(&ft_store::Store, &Settings) -> anyhow::Result<String> + Send + 'static,
) -> Answer {
    let state = state.clone();
    let outcome =
        crate::commands::support::blocking(move || f(&state.store, &state.settings)).await;
    match outcome {
        Ok(body) => text(StatusCode::OK, content_type, body),
        Err(error) => {
            let line = crate::exit::one_line(&error.context("cannot read the status"));
            tracing::error!(error = %line, "status server: read failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                PLAIN,
                "cannot read the mirror's status; the ft42 log says why\n",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_mirror_renders_a_page_with_an_empty_chart() {
        let dir = tempfile::tempdir().unwrap();
        let store = ft_store::Store::open(dir.path().join("s.db").to_str().unwrap()).unwrap();
        store.migrate().unwrap();
        let settings =
            Settings::resolve(&crate::cli::GlobalArgs::default(), |_| None).expect("defaults");
        let report = crate::commands::status::collect(&store, &settings).unwrap();
        let html = page::render(&report, &Default::default());
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.contains("NOTHING SYNCED YET"), "{html}");
        assert!(html.contains("run <code>ft42 sync all</code>"), "{html}");
        assert_eq!(
            html.matches("<rect class=\"bar\"").count(),
            crate::commands::status::BURN_HOURS as usize,
            "one bar per hour, zeros included"
        );
        assert!(html.contains("1200/h"), "the budget line is labelled");
        assert!(html.contains("no run yet"), "{html}");
        assert!(!html.contains("<script"), "no script: {html}");
    }
}
