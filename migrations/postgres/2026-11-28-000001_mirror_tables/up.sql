-- Mirror tables: one per 42 resource, keyed by the 42 id.
-- No foreign keys between mirror tables: relations can arrive before their parents,
-- and ft-integrity reports orphans instead of the database refusing them.
-- `raw` keeps the item as received; `deleted_at` is set when the API no longer has the row.

CREATE TABLE campuses (
    id BIGINT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    time_zone TEXT,
    country TEXT,
    city TEXT,
    active BOOLEAN,
    public BOOLEAN,
    users_count BIGINT,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);

CREATE TABLE users (
    id BIGINT PRIMARY KEY NOT NULL,
    login TEXT NOT NULL,
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    usual_full_name TEXT,
    displayname TEXT,
    kind TEXT,
    staff BOOLEAN,
    pool_month TEXT,
    pool_year TEXT,
    location TEXT,
    wallet BIGINT,
    correction_point BIGINT,
    alumni BOOLEAN,
    active BOOLEAN,
    image_url TEXT,
    anonymize_date TIMESTAMP,
    data_erasure_date TIMESTAMP,
    alumnized_at TIMESTAMP,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);
CREATE INDEX users_login_idx ON users (login);
CREATE INDEX users_email_idx ON users (email);
CREATE INDEX users_updated_at_idx ON users (updated_at);

CREATE TABLE campus_users (
    id BIGINT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL,
    campus_id BIGINT NOT NULL,
    is_primary BOOLEAN,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);
CREATE INDEX campus_users_user_id_idx ON campus_users (user_id);
CREATE INDEX campus_users_campus_id_idx ON campus_users (campus_id);

CREATE TABLE cursus (
    id BIGINT PRIMARY KEY NOT NULL,
    name TEXT,
    slug TEXT,
    kind TEXT,
    created_at TIMESTAMP,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);

CREATE TABLE cursus_users (
    id BIGINT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL,
    cursus_id BIGINT NOT NULL,
    grade TEXT,
    level DOUBLE PRECISION,
    begin_at TIMESTAMP,
    end_at TIMESTAMP,
    blackholed_at TIMESTAMP,
    has_coalition BOOLEAN,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);
CREATE INDEX cursus_users_user_id_idx ON cursus_users (user_id);
CREATE INDEX cursus_users_cursus_id_idx ON cursus_users (cursus_id);
CREATE INDEX cursus_users_updated_at_idx ON cursus_users (updated_at);

CREATE TABLE projects (
    id BIGINT PRIMARY KEY NOT NULL,
    name TEXT,
    slug TEXT,
    difficulty BIGINT,
    parent_id BIGINT,
    exam BOOLEAN,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);
CREATE INDEX projects_parent_id_idx ON projects (parent_id);

CREATE TABLE projects_users (
    id BIGINT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL,
    project_id BIGINT NOT NULL,
    occurrence BIGINT,
    final_mark BIGINT,
    status TEXT,
    validated BOOLEAN,
    current_team_id BIGINT,
    marked BOOLEAN,
    marked_at TIMESTAMP,
    retriable_at TIMESTAMP,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);
CREATE INDEX projects_users_user_id_idx ON projects_users (user_id);
CREATE INDEX projects_users_project_id_idx ON projects_users (project_id);
CREATE INDEX projects_users_updated_at_idx ON projects_users (updated_at);

CREATE TABLE achievements (
    id BIGINT PRIMARY KEY NOT NULL,
    name TEXT,
    description TEXT,
    tier TEXT,
    kind TEXT,
    visible BOOLEAN,
    image TEXT,
    nbr_of_success BIGINT,
    parent_id BIGINT,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);

CREATE TABLE achievements_users (
    id BIGINT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL,
    achievement_id BIGINT,
    nbr_of_success BIGINT,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);
CREATE INDEX achievements_users_user_id_idx ON achievements_users (user_id);
CREATE INDEX achievements_users_achievement_id_idx ON achievements_users (achievement_id);

CREATE TABLE locations (
    id BIGINT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL,
    campus_id BIGINT,
    host TEXT,
    "primary" BOOLEAN,
    begin_at TIMESTAMP,
    end_at TIMESTAMP,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);
CREATE INDEX locations_user_id_idx ON locations (user_id);
CREATE INDEX locations_campus_id_idx ON locations (campus_id);
CREATE INDEX locations_begin_at_idx ON locations (begin_at);

CREATE TABLE coalitions (
    id BIGINT PRIMARY KEY NOT NULL,
    name TEXT,
    slug TEXT,
    color TEXT,
    image_url TEXT,
    cover_url TEXT,
    score BIGINT,
    user_id BIGINT,
    bloc_id BIGINT,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);
CREATE INDEX coalitions_bloc_id_idx ON coalitions (bloc_id);

CREATE TABLE blocs (
    id BIGINT PRIMARY KEY NOT NULL,
    campus_id BIGINT,
    cursus_id BIGINT,
    squad_size BIGINT,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);
CREATE INDEX blocs_campus_id_idx ON blocs (campus_id);
CREATE INDEX blocs_cursus_id_idx ON blocs (cursus_id);

CREATE TABLE coalitions_users (
    id BIGINT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL,
    coalition_id BIGINT NOT NULL,
    score BIGINT,
    rank BIGINT,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    deleted_at TIMESTAMP
);
CREATE INDEX coalitions_users_user_id_idx ON coalitions_users (user_id);
CREATE INDEX coalitions_users_coalition_id_idx ON coalitions_users (coalition_id);
CREATE INDEX coalitions_users_updated_at_idx ON coalitions_users (updated_at);

-- Open sessions: the engine closes them when they end, and people ask who is logged in now.
CREATE INDEX locations_open_idx ON locations (campus_id) WHERE end_at IS NULL;
