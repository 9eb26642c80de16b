//! The checks after a real sync of the simulator (simulator -> client -> engine -> store), on
//! both backends: a clean sync has no errors, and spot checks see planted and upstream changes.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::found;
use ft_api::{ClientSecret, FtClient, RateConfig};
use ft_integrity::{Options, SPOT_CHECK, Severity, SpotCheck};
use ft_sim::{Drift, Limits, SimHandle};
use ft_store::test_support::TestDb;
use ft_store::{ApplyPage, IdsWhere, Rows, Store, Table};
use ft_sync::{Engine, EngineConfig, Mode, SyncRequest, What, progress};

fn limits() -> Limits {
    Limits {
        per_second: 40,
        per_hour: 100_000,
        second_window: Duration::from_secs(1),
        hour_window: Duration::from_secs(3600),
    }
}

async fn sim(seed: u64) -> SimHandle {
    ft_sim::Sim::builder()
        .seed(seed)
        .campuses(1)
        .users_per_campus(40)
        .limits(limits())
        .start()
        .await
}

fn client(sim: &SimHandle) -> FtClient {
    let creds = sim.credentials();
    FtClient::builder()
        .base_url(sim.base_url())
        .client_id(creds.client_id.clone())
        .client_secret(ClientSecret::new(creds.client_secret.clone()))
        .rate(RateConfig {
            per_second: limits().per_second,
            per_hour: limits().per_hour,
            hour: limits().hour_window,
        })
        .build()
        .expect("client builds")
}

async fn sync(sim: &SimHandle, store: &Store) {
    let config = EngineConfig {
        worker_id: format!("integrity-test-{}", std::process::id()),
        lease: Duration::from_secs(30),
        ..EngineConfig::default()
    };
    let clock = sim.clone();
    let engine =
        Engine::new(client(sim), store.clone(), config).with_clock(Arc::new(move || clock.now()));
    let summary = engine
        .sync(
            SyncRequest::new(What::Users, Mode::Full).campuses([1]),
            progress::discard(),
            std::future::pending(),
        )
        .await
        .expect("sync succeeds");
    assert_eq!(summary.tasks_failed, 0);
}

