//! Each kind of problem planted in a store, on both backends, and seen in the report.

use crate::common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::{at, campus, campus_user, found, projects_user, put, user};
use ft_integrity::{Freshness, Maintenance, Options, Severity};
use ft_store::test_support::TestDb;
use ft_store::{CursorUpdate, Lane, NewTask, Table};

#[test]
fn orphans_are_reported_per_relation_with_counts_and_sample_ids() {
    for db in TestDb::all() {
        let store = db.store();
        put(store, vec![user(1, "ada", "ada@student.42.fr")]);
        put(store, vec![campus(1)]);
        put(
            store,
            vec![
                campus_user(10, 1, 1),
                campus_user(11, 99, 1),
                campus_user(12, 98, 1),
                campus_user(13, 1, 7),
            ],
        );
        // No project is stored at all: a coverage gap, reported as a warning.
        put(store, vec![projects_user(20, 1, 1314)]);

        let report = ft_integrity::run(store, &Options::default()).expect("runs");
        let errors = found(&report, "foreign_keys", Severity::Error);
        let by_detail = |prefix: &str| {
            errors
                .iter()
                .find(|f| f.detail.starts_with(prefix))
                .unwrap_or_else(|| panic!("no `{prefix}` finding in {errors:#?}"))
        };
        let users = by_detail("user_id -> users");
        assert_eq!(users.table.as_deref(), Some("campus_users"));
        assert_eq!((users.count, users.ids.clone()), (2, vec![11, 12]));
        let campuses = by_detail("campus_id -> campuses");
        assert_eq!((campuses.count, campuses.ids.clone()), (1, vec![13]));
        assert_eq!(errors.len(), 2, "{errors:#?}");

        let warnings = found(&report, "foreign_keys", Severity::Warning);
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(warnings[0].detail.contains("`projects` has no live rows"));
        assert!(report.has_errors());
        assert_eq!(report.status(), "errors");

        // The run was stored.
        let runs = store.integrity_runs(5).expect("read runs");
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, "errors");
        assert_eq!(runs[0].report, report.to_json());
    }
}

#[test]
fn duplicate_logins_and_emails_are_reported_but_distinct_anonymised_users_are_not() {
    for db in TestDb::all() {
        let store = db.store();
        put(
            store,
            vec![
                user(1, "ada", "ada@student.42.fr"),
                user(2, "ada", "other@student.42.fr"),
                user(3, "bob", "Bob@Student.42.fr"),
                user(4, "bob2", "bob@student.42.fr"),
                user(5, "3b3-5", "3b3-5@student.42.fr"),
                user(6, "3b3-6", "3b3-6@student.42.fr"),
                // Two rows holding one anonymised login is a real duplicate.
                user(7, "3b3-7", "3b3-7@student.42.fr"),
                user(8, "3b3-7", "3b3-8@student.42.fr"),
            ],
        );
        let report = ft_integrity::check(store, &Options::default());
        let errors = found(&report, "uniqueness", Severity::Error);
        assert_eq!(errors.len(), 2, "{errors:#?}");
        let logins = errors
            .iter()
            .find(|f| f.detail.contains(" login "))
            .unwrap();
        assert_eq!(logins.count, 2, "two login values are duplicated");
        assert_eq!(logins.ids, vec![7, 8, 1, 2]);
        assert!(
            logins.detail.contains("`ada` on ids 1, 2"),
            "{}",
            logins.detail
        );
        let emails = errors
            .iter()
            .find(|f| f.detail.contains(" email "))
            .unwrap();
        assert_eq!((emails.count, emails.ids.clone()), (1, vec![3, 4]));
        assert!(!emails.detail.contains("3b3-5"));
    }
}

fn cursor(resource: &str, scope: &str, watermark: Option<chrono::NaiveDateTime>) -> CursorUpdate {
    CursorUpdate {
        resource: resource.into(),
        scope: scope.into(),
        watermark,
        pass_since: None,
        pass_until: None,
        last_id: None,
        page: 0,
        rows: 0,
        format_version: 1,
        expected_rows: None,
    }
}

fn task(kind: &str, priority: i32) -> NewTask {
    NewTask {
        kind: kind.into(),
        scope: "campus:1".into(),
        payload: serde_json::json!({}),
        lane: Lane::Hot,
        priority,
        next_run_at: at(-10),
        dedupe_key: None,
    }
}

