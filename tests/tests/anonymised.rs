//! Anonymised users (issue #16): once the API scrubs a user, no personal field of theirs may
//! survive anywhere in the mirror, including the rows that embed a copy of them.

use crate::common;

use common::Embedded;
use ft_store::Table;
use ft_store::test_support::TestDb;
use ft_sync::{Mode, SyncRequest, What, progress};

/// Anonymisation (issue #16): the API scrubs a user without touching the rows that embed a
/// copy of them (their updated_at stays), so a delta of those tables never brings the scrubbed
/// copy. The mirror scrubs them itself when the users delta brings the anonymised user: no
/// personal field of theirs survives anywhere in the mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymised_user_leaves_no_personal_field_in_the_rows_that_embed_them() {
    for db in TestDb::all() {
        let sim = common::sim(62, 2, 25).await;
        let client = common::client_for(&sim, common::test_limits());
        let engine = common::engine(&sim, client, db.store().clone());
        let run = |what, mode| {
            engine.sync(
                SyncRequest::new(what, mode),
                progress::discard(),
                std::future::pending(),
            )
        };
        let summary = run(What::All, Mode::Full).await.expect("full sync");
        assert_eq!(summary.tasks_failed, 0, "{:?}", summary.errors);
        let before = sim.truth();
        let report = sim.drift_traps(&ft_sim::TrapDrift {
            anonymise_users: 5,
            ..ft_sim::TrapDrift::default()
        });
        assert!(!report.anonymised_users.is_empty(), "some users were due");
        let old_logins: Vec<String> = before
            .table("users")
            .iter()
            .filter(|u| {
                u["id"]
                    .as_i64()
                    .is_some_and(|id| report.anonymised_users.contains(&id))
            })
            .map(|u| u["login"].as_str().expect("login").to_owned())
            .collect();
        let embedding: usize = ["cursus_users", "projects_users", "locations"]
            .iter()
            .map(|t| {
                db.store()
                    .raw_rows(t.parse().expect("table"))
                    .expect("rows")
                    .iter()
                    .filter(|r| old_logins.iter().any(|l| r.raw["user"]["login"] == *l))
                    .count()
            })
            .sum();
        assert!(embedding > 0, "the anonymised users are embedded somewhere");

        // Only the users listing is read again (a delta): it brings the scrubbed users.
        run(What::Users, Mode::Delta).await.expect("delta");
        for table in Table::ALL {
            for row in db.store().raw_rows(*table).expect("rows") {
                let text = row.raw.to_string();
                for login in &old_logins {
                    assert!(
                        !text.contains(&format!("\"{login}\"")),
                        "{} id {} still holds the login {login} of an anonymised user: {text}",
                        table.as_str(),
                        row.id
                    );
                }
            }
        }
        // Every embedded copy is exactly what the API now shows.
        common::assert_part_one_matches(db.store(), &sim, Embedded::Exact);
    }
}
