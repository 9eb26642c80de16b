//! Diesel table definitions, shared by both backends.
//!
//! Written by hand rather than by `diesel print-schema`, because one definition serves two
//! databases: the `raw` column is JSONB on PostgreSQL and TEXT on SQLite, which the custom SQL type
//! [`sql_types::RawJson`] expresses. Keep it in step with `migrations/{sqlite,postgres}`; the
//! round-trip tests in `tests/` fail when a column is missing or mistyped.

#![allow(missing_docs)]

/// Custom SQL types.
pub mod sql_types {
    /// The `raw` column: JSONB on PostgreSQL (OID 3802), TEXT on SQLite. Rust values are JSON text.
    #[derive(diesel::sql_types::SqlType, diesel::query_builder::QueryId, Debug, Clone, Copy)]
    #[diesel(postgres_type(oid = 3802, array_oid = 3807))]
    #[diesel(sqlite_type(name = "Text"))]
    pub struct RawJson;
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    campuses (id) {
        id -> BigInt,
        name -> Text,
        time_zone -> Nullable<Text>,
        country -> Nullable<Text>,
        city -> Nullable<Text>,
        active -> Nullable<Bool>,
        public -> Nullable<Bool>,
        users_count -> Nullable<BigInt>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    users (id) {
        id -> BigInt,
        login -> Text,
        email -> Nullable<Text>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        usual_full_name -> Nullable<Text>,
        displayname -> Nullable<Text>,
        kind -> Nullable<Text>,
        staff -> Nullable<Bool>,
        pool_month -> Nullable<Text>,
        pool_year -> Nullable<Text>,
        location -> Nullable<Text>,
        wallet -> Nullable<BigInt>,
        correction_point -> Nullable<BigInt>,
        alumni -> Nullable<Bool>,
        active -> Nullable<Bool>,
        image_url -> Nullable<Text>,
        anonymize_date -> Nullable<Timestamp>,
        data_erasure_date -> Nullable<Timestamp>,
        alumnized_at -> Nullable<Timestamp>,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    campus_users (id) {
        id -> BigInt,
        user_id -> BigInt,
        campus_id -> BigInt,
        is_primary -> Nullable<Bool>,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    cursus (id) {
        id -> BigInt,
        name -> Nullable<Text>,
        slug -> Nullable<Text>,
        kind -> Nullable<Text>,
        created_at -> Nullable<Timestamp>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    cursus_users (id) {
        id -> BigInt,
        user_id -> BigInt,
        cursus_id -> BigInt,
        grade -> Nullable<Text>,
        level -> Nullable<Double>,
        begin_at -> Nullable<Timestamp>,
        end_at -> Nullable<Timestamp>,
        blackholed_at -> Nullable<Timestamp>,
        has_coalition -> Nullable<Bool>,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    projects (id) {
        id -> BigInt,
        name -> Nullable<Text>,
        slug -> Nullable<Text>,
        difficulty -> Nullable<BigInt>,
        parent_id -> Nullable<BigInt>,
        exam -> Nullable<Bool>,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    projects_users (id) {
        id -> BigInt,
        user_id -> BigInt,
        project_id -> BigInt,
        occurrence -> Nullable<BigInt>,
        final_mark -> Nullable<BigInt>,
        status -> Nullable<Text>,
        validated -> Nullable<Bool>,
        current_team_id -> Nullable<BigInt>,
        marked -> Nullable<Bool>,
        marked_at -> Nullable<Timestamp>,
        retriable_at -> Nullable<Timestamp>,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    achievements (id) {
        id -> BigInt,
        name -> Nullable<Text>,
        description -> Nullable<Text>,
        tier -> Nullable<Text>,
        kind -> Nullable<Text>,
        visible -> Nullable<Bool>,
        image -> Nullable<Text>,
        nbr_of_success -> Nullable<BigInt>,
        parent_id -> Nullable<BigInt>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    achievements_users (id) {
        id -> BigInt,
        user_id -> BigInt,
        achievement_id -> Nullable<BigInt>,
        nbr_of_success -> Nullable<BigInt>,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    locations (id) {
        id -> BigInt,
        user_id -> BigInt,
        campus_id -> Nullable<BigInt>,
        host -> Nullable<Text>,
        primary -> Nullable<Bool>,
        begin_at -> Nullable<Timestamp>,
        end_at -> Nullable<Timestamp>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    coalitions (id) {
        id -> BigInt,
        name -> Nullable<Text>,
        slug -> Nullable<Text>,
        color -> Nullable<Text>,
        image_url -> Nullable<Text>,
        cover_url -> Nullable<Text>,
        score -> Nullable<BigInt>,
        user_id -> Nullable<BigInt>,
        bloc_id -> Nullable<BigInt>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    blocs (id) {
        id -> BigInt,
        campus_id -> Nullable<BigInt>,
        cursus_id -> Nullable<BigInt>,
        squad_size -> Nullable<BigInt>,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::RawJson;
    coalitions_users (id) {
        id -> BigInt,
        user_id -> BigInt,
        coalition_id -> BigInt,
        score -> Nullable<BigInt>,
        rank -> Nullable<BigInt>,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
        raw -> RawJson,
        ingested_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    cursors (resource, scope) {
        resource -> Text,
        scope -> Text,
        watermark -> Nullable<Timestamp>,
        pass_since -> Nullable<Timestamp>,
        pass_until -> Nullable<Timestamp>,
        last_id -> Nullable<BigInt>,
        page -> BigInt,
        rows -> BigInt,
        format_version -> Integer,
        updated_at -> Timestamp,
        expected_rows -> Nullable<BigInt>,
    }
}

diesel::table! {
    tasks (id) {
        id -> BigInt,
        kind -> Text,
        scope -> Text,
        payload -> Text,
        lane -> Text,
        priority -> Integer,
        state -> Text,
        attempts -> Integer,
        next_run_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        fencing_token -> BigInt,
        last_error -> Nullable<Text>,
        dedupe_key -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    fetch_log (id) {
        id -> BigInt,
        at -> Timestamp,
        endpoint -> Text,
        scope -> Text,
        page -> Nullable<BigInt>,
        status -> Integer,
        items -> BigInt,
        retries -> Integer,
        wait_ms -> BigInt,
        token_refreshed -> Bool,
        task_id -> Nullable<BigInt>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    sync_runs (id) {
        id -> BigInt,
        kind -> Text,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        status -> Text,
        params -> Text,
        summary -> Nullable<Text>,
    }
}

diesel::table! {
    relation_queue (user_id) {
        user_id -> BigInt,
        enqueued_at -> Timestamp,
        reason -> Text,
        attempts -> Integer,
        taken_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    integrity_runs (id) {
        id -> BigInt,
        at -> Timestamp,
        status -> Text,
        report -> Text,
    }
}

diesel::table! {
    quarantine (resource, item_key) {
        resource -> Text,
        item_key -> Text,
        item_id -> Nullable<BigInt>,
        reason -> Text,
        raw -> Text,
        first_seen -> Timestamp,
        last_seen -> Timestamp,
        times -> Integer,
    }
}
