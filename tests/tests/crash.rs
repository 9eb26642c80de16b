//! kill -9 at random moments during a sync: every restart resumes where the last committed page
//! left off; the final database equals the truth and the kills cost at most one page each.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Embedded, assert_part_one_matches};
use ft_store::test_support::TestDb;
use rand::{RngExt, SeedableRng};

/// Kill points per backend; the issue asks for at least 20 in CI.
const KILLS: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_at_random_moments_loses_nothing_on_both_backends() {
    for db in TestDb::all() {
        // The server's limit, not the child's setting, paces the child (the pacer adopts the
        // limits the server announces): 8/s keeps the sync long enough for the kills to land
        // mid-sync.
        // Three campuses read as one campus set: a kill lands inside set tasks, whose cursor is
        // a resume position until the last page hands the watermark to each campus.
        let sim = ft_sim::Sim::builder()
            .seed(29)
            .campuses(3)
            .users_per_campus(300)
            .limits(ft_sim::Limits {
                per_second: 8,
                ..common::test_limits()
            })
            .start()
            .await;
        let creds = sim.credentials();
        let dir = tempfile::tempdir().expect("temp dir");
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, &creds.client_secret).expect("write secret");
        let child = |db_url: &str| {
            Command::new(env!("CARGO_BIN_EXE_sync-child"))
                .args([
                    sim.base_url().as_str(),
                    creds.client_id.as_str(),
                    secret_file.to_str().expect("utf-8 path"),
                    db_url,
                    "1,2,3",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn sync-child")
        };

        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut kills = 0;
        for _ in 0..KILLS {
            let mut proc = child(db.url());
            let delay = Duration::from_millis(rng.random_range(30..250));
            tokio::time::sleep(delay).await;
            if proc.try_wait().expect("poll child").is_some() {
                // It finished before the kill: the sync is complete.
                break;
            }
            proc.kill().expect("SIGKILL");
            proc.wait().expect("reap");
            kills += 1;
        }
        // One last, uninterrupted run finishes whatever is left.
        let out = child(db.url()).wait_with_output().expect("final run");
        assert!(
            out.status.success(),
            "final run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        assert_part_one_matches(db.store(), &sim, Embedded::Exact);
        let spent = sim
            .ledger()
            .iter()
            .filter(|e| e.counted && e.path.starts_with("/v2"))
            .count() as u64;
        let bound = common::lower_bound_requests(&sim);
        assert!(
            kills >= 20,
            "only {kills} kills landed before the sync finished: the dataset is too small"
        );
        assert!(
            spent <= bound + kills as u64,
            "{spent} requests for a lower bound of {bound} and {kills} kills: more than one page per kill"
        );
    }
}
