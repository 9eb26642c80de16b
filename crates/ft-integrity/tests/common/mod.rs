//! Row builders and helpers shared by the integrity tests.
#![allow(dead_code, unreachable_pub)]

use chrono::{NaiveDateTime, TimeDelta, Utc};
use ft_integrity::{Finding, Report, Severity};
use ft_store::rows::*;
use ft_store::{ApplyPage, Rows, Store};

/// Now (UTC, naive) plus `minutes`.
pub fn at(minutes: i64) -> NaiveDateTime {
    Utc::now().naive_utc() + TimeDelta::minutes(minutes)
}

pub fn user(id: i64, login: &str, email: &str) -> UserRow {
    UserRow {
        id,
        login: login.into(),
        email: Some(email.into()),
        first_name: None,
        last_name: None,
        usual_full_name: None,
        displayname: None,
        kind: Some("student".into()),
        staff: Some(false),
        pool_month: None,
        pool_year: None,
        location: None,
        wallet: Some(0),
        correction_point: Some(0),
        alumni: Some(false),
        active: Some(true),
        image_url: None,
        anonymize_date: None,
        data_erasure_date: None,
        alumnized_at: None,
        created_at: None,
        updated_at: Some(at(-60)),
        raw: serde_json::json!({"id": id, "login": login, "email": email}).to_string(),
    }
}

pub fn campus(id: i64) -> CampusRow {
    CampusRow {
        id,
        name: format!("campus {id}"),
        time_zone: None,
        country: None,
        city: None,
        active: Some(true),
        public: Some(true),
        users_count: None,
        raw: serde_json::json!({"id": id}).to_string(),
    }
}

pub fn campus_user(id: i64, user_id: i64, campus_id: i64) -> CampusUserRow {
    CampusUserRow {
        id,
        user_id,
        campus_id,
        is_primary: Some(true),
        created_at: None,
        updated_at: Some(at(-60)),
        raw: serde_json::json!({"id": id, "user_id": user_id, "campus_id": campus_id}).to_string(),
    }
}

pub fn projects_user(id: i64, user_id: i64, project_id: i64) -> ProjectsUserRow {
    ProjectsUserRow {
        id,
        user_id,
        project_id,
        occurrence: None,
        final_mark: None,
        status: None,
        validated: None,
        current_team_id: None,
        marked: None,
        marked_at: None,
        retriable_at: None,
        created_at: None,
        updated_at: Some(at(-60)),
        raw: serde_json::json!({"id": id}).to_string(),
    }
}

pub fn put(store: &Store, rows: impl Into<Rows>) {
    store
        .apply_page(ApplyPage::rows(rows.into()))
        .expect("planting rows");
}

/// Findings of `check` with `severity`.
pub fn found<'a>(report: &'a Report, check: &str, severity: Severity) -> Vec<&'a Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.check == check && f.severity == severity)
        .collect()
}
