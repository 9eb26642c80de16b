//! Settings resolution: precedence, validation, secrets, applications, backups.

use super::*;
use crate::exit::Exit;
use secrecy::ExposeSecret;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("ft42.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let s = Settings::resolve(&GlobalArgs::default(), env(&[])).unwrap();
    assert_eq!(s.api_url.as_str(), "https://api.intra.42.fr/");
    assert_eq!(s.token_url.as_str(), "https://api.intra.42.fr/oauth/token");
    assert_eq!(s.database_url.expose_secret(), "sqlite://ft42.db");
    assert_eq!(s.database_url_origin, Origin::Default);
    assert_eq!(
        s.rate,
        Rate {
            per_second: 2,
            per_hour: 1200,
            hour: Duration::from_secs(3600)
        }
    );
    assert_eq!(s.log_dir, Some(PathBuf::from("logs")));
    assert_eq!(s.export_dir, PathBuf::from("exports"));
    assert!(matches!(s.credentials(), Err(ConfigError::MissingSecret)));
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "database_url = \"sqlite://file.db\"\napi_url = \"http://file.example\"\n\
         rate_per_hour = 100\nlog_dir = \"file-logs\"\n",
    );
    let flags = GlobalArgs {
        config: Some(cfg.clone()),
        database_url: Some("sqlite://flag.db".into()),
        ..GlobalArgs::default()
    };
    let e = env(&[
        ("FT42_DATABASE_URL", "sqlite://env.db"),
        ("FT42_API_URL", "http://env.example/"),
    ]);
    let s = Settings::resolve(&flags, e).unwrap();
    // Flag over env over file.
    assert_eq!(s.database_url.expose_secret(), "sqlite://flag.db");
    assert_eq!(s.database_url_origin, Origin::Flag("--database-url"));
    // Env over file (and the trailing slash does not double in the token URL).
    assert_eq!(s.token_url.as_str(), "http://env.example/oauth/token");
    // File over default.
    assert_eq!(s.rate.per_hour, 100);
    assert_eq!(s.log_dir, Some(PathBuf::from("file-logs")));
    // Default where nobody says anything.
    assert_eq!(s.rate.per_second, 2);
}

