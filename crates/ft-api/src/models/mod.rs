//! Lenient wire models for the 42 API v2.
//!
//! Rules, from `42-api.md` §5–6: every field except `id` is optional (`Option` or a defaulted
//! `Vec`), because the API sends `null` for blanks and older shapes lack newer fields; unknown
//! fields are ignored by serde but reported as schema drift by the client; enum-like strings
//! (`kind`, `status`, `grade` …) stay `String`; timestamps are `DateTime<Utc>` and accept any
//! offset (`anonymize_date` carries the campus offset, e.g. `+02:00`); ids are `i64`. An item
//! without an `id` fails to decode, so a row is never dropped silently.
//!
//! Nested collections this crate does not interpret (user detail's `groups`, project sessions …)
//! are kept as `serde_json::Value`, which also keeps them out of drift reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod lenient;

pub use lenient::{opt_string_or_number, opt_timestamp};

/// A timestamp as sent by the API, normalised to UTC.
pub type Timestamp = DateTime<Utc>;

/// A user's picture links.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The full-size picture.
    #[serde(default)]
    pub link: Option<String>,
    /// Resized variants.
    #[serde(default)]
    pub versions: Option<ImageVersions>,
}

/// Resized picture variants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageVersions {
    /// Large.
    #[serde(default)]
    pub large: Option<String>,
    /// Medium.
    #[serde(default)]
    pub medium: Option<String>,
    /// Small.
    #[serde(default)]
    pub small: Option<String>,
    /// Micro.
    #[serde(default)]
    pub micro: Option<String>,
}

/// The short ("index") user shape returned by user lists and embedded in other objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShortUser {
    /// User id.
    pub id: i64,
    /// E-mail (`3b3-<id>@student.42.fr` once anonymised).
    #[serde(default)]
    pub email: Option<String>,
    /// Login (`3b3-<id>` once anonymised).
    #[serde(default)]
    pub login: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Full usual name.
    #[serde(default)]
    pub usual_full_name: Option<String>,
    /// Usual first name (often null).
    #[serde(default)]
    pub usual_first_name: Option<String>,
    /// API URL of the user.
    #[serde(default)]
    pub url: Option<String>,
    /// Phone (usually `"hidden"`).
    #[serde(default)]
    pub phone: Option<String>,
    /// Display name.
    #[serde(default)]
    pub displayname: Option<String>,
    /// `student`, `external`, `admin`, `staff` … kept as text.
    #[serde(default)]
    pub kind: Option<String>,
    /// Picture links (older shapes had `image_url` instead).
    #[serde(default)]
    pub image: Option<Image>,
    /// Whether the user is staff (`staff?`).
    #[serde(default, rename = "staff?")]
    pub staff: Option<bool>,
    /// Evaluation points.
    #[serde(default)]
    pub correction_point: Option<i64>,
    /// Piscine month, lowercase English.
    #[serde(default)]
    pub pool_month: Option<String>,
    /// Piscine year, as text (the API sends a string).
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub pool_year: Option<String>,
    /// Current host, or null when not logged in.
    #[serde(default)]
    pub location: Option<String>,
    /// Wallet points.
    #[serde(default)]
    pub wallet: Option<i64>,
    /// When the account is (or was) anonymised; carries the campus offset on the wire.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub anonymize_date: Option<Timestamp>,
    /// When the data is (or was) erased.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub data_erasure_date: Option<Timestamp>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created_at: Option<Timestamp>,
    /// Last update time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub updated_at: Option<Timestamp>,
    /// When the user became an alumnus.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub alumnized_at: Option<Timestamp>,
    /// Whether the user is an alumnus (`alumni?`).
    #[serde(default, rename = "alumni?")]
    pub alumni: Option<bool>,
    /// Whether the account is active (`active?`).
    #[serde(default, rename = "active?")]
    pub active: Option<bool>,
    /// The legacy picture URL of older API versions.
    #[serde(default)]
    pub image_url: Option<String>,
}

/// A user in list endpoints (`/v2/users`, `/v2/campus/:id/users`): the short shape.
pub type User = ShortUser;

