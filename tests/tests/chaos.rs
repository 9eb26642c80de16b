//! The chaos runner: rounds of full and delta syncs against the simulator while it injects faults
//! (5xx, hangs, 429 bursts, token revocation, malformed pages, token-endpoint errors) and drift
//! (updates, new users, deletions, silent piscine level changes), with `kill -9` of the sync
//! process at random moments, on SQLite and PostgreSQL.
//!
//! After every round it checks that
//! - every row the API holds is in the database, field for field (no lost or stale row), and the
//!   only extra rows are rows the API deleted (counted; an error once [`STRICT_DELETIONS`]),
//! - no task is left failed, pending or running,
//! - no sliding (or fixed) window of the simulator's ledger exceeded the limits,
//! - no 429 was earned (a 429 is earned when the window ending at it already held the limit), and
//!   no 429 at all came back in rounds without injected 429 bursts,
//!
//! and it prints what the faults and kills cost: requests counted by the server against pages
//! committed, and against the lower bound (ceil(rows / 100) per table) for full rounds.
//!
//! Profiles (`FT42_CHAOS_PROFILE`): `ci` (the default; about a minute per backend) and `long`
//! (hundreds of kills, for on-demand runs):
//!
//! ```sh
//! cargo nextest run -p ft-e2e chaos:: --no-capture                       # ci, with the report
//! FT42_CHAOS_PROFILE=long cargo test --release -p ft-e2e --test it chaos:: -- --nocapture
//! ```
//!
//! (`cargo test`, because nextest's slow-timeout would stop the long profile after 5 minutes.
//! `FT42_CHAOS_BACKEND=sqlite` or `=postgres` runs one backend, so two processes can share the
//! long profile.)
//!
//! The seed is random unless `FT42_CHAOS_SEED` is set; it is printed first and in every failure,
//! so a failing run can be replayed (kill timing is wall-clock, so a replay meets the same faults,
//! drift and kill delays, not necessarily the same kill points).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ft_sim::{Drift, Faults, LedgerEntry, Limits, SimHandle};
use ft_store::test_support::TestDb;
use ft_store::{Store, Table, TaskFilter, TaskState};
use ft_sync::What;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The resources every round syncs. When the engine covers every relation, this becomes
/// `What::All` and the round checks every table of [`Table::ALL`].
const WHAT: What = What::All;

/// Whether a row the API deleted must be gone (or marked deleted) after the round. Today only
/// deleted active piscine cursus_users are detected; the others are counted and reported.
const STRICT_DELETIONS: bool = true;

/// The tables a sync of `what` fills, and so the tables each round compares with the truth.
fn tables(what: What) -> Vec<Table> {
    match what {
        What::Users => common::PART_ONE_TABLES.to_vec(),
        What::Relations => vec![Table::ProjectsUsers, Table::AchievementsUsers],
        What::Coalitions => vec![Table::Blocs, Table::Coalitions, Table::CoalitionsUsers],
        What::Locations => vec![Table::Locations],
        What::All => Table::ALL.to_vec(),
    }
}

/// The child's name for `what`.
fn what_arg(what: What) -> &'static str {
    match what {
        What::Users => "users",
        What::Relations => "relations",
        What::Coalitions => "coalitions",
        What::Locations => "locations",
        What::All => "all",
    }
}

/// How long and how hard the runner goes.
#[derive(Debug, Clone)]
struct Profile {
    name: &'static str,
    campuses: u32,
    users_per_campus: u32,
    /// Rounds per backend (full first, then a mix of deltas and fulls).
    rounds: usize,
    /// Rounds that run even past the deadline, so a slow machine still proves something.
    min_rounds: usize,
    /// No new round starts after this much time on one backend.
    budget: Duration,
    /// Kills per round are drawn from `0..=max_kills`.
    max_kills: usize,
    /// Each kill lands after a delay drawn from `10 ms..kill_window` after the process starts.
    kill_window: Duration,
    /// The simulator's (and the client's) per-second limit.
    per_second: u32,
}