#[test]
fn config_file_comes_from_env_when_no_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "database_url = \"sqlite://from-file.db\"\n");
    let s = Settings::resolve(
        &GlobalArgs::default(),
        env(&[("FT42_CONFIG", cfg.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(s.database_url.expose_secret(), "sqlite://from-file.db");
    assert!(matches!(
        s.database_url_origin,
        Origin::File {
            key: "database_url",
            ..
        }
    ));
}

#[test]
fn empty_env_values_count_as_unset() {
    let s = Settings::resolve(&GlobalArgs::default(), env(&[("FT42_DATABASE_URL", "")])).unwrap();
    assert_eq!(s.database_url.expose_secret(), "sqlite://ft42.db");
}

#[test]
fn malformed_api_url_names_the_setting() {
    let err = Settings::resolve(
        &GlobalArgs::default(),
        env(&[("FT42_API_URL", "not a url")]),
    )
    .unwrap_err();
    assert_eq!(err.exit(), Exit::Usage);
    assert!(
        err.to_string().starts_with("invalid FT42_API_URL:"),
        "{err}"
    );

    let flags = GlobalArgs {
        api_url: Some("ftp://x".into()),
        ..GlobalArgs::default()
    };
    let err = Settings::resolve(&flags, env(&[])).unwrap_err();
    assert!(err.to_string().starts_with("invalid --api-url:"), "{err}");
}

#[test]
fn database_urls_are_checked() {
    for ok in [
        "sqlite://a.db",
        "a.db",
        "/tmp/x/a.db",
        "postgres://u@localhost:5432/db",
    ] {
        Settings::resolve(&GlobalArgs::default(), env(&[("FT42_DATABASE_URL", ok)]))
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["mysql://h/db", "sqlite://", "postgres://"] {
        let err = Settings::resolve(&GlobalArgs::default(), env(&[("FT42_DATABASE_URL", bad)]))
            .unwrap_err();
        assert!(
            err.to_string().contains("FT42_DATABASE_URL"),
            "{bad}: {err}"
        );
        assert_eq!(err.exit(), Exit::Usage);
    }
}

#[test]
fn database_password_never_appears_in_errors_or_debug() {
    let url = "postgres://user:hunter2@";
    let err =
        Settings::resolve(&GlobalArgs::default(), env(&[("FT42_DATABASE_URL", url)])).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let s = Settings::resolve(
        &GlobalArgs::default(),
        env(&[("FT42_DATABASE_URL", "postgres://user:hunter2@db/x")]),
    )
    .unwrap();
    assert!(!format!("{s:?}").contains("hunter2"));
    assert_eq!(s.database_url_redacted(), "postgres://user:***@db/x");
}

#[test]
fn bad_numbers_name_the_setting() {
    let err =
        Settings::resolve(&GlobalArgs::default(), env(&[("FT42_RATE_PER_HOUR", "0")])).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid FT42_RATE_PER_HOUR:"),
        "{err}"
    );
    let err =
        Settings::resolve(&GlobalArgs::default(), env(&[("FT42_RATE_HOUR_S", "1h")])).unwrap_err();
    assert!(err.to_string().contains("FT42_RATE_HOUR_S"), "{err}");
}

#[test]
fn bad_toml_gives_a_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "database_url = \"a.db\"\nrate_per_hour = \"many\"\n",
    );
    let flags = GlobalArgs {
        config: Some(cfg),
        ..GlobalArgs::default()
    };
    let err = Settings::resolve(&flags, env(&[])).unwrap_err();
    assert_eq!(err.exit(), Exit::Usage);
    let msg = err.to_string();
    assert!(
        msg.contains("bad config file") && msg.contains("line 2"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn unknown_config_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "databse_url = \"a.db\"\n");
    let flags = GlobalArgs {
        config: Some(cfg),
        ..GlobalArgs::default()
    };
    let err = Settings::resolve(&flags, env(&[])).unwrap_err();
    assert!(err.to_string().contains("databse_url"), "{err}");
}

#[test]
fn freshness_targets_and_archive_retention_come_from_the_file_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "export_retention_days = 7\n[freshness]\nachievements_users = \"2h\"\nlocations = \"0\"\n",
    );
    let flags = GlobalArgs {
        config: Some(cfg),
        ..GlobalArgs::default()
    };
    let s = Settings::resolve(&flags, env(&[])).unwrap();
    assert_eq!(s.export_retention_days, 7);
    assert_eq!(
        s.freshness.refresh("achievements_users", "campus:1"),
        Duration::from_secs(7200)
    );
    assert_eq!(s.freshness.refresh("locations", "campus:1"), Duration::ZERO);
    // Defaults not overridden stay.
    assert_eq!(
        s.freshness.refresh("blocs", "campus:1"),
        Duration::from_secs(3600)
    );
    let s = Settings::resolve(&flags, env(&[("FT42_EXPORT_RETENTION_DAYS", "0")])).unwrap();
    assert_eq!(
        s.export_retention_days, 0,
        "the environment wins over the file"
    );
}

#[test]
fn bad_freshness_entries_name_the_resource_and_what_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expect) in [
        (
            "[freshness]\nachievments_users = \"1h\"\n",
            "unknown resource",
        ),
        ("[freshness]\nlocations = \"soon\"\n", "not a duration"),
    ] {
        let cfg = write_config(dir.path(), text);
        let flags = GlobalArgs {
            config: Some(cfg),
            ..GlobalArgs::default()
        };
        let err = Settings::resolve(&flags, env(&[])).unwrap_err();
        assert!(err.to_string().contains(expect), "{err}");
    }
}

#[test]
fn missing_config_file_is_a_usage_error_naming_the_source() {
    let err = Settings::resolve(
        &GlobalArgs::default(),
        env(&[("FT42_CONFIG", "/nonexistent/ft42.toml")]),
    )
    .unwrap_err();
    assert_eq!(err.exit(), Exit::Usage);
    assert!(err.to_string().contains("FT42_CONFIG"), "{err}");
}