#[test]
fn stale_and_future_scopes_stuck_and_failed_tasks_are_reported() {
    for db in TestDb::all() {
        let store = db.store();
        // Users may be 26 h old (refreshed every run, 26 h of grace), campuses 8 days (a
        // weekly refresh interval on top of the grace).
        store
            .save_cursor(&cursor("users", "campus:1", Some(at(-30 * 60))))
            .unwrap();
        store
            .save_cursor(&cursor("users", "campus:2", Some(at(-60))))
            .unwrap();
        store
            .save_cursor(&cursor("campuses", "all", Some(at(-30 * 60))))
            .unwrap();
        store
            .save_cursor(&cursor("cursus_users", "campus:1", Some(at(120))))
            .unwrap();
        store.save_cursor(&cursor("projects", "all", None)).unwrap();

        // One task claimed with a lease that runs out, one that fails for good.
        let stuck = store.enqueue(&task("sync_users", 10)).unwrap().unwrap();
        let failing = store
            .enqueue(&task("sync_campus_users", 5))
            .unwrap()
            .unwrap();
        let claimed = store
            .claim("dead-worker", Duration::from_secs(1), at(0))
            .unwrap()
            .expect("claims the stuck task");
        assert_eq!(claimed.task.id, stuck);
        let claimed = store
            .claim("worker", Duration::from_secs(600), at(0))
            .unwrap()
            .expect("claims the failing task");
        store
            .fail(&claimed.fence, "HTTP 403 on /v2/campus_users")
            .unwrap();

        // Measured 10 minutes from now: the 1 s lease expired beyond the 5 min grace.
        let mut freshness = Freshness::with_grace(Duration::from_secs(26 * 3600));
        freshness.set("campuses", Duration::from_secs(6 * 24 * 3600 + 22 * 3600));
        let options = Options {
            now: Some(Utc::now() + TimeDelta::minutes(10)),
            freshness: freshness.clone(),
            ..Options::default()
        };
        let report = ft_integrity::run(store, &options).expect("runs");

        let errors = found(&report, "freshness", Severity::Error);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0]
                .detail
                .starts_with("cursus_users campus:1: watermark")
        );
        assert!(errors[0].detail.contains("in the future"));

        let warnings = found(&report, "freshness", Severity::Warning);
        let has = |text: &str| warnings.iter().any(|f| f.detail.contains(text));
        assert!(has("users campus:1: last complete pass"), "{warnings:#?}");
        assert!(
            !has("users campus:2"),
            "fresh scope reported: {warnings:#?}"
        );
        assert!(!has("campuses all"), "weekly scope reported: {warnings:#?}");
        assert!(
            has("projects all: no pass has completed yet"),
            "{warnings:#?}"
        );
        let stuck_finding = warnings
            .iter()
            .find(|f| f.detail.contains("lease that expired"))
            .expect("stuck task reported");
        assert_eq!(stuck_finding.ids, vec![stuck]);
        assert!(stuck_finding.detail.contains("dead-worker"));
        let failed = warnings
            .iter()
            .find(|f| f.detail.contains("failed for good"))
            .expect("failed task reported");
        assert_eq!(failed.ids, vec![failing]);
        assert!(failed.detail.contains("HTTP 403 on /v2/campus_users"));
        assert_eq!(warnings.len(), 4, "{warnings:#?}");

        // Measured now, the lease is still within its grace: not stuck.
        let report = ft_integrity::check(
            store,
            &Options {
                freshness,
                ..Options::default()
            },
        );
        assert!(
            !found(&report, "freshness", Severity::Warning)
                .iter()
                .any(|f| f.detail.contains("lease that expired"))
        );
    }
}

#[test]
fn counts_and_maintenance_report_figures_as_info() {
    for db in TestDb::all() {
        let store = db.store();
        put(
            store,
            vec![
                user(1, "a", "a@x"),
                user(2, "b", "b@x"),
                user(3, "c", "c@x"),
            ],
        );
        store.mark_deleted(Table::Users, &[2], at(0)).unwrap();
        let options = Options {
            maintenance: Maintenance {
                analyze: true,
                vacuum: true,
                reindex: true,
            },
            ..Options::default()
        };
        let report = ft_integrity::run(store, &options).expect("runs");
        assert!(report.is_clean(), "{}", report.to_text());
        let users = found(&report, "counts", Severity::Info)
            .into_iter()
            .find(|f| f.table.as_deref() == Some("users"))
            .unwrap();
        assert_eq!(
            (users.count, users.detail.as_str()),
            (2, "2 live, 1 marked deleted")
        );
        let maintenance = found(&report, "maintenance", Severity::Info);
        let ops: Vec<&str> = maintenance
            .iter()
            .map(|f| f.detail.split(' ').next().unwrap())
            .collect();
        assert_eq!(ops, ["analyze", "reindex", "vacuum"]);
        assert!(
            maintenance
                .iter()
                .all(|f| f.count > 0 && f.detail.contains("MiB -> "))
        );
    }
}

#[test]
fn ids_in_the_export_archive_but_not_in_the_store_are_errors() {
    use std::io::Write;
    let db = TestDb::sqlite();
    let store = db.store();
    put(store, vec![user(1, "a", "a@x"), user(2, "b", "b@x")]);
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("users/2026/11");
    std::fs::create_dir_all(&nested).unwrap();
    // Two gzip members in one file (appended page by page), one id repeated, one bad line.
    let mut bytes = Vec::new();
    for lines in [
        "{\"id\":1}\n{\"id\":3}\n",
        "{\"id\":3,\"login\":\"c\"}\nnot json\n{\"id\":4}\n",
    ] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(lines.as_bytes()).unwrap();
        bytes.extend(gz.finish().unwrap());
    }
    std::fs::write(nested.join("page-1.ndjson.gz"), bytes).unwrap();
    std::fs::create_dir_all(dir.path().join("not_a_table")).unwrap();

    let options = Options {
        exports_dir: Some(dir.path().to_owned()),
        ..Options::default()
    };
    let report = ft_integrity::check(store, &options);
    assert!(report.is_complete(), "{}", report.to_text());
    let errors = found(&report, "exports", Severity::Error);
    assert_eq!(errors.len(), 1, "{}", report.to_text());
    assert_eq!((errors[0].count, errors[0].ids.clone()), (2, vec![3, 4]));
    let warnings = found(&report, "exports", Severity::Warning);
    assert_eq!(warnings[0].count, 1, "one bad line");
    let info = found(&report, "exports", Severity::Info);
    assert!(
        info.iter()
            .any(|f| f.detail.contains("not_a_table is not a mirror table"))
    );
    assert!(
        info.iter().any(|f| f.detail.starts_with(
            "3 distinct ids archived in 1 files, 2 stored, 1 stored but not archived"
        ))
    );

    // An absent folder is skipped with a note, not an error.
    let options = Options {
        exports_dir: Some(dir.path().join("missing")),
        ..Options::default()
    };
    let report = ft_integrity::check(store, &options);
    let info = found(&report, "exports", Severity::Info);
    assert!(info[0].detail.contains("archive comparison skipped"));
    assert!(report.is_clean());
}
