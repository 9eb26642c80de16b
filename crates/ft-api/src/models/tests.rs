//! Decoding tests with shapes from `42-api.md` §5.

use super::*;
use chrono::TimeZone;

#[test]
fn short_user_with_offsets_and_question_marks() {
    let json = r#"{
        "id": 42, "email": "3b3-42@student.42.fr", "login": "3b3-42", "first_name": "3b3",
        "last_name": "42", "usual_full_name": "3b3 42", "usual_first_name": null,
        "url": "https://api.intra.42.fr/v2/users/3b3-42", "phone": "hidden", "displayname": "3b3 42",
        "kind": "student", "image": {"link": null, "versions": {"large": null, "medium": null, "small": null, "micro": null}},
        "staff?": false, "correction_point": 5, "pool_month": "september", "pool_year": "2018",
        "location": null, "wallet": 120, "anonymize_date": "2025-10-24T00:00:00.000+02:00",
        "data_erasure_date": null, "created_at": "2017-11-22T13:41:00.825Z",
        "updated_at": "2017-11-22T13:41:00.825Z", "alumnized_at": null, "alumni?": false, "active?": true
    }"#;
    let u: User = serde_json::from_str(json).unwrap();
    assert_eq!(u.id, 42);
    assert_eq!(u.staff, Some(false));
    assert_eq!(u.active, Some(true));
    assert_eq!(u.pool_year.as_deref(), Some("2018"));
    assert_eq!(
        u.anonymize_date,
        Some(Utc.with_ymd_and_hms(2025, 10, 23, 22, 0, 0).unwrap())
    );
    assert!(u.image.unwrap().link.is_none());
}

#[test]
fn pool_year_as_number_and_bare_dates() {
    let u: User =
        serde_json::from_str(r#"{"id":1,"pool_year":2019,"anonymize_date":"2030-01-31"}"#).unwrap();
    assert_eq!(u.pool_year.as_deref(), Some("2019"));
    assert_eq!(
        u.anonymize_date,
        Some(Utc.with_ymd_and_hms(2030, 1, 31, 0, 0, 0).unwrap())
    );
    let bad = serde_json::from_str::<User>(r#"{"id":1,"created_at":"yesterday"}"#);
    assert!(bad.is_err(), "a garbled timestamp must not become None");
}

#[test]
fn cursus_user_projects_user_and_location() {
    let cu: CursusUser = serde_json::from_str(
        r#"{"id":7,"begin_at":"2020-01-01T00:00:00.000Z","end_at":null,"grade":null,"level":3.5,
        "skills":[{"id":1,"name":"Unix","level":2.1}],"cursus_id":21,"has_coalition":true,
        "blackholed_at":null,"created_at":"2020-01-01T00:00:00.000Z","updated_at":"2020-01-02T00:00:00.000Z",
        "user":{"id":1,"login":"a"},"cursus":{"id":21,"created_at":"2019-07-29T08:45:17.896Z","name":"42cursus","slug":"42cursus","kind":"main"}}"#,
    )
    .unwrap();
    assert_eq!(cu.level, Some(3.5));
    assert_eq!(cu.cursus.unwrap().kind.as_deref(), Some("main"));
    let pu: ProjectsUser = serde_json::from_str(
        r#"{"id":9,"occurrence":0,"final_mark":-42,"status":"finished","validated?":false,
        "current_team_id":3,"project":{"id":1,"name":"Libft","slug":"libft","parent_id":null},
        "cursus_ids":[21],"marked_at":null,"marked":true,"retriable_at":null,
        "created_at":"2020-01-01T00:00:00.000Z","updated_at":"2020-01-01T00:00:00.000Z","teams":[]}"#,
    )
    .unwrap();
    assert_eq!(pu.final_mark, Some(-42));
    assert_eq!(pu.validated, Some(false));
    assert_eq!(pu.project.unwrap().slug.as_deref(), Some("libft"));
    let l: Location = serde_json::from_str(
        r#"{"id":1,"begin_at":"2020-01-01T08:00:00.000Z","end_at":null,"primary":true,"host":"c1r2s3","campus_id":1,"user":{"id":5}}"#,
    )
    .unwrap();
    assert!(l.end_at.is_none());
}

#[test]
fn blocs_coalitions_achievements_and_token_info() {
    let b: Bloc = serde_json::from_str(
        r##"{"id":1,"campus_id":1,"cursus_id":21,"squad_size":null,"created_at":null,"updated_at":null,
        "coalitions":[{"id":45,"name":"The Federation","slug":"the-federation","image_url":null,"cover_url":null,"color":"#4180db","score":1000,"user_id":7}]}"##,
    )
    .unwrap();
    assert_eq!(b.coalitions[0].color.as_deref(), Some("#4180db"));
    let a: AchievementsUser = serde_json::from_str(
        r#"{"id":1,"achievement_id":2,"user_id":3,"login":"x","url":"u","nbr_of_success":null,"created_at":null,"updated_at":null}"#,
    )
    .unwrap();
    assert_eq!(a.achievement_id, Some(2));
    let t: TokenInfo = serde_json::from_str(
        r#"{"resource_owner_id":null,"scopes":["public"],"expires_in_seconds":7174,"application":{"uid":"u-s4t2ud-x"},"created_at":1700000000}"#,
    )
    .unwrap();
    assert_eq!(t.scopes, ["public"]);
    assert!(t.resource_owner_id.is_none());
}

#[test]
fn missing_id_fails() {
    assert!(serde_json::from_str::<Campus>(r#"{"name":"Paris"}"#).is_err());
    assert!(serde_json::from_str::<CoalitionsUser>(r#"{"id":null}"#).is_err());
}