#[test]
fn secret_from_env_and_from_file() {
    let s = Settings::resolve(
        &GlobalArgs::default(),
        env(&[("FT42_CLIENT_ID", "u-1"), ("FT42_CLIENT_SECRET", "s-env\n")]),
    )
    .unwrap();
    let c = s.credentials().unwrap();
    assert_eq!(c.client_id, "u-1");
    assert_eq!(c.client_secret.expose_secret(), "s-env");
    assert!(!format!("{c:?} {s:?}").contains("s-env"));

    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "s-file\n").unwrap();
    let s = Settings::resolve(
        &GlobalArgs::default(),
        env(&[
            ("FT42_CLIENT_ID", "u-1"),
            ("FT42_CLIENT_SECRET_FILE", secret_file.to_str().unwrap()),
            ("FT42_CLIENT_SECRET_NEXT", "s-next"),
        ]),
    )
    .unwrap();
    let c = s.credentials().unwrap();
    assert_eq!(c.client_secret.expose_secret(), "s-file");
    assert_eq!(c.client_secret_next.unwrap().expose_secret(), "s-next");
}

#[test]
fn the_next_secret_comes_from_a_file_in_the_environment_or_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("next"), "s-next-file\n").unwrap();
    let next = dir.path().join("next");
    let s = Settings::resolve(
        &GlobalArgs::default(),
        env(&[
            ("FT42_CLIENT_ID", "u-1"),
            ("FT42_CLIENT_SECRET", "s-1"),
            ("FT42_CLIENT_SECRET_NEXT_FILE", next.to_str().unwrap()),
        ]),
    )
    .unwrap();
    assert!(!s.next_secret_inline());
    let c = s.credentials().unwrap();
    assert_eq!(c.client_secret_next.unwrap().expose_secret(), "s-next-file");

    // In the config file, relative to it.
    let cfg = write_config(
        dir.path(),
        "client_id = \"u-f\"\nclient_secret = \"s-f\"\nclient_secret_next_file = \"next\"\n",
    );
    let flags = GlobalArgs {
        config: Some(cfg),
        ..GlobalArgs::default()
    };
    let c = Settings::resolve(&flags, env(&[]))
        .unwrap()
        .credentials()
        .unwrap();
    assert_eq!(c.client_secret_next.unwrap().expose_secret(), "s-next-file");

    // Both forms in one layer: an error naming both.
    let err = Settings::resolve(
        &GlobalArgs::default(),
        env(&[
            ("FT42_CLIENT_SECRET_NEXT", "s-n"),
            ("FT42_CLIENT_SECRET_NEXT_FILE", next.to_str().unwrap()),
        ]),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("FT42_CLIENT_SECRET_NEXT") && err.contains("FT42_CLIENT_SECRET_NEXT_FILE"),
        "{err}"
    );
    assert!(!err.contains("s-n\""), "{err}");

    // An empty next-secret file is named when the credentials are read.
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let empty = dir.path().join("empty");
    let err = Settings::resolve(
        &GlobalArgs::default(),
        env(&[
            ("FT42_CLIENT_ID", "u-1"),
            ("FT42_CLIENT_SECRET", "s-1"),
            ("FT42_CLIENT_SECRET_NEXT_FILE", empty.to_str().unwrap()),
        ]),
    )
    .unwrap()
    .credentials()
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("empty") && err.contains("FT42_CLIENT_SECRET_NEXT_FILE"),
        "{err}"
    );
}

#[test]
fn env_secret_beats_config_file_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "s-file").unwrap();
    // A relative secret file in the config file resolves next to the config file.
    let cfg = write_config(
        dir.path(),
        "client_id = \"u-f\"\nclient_secret_file = \"secret\"\n",
    );
    let flags = GlobalArgs {
        config: Some(cfg),
        ..GlobalArgs::default()
    };
    let s = Settings::resolve(&flags, env(&[])).unwrap();
    assert_eq!(
        s.credentials().unwrap().client_secret.expose_secret(),
        "s-file"
    );
    let s = Settings::resolve(&flags, env(&[("FT42_CLIENT_SECRET", "s-env")])).unwrap();
    assert_eq!(
        s.credentials().unwrap().client_secret.expose_secret(),
        "s-env"
    );
}

#[test]
fn credential_problems_are_auth_errors() {
    let s = Settings::resolve(
        &GlobalArgs::default(),
        env(&[
            ("FT42_CLIENT_ID", "u"),
            ("FT42_CLIENT_SECRET_FILE", "/nonexistent/s"),
        ]),
    )
    .unwrap();
    let err = s.credentials().unwrap_err();
    assert_eq!(err.exit(), Exit::Auth);
    assert!(err.to_string().contains("FT42_CLIENT_SECRET_FILE"), "{err}");

    let s = Settings::resolve(&GlobalArgs::default(), env(&[("FT42_CLIENT_SECRET", "s")])).unwrap();
    let err = s.credentials().unwrap_err();
    assert!(matches!(err, ConfigError::MissingClientId));
    assert_eq!(err.exit(), Exit::Auth);
}