impl Profile {
    fn from_env() -> Profile {
        match std::env::var("FT42_CHAOS_PROFILE").as_deref() {
            Ok("long") => Profile {
                name: "long",
                campuses: 3,
                users_per_campus: 250,
                rounds: 80,
                min_rounds: 80,
                budget: Duration::from_secs(40 * 60),
                max_kills: 6,
                kill_window: Duration::from_millis(2000),
                per_second: 10,
            },
            Ok("ci") | Err(_) => Profile {
                name: "ci",
                campuses: 2,
                // Every resource is synced, relations included: a small dataset keeps a round
                // near ten seconds on CI's two cores.
                users_per_campus: 30,
                rounds: 8,
                min_rounds: 3,
                budget: Duration::from_secs(40),
                max_kills: 3,
                kill_window: Duration::from_millis(1500),
                per_second: 20,
            },
            Ok(other) => panic!("FT42_CHAOS_PROFILE={other:?}: expected `ci` or `long`"),
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            per_second: self.per_second,
            per_hour: 100_000,
            second_window: Duration::from_secs(1),
            hour_window: Duration::from_secs(3600),
        }
    }
}

/// The seed of the whole run: `FT42_CHAOS_SEED`, or a fresh one.
fn seed() -> u64 {
    match std::env::var("FT42_CHAOS_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("FT42_CHAOS_SEED={s:?} is not a number")),
        Err(_) => rand::rng().random(),
    }
}

/// Which sync a round runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoundMode {
    Full,
    Delta,
}

/// What one round does, drawn from the seed.
#[derive(Debug, Clone)]
struct RoundPlan {
    mode: RoundMode,
    faults: Faults,
    /// Names of the faults switched on, for the report.
    fault_names: Vec<&'static str>,
    drift: Option<Drift>,
    background_drift: bool,
    kills: usize,
}

impl RoundPlan {
    fn draw(rng: &mut StdRng, round: usize) -> RoundPlan {
        let mut faults = Faults::default();
        let mut names = Vec::new();
        if rng.random_bool(0.5) {
            faults.error_5xx_rate = 0.08;
            names.push("5xx");
        }
        if rng.random_bool(0.4) {
            faults.hang_rate = 0.02;
            faults.hang_delay = Duration::from_secs(3);
            faults.slow_rate = 0.05;
            faults.slow_delay = Duration::from_millis(200);
            faults.jitter_max = Duration::from_millis(20);
            names.push("hangs");
        }
        if rng.random_bool(0.4) {
            faults.spontaneous_429_rate = 0.05;
            names.push("429-bursts");
        }
        if rng.random_bool(0.5) {
            faults.revoke_token_every = Some(rng.random_range(5..40));
            faults.token_error_rate = 0.1;
            names.push("revocation");
        }
        if rng.random_bool(0.4) {
            faults.malformed_rate = 0.03;
            names.push("malformed");
        }
        let mode = if round == 0 || rng.random_bool(0.3) {
            RoundMode::Full
        } else {
            RoundMode::Delta
        };
        let drift = (round > 0).then(|| Drift {
            update_fraction: rng.random_range(0.0..0.1),
            new_users: rng.random_range(0..5),
            new_locations: rng.random_range(0..10),
            close_open_locations: rng.random_range(0..5),
            delete_projects_users: rng.random_range(0..4),
            delete_cursus_users: rng.random_range(0..4),
            piscine_level_changes: rng.random_range(0..4),
        });
        RoundPlan {
            mode,
            faults,
            fault_names: names,
            drift,
            background_drift: round > 0 && rng.random_bool(0.3),
            kills: 0,
        }
    }
}

/// What a round cost and found.
#[derive(Debug, Default, Clone)]
struct RoundStats {
    kills: usize,
    /// `/v2` requests the server counted against the budget.
    counted: usize,
    /// Pages committed (fetch-log rows added).
    pages: usize,
    /// ceil(rows / 100) per table, for full rounds.
    lower_bound: Option<usize>,
    responses_429: usize,
    earned_429: usize,
    undetected_deletions: usize,
    deleted_by_drift: usize,
}

