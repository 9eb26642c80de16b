//! Shared helpers for the CLI tests: a clean command in a temporary folder, and a simulator.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// A temporary working folder for one test; every command runs inside it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `ft42` (or a thin binary) with no inherited `FT42_*` settings, running in the sandbox,
    /// logging into the sandbox.
    pub fn cmd(&self, bin: &str) -> Command {
        let mut cmd = Command::cargo_bin(bin).expect("binary built");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FT42_") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(self.path())
            .env("FT42_LOG_DIR", self.file("logs"))
            .env("NO_COLOR", "1");
        cmd
    }

    pub fn ft42(&self) -> Command {
        self.cmd("ft42")
    }
}

/// A simulator on a loopback port with real limits; `hour` compresses the hourly window.
pub async fn sim(users_per_campus: u32, campuses: u32) -> ft_sim::SimHandle {
    ft_sim::Sim::builder()
        .seed(7)
        .campuses(campuses)
        .users_per_campus(users_per_campus)
        .start()
        .await
}

/// Points a command at the simulator with its credentials.
pub fn point_at(cmd: &mut Command, sim: &ft_sim::SimHandle) {
    let creds = sim.credentials();
    cmd.env("FT42_API_URL", sim.base_url())
        .env("FT42_CLIENT_ID", creds.client_id)
        .env("FT42_CLIENT_SECRET", creds.client_secret);
}

/// Runs a blocking assert_cmd command without stalling the runtime the simulator runs on.
pub async fn run(mut cmd: Command) -> assert_cmd::assert::Assert {
    tokio::task::spawn_blocking(move || cmd.assert())
        .await
        .expect("command thread")
}
