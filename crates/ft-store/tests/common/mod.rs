//! Row builders shared by the store's tests.
#![allow(dead_code)]

use chrono::{NaiveDate, NaiveDateTime};
use ft_store::rows::*;

/// 2026-01-01 00:00:00 plus `minutes`.
pub(crate) fn ts(minutes: i64) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        + chrono::TimeDelta::minutes(minutes)
}

pub(crate) fn user(id: i64, login: &str, updated_at: Option<NaiveDateTime>) -> UserRow {
    UserRow {
        id,
        login: login.into(),
        email: Some(format!("{login}@student.42.fr")),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        usual_full_name: Some("Ada Lovelace".into()),
        displayname: Some("Ada Lovelace".into()),
        kind: Some("student".into()),
        staff: Some(false),
        pool_month: Some("september".into()),
        pool_year: Some("2025".into()),
        location: None,
        wallet: Some(42),
        correction_point: Some(5),
        alumni: Some(false),
        active: Some(true),
        image_url: Some("https://cdn.example/ada.jpg".into()),
        anonymize_date: Some(ts(60 * 24 * 365)),
        data_erasure_date: None,
        alumnized_at: None,
        created_at: Some(ts(0)),
        updated_at,
        raw: serde_json::json!({"id": id, "login": login}).to_string(),
    }
}

pub(crate) fn projects_user(
    id: i64,
    user_id: i64,
    updated_at: Option<NaiveDateTime>,
) -> ProjectsUserRow {
    ProjectsUserRow {
        id,
        user_id,
        project_id: 1314,
        occurrence: Some(0),
        final_mark: Some(100),
        status: Some("finished".into()),
        validated: Some(true),
        current_team_id: Some(id * 10),
        marked: Some(true),
        marked_at: Some(ts(30)),
        retriable_at: None,
        created_at: Some(ts(0)),
        updated_at,
        raw: serde_json::json!({"id": id, "final_mark": 100, "status": "finished"}).to_string(),
    }
}

/// The raw JSON of a row as a value (PostgreSQL normalises JSONB text, so tests compare values).
pub(crate) fn json(raw: &str) -> serde_json::Value {
    serde_json::from_str(raw).expect("test raw is JSON")
}