/// `GET /v2/users/:id`: the short shape plus embedded collections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDetail {
    /// User id.
    pub id: i64,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Login.
    #[serde(default)]
    pub login: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Full usual name.
    #[serde(default)]
    pub usual_full_name: Option<String>,
    /// Usual first name.
    #[serde(default)]
    pub usual_first_name: Option<String>,
    /// API URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Display name.
    #[serde(default)]
    pub displayname: Option<String>,
    /// Kind, as text.
    #[serde(default)]
    pub kind: Option<String>,
    /// Picture links.
    #[serde(default)]
    pub image: Option<Image>,
    /// `staff?`.
    #[serde(default, rename = "staff?")]
    pub staff: Option<bool>,
    /// Evaluation points.
    #[serde(default)]
    pub correction_point: Option<i64>,
    /// Piscine month.
    #[serde(default)]
    pub pool_month: Option<String>,
    /// Piscine year.
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub pool_year: Option<String>,
    /// Current host.
    #[serde(default)]
    pub location: Option<String>,
    /// Wallet points.
    #[serde(default)]
    pub wallet: Option<i64>,
    /// Anonymisation date.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub anonymize_date: Option<Timestamp>,
    /// Data erasure date.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub data_erasure_date: Option<Timestamp>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created_at: Option<Timestamp>,
    /// Last update time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub updated_at: Option<Timestamp>,
    /// Alumnus since.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub alumnized_at: Option<Timestamp>,
    /// `alumni?`.
    #[serde(default, rename = "alumni?")]
    pub alumni: Option<bool>,
    /// `active?`.
    #[serde(default, rename = "active?")]
    pub active: Option<bool>,
    /// Legacy picture URL.
    #[serde(default)]
    pub image_url: Option<String>,
    /// Cursus memberships (without the nested user).
    #[serde(default)]
    pub cursus_users: Vec<CursusUser>,
    /// Project attempts (light form).
    #[serde(default)]
    pub projects_users: Vec<ProjectsUser>,
    /// Campuses the user belongs to.
    #[serde(default)]
    pub campus: Vec<Campus>,
    /// Campus memberships (`is_primary` marks the main one).
    #[serde(default)]
    pub campus_users: Vec<CampusUser>,
    /// Achievements (duplicates have been seen).
    #[serde(default)]
    pub achievements: Vec<Achievement>,
    /// Groups, uninterpreted.
    #[serde(default)]
    pub groups: Vec<Value>,
    /// Languages, uninterpreted.
    #[serde(default)]
    pub languages_users: Vec<Value>,
    /// Titles, uninterpreted.
    #[serde(default)]
    pub titles: Vec<Value>,
    /// Title selections, uninterpreted.
    #[serde(default)]
    pub titles_users: Vec<Value>,
    /// Partnerships, uninterpreted.
    #[serde(default)]
    pub partnerships: Vec<Value>,
    /// Expertises, uninterpreted.
    #[serde(default)]
    pub expertises_users: Vec<Value>,
    /// Roles, uninterpreted.
    #[serde(default)]
    pub roles: Vec<Value>,
    /// Godchildren, uninterpreted.
    #[serde(default)]
    pub patroned: Vec<Value>,
    /// Godparents, uninterpreted.
    #[serde(default)]
    pub patroning: Vec<Value>,
}

/// A language reference inside a campus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Language {
    /// Language id.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Identifier such as `fr`.
    #[serde(default)]
    pub identifier: Option<String>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created_at: Option<Timestamp>,
    /// Last update time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub updated_at: Option<Timestamp>,
}

/// A campus (`/v2/campus`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campus {
    /// Campus id.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// IANA time zone, e.g. `Europe/Paris`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Main language.
    #[serde(default)]
    pub language: Option<Language>,
    /// Users counted by the server (differs from the user list's total).
    #[serde(default)]
    pub users_count: Option<i64>,
    /// Vogsphere id.
    #[serde(default)]
    pub vogsphere_id: Option<i64>,
    /// Country.
    #[serde(default)]
    pub country: Option<String>,
    /// Street address.
    #[serde(default)]
    pub address: Option<String>,
    /// Postal code.
    #[serde(default)]
    pub zip: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Web site.
    #[serde(default)]
    pub website: Option<String>,
    /// Facebook page.
    #[serde(default)]
    pub facebook: Option<String>,
    /// Twitter account.
    #[serde(default)]
    pub twitter: Option<String>,
    /// Whether the campus is active.
    #[serde(default)]
    pub active: Option<bool>,
    /// Whether the campus is public.
    #[serde(default)]
    pub public: Option<bool>,
    /// E-mail domain.
    #[serde(default)]
    pub email_extension: Option<String>,
    /// Whether phones are hidden by default.
    #[serde(default)]
    pub default_hidden_phone: Option<bool>,
    /// Endpoint object, uninterpreted.
    #[serde(default)]
    pub endpoint: Option<Value>,
}

/// A user's membership of a campus (`campus_users`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampusUser {
    /// Membership id.
    pub id: i64,
    /// User id.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// Campus id.
    #[serde(default)]
    pub campus_id: Option<i64>,
    /// Whether this is the user's primary campus.
    #[serde(default)]
    pub is_primary: Option<bool>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created_at: Option<Timestamp>,
    /// Last update time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub updated_at: Option<Timestamp>,
}

/// A cursus (`/v2/cursus`), also embedded in cursus users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursus {
    /// Cursus id (21 = 42cursus, 9 = C Piscine).
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Slug.
    #[serde(default)]
    pub slug: Option<String>,
    /// `main`, `piscine` … kept as text.
    #[serde(default)]
    pub kind: Option<String>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created_at: Option<Timestamp>,
}

