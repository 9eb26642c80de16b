//! Several applications behind one client, and the shared-budget hook, against the simulator.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ft_api::models::User;
use ft_api::{
    ApiError, Application, ApplicationState, ClientEvent, ClientSecret, Clock, FtClient,
    FtClientBuilder, Query, RateConfig, ReserveFuture, SharedBudget, SharedLimits, SystemClock,
};
use ft_sim::{Limits, Sim, SimHandle};

const RATE: RateConfig = RateConfig {
    per_second: 5,
    per_hour: 10_000,
    hour: Duration::from_secs(3600),
};

async fn sim() -> SimHandle {
    Sim::builder()
        .seed(3)
        .campuses(1)
        .users_per_campus(40)
        .limits(Limits {
            per_second: 5,
            per_hour: 10_000,
            second_window: Duration::from_secs(1),
            hour_window: Duration::from_secs(3600),
        })
        .start()
        .await
}

fn builder(sim: &SimHandle) -> FtClientBuilder {
    let creds = sim.credentials();
    FtClient::builder()
        .base_url(sim.base_url())
        .client_id(creds.client_id.as_str())
        .client_secret(ClientSecret::new(creds.client_secret.clone()))
        .rate(RATE)
        .jitter_margin(Duration::from_millis(20))
}

async fn fetch(client: &FtClient, n: u32) -> Result<(), ApiError> {
    for i in 0..n {
        let q = Query::new().per_page(5).page(i % 8 + 1);
        client.get_page::<User>("/v2/campus/1/users", &q).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_spread_over_two_applications_within_each_budget() {
    let sim = sim().await;
    let second = sim.add_application(5, 10_000);
    let client = builder(&sim)
        .application(Application::new(
            second.client_id.as_str(),
            ClientSecret::new(second.client_secret.clone()),
        ))
        .build()
        .unwrap();
    fetch(&client, 40).await.unwrap();

    let apps = client.applications();
    assert_eq!(apps.len(), 2);
    for app in &apps {
        assert_eq!(app.state, ApplicationState::Active);
        // Each application carried a real share of the 40 requests (plus its token request).
        assert!(app.requests >= 10, "{apps:?}");
    }
    assert_eq!(sim.count_status(429), 0);
    let second_id = sim.application_id(&second).unwrap();
    for id in [1, second_id] {
        assert!(sim.max_in_window_for(id, Duration::from_secs(1)) <= 5);
    }
    let stats = client.stats();
    assert_eq!(
        (stats.applications_active, stats.applications_rejected),
        (2, 0)
    );
    // The budget shown is the sum of both applications' limits.
    assert_eq!(client.budget().per_second, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_application_leaves_the_rotation_and_the_others_go_on() {
    let sim = sim().await;
    let second = sim.add_application(5, 10_000);
    // The first application's secret is wrong; the second one is fine.
    let client = FtClient::builder()
        .base_url(sim.base_url())
        .client_id(sim.credentials().client_id.as_str())
        .client_secret(ClientSecret::new("s-s4t2ud-wrong"))
        .rate(RATE)
        .application(Application::new(
            second.client_id.as_str(),
            ClientSecret::new(second.client_secret.clone()),
        ))
        .build()
        .unwrap();
    let mut events = client.subscribe();
    fetch(&client, 6)
        .await
        .expect("the second application serves every request");

    let apps = client.applications();
    assert!(
        matches!(apps[0].state, ApplicationState::Rejected { .. }),
        "{apps:?}"
    );
    assert_eq!(apps[1].state, ApplicationState::Active);
    let stats = client.stats();
    assert_eq!(
        (stats.applications_active, stats.applications_rejected),
        (1, 1)
    );
    let mut seen = false;
    while let Ok(event) = events.try_recv() {
        if let ClientEvent::ApplicationRejected {
            client_id,
            applications_left,
        } = event
        {
            assert_eq!(client_id, sim.credentials().client_id);
            assert_eq!(applications_left, 1);
            seen = true;
        }
    }
    assert!(seen, "an ApplicationRejected event was sent");
    // One token request for the rejected application: it is not asked again.
    let token_posts = sim
        .ledger()
        .iter()
        .filter(|e| e.path == "/oauth/token" && e.status == 401)
        .count();
    assert_eq!(token_posts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_application_is_rejected_the_client_reports_secret_rejected() {
    let sim = sim().await;
    let second = sim.add_application(5, 10_000);
    let client = FtClient::builder()
        .base_url(sim.base_url())
        .client_id(sim.credentials().client_id.as_str())
        .client_secret(ClientSecret::new("s-wrong-1"))
        .rate(RATE)
        .application(Application::new(
            second.client_id.as_str(),
            ClientSecret::new("s-wrong-2"),
        ))
        .build()
        .unwrap();
    let err = fetch(&client, 1).await.unwrap_err();
    assert!(matches!(err, ApiError::SecretRejected { .. }), "{err}");
    assert!(!err.to_string().contains("s-wrong"), "{err}");
    assert_eq!(client.stats().applications_rejected, 2);
    // Later calls fail at once, without another token request.
    let before = sim.ledger().len();
    let err = fetch(&client, 1).await.unwrap_err();
    assert!(matches!(err, ApiError::SecretRejected { .. }), "{err}");
    assert_eq!(sim.ledger().len(), before);
}

#[test]
fn an_application_listed_twice_is_a_configuration_error() {
    let err = FtClient::builder()
        .client_id("u-a")
        .client_secret(ClientSecret::new("s-a"))
        .application(Application::new("u-a", ClientSecret::new("s-b")))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("configured twice"), "{err}");
    assert!(!err.to_string().contains("s-b"), "{err}");
}

/// Counts reservations and pauses, and asks for a fixed wait.
#[derive(Debug, Default)]
struct Counting {
    calls: AtomicU64,
    pauses: AtomicU64,
    apps: std::sync::Mutex<Vec<String>>,
}

impl SharedBudget for Counting {
    fn pause<'a>(&'a self, _app: &'a str, wait: Duration) -> ReserveFuture<'a> {
        Box::pin(async move {
            assert!(wait > Duration::ZERO);
            self.pauses.fetch_add(1, Ordering::SeqCst);
            Ok(Duration::ZERO)
        })
    }

    fn reserve<'a>(&'a self, app: &'a str, limits: SharedLimits) -> ReserveFuture<'a> {
        Box::pin(async move {
            assert_eq!(limits.per_second, 5);
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.apps.lock().unwrap().push(app.to_owned());
            Ok(Duration::from_millis(30))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_token_requests_included_reserves_the_shared_budget_and_waits() {
    let sim = sim().await;
    let shared = Arc::new(Counting::default());
    let client = builder(&sim)
        .shared_budget(Some(shared.clone() as Arc<dyn SharedBudget>))
        .build()
        .unwrap();
    fetch(&client, 5).await.unwrap();
    let stats = client.stats();
    assert_eq!(stats.requests, 6, "5 pages and one token request");
    assert_eq!(shared.calls.load(Ordering::SeqCst), stats.requests);
    assert!(
        shared
            .apps
            .lock()
            .unwrap()
            .iter()
            .all(|a| *a == sim.credentials().client_id)
    );
    assert!(stats.pacer_wait_time >= Duration::from_millis(6 * 30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_passed_to_the_shared_budget_so_other_processes_pause_too() {
    let sim = sim().await;
    sim.set_faults(ft_sim::Faults {
        spontaneous_429_rate: 0.3,
        ..ft_sim::Faults::default()
    });
    let shared = Arc::new(Counting::default());
    let client = builder(&sim)
        .shared_budget(Some(shared.clone() as Arc<dyn SharedBudget>))
        .build()
        .unwrap();
    fetch(&client, 8).await.unwrap();
    let stats = client.stats();
    assert!(stats.responses_429 > 0, "the faults produced no 429");
    assert_eq!(shared.pauses.load(Ordering::SeqCst), stats.responses_429);
}

/// Asks every reservation to wait `RESERVED_WAIT` and counts them.
#[derive(Debug, Default)]
struct FixedWait {
    calls: AtomicU64,
}

const RESERVED_WAIT: Duration = Duration::from_millis(37);

impl SharedBudget for FixedWait {
    fn reserve<'a>(&'a self, _app: &'a str, _limits: SharedLimits) -> ReserveFuture<'a> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(RESERVED_WAIT)
        })
    }
}

/// The system clock, except that the first wait for a reservation oversleeps by `stall`: the
/// process was stopped (SIGSTOP, a paused VM) between reserving its instant and sending.
#[derive(Debug)]
struct StallOnce {
    stall: Duration,
    armed: std::sync::atomic::AtomicBool,
}

impl Clock for StallOnce {
    fn now(&self) -> tokio::time::Instant {
        SystemClock.now()
    }
    fn utc(&self) -> chrono::DateTime<chrono::Utc> {
        SystemClock.utc()
    }
    fn sleep(&self, d: Duration) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        let stalled = d == RESERVED_WAIT && self.armed.swap(false, Ordering::SeqCst);
        SystemClock.sleep(if stalled { d + self.stall } else { d })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_stopped_past_its_reservation_reserves_again_before_sending() {
    let sim = sim().await;
    let shared = Arc::new(FixedWait::default());
    let client = builder(&sim)
        .clock(Arc::new(StallOnce {
            // Well past the 20 ms margin the ledger's windows allow for.
            stall: Duration::from_millis(400),
            armed: true.into(),
        }))
        .shared_budget(Some(shared.clone() as Arc<dyn SharedBudget>))
        .build()
        .unwrap();
    fetch(&client, 3).await.unwrap();
    let stats = client.stats();
    assert_eq!(stats.requests, 4, "3 pages and one token request");
    assert_eq!(
        shared.calls.load(Ordering::SeqCst),
        stats.requests + 1,
        "the stale reservation is not sent on: one more is made"
    );
}