/// Options measured on the simulator's clock.
fn options(sim: &SimHandle) -> Options {
    Options {
        now: Some(sim.now()),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_sync_has_no_error_and_spot_checks_see_planted_and_upstream_changes() {
    for db in TestDb::all() {
        let sim = sim(21).await;
        let store = db.store().clone();
        sync(&sim, &store).await;

        let opts = Options {
            spot_check: Some(SpotCheck::new(100)),
            ..options(&sim)
        };
        let before = sim.ledger().len();
        let report = ft_integrity::run_with_api(&store, Some(&client(&sim)), &opts)
            .await
            .expect("runs");
        // The budget: one `filter[id]` request per table with rows (users, cursus_users), and
        // none for the empty relation tables.
        let api: Vec<_> = sim.ledger()[before..]
            .iter()
            .filter(|e| e.path.starts_with("/v2/"))
            .map(|e| e.path.clone())
            .collect();
        assert_eq!(api, ["/v2/users", "/v2/cursus_users"]);
        assert_eq!(
            store.integrity_runs(1).unwrap()[0].report,
            report.to_json(),
            "the stored report includes the spot check"
        );
        let text = report.to_text();
        // Shown with --no-capture: what an operator sees after a clean sync.
        println!("{text}");
        assert!(report.is_complete(), "{text}");
        assert!(!report.has_errors(), "a clean sync has errors:\n{text}");
        assert!(report.is_clean(), "a clean sync has warnings:\n{text}");
        assert!(
            found(&report, SPOT_CHECK, Severity::Warning).is_empty(),
            "{text}"
        );
        let users = store.count(Table::Users, false).unwrap();
        assert!(users >= 40, "{text}");
        assert!(
            found(&report, SPOT_CHECK, Severity::Info).iter().any(|f| f
                .detail
                .starts_with(&format!("{users} rows compared: {users} equal"))),
            "{text}"
        );

        // Plant a difference the API's updated_at cannot explain: an Error.
        let Rows::Users(mut rows) = store.load_rows(Table::Users).unwrap() else {
            unreachable!("users table gives user rows")
        };
        let planted = rows[3].id;
        let mut raw: serde_json::Value = serde_json::from_str(&rows[3].raw).unwrap();
        raw["wallet"] = serde_json::json!(987_654);
        rows[3].raw = raw.to_string();
        store
            .apply_page(ApplyPage::rows(Rows::Users(vec![rows[3].clone()])))
            .unwrap();
        let only_users = SpotCheck {
            per_table: 100,
            tables: vec![Table::Users],
        };
        let findings = ft_integrity::spot_check(&store, &client(&sim), &only_users)
            .await
            .expect("spot check runs");
        let errors: Vec<_> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        assert_eq!(errors.len(), 1, "{findings:#?}");
        assert_eq!((errors[0].count, errors[0].ids.clone()), (1, vec![planted]));
        assert!(
            errors[0].detail.contains("wallet: 987654 -> "),
            "{}",
            errors[0].detail
        );

        // Change every user upstream: all differ with a newer updated_at, a Warning.
        sim.drift(Drift {
            update_fraction: 1.0,
            ..Drift::default()
        });
        let findings = ft_integrity::spot_check(&store, &client(&sim), &only_users)
            .await
            .expect("spot check runs");
        let warnings: Vec<_> = findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .collect();
        assert_eq!(warnings.len(), 1, "{findings:#?}");
        assert_eq!(warnings[0].count, users);
        assert!(warnings[0].detail.contains("changed upstream"));
        assert!(
            findings.iter().all(|f| f.severity != Severity::Error),
            "{findings:#?}"
        );

        // Asked for without a client, the spot check is a check that could not run.
        let report = ft_integrity::run_with_api(&store, None, &opts)
            .await
            .expect("runs");
        assert!(!report.is_complete());
        assert_eq!(report.checks_failed_to_run[0].check, SPOT_CHECK);
        assert_eq!(report.status(), "incomplete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_totals_agree_after_a_full_sync_and_see_rows_missing_from_the_store() {
    for db in TestDb::all() {
        let sim = sim(41).await;
        let store = db.store();
        let config = EngineConfig {
            worker_id: format!("integrity-test-{}", std::process::id()),
            ..EngineConfig::default()
        };
        let clock = sim.clone();
        let engine = Engine::new(client(&sim), store.clone(), config)
            .with_clock(Arc::new(move || clock.now()));
        engine
            .sync(
                SyncRequest::new(What::All, Mode::Full),
                progress::discard(),
                std::future::pending(),
            )
            .await
            .expect("full sync of everything");
        let probe = ft_integrity::ApiTotals { max_requests: 100 };
        let clean = ft_integrity::api_totals(store, &client(&sim), &probe)
            .await
            .expect("the comparison runs");
        let warnings: Vec<_> = clean
            .iter()
            .filter(|f| f.severity != Severity::Info)
            .collect();
        assert!(warnings.is_empty(), "{warnings:?}");
        // 3 global scopes + 7 per campus (users, campus_users, cursus_users, projects_users,
        // blocs, locations, coalitions_users).
        assert_eq!(clean.len(), 3 + 7);

        // Plant: three projects_users vanish from the store.
        let ids: Vec<i64> = store
            .live_ids(Table::ProjectsUsers, IdsWhere::All)
            .unwrap()
            .into_iter()
            .take(3)
            .collect();
        store
            .mark_deleted(Table::ProjectsUsers, &ids, chrono::Utc::now().naive_utc())
            .unwrap();
        let before = sim.ledger().len();
        let planted = ft_integrity::api_totals(store, &client(&sim), &probe)
            .await
            .expect("the comparison runs");
        let differing: Vec<_> = planted
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .collect();
        assert_eq!(differing.len(), 1, "{differing:?}");
        assert_eq!(differing[0].table.as_deref(), Some("projects_users"));
        assert_eq!(differing[0].count, 3);
        assert!(
            differing[0].detail.contains("campus:1"),
            "{}",
            differing[0].detail
        );

        // The budget is a hard cap: two requests, the rest reported as not compared.
        let capped = ft_integrity::api_totals(
            store,
            &client(&sim),
            &ft_integrity::ApiTotals { max_requests: 2 },
        )
        .await
        .expect("the comparison runs");
        let spent = sim.ledger()[before..]
            .iter()
            .filter(|e| e.path.starts_with("/v2"))
            .count();
        assert_eq!(
            spent,
            10 + 2,
            "10 for the uncapped run, 2 for the capped one"
        );
        assert!(capped.iter().any(|f| f.detail.contains("not compared")));
    }
}