/// A skill level inside a cursus user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skill {
    /// Skill id.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Level reached.
    #[serde(default)]
    pub level: Option<f64>,
}

/// A user's enrolment in a cursus (`/v2/cursus_users`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursusUser {
    /// Enrolment id.
    pub id: i64,
    /// Start (may lie in the future).
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub begin_at: Option<Timestamp>,
    /// End, or null while enrolled.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub end_at: Option<Timestamp>,
    /// Grade (`Pisciner`, `Cadet` …) or null.
    #[serde(default)]
    pub grade: Option<String>,
    /// Level (changes during a piscine without touching `updated_at`).
    #[serde(default)]
    pub level: Option<f64>,
    /// Skill levels.
    #[serde(default)]
    pub skills: Vec<Skill>,
    /// Cursus id.
    #[serde(default)]
    pub cursus_id: Option<i64>,
    /// Whether the user has a coalition in this cursus.
    #[serde(default)]
    pub has_coalition: Option<bool>,
    /// Black hole date.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub blackholed_at: Option<Timestamp>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created_at: Option<Timestamp>,
    /// Last update time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub updated_at: Option<Timestamp>,
    /// The user (absent inside user detail).
    #[serde(default)]
    pub user: Option<ShortUser>,
    /// The cursus.
    #[serde(default)]
    pub cursus: Option<Cursus>,
}

/// A project reference inside a projects user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRef {
    /// Project id.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Slug.
    #[serde(default)]
    pub slug: Option<String>,
    /// Parent project id.
    #[serde(default)]
    pub parent_id: Option<i64>,
    /// API URL of the project (present when embedded as a parent or child).
    #[serde(default)]
    pub url: Option<String>,
}

/// A project (`/v2/projects`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Project id.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Slug.
    #[serde(default)]
    pub slug: Option<String>,
    /// Difficulty (experience points).
    #[serde(default)]
    pub difficulty: Option<i64>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Parent project.
    #[serde(default)]
    pub parent: Option<ProjectRef>,
    /// Child projects.
    #[serde(default)]
    pub children: Vec<ProjectRef>,
    /// Whether it is an exam.
    #[serde(default)]
    pub exam: Option<bool>,
    /// Git id.
    #[serde(default)]
    pub git_id: Option<i64>,
    /// Repository.
    #[serde(default)]
    pub repository: Option<String>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created_at: Option<Timestamp>,
    /// Last update time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub updated_at: Option<Timestamp>,
    /// Cursus the project belongs to.
    #[serde(default)]
    pub cursus: Vec<Cursus>,
    /// Campuses, uninterpreted (large).
    #[serde(default)]
    pub campus: Vec<Value>,
    /// Objectives, uninterpreted.
    #[serde(default)]
    pub objectives: Option<Value>,
    /// Attachments, uninterpreted.
    #[serde(default)]
    pub attachments: Option<Value>,
    /// Skills, uninterpreted.
    #[serde(default)]
    pub skills: Option<Value>,
    /// Videos, uninterpreted.
    #[serde(default)]
    pub videos: Option<Value>,
    /// Tags, uninterpreted.
    #[serde(default)]
    pub tags: Option<Value>,
    /// Project sessions, uninterpreted.
    #[serde(default)]
    pub project_sessions: Option<Value>,
}

/// A user's attempt at a project (`/v2/projects_users`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectsUser {
    /// Attempt id.
    pub id: i64,
    /// Retry count (0 = first attempt).
    #[serde(default)]
    pub occurrence: Option<i64>,
    /// Final mark (may be -42 or above 100).
    #[serde(default)]
    pub final_mark: Option<i64>,
    /// `in_progress`, `finished` … kept as text.
    #[serde(default)]
    pub status: Option<String>,
    /// `validated?`.
    #[serde(default, rename = "validated?")]
    pub validated: Option<bool>,
    /// Current team id.
    #[serde(default)]
    pub current_team_id: Option<i64>,
    /// The project.
    #[serde(default)]
    pub project: Option<ProjectRef>,
    /// Cursus ids the attempt counts for.
    #[serde(default)]
    pub cursus_ids: Vec<i64>,
    /// When it was marked.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub marked_at: Option<Timestamp>,
    /// Whether it is marked.
    #[serde(default)]
    pub marked: Option<bool>,
    /// When it may be retried.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub retriable_at: Option<Timestamp>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created_at: Option<Timestamp>,
    /// Last update time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub updated_at: Option<Timestamp>,
    /// The user (list endpoints only).
    #[serde(default)]
    pub user: Option<ShortUser>,
    /// Teams, uninterpreted.
    #[serde(default)]
    pub teams: Option<Value>,
}