/// Everything one backend's run needs.
struct Runner<'a> {
    profile: &'a Profile,
    seed: u64,
    backend: String,
    sim: SimHandle,
    db: &'a TestDb,
    secret_file: std::path::PathBuf,
    /// (table, id) of every row a drift step deleted.
    deleted: BTreeSet<(String, i64)>,
    embedded_exact: bool,
}

impl Runner<'_> {
    fn fail(&self, round: usize, what: impl std::fmt::Display) -> ! {
        panic!(
            "chaos seed {} ({} profile), {} round {round}: {what}\n  replay: FT42_CHAOS_SEED={} FT42_CHAOS_PROFILE={}",
            self.seed, self.profile.name, self.backend, self.seed, self.profile.name
        )
    }

    fn store(&self) -> &Store {
        self.db.store()
    }

    /// Starts one sync process.
    fn spawn(&self, action: &str, mode: RoundMode) -> tokio::process::Child {
        let creds = self.sim.credentials();
        let limits = self.profile.limits();
        let offset = (self.sim.now() - chrono::Utc::now()).num_milliseconds();
        let campuses: Vec<String> = (1..=self.profile.campuses).map(|c| c.to_string()).collect();
        let args = [
            format!("base_url={}", self.sim.base_url()),
            format!("client_id={}", creds.client_id),
            format!("secret_file={}", self.secret_file.display()),
            format!("database_url={}", self.db.url()),
            format!("campuses={}", campuses.join(",")),
            format!("what={}", what_arg(WHAT)),
            format!(
                "mode={}",
                match mode {
                    RoundMode::Full => "full",
                    RoundMode::Delta => "delta",
                }
            ),
            format!("action={action}"),
            format!("per_second={}", limits.per_second),
            format!("per_hour={}", limits.per_hour),
            format!("hour_ms={}", limits.hour_window.as_millis()),
            "request_timeout_ms=1000".to_owned(),
            format!("clock_offset_ms={offset}"),
        ];
        tokio::process::Command::new(env!("CARGO_BIN_EXE_chaos-child"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chaos-child")
    }

    fn max_task_id(&self) -> i64 {
        self.store()
            .tasks(&TaskFilter::default())
            .expect("list tasks")
            .iter()
            .map(|t| t.id)
            .max()
            .unwrap_or(0)
    }

    /// After a kill: resume the queue when this round's plan was committed, plan again when not
    /// (planning is one transaction, so it is all there or not at all).
    fn next_action(&self, tasks_before: i64) -> &'static str {
        if self.max_task_id() > tasks_before {
            "resume"
        } else {
            "sync"
        }
    }

    /// Runs one sync to completion; a failure ends the test with the child's stderr.
    async fn run_to_end(&self, round: usize, action: &str, mode: RoundMode) {
        let out = self
            .spawn(action, mode)
            .wait_with_output()
            .await
            .expect("wait for chaos-child");
        if !out.status.success() {
            self.fail(
                round,
                format!(
                    "the uninterrupted {action} run failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            );
        }
    }

    async fn round(&mut self, round: usize, rng: &mut StdRng) -> RoundStats {
        let mut plan = RoundPlan::draw(rng, round);
        let mut stats = RoundStats::default();
        if let Some(drift) = &plan.drift {
            let report = self.sim.drift(drift.clone());
            for (table, ids) in &report.deleted {
                stats.deleted_by_drift += ids.len();
                self.deleted
                    .extend(ids.iter().map(|id| (table.clone(), *id)));
            }
            self.embedded_exact = false;
        }
        self.sim.set_faults(plan.faults.clone());
        if plan.background_drift {
            self.embedded_exact = false;
            self.sim.start_background_drift(
                Duration::from_millis(150),
                Drift {
                    update_fraction: 0.002,
                    new_users: 1,
                    new_locations: 1,
                    ..Drift::default()
                },
            );
        }
        let ledger_start = self.sim.ledger().len();
        let pages_before = self.store().fetch_log_count().expect("fetch log count");
        let tasks_before = self.max_task_id();

        // Kill at random moments; each restart resumes the queue (or plans again when the kill
        // came before the plan was committed).
        let kills = rng.random_range(0..=self.profile.max_kills);
        let mut action = "sync";
        for _ in 0..kills {
            let mut child = self.spawn(action, plan.mode);
            let window = self.profile.kill_window.as_millis() as u64;
            let delay = Duration::from_millis(rng.random_range(10..window.max(11)));
            let exited = tokio::time::timeout(delay, child.wait()).await;
            if let Ok(status) = exited {
                let status = status.expect("wait for chaos-child");
                if !status.success() {
                    let mut err = String::new();
                    if let Some(mut stderr) = child.stderr.take() {
                        use tokio::io::AsyncReadExt;
                        let _ = stderr.read_to_string(&mut err).await;
                    }
                    self.fail(round, format!("a run failed before its kill: {err}"));
                }
                // It finished before the kill landed: the round's work is done.
                action = "resume";
                break;
            }
            child.start_kill().expect("SIGKILL");
            child.wait().await.expect("reap");
            plan.kills += 1;
            action = self.next_action(tasks_before);
        }
        stats.kills = plan.kills;
        // One uninterrupted run finishes whatever is left.
        self.run_to_end(round, action, plan.mode).await;
        if plan.background_drift {
            // Rows that changed behind a pass already read are the next delta's job.
            self.sim.stop_background_drift();
            self.run_to_end(round, "sync", RoundMode::Delta).await;
        }
        self.sim.set_faults(Faults::default());

        let ledger: Vec<LedgerEntry> = self.sim.ledger().split_off(ledger_start);
        stats.counted = ledger
            .iter()
            .filter(|e| e.counted && e.path.starts_with("/v2"))
            .count();
        stats.pages =
            (self.store().fetch_log_count().expect("fetch log count") - pages_before) as usize;
        stats.responses_429 = ledger.iter().filter(|e| e.status == 429).count();
        stats.earned_429 = earned_429s(&self.sim.ledger(), ledger_start, self.profile.limits());
        if plan.mode == RoundMode::Full && !plan.background_drift {
            stats.lower_bound = Some(lower_bound(&self.sim.truth()));
        }
        self.check(round, &plan, &mut stats);
        println!(
            "{} round {round:>3}: {:<5} kills {} faults [{}]{} | {} requests, {} pages committed, {} extra{} | 429s {} (earned {}) | drift deleted {} rows; {} API-deleted rows still live in the mirror",
            self.backend,
            format!("{:?}", plan.mode).to_lowercase(),
            stats.kills,
            plan.fault_names.join(","),
            if plan.background_drift {
                " +background drift"
            } else {
                ""
            },
            stats.counted,
            stats.pages,
            stats.counted.saturating_sub(stats.pages),
            stats
                .lower_bound
                .map(|b| format!(", lower bound {b}"))
                .unwrap_or_default(),
            stats.responses_429,
            stats.earned_429,
            stats.deleted_by_drift,
            stats.undetected_deletions,
        );
        stats
    }

    fn check(&self, round: usize, plan: &RoundPlan, stats: &mut RoundStats) {
        // The budget: no window over the limits, no 429 of our making.
        let limits = self.profile.limits();
        for (window, limit) in [
            (limits.second_window, limits.per_second),
            (limits.hour_window, limits.per_hour),
        ] {
            let sliding = self.sim.max_in_window(window);
            let fixed = self.sim.max_in_fixed_window(window);
            if sliding > limit as usize || fixed > limit as usize {
                self.fail(
                    round,
                    format!(
                        "{sliding} requests in a sliding {window:?} window ({fixed} in a fixed one); the limit is {limit}"
                    ),
                );
            }
        }
        if stats.earned_429 > 0 {
            self.fail(
                round,
                format!(
                    "{} 429 answer(s) were earned: the window ending at them already held the limit",
                    stats.earned_429
                ),
            );
        }
        if plan.faults.spontaneous_429_rate == 0.0 && stats.responses_429 > 0 {
            self.fail(
                round,
                format!(
                    "{} 429 answer(s) in a round without injected 429s",
                    stats.responses_429
                ),
            );
        }

        // The queue: nothing failed, nothing left behind.
        for state in [TaskState::Error, TaskState::Pending, TaskState::Running] {
            let left = self
                .store()
                .tasks(&TaskFilter {
                    state: Some(state),
                    ..TaskFilter::default()
                })
                .expect("list tasks");
            if let Some(task) = left.first() {
                self.fail(
                    round,
                    format!(
                        "{} task(s) {} after the round, e.g. {} {}: {:?}",
                        left.len(),
                        state.as_str(),
                        task.kind,
                        task.scope,
                        task.last_error
                    ),
                );
            }
        }

        // The data: every API row stored as served; extra rows only where the API deleted them.
        let truth = self.sim.truth();
        for table in tables(WHAT) {
            match compare_table(
                self.store(),
                &truth,
                table,
                self.embedded_exact,
                &self.deleted,
            ) {
                Ok(undetected) => stats.undetected_deletions += undetected,
                Err(e) => self.fail(round, e),
            }
        }
    }
}

/// Compares the live rows of `table` with the truth. Returns how many stored rows the API has
/// deleted without the mirror noticing (an error when [`STRICT_DELETIONS`]).
fn compare_table(
    store: &Store,
    truth: &ft_sim::Truth,
    table: Table,
    embedded_exact: bool,
    deleted: &BTreeSet<(String, i64)>,
) -> Result<usize, String> {
    let name = table.as_str();
    let strip = |mut v: serde_json::Value| {
        if !embedded_exact && let Some(obj) = v.as_object_mut() {
            // Embedded users are snapshots the API does not re-date (see common::Embedded).
            obj.remove("user");
        }
        v
    };
    let stored: BTreeMap<i64, serde_json::Value> = store
        .raw_rows(table)
        .map_err(|e| format!("{name}: reading the mirror: {e}"))?
        .into_iter()
        .filter(|r| r.deleted_at.is_none())
        .map(|r| (r.id, strip(r.raw)))
        .collect();
    let want: BTreeMap<i64, serde_json::Value> = truth
        .table(name)
        .iter()
        .filter_map(|row| Some((row.get("id")?.as_i64()?, strip(row.clone()))))
        .collect();
    if want.is_empty() {
        return Err(format!(
            "{name}: the simulator has no rows; the round proves nothing"
        ));
    }
    let missing: Vec<i64> = want
        .keys()
        .filter(|id| !stored.contains_key(id))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{name}: {} row(s) of the API are missing from the mirror (lost), e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        ));
    }
    let mut undetected = 0;
    for id in stored.keys().filter(|id| !want.contains_key(id)) {
        if !STRICT_DELETIONS && deleted.contains(&(name.to_owned(), *id)) {
            undetected += 1;
        } else {
            return Err(format!(
                "{name} id {id}: in the mirror but not in the API{}",
                if deleted.contains(&(name.to_owned(), *id)) {
                    " (the API deleted it; deletions must be mirrored)"
                } else {
                    " and never deleted there: a phantom row"
                }
            ));
        }
    }
    for (id, row) in &want {
        let got = &stored[id];
        if got != row {
            let field = row
                .as_object()
                .and_then(|o| o.iter().find(|(k, v)| got.get(k.as_str()) != Some(*v)))
                .map(|(k, v)| {
                    format!(
                        "{k}: API {v}, mirror {}",
                        got.get(k.as_str()).unwrap_or(&serde_json::Value::Null)
                    )
                })
                .unwrap_or_else(|| "extra fields in the mirror".to_owned());
            return Err(format!("{name} id {id}: stale or wrong row ({field})"));
        }
    }
    Ok(undetected)
}

