//! Point 8: change over time. Deltas by `updated_at`, new rows, deletions without tombstones,
//! closed sessions, silent piscine level changes, background drift.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{client, generous, keyset_all, token};
use ft_sim::{Drift, Sim};
use serde_json::Value;

fn by_id(rows: &[Value]) -> BTreeMap<i64, Value> {
    rows.iter()
        .map(|r| (r["id"].as_i64().expect("id"), r.clone()))
        .collect()
}

#[tokio::test]
async fn a_delta_by_updated_at_finds_exactly_the_bumped_rows() {
    let sim = Sim::builder()
        .seed(21)
        .campuses(2)
        .users_per_campus(40)
        .limits(generous())
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    let before = sim.truth();
    let planned = sim.now();
    let since = planned.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let report = sim.drift(Drift {
        update_fraction: 0.1,
        ..Drift::default()
    });
    assert!(
        report.at > planned,
        "drift stamps strictly after the last now()"
    );
    let after = sim.truth();

    for table in [
        "users",
        "campus_users",
        "cursus_users",
        "projects_users",
        "achievements_users",
        "coalitions_users",
    ] {
        let updated = &report.updated[table];
        assert!(!updated.is_empty(), "{table}: something was updated");
        // range[updated_at] is strictly after the planned time: a delta from `since` is exactly the change.
        let delta = keyset_all(
            &client,
            &sim,
            &token,
            &format!("/v2/{table}"),
            &format!("&range[updated_at]={since},2100-01-01T00:00:00.000Z"),
        )
        .await;
        let delta_ids: Vec<i64> = delta
            .iter()
            .map(|r| r["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(&delta_ids, updated, "{table}: the delta is the drift");
        let (old, new) = (by_id(before.table(table)), by_id(after.table(table)));
        for id in updated {
            assert_ne!(old[id], new[id], "{table} {id} changed");
            assert!(new[id]["updated_at"].as_str().expect("updated_at") > since.as_str());
        }
        let untouched = old
            .keys()
            .filter(|id| !updated.contains(id))
            .all(|id| old[id] == new[id]);
        assert!(untouched, "{table}: rows outside the delta are unchanged");
    }
}

#[tokio::test]
async fn new_rows_deletions_closed_sessions_and_silent_levels() {
    let sim = Sim::builder()
        .seed(22)
        .campuses(2)
        .users_per_campus(40)
        .limits(generous())
        .start()
        .await;
    let before = sim.truth();
    let report = sim.drift(Drift {
        new_users: 2,
        new_locations: 4,
        close_open_locations: 3,
        delete_projects_users: 5,
        delete_cursus_users: 2,
        piscine_level_changes: 3,
        ..Drift::default()
    });
    let after = sim.truth();
    let stamp = report
        .at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);

    assert_eq!(report.created["users"].len(), 2);
    assert_eq!(after.table("users").len(), before.table("users").len() + 2);
    let new_users = by_id(after.table("users"));
    for id in &report.created["users"] {
        assert_eq!(new_users[id]["created_at"], stamp.as_str());
        assert!(
            *id > *before.ids("users").last().expect("ids"),
            "new ids are higher"
        );
    }
    assert!(
        report.created["campus_users"].len() >= 2 && report.created["cursus_users"].len() >= 2,
        "new users come with relations"
    );
    assert_eq!(report.created["locations"].len(), 4);

    let old_pu = before.ids("projects_users");
    let new_pu = after.ids("projects_users");
    assert_eq!(new_pu.len(), old_pu.len() - 5);
    assert!(
        report.deleted["projects_users"]
            .iter()
            .all(|id| old_pu.contains(id) && !new_pu.contains(id)),
        "deleted rows vanish"
    );
    assert!(
        report.deleted["cursus_users"]
            .iter()
            .all(|id| !after.ids("cursus_users").contains(id))
    );
    // Keyset paging (which stops when a page reaches X-Total) sees exactly the surviving rows.
    let client = client();
    let token = token(&client, &sim).await;
    for table in ["projects_users", "cursus_users", "users", "locations"] {
        let served = keyset_all(&client, &sim, &token, &format!("/v2/{table}"), "").await;
        assert_eq!(served.as_slice(), after.table(table), "{table} after drift");
    }

    assert_eq!(report.closed_locations.len(), 3);
    let locations = by_id(after.table("locations"));
    let old_locations = by_id(before.table("locations"));
    for id in &report.closed_locations {
        assert!(old_locations[id]["end_at"].is_null());
        assert_eq!(locations[id]["end_at"], stamp.as_str());
    }

    assert_eq!(report.silent_level_changes.len(), 3);
    let (old_cu, new_cu) = (
        by_id(before.table("cursus_users")),
        by_id(after.table("cursus_users")),
    );
    for id in &report.silent_level_changes {
        assert_eq!(new_cu[id]["cursus_id"], 9, "piscine rows");
        assert_ne!(old_cu[id]["level"], new_cu[id]["level"], "level moved");
        assert_eq!(
            old_cu[id]["updated_at"], new_cu[id]["updated_at"],
            "updated_at did not"
        );
    }
}

#[tokio::test]
async fn background_drift_runs_until_stopped() {
    let sim = Sim::builder().seed(23).users_per_campus(30).start().await;
    let start = sim.counts()["users"];
    sim.start_background_drift(
        Duration::from_millis(50),
        Drift {
            new_users: 1,
            ..Drift::default()
        },
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    sim.stop_background_drift();
    let stopped = sim.counts()["users"];
    assert!(stopped > start, "users were added in the background");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sim.counts()["users"], stopped, "nothing changes after stop");
}

#[tokio::test]
async fn embedded_users_are_snapshots_unless_live_mode_is_on() {
    for live in [false, true] {
        let sim = Sim::builder()
            .seed(24)
            .users_per_campus(30)
            .live_embedded_users(live)
            .start()
            .await;
        let before = sim.truth();
        let report = sim.drift(Drift {
            update_fraction: 0.5,
            ..Drift::default()
        });
        let after = sim.truth();
        let changed_users: Vec<i64> = report.updated["users"].clone();
        let bumped: Vec<i64> = report.updated["projects_users"].clone();
        let (old, new) = (
            by_id(before.table("projects_users")),
            by_id(after.table("projects_users")),
        );
        // Rows that were not bumped themselves but embed a changed user.
        let silent: Vec<i64> = old
            .iter()
            .filter(|(id, row)| {
                !bumped.contains(id)
                    && changed_users.contains(&row["user"]["id"].as_i64().expect("user"))
            })
            .map(|(id, _)| *id)
            .collect();
        assert!(!silent.is_empty());
        let differs = silent.iter().filter(|id| old[*id] != new[*id]).count();
        if live {
            assert_eq!(
                differs,
                silent.len(),
                "live mode: the embedded user follows the user"
            );
            assert!(
                silent
                    .iter()
                    .all(|id| old[id]["updated_at"] == new[id]["updated_at"]),
                "without updated_at moving"
            );
        } else {
            assert_eq!(
                differs, 0,
                "snapshot mode: a row changes only with its own updated_at"
            );
        }
    }
}