#[test]
fn secret_and_secret_file_together_are_ambiguous() {
    let err = Settings::resolve(
        &GlobalArgs::default(),
        env(&[
            ("FT42_CLIENT_SECRET", "s"),
            ("FT42_CLIENT_SECRET_FILE", "/x"),
        ]),
    )
    .unwrap_err();
    assert_eq!(err.exit(), Exit::Usage);
    assert!(!err.to_string().contains("\"s\""));
}

#[test]
fn applications_file_lists_more_applications_with_secret_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.secret"), "s-b\n").unwrap();
    std::fs::write(dir.path().join("b.next"), "s-b-next").unwrap();
    std::fs::write(dir.path().join("c.secret"), "s-c").unwrap();
    let apps = dir.path().join("apps.toml");
    std::fs::write(
        &apps,
        "[[application]]\nclient_id = \"u-b\"\nsecret_file = \"b.secret\"\n\
         next_secret_file = \"b.next\"\n\n[[application]]\nclient_id = \"u-c\"\n\
         secret_file = \"c.secret\"\n",
    )
    .unwrap();
    let s = Settings::resolve(
        &GlobalArgs::default(),
        env(&[("FT42_APPLICATIONS_FILE", apps.to_str().unwrap())]),
    )
    .unwrap();
    let list = s.applications().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].client_id, "u-b");
    assert_eq!(list[0].client_secret.expose_secret(), "s-b");
    assert_eq!(
        list[0].client_secret_next.as_ref().unwrap().expose_secret(),
        "s-b-next"
    );
    assert_eq!(list[1].client_secret.expose_secret(), "s-c");
    assert!(!format!("{list:?}").contains("s-b"));
    // None configured: no extra application.
    let s = Settings::resolve(&GlobalArgs::default(), env(&[])).unwrap();
    assert!(s.applications().unwrap().is_empty());
    assert_eq!(s.shared_budget, SharedBudgetMode::Auto);
}

#[test]
fn applications_file_problems_name_the_setting_and_the_class() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps.toml");
    let load = || {
        Settings::resolve(
            &GlobalArgs::default(),
            env(&[("FT42_APPLICATIONS_FILE", apps.to_str().unwrap())]),
        )
        .unwrap()
        .applications()
        .unwrap_err()
    };
    // Missing file, empty list: configuration errors naming the setting.
    let err = load();
    assert_eq!(err.exit(), Exit::Usage);
    assert!(err.to_string().contains("FT42_APPLICATIONS_FILE"), "{err}");
    std::fs::write(&apps, "").unwrap();
    assert!(load().to_string().contains("lists no application"));
    // A secret file that cannot be read: authentication (exit 3).
    std::fs::write(
        &apps,
        "[[application]]\nclient_id = \"u-b\"\nsecret_file = \"missing\"\n",
    )
    .unwrap();
    assert_eq!(load().exit(), Exit::Auth);
}

#[test]
fn shared_budget_setting() {
    for (value, mode) in [
        ("auto", SharedBudgetMode::Auto),
        ("on", SharedBudgetMode::On),
        ("off", SharedBudgetMode::Off),
    ] {
        let s = Settings::resolve(
            &GlobalArgs::default(),
            env(&[("FT42_SHARED_BUDGET", value)]),
        )
        .unwrap();
        assert_eq!(s.shared_budget, mode);
    }
    let err = Settings::resolve(
        &GlobalArgs::default(),
        env(&[("FT42_SHARED_BUDGET", "maybe")]),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("invalid FT42_SHARED_BUDGET"),
        "{err}"
    );
}

