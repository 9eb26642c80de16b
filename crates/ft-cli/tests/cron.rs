//! `ft42 cron install` against a fake `crontab` on PATH: twice gives one block, `remove` deletes
//! only that block.

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::Sandbox;

/// A `crontab` that keeps the table in `$FAKE_CRONTAB` (like the real one: `-l` fails with
/// "no crontab for ..." when there is none, `-` replaces it from stdin).
fn fake_crontab(sb: &Sandbox) -> std::path::PathBuf {
    let bin = sb.file("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("crontab");
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         case \"$1\" in\n\
           -l) if [ -f \"$FAKE_CRONTAB\" ]; then cat \"$FAKE_CRONTAB\"; else echo \"no crontab for test\" >&2; exit 1; fi ;;\n\
           -) cat > \"$FAKE_CRONTAB\" ;;\n\
           *) echo \"unexpected $*\" >&2; exit 2 ;;\n\
         esac\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn cron_cmd(sb: &Sandbox, bin: &std::path::Path) -> assert_cmd::Command {
    let mut cmd = sb.ft42();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path)
        .env("FAKE_CRONTAB", sb.file("crontab.txt"));
    cmd
}

#[test]
fn install_twice_gives_one_block_and_remove_keeps_other_lines() {
    let sb = Sandbox::new();
    let bin = fake_crontab(&sb);
    let mine = "MAILTO=ops@example.org\n5 4 * * * /usr/local/bin/other-job\n";
    std::fs::write(sb.file("crontab.txt"), mine).unwrap();

    cron_cmd(&sb, &bin)
        .args(["cron", "install"])
        .assert()
        .success();
    let once = std::fs::read_to_string(sb.file("crontab.txt")).unwrap();
    cron_cmd(&sb, &bin)
        .args(["cron", "install"])
        .assert()
        .success();
    let twice = std::fs::read_to_string(sb.file("crontab.txt")).unwrap();

    assert_eq!(once, twice);
    assert_eq!(twice.matches("# BEGIN ft42").count(), 1);
    assert_eq!(twice.matches("# END ft42").count(), 1);
    assert!(twice.starts_with(mine), "{twice}");
    assert!(twice.contains("sync all --full"), "{twice}");
    assert!(twice.contains("worker --once"), "{twice}");

    cron_cmd(&sb, &bin)
        .args(["cron", "remove"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(sb.file("crontab.txt")).unwrap(),
        mine
    );
}

#[test]
fn install_into_an_empty_crontab_and_dry_run_writes_nothing() {
    let sb = Sandbox::new();
    let bin = fake_crontab(&sb);
    let out = cron_cmd(&sb, &bin)
        .args(["cron", "install", "--dry-run"])
        .assert()
        .success();
    assert!(!sb.file("crontab.txt").exists());
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("# BEGIN ft42"));
    cron_cmd(&sb, &bin)
        .args(["cron", "install"])
        .assert()
        .success();
    assert!(
        std::fs::read_to_string(sb.file("crontab.txt"))
            .unwrap()
            .starts_with("# BEGIN ft42")
    );
}

#[test]
fn cron_lines_keep_the_campuses_setting() {
    let sb = Sandbox::new();
    let bin = fake_crontab(&sb);
    let out = cron_cmd(&sb, &bin)
        .env("FT42_CAMPUSES", "1,12")
        .args(["cron", "install", "--dry-run"])
        .assert()
        .success();
    let block = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    let jobs: Vec<&str> = block.lines().filter(|l| l.contains(" sync ")).collect();
    assert!(!jobs.is_empty(), "{block}");
    for line in jobs {
        assert!(
            line.contains("FT42_CAMPUSES="),
            "a sync job forgets the campuses: {line}"
        );
    }
}

#[test]
fn cron_lines_keep_the_metrics_file_as_an_absolute_path() {
    let sb = Sandbox::new();
    let bin = fake_crontab(&sb);
    for (how, args) in [
        ("env", vec!["cron", "install", "--dry-run"]),
        (
            "flag",
            vec!["cron", "install", "--dry-run", "--metrics-file", "m.prom"],
        ),
    ] {
        let mut cmd = cron_cmd(&sb, &bin);
        if how == "env" {
            cmd.env("FT42_METRICS_FILE", "m.prom");
        }
        let out = cmd.args(args).assert().success();
        let block = String::from_utf8_lossy(&out.get_output().stdout).to_string();
        let want = sb.file("m.prom").to_string_lossy().into_owned();
        let jobs: Vec<&str> = block.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(!jobs.is_empty(), "{block}");
        for line in jobs {
            assert!(
                line.contains(&want),
                "{how}: a job forgets the metrics file: {line}"
            );
        }
    }
}

#[test]
fn schedule_can_be_changed_and_disabled_in_the_config_file() {
    let sb = Sandbox::new();
    let bin = fake_crontab(&sb);
    std::fs::write(
        sb.file("staging.toml"),
        "[schedule]\nfull = \"off\"\ndelta = \"every 30m\"\n",
    )
    .unwrap();
    cron_cmd(&sb, &bin)
        .args(["--config", "staging.toml", "cron", "install"])
        .assert()
        .success();
    let table = std::fs::read_to_string(sb.file("crontab.txt")).unwrap();
    assert!(!table.contains("--full"), "{table}");
    assert!(table.contains("*/30 * * * *"), "{table}");
    assert!(
        table.contains("staging.toml"),
        "the jobs use the same config file: {table}"
    );
}
