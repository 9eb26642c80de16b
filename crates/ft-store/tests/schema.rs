//! Opening, migrating, schema checks and maintenance.

use diesel::Connection;
use diesel::connection::SimpleConnection;
use ft_store::test_support::TestDb;
use ft_store::{Backend, Store, StoreError, Table};

fn exec(db: &TestDb, sql: &str) {
    match db.backend() {
        Backend::Postgres => diesel::PgConnection::establish(db.url())
            .unwrap()
            .batch_execute(sql)
            .unwrap(),
        Backend::Sqlite => {
            diesel::SqliteConnection::establish(db.url().strip_prefix("sqlite://").unwrap())
                .unwrap()
                .batch_execute(sql)
                .unwrap()
        }
    }
}

fn unmigrated() -> Vec<TestDb> {
    vec![TestDb::sqlite_unmigrated(), TestDb::postgres_unmigrated()]
}

#[test]
fn migrate_applies_everything_once_and_schema_check_agrees() {
    for db in unmigrated() {
        let store = db.store();
        let err = store.schema_check().unwrap_err();
        assert!(
            matches!(&err, StoreError::PendingMigrations { pending } if pending.len() == migrations()),
            "{}: {err}",
            db.backend()
        );
        assert!(err.to_string().contains("ft42 migrate"), "{err}");
        assert_eq!(store.migrate().unwrap(), migrations());
        assert_eq!(store.migrate().unwrap(), 0);
        store.schema_check().unwrap();
        for table in Table::ALL {
            assert_eq!(store.count(*table, true).unwrap(), 0);
        }
    }
}

#[test]
fn a_database_from_a_newer_binary_is_refused() {
    for db in TestDb::all() {
        exec(
            &db,
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('20991231000000')",
        );
        let err = db.store().schema_check().unwrap_err();
        assert!(
            matches!(&err, StoreError::NewerSchema { unknown } if unknown == &["20991231000000"]),
            "{}: {err}",
            db.backend()
        );
        assert!(err.to_string().contains("upgrade ft42"), "{err}");
        let err = db.store().migrate().unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    }
}

#[test]
fn the_url_decides_the_backend() {
    for db in TestDb::all() {
        let reopened = Store::open(db.url()).unwrap();
        assert_eq!(reopened.backend(), db.backend());
        reopened.schema_check().unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.db");
    let store = Store::open(plain.to_str().unwrap()).unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    assert_eq!(store.migrate().unwrap(), migrations());
    assert!(plain.exists());
}

#[test]
fn connection_errors_are_clear_and_never_show_the_password() {
    // Port 1 on loopback: nothing listens there, so the connection is refused.
    let err = Store::open("postgres://ft:hunter2@127.0.0.1:1/ft42").unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Connect { .. }), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!format!("{err:?}").contains("hunter2"));
    assert!(message.contains("127.0.0.1"), "{message}");

    let err = Store::open("sqlite:///nonexistent-dir-ft42/x.db").unwrap_err();
    assert!(matches!(err, StoreError::Connect { .. }), "{err}");
    let err = Store::open("mysql://root:pw@localhost/db").unwrap_err();
    assert!(matches!(err, StoreError::BadUrl { .. }), "{err}");
    assert!(!err.to_string().contains(":pw@"), "{err}");
}

#[test]
fn the_store_is_shareable_across_threads() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<Store>();
}

#[test]
fn maintenance_runs_on_both_backends() {
    for db in TestDb::all() {
        let store = db.store();
        store.analyze().unwrap();
        store.vacuum().unwrap();
        store.reindex().unwrap();
        assert!(store.size_bytes().unwrap() > 0, "{}", db.backend());
    }
}

#[test]
fn sqlite_connections_use_wal_and_foreign_keys() {
    let db = TestDb::sqlite();
    let mut conn =
        diesel::SqliteConnection::establish(db.url().strip_prefix("sqlite://").unwrap()).unwrap();
    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    let mode: Mode =
        diesel::RunQueryDsl::get_result(diesel::sql_query("PRAGMA journal_mode"), &mut conn)
            .unwrap();
    // WAL is a property of the file, set by the store's connections.
    assert_eq!(mode.journal_mode, "wal");
}

/// How many migrations the binary embeds (the same count for both backends).
fn migrations() -> usize {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/sqlite");
    std::fs::read_dir(dir)
        .expect("migrations folder")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count()
}