#[test]
fn look_back_defaults_and_file_overrides() {
    let s = Settings::resolve(&GlobalArgs::default(), env(&[])).unwrap();
    assert_eq!(s.look_back, ft_sync::default_look_back());
    assert_eq!(
        s.look_back.get("locations"),
        Some(&Duration::from_secs(6 * 3600)),
        "late sessions: locations look back hours by default"
    );

    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[look_back]\nlocations = \"12h\"\nusers = \"10m\"\n",
    );
    let flags = GlobalArgs {
        config: Some(cfg),
        ..GlobalArgs::default()
    };
    let s = Settings::resolve(&flags, env(&[])).unwrap();
    assert_eq!(
        s.look_back.get("locations"),
        Some(&Duration::from_secs(12 * 3600))
    );
    assert_eq!(s.look_back.get("users"), Some(&Duration::from_secs(600)));

    for (text, needle) in [
        ("[look_back]\nblocs = \"1h\"\n", "has no delta window"),
        ("[look_back]\nlocations = \"soon\"\n", "is not a duration"),
    ] {
        let cfg = write_config(dir.path(), text);
        let flags = GlobalArgs {
            config: Some(cfg),
            ..GlobalArgs::default()
        };
        let msg = Settings::resolve(&flags, env(&[])).unwrap_err().to_string();
        assert!(msg.contains(needle), "{text}: {msg}");
        assert!(msg.contains("look_back"), "the key is named: {msg}");
    }
}

#[test]
fn campuses_come_from_env_then_file_and_bad_ids_are_named() {
    let none = Settings::resolve(&GlobalArgs::default(), env(&[])).unwrap();
    assert!(none.campuses.is_empty(), "unset: every campus");

    let s = Settings::resolve(
        &GlobalArgs::default(),
        env(&[("FT42_CAMPUSES", " 21, 1,12,1 ")]),
    )
    .unwrap();
    assert_eq!(s.campuses, [1, 12, 21], "sorted, duplicates dropped");

    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "campuses = [9, 3]\n");
    let flags = GlobalArgs {
        config: Some(cfg.clone()),
        ..GlobalArgs::default()
    };
    assert_eq!(
        Settings::resolve(&flags, env(&[])).unwrap().campuses,
        [3, 9]
    );
    assert_eq!(
        Settings::resolve(&flags, env(&[("FT42_CAMPUSES", "5")]))
            .unwrap()
            .campuses,
        [5],
        "the environment wins over the file"
    );

    let err = Settings::resolve(&GlobalArgs::default(), env(&[("FT42_CAMPUSES", "1,paris")]))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("invalid FT42_CAMPUSES"), "{msg}");
    assert!(msg.contains("\"paris\" is not a campus id"), "{msg}");
    let cfg = write_config(dir.path(), "campuses = [0]\n");
    let flags = GlobalArgs {
        config: Some(cfg),
        ..GlobalArgs::default()
    };
    let msg = Settings::resolve(&flags, env(&[])).unwrap_err().to_string();
    assert!(msg.contains("campuses"), "the file key is named: {msg}");
}

#[test]
fn metrics_file_comes_from_flag_env_then_file_and_its_folder_must_exist() {
    let none = Settings::resolve(&GlobalArgs::default(), env(&[])).unwrap();
    assert_eq!(none.metrics_file, None, "unset: no metrics file");

    let dir = tempfile::tempdir().unwrap();
    let in_dir = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let s = Settings::resolve(
        &GlobalArgs::default(),
        env(&[("FT42_METRICS_FILE", &in_dir("env.prom"))]),
    )
    .unwrap();
    assert_eq!(s.metrics_file, Some(dir.path().join("env.prom")));

    // The file key is relative to the config file; the environment and the flag win over it.
    let cfg = write_config(dir.path(), "metrics_file = \"file.prom\"\n");
    let mut flags = GlobalArgs {
        config: Some(cfg),
        ..GlobalArgs::default()
    };
    let s = Settings::resolve(&flags, env(&[])).unwrap();
    assert_eq!(s.metrics_file, Some(dir.path().join("file.prom")));
    let s = Settings::resolve(&flags, env(&[("FT42_METRICS_FILE", &in_dir("env.prom"))])).unwrap();
    assert_eq!(s.metrics_file, Some(dir.path().join("env.prom")));
    flags.metrics_file = Some(dir.path().join("flag.prom"));
    let s = Settings::resolve(&flags, env(&[("FT42_METRICS_FILE", &in_dir("env.prom"))])).unwrap();
    assert_eq!(s.metrics_file, Some(dir.path().join("flag.prom")));
    let s =
        Settings::resolve(&GlobalArgs::default(), env(&[("FT42_METRICS_FILE", "off")])).unwrap();
    assert_eq!(s.metrics_file, None, "off disables it");

    let missing = in_dir("no-such-folder/ft42.prom");
    let msg = Settings::resolve(
        &GlobalArgs::default(),
        env(&[("FT42_METRICS_FILE", &missing)]),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.starts_with("invalid FT42_METRICS_FILE"), "{msg}");
    assert!(msg.contains("does not exist; create it"), "{msg}");
    let msg = Settings::resolve(
        &GlobalArgs::default(),
        env(&[("FT42_METRICS_FILE", &in_dir(""))]),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("is a folder"), "{msg}");
}