/// One fully populated row for every mirror table; `v` varies every field.
pub(crate) fn one_of_each(v: i64) -> Vec<Rows> {
    let s = |name: &str| Some(format!("{name}-{v}"));
    let b = Some(v % 2 == 0);
    let t = Some(ts(v));
    let raw = |table: &str| serde_json::json!({"table": table, "v": v}).to_string();
    vec![
        Rows::Campuses(vec![CampusRow {
            id: 1,
            name: format!("campus-{v}"),
            time_zone: s("tz"),
            country: s("country"),
            city: s("city"),
            active: b,
            public: b,
            users_count: Some(v),
            raw: raw("campuses"),
        }]),
        Rows::Users(vec![UserRow {
            id: 2,
            login: format!("login-{v}"),
            email: s("email"),
            first_name: s("first"),
            last_name: s("last"),
            usual_full_name: s("usual"),
            displayname: s("display"),
            kind: s("kind"),
            staff: b,
            pool_month: s("month"),
            pool_year: s("year"),
            location: s("location"),
            wallet: Some(v),
            correction_point: Some(v + 1),
            alumni: b,
            active: b,
            image_url: s("image"),
            anonymize_date: t,
            data_erasure_date: t,
            alumnized_at: t,
            created_at: t,
            updated_at: t,
            raw: raw("users"),
        }]),
        Rows::CampusUsers(vec![CampusUserRow {
            id: 3,
            user_id: v,
            campus_id: v + 1,
            is_primary: b,
            created_at: t,
            updated_at: t,
            raw: raw("campus_users"),
        }]),
        Rows::Cursus(vec![CursusRow {
            id: 4,
            name: s("name"),
            slug: s("slug"),
            kind: s("kind"),
            created_at: t,
            raw: raw("cursus"),
        }]),
        Rows::CursusUsers(vec![CursusUserRow {
            id: 5,
            user_id: v,
            cursus_id: v + 1,
            grade: s("grade"),
            level: Some(v as f64 + 0.25),
            begin_at: t,
            end_at: t,
            blackholed_at: t,
            has_coalition: b,
            created_at: t,
            updated_at: t,
            raw: raw("cursus_users"),
        }]),
        Rows::Projects(vec![ProjectRow {
            id: 6,
            name: s("name"),
            slug: s("slug"),
            difficulty: Some(v),
            parent_id: Some(v + 1),
            exam: b,
            created_at: t,
            updated_at: t,
            raw: raw("projects"),
        }]),
        Rows::ProjectsUsers(vec![ProjectsUserRow {
            id: 7,
            user_id: v,
            project_id: v + 1,
            occurrence: Some(v + 2),
            final_mark: Some(v + 3),
            status: s("status"),
            validated: b,
            current_team_id: Some(v + 4),
            marked: b,
            marked_at: t,
            retriable_at: t,
            created_at: t,
            updated_at: t,
            raw: raw("projects_users"),
        }]),
        Rows::Achievements(vec![AchievementRow {
            id: 8,
            name: s("name"),
            description: s("description"),
            tier: s("tier"),
            kind: s("kind"),
            visible: b,
            image: s("image"),
            nbr_of_success: Some(v),
            parent_id: Some(v + 1),
            raw: raw("achievements"),
        }]),
        Rows::AchievementsUsers(vec![AchievementsUserRow {
            id: 9,
            user_id: v,
            achievement_id: Some(v + 1),
            nbr_of_success: Some(v + 2),
            created_at: t,
            updated_at: t,
            raw: raw("achievements_users"),
        }]),
        Rows::Locations(vec![LocationRow {
            id: 10,
            user_id: v,
            campus_id: Some(v + 1),
            host: s("host"),
            primary: b,
            begin_at: t,
            end_at: t,
            raw: raw("locations"),
        }]),
        Rows::Coalitions(vec![CoalitionRow {
            id: 11,
            name: s("name"),
            slug: s("slug"),
            color: s("color"),
            image_url: s("image"),
            cover_url: s("cover"),
            score: Some(v),
            user_id: Some(v + 1),
            bloc_id: Some(v + 2),
            raw: raw("coalitions"),
        }]),
        Rows::Blocs(vec![BlocRow {
            id: 12,
            campus_id: Some(v),
            cursus_id: Some(v + 1),
            squad_size: Some(v + 2),
            created_at: t,
            updated_at: t,
            raw: raw("blocs"),
        }]),
        Rows::CoalitionsUsers(vec![CoalitionsUserRow {
            id: 13,
            user_id: v,
            coalition_id: v + 1,
            score: Some(v + 2),
            rank: Some(v + 3),
            created_at: t,
            updated_at: t,
            raw: raw("coalitions_users"),
        }]),
    ]
}

/// Replaces every row's raw text by a canonical serialisation, so rows read back from
/// PostgreSQL (which normalises JSONB) compare equal to what was written.
pub(crate) fn canonical(rows: Rows) -> Rows {
    macro_rules! canon {
        ($($v:ident),*) => {
            match rows {
                $(Rows::$v(mut rows) => {
                    for row in &mut rows {
                        row.raw = json(&row.raw).to_string();
                    }
                    Rows::$v(rows)
                })*
            }
        };
    }
    canon!(
        Campuses,
        Users,
        CampusUsers,
        Cursus,
        CursusUsers,
        Projects,
        ProjectsUsers,
        Achievements,
        AchievementsUsers,
        Locations,
        Coalitions,
        Blocs,
        CoalitionsUsers
    )
}

pub(crate) fn users_of(rows: Rows) -> Vec<UserRow> {
    match rows {
        Rows::Users(rows) => rows,
        other => panic!("expected users, got {:?}", other.table()),
    }
}