/// ceil(rows / 100) per table synced, at least one: the fewest requests a full pass can take.
fn lower_bound(truth: &ft_sim::Truth) -> usize {
    tables(WHAT)
        .iter()
        .map(|t| {
            let per_page = match t.as_str() {
                "projects" => ft_api::endpoints::PROJECTS.max_per_page() as usize,
                _ => 100,
            };
            truth.table(t.as_str()).len().div_ceil(per_page).max(1)
        })
        .sum()
}

/// 429 answers (from `start` on) that the budget called for: the window ending at the answer
/// already held the limit. The others are the simulator's injected bursts.
fn earned_429s(ledger: &[LedgerEntry], start: usize, limits: Limits) -> usize {
    let counted: Vec<Duration> = ledger
        .iter()
        .filter(|e| e.counted && e.app_id == Some(1))
        .map(|e| e.at)
        .collect();
    let in_window = |at: Duration, window: Duration| {
        counted
            .iter()
            .filter(|t| **t <= at && at - **t < window)
            .count()
    };
    ledger[start..]
        .iter()
        .filter(|e| e.status == 429)
        .filter(|e| {
            in_window(e.at, limits.second_window) >= limits.per_second as usize
                || in_window(e.at, limits.hour_window) >= limits.per_hour as usize
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_rounds_lose_nothing_and_earn_no_429_on_both_backends() {
    let profile = Profile::from_env();
    let seed = seed();
    println!(
        "chaos: profile {}, seed {seed} (replay with FT42_CHAOS_SEED={seed}), syncing {:?}",
        profile.name, WHAT
    );
    let mut totals: BTreeMap<String, (usize, RoundStats)> = BTreeMap::new();
    // `FT42_CHAOS_BACKEND=sqlite|postgres` runs one backend (two processes can then run the long
    // profile side by side); both by default.
    let only = std::env::var("FT42_CHAOS_BACKEND").ok();
    let dbs = match only.as_deref() {
        Some("sqlite") => vec![TestDb::sqlite()],
        Some("postgres") => vec![TestDb::postgres()],
        None | Some("") => TestDb::all(),
        Some(other) => panic!("FT42_CHAOS_BACKEND={other:?}: expected `sqlite` or `postgres`"),
    };
    for db in dbs {
        let backend = format!("{:?}", db.backend()).to_lowercase();
        let sim = ft_sim::Sim::builder()
            .seed(seed)
            .campuses(profile.campuses)
            .users_per_campus(profile.users_per_campus)
            .limits(profile.limits())
            .start()
            .await;
        let dir = tempfile::tempdir().expect("temp dir");
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, sim.credentials().client_secret).expect("write secret");
        let mut runner = Runner {
            profile: &profile,
            seed,
            backend: backend.clone(),
            sim,
            db: &db,
            secret_file,
            deleted: BTreeSet::new(),
            embedded_exact: true,
        };
        // Each backend meets its own faults, drift and kill delays, derived from the seed.
        let mut rng = StdRng::seed_from_u64(seed ^ backend.len() as u64);
        let started = Instant::now();
        let total = totals.entry(backend.clone()).or_default();
        for round in 0..profile.rounds {
            if round >= profile.min_rounds && started.elapsed() > profile.budget {
                println!("{backend}: time budget spent after {round} rounds");
                break;
            }
            let stats = runner.round(round, &mut rng).await;
            total.0 += 1;
            total.1.kills += stats.kills;
            total.1.counted += stats.counted;
            total.1.pages += stats.pages;
            total.1.responses_429 += stats.responses_429;
            total.1.undetected_deletions = stats.undetected_deletions;
            total.1.deleted_by_drift += stats.deleted_by_drift;
        }
        println!(
            "{backend}: {} rounds, {} kills, {} requests for {} committed pages ({} extra), {} 429s (0 earned), {:.1} s",
            total.0,
            total.1.kills,
            total.1.counted,
            total.1.pages,
            total.1.counted.saturating_sub(total.1.pages),
            total.1.responses_429,
            started.elapsed().as_secs_f64()
        );
    }
    for (backend, (rounds, t)) in &totals {
        assert!(
            *rounds >= profile.min_rounds,
            "{backend}: only {rounds} rounds ran"
        );
        assert!(t.kills > 0, "{backend}: no kill landed (seed {seed})");
    }
}