/// An achievement (`/v2/achievements`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Achievement {
    /// Achievement id.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tier (`none`, `easy` …) as text.
    #[serde(default)]
    pub tier: Option<String>,
    /// Kind (`project`, `social` …) as text.
    #[serde(default)]
    pub kind: Option<String>,
    /// Whether it is visible.
    #[serde(default)]
    pub visible: Option<bool>,
    /// Image path.
    #[serde(default)]
    pub image: Option<String>,
    /// Successes needed.
    #[serde(default)]
    pub nbr_of_success: Option<i64>,
    /// URL listing its users.
    #[serde(default)]
    pub users_url: Option<String>,
    /// Child achievements, uninterpreted.
    #[serde(default)]
    pub achievements: Option<Value>,
    /// Campus names, uninterpreted.
    #[serde(default)]
    pub campus: Option<Value>,
    /// Parent, uninterpreted.
    #[serde(default)]
    pub parent: Option<Value>,
    /// Title, uninterpreted.
    #[serde(default)]
    pub title: Option<Value>,
}

/// A user's achievement (`/v2/achievements_users`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AchievementsUser {
    /// Row id.
    pub id: i64,
    /// Achievement id.
    #[serde(default)]
    pub achievement_id: Option<i64>,
    /// User id.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// User login.
    #[serde(default)]
    pub login: Option<String>,
    /// User URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Successes counted.
    #[serde(default)]
    pub nbr_of_success: Option<i64>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created_at: Option<Timestamp>,
    /// Last update time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub updated_at: Option<Timestamp>,
}

/// A login session at a campus host (`/v2/locations`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Session id.
    pub id: i64,
    /// Login time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub begin_at: Option<Timestamp>,
    /// Logout time, or null while logged in.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub end_at: Option<Timestamp>,
    /// Whether this is the primary session.
    #[serde(default)]
    pub primary: Option<bool>,
    /// Host name, e.g. `c1r2s1`.
    #[serde(default)]
    pub host: Option<String>,
    /// Campus id.
    #[serde(default)]
    pub campus_id: Option<i64>,
    /// The user.
    #[serde(default)]
    pub user: Option<ShortUser>,
    /// Legacy, always null.
    #[serde(default)]
    pub floor: Option<Value>,
    /// Legacy, always null.
    #[serde(default)]
    pub row: Option<Value>,
    /// Legacy, always null.
    #[serde(default)]
    pub post: Option<Value>,
}

/// A coalition (`/v2/coalitions`), also embedded in blocs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coalition {
    /// Coalition id.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Slug.
    #[serde(default)]
    pub slug: Option<String>,
    /// Image URL.
    #[serde(default)]
    pub image_url: Option<String>,
    /// Cover URL.
    #[serde(default)]
    pub cover_url: Option<String>,
    /// Colour, `#RRGGBB`.
    #[serde(default)]
    pub color: Option<String>,
    /// Score.
    #[serde(default)]
    pub score: Option<i64>,
    /// Leader's user id.
    #[serde(default)]
    pub user_id: Option<i64>,
}

/// A bloc: the coalitions of one campus and cursus (`/v2/blocs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bloc {
    /// Bloc id.
    pub id: i64,
    /// Campus id.
    #[serde(default)]
    pub campus_id: Option<i64>,
    /// Cursus id.
    #[serde(default)]
    pub cursus_id: Option<i64>,
    /// Squad size.
    #[serde(default)]
    pub squad_size: Option<i64>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created_at: Option<Timestamp>,
    /// Last update time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub updated_at: Option<Timestamp>,
    /// The bloc's coalitions.
    #[serde(default)]
    pub coalitions: Vec<Coalition>,
}

/// A user's coalition membership (`/v2/coalitions_users`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoalitionsUser {
    /// Row id.
    pub id: i64,
    /// Coalition id.
    #[serde(default)]
    pub coalition_id: Option<i64>,
    /// User id.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// Score.
    #[serde(default)]
    pub score: Option<i64>,
    /// Rank.
    #[serde(default)]
    pub rank: Option<i64>,
    /// This year's score (seen in filters; may appear).
    #[serde(default)]
    pub this_year_score: Option<i64>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created_at: Option<Timestamp>,
    /// Last update time.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub updated_at: Option<Timestamp>,
}

/// `GET /oauth/token/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The user the token acts for; null for application tokens.
    #[serde(default)]
    pub resource_owner_id: Option<i64>,
    /// Granted scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Seconds until the token expires.
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
    /// The application.
    #[serde(default)]
    pub application: Option<TokenApplication>,
    /// Creation time, unix seconds.
    #[serde(default)]
    pub created_at: Option<i64>,
}

/// The application a token belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenApplication {
    /// The application's client id.
    #[serde(default)]
    pub uid: Option<String>,
}

#[cfg(test)]
mod tests;