#[test]
fn backup_settings_follow_env_then_file_then_defaults() {
    let s = Settings::resolve(&GlobalArgs::default(), env(&[])).unwrap();
    assert_eq!(s.backup, BackupSettings::default());
    assert_eq!((s.backup.keep_daily, s.backup.keep_weekly), (7, 4));

    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "backup_dir = \"/srv/backups\"\nbackup_keep_daily = 3\nbackup_keep_weekly = 2\n\
         backup_passphrase_file = \"pass.txt\"\nbackup_include_archive = true\n\
         backup_recipient = \"recipients.txt\"\n",
    );
    let flags = GlobalArgs {
        config: Some(cfg),
        ..GlobalArgs::default()
    };
    let s = Settings::resolve(&flags, env(&[("FT42_BACKUP_KEEP_DAILY", "5")])).unwrap();
    assert_eq!(s.backup.dir, PathBuf::from("/srv/backups"));
    assert_eq!((s.backup.keep_daily, s.backup.keep_weekly), (5, 2));
    assert!(s.backup.include_archive);
    // Key files named in the config file are relative to it.
    assert_eq!(
        s.backup.passphrase_file.as_deref(),
        Some(dir.path().join("pass.txt").as_path())
    );
    assert_eq!(
        s.backup.recipient.as_deref(),
        Some(dir.path().join("recipients.txt").to_str().unwrap())
    );
    let s = Settings::resolve(
        &flags,
        env(&[
            ("FT42_BACKUP_RECIPIENT", "age1abc"),
            ("FT42_BACKUP_INCLUDE_ARCHIVE", "no"),
        ]),
    )
    .unwrap();
    assert_eq!(s.backup.recipient.as_deref(), Some("age1abc"));
    assert!(!s.backup.include_archive);
}

#[test]
fn bad_backup_settings_name_the_setting() {
    for (var, value) in [
        ("FT42_BACKUP_KEEP_WEEKLY", "-1"),
        ("FT42_BACKUP_INCLUDE_ARCHIVE", "maybe"),
    ] {
        let err = Settings::resolve(&GlobalArgs::default(), env(&[(var, value)])).unwrap_err();
        assert!(err.to_string().contains(var), "{err}");
        assert_eq!(err.exit(), Exit::Usage);
    }
    let err = Settings::resolve(
        &GlobalArgs::default(),
        env(&[
            ("FT42_BACKUP_KEEP_DAILY", "0"),
            ("FT42_BACKUP_KEEP_WEEKLY", "0"),
        ]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("both 0"), "{err}");
}

#[test]
fn log_dir_off_disables_files() {
    let s = Settings::resolve(&GlobalArgs::default(), env(&[("FT42_LOG_DIR", "off")])).unwrap();
    assert_eq!(s.log_dir, None);
}

#[test]
fn one_freshness_definition_takes_the_schedule_grace_and_file_overrides() {
    // Issue #18: status, integrity and the engine read this one value.
    let s = Settings::resolve(&GlobalArgs::default(), env(&[])).unwrap();
    // Default schedule: deltas every 10 minutes, so a scope is stale 30 minutes past its
    // refresh interval.
    assert_eq!(s.freshness.grace(), Duration::from_secs(30 * 60));
    assert_eq!(
        s.freshness.target("blocs", "campus:1"),
        Duration::from_secs(3600 + 30 * 60)
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[schedule]\ndelta = \"off\"\n[freshness]\nusers = \"2h\"\n",
    );
    let flags = GlobalArgs {
        config: Some(cfg),
        ..GlobalArgs::default()
    };
    let s = Settings::resolve(&flags, env(&[])).unwrap();
    assert_eq!(s.freshness.grace(), ft_store::DEFAULT_GRACE);
    assert_eq!(
        s.freshness.target("users", "campus:1"),
        Duration::from_secs(2 * 3600) + ft_store::DEFAULT_GRACE
    );
    // The engine gets the non-zero refresh intervals only.
    assert!(s.freshness.refresh_intervals().contains_key("users"));
    assert!(!s.freshness.refresh_intervals().contains_key("locations"));
}
