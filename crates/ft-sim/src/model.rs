//! Row types of the simulated dataset, how each renders to the API's JSON, and which fields each
//! table exposes to `filter[...]`, `range[...]` and `sort`.
//!
//! Rows are compact typed structs, rendered on demand, because 50,000 users bring about three
//! million relation rows and pre-rendered JSON would need gigabytes. Every endpoint renders a row
//! through the same function, so the same row always has the same JSON wherever it is listed.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::time::{Ms, fmt_offset, fmt_utc};

/// Type of a field, used to parse filter and range values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Float,
    Bool,
    Str,
    Time,
    /// Several integers (a row matches a filter when any of them matches).
    Ints,
}

/// A field value read from a row, for filtering and sorting.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(Cow<'a, str>),
    Time(Ms),
    Ints(Vec<i64>),
}

/// Accessor for one field: `get(row, now)`; `now` serves virtual fields such as `active`.
pub(crate) type Getter<R> = for<'a> fn(&'a R, Ms) -> Val<'a>;

/// One field of a table as the query language sees it.
pub(crate) struct FieldDef<R: 'static> {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) get: Getter<R>,
    /// Plain attributes can be sorted on and ranged; virtual filters (`active`, `campus_id` on
    /// cursus_users, ...) can only be filtered on.
    pub(crate) plain: bool,
}

const fn plain<R>(name: &'static str, kind: Kind, get: Getter<R>) -> FieldDef<R> {
    FieldDef {
        name,
        kind,
        get,
        plain: true,
    }
}

const fn virt<R>(name: &'static str, kind: Kind, get: Getter<R>) -> FieldDef<R> {
    FieldDef {
        name,
        kind,
        get,
        plain: false,
    }
}

fn opt_time(value: Option<Ms>) -> Val<'static> {
    value.map_or(Val::Null, Val::Time)
}

fn opt_int(value: Option<i64>) -> Val<'static> {
    value.map_or(Val::Null, Val::Int)
}

fn ts(ms: Ms) -> Value {
    Value::String(fmt_utc(ms))
}

fn opt_ts(ms: Option<Ms>) -> Value {
    ms.map_or(Value::Null, ts)
}

/// Context a row needs to render: embedded users and referenced objects.
pub(crate) struct RenderCtx<'a> {
    pub(crate) store: &'a crate::store::Store,
    /// Render embedded users from the current user row instead of the row's snapshot.
    pub(crate) live_users: bool,
    /// Rendered short users of this call, by snapshot address: a page of relation rows often
    /// embeds the same user many times, and building the JSON dominates the cost.
    cache: RefCell<HashMap<usize, Value>>,
}

impl<'a> RenderCtx<'a> {
    pub(crate) fn new(store: &'a crate::store::Store, live_users: bool) -> Self {
        Self {
            store,
            live_users,
            cache: RefCell::new(HashMap::new()),
        }
    }

    fn user<'u>(&'u self, snapshot: &'u Arc<UserData>) -> &'u UserData {
        if self.live_users
            && let Some(current) = self.store.users.rows.get(&snapshot.id)
        {
            return &current.data;
        }
        snapshot
    }

    /// The embedded short user of a relation row.
    fn short_user(&self, snapshot: &Arc<UserData>) -> Value {
        let user = self.user(snapshot);
        let key = std::ptr::from_ref(user) as usize;
        self.cache
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| user.render_short())
            .clone()
    }
}

/// A table's row type.
pub(crate) trait Record: Sized + Send + Sync + 'static {
    /// Table name, as in the store and the truth.
    const TABLE: &'static str;
    /// Fields usable in `filter`, `range` and `sort`.
    const FIELDS: &'static [FieldDef<Self>];
    /// Fields that are filterable but not sortable (the API answers `Sort Error`).
    const UNSORTABLE: &'static [&'static str] = &[];
    /// Default order when the client gives no `sort` (`(field, descending)`).
    const DEFAULT_SORT: &'static [(&'static str, bool)];
    /// Whether the table keeps a per-user index (relation tables with a plain `user_id`).
    const USER_INDEX: bool = false;

    fn id(&self) -> i64;
    /// The user the row belongs to, for the per-user index.
    fn user_id(&self) -> Option<i64> {
        None
    }
    fn render(&self, ctx: &RenderCtx<'_>) -> Value;
}

// ---------------------------------------------------------------------------------------------
// Campuses, cursus, projects, achievements (reference data)

/// A campus.
#[derive(Debug, Clone)]
pub(crate) struct Campus {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) time_zone: &'static str,
    pub(crate) offset_minutes: i32,
    pub(crate) country: &'static str,
    pub(crate) city: String,
    pub(crate) language: (i64, &'static str, &'static str),
    pub(crate) users_count: i64,
    pub(crate) vogsphere_id: Option<i64>,
    pub(crate) host_prefix: &'static str,
}

impl Campus {
    pub(crate) fn render_value(&self) -> Value {
        let slug = self.name.to_lowercase().replace(' ', "-");
        json!({
            "id": self.id,
            "name": self.name,
            "time_zone": self.time_zone,
            "language": {
                "id": self.language.0,
                "name": self.language.1,
                "identifier": self.language.2,
                "created_at": "2014-11-02T16:43:38.480Z",
                "updated_at": "2025-11-15T09:12:41.190Z"
            },
            "users_count": self.users_count,
            "vogsphere_id": self.vogsphere_id,
            "country": self.country,
            "address": format!("{} rue de la Simulation", self.id * 7),
            "zip": format!("{:05}", 75000 + self.id * 17),
            "city": self.city,
            "website": format!("https://42{slug}.example"),
            "facebook": format!("https://www.facebook.com/42{slug}"),
            "twitter": "",
            "active": true,
            "public": true,
            "email_extension": "42.fr",
            "default_hidden_phone": false,
            "endpoint": {
                "id": self.id,
                "url": format!("https://{slug}.endpoint.example"),
                "description": format!("{} endpoint", self.name),
                "created_at": "2019-01-04T09:00:00.000Z",
                "updated_at": "2025-06-01T09:00:00.000Z"
            }
        })
    }
}

impl Record for Campus {
    const TABLE: &'static str = "campuses";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.id)),
        plain("name", Kind::Str, |r, _| Val::Str(Cow::Borrowed(&r.name))),
        plain("time_zone", Kind::Str, |r, _| {
            Val::Str(Cow::Borrowed(r.time_zone))
        }),
        plain("country", Kind::Str, |r, _| {
            Val::Str(Cow::Borrowed(r.country))
        }),
        plain("city", Kind::Str, |r, _| Val::Str(Cow::Borrowed(&r.city))),
        plain("users_count", Kind::Int, |r, _| Val::Int(r.users_count)),
        plain("vogsphere_id", Kind::Int, |r, _| opt_int(r.vogsphere_id)),
        plain("active", Kind::Bool, |_, _| Val::Bool(true)),
        plain("public", Kind::Bool, |_, _| Val::Bool(true)),
    ];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("id", true)];

    fn id(&self) -> i64 {
        self.id
    }
    fn render(&self, _ctx: &RenderCtx<'_>) -> Value {
        self.render_value()
    }
}

/// A cursus (9 "C Piscine" and 21 "42cursus").
#[derive(Debug, Clone)]
pub(crate) struct Cursus {
    pub(crate) id: i64,
    pub(crate) name: &'static str,
    pub(crate) slug: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) created_at: Ms,
}

impl Cursus {
    pub(crate) fn render_value(&self) -> Value {
        json!({
            "id": self.id,
            "created_at": fmt_utc(self.created_at),
            "name": self.name,
            "slug": self.slug,
            "kind": self.kind
        })
    }
}

impl Record for Cursus {
    const TABLE: &'static str = "cursus";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.id)),
        plain("name", Kind::Str, |r, _| Val::Str(Cow::Borrowed(r.name))),
        plain("slug", Kind::Str, |r, _| Val::Str(Cow::Borrowed(r.slug))),
        plain("kind", Kind::Str, |r, _| Val::Str(Cow::Borrowed(r.kind))),
        plain("created_at", Kind::Time, |r, _| Val::Time(r.created_at)),
    ];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("id", true)];

    fn id(&self) -> i64 {
        self.id
    }
    fn render(&self, _ctx: &RenderCtx<'_>) -> Value {
        self.render_value()
    }
}

/// A project.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) slug: String,
    pub(crate) difficulty: i64,
    pub(crate) parent_id: Option<i64>,
    pub(crate) exam: bool,
    pub(crate) cursus_id: i64,
    pub(crate) created_at: Ms,
    pub(crate) updated_at: Ms,
}

impl Record for Project {
    const TABLE: &'static str = "projects";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.id)),
        plain("name", Kind::Str, |r, _| Val::Str(Cow::Borrowed(&r.name))),
        plain("slug", Kind::Str, |r, _| Val::Str(Cow::Borrowed(&r.slug))),
        plain("difficulty", Kind::Int, |r, _| Val::Int(r.difficulty)),
        plain("parent_id", Kind::Int, |r, _| opt_int(r.parent_id)),
        plain("exam", Kind::Bool, |r, _| Val::Bool(r.exam)),
        plain("created_at", Kind::Time, |r, _| Val::Time(r.created_at)),
        plain("updated_at", Kind::Time, |r, _| Val::Time(r.updated_at)),
        virt("cursus", Kind::Ints, |r, _| Val::Ints(vec![r.cursus_id])),
    ];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("id", true)];

    fn id(&self) -> i64 {
        self.id
    }
    fn render(&self, ctx: &RenderCtx<'_>) -> Value {
        let store = ctx.store;
        let parent = self.parent_id.and_then(|id| store.projects.rows.get(&id)).map_or(
            Value::Null,
            |p| json!({"id": p.id, "name": p.name, "slug": p.slug, "url": format!("https://api.intra.42.fr/v2/projects/{}", p.slug)}),
        );
        let children: Vec<Value> = store
            .projects
            .rows
            .values()
            .filter(|p| p.parent_id == Some(self.id))
            .map(|p| json!({"id": p.id, "name": p.name, "slug": p.slug, "url": format!("https://api.intra.42.fr/v2/projects/{}", p.slug)}))
            .collect();
        let cursus: Vec<Value> = store
            .cursus
            .rows
            .get(&self.cursus_id)
            .map(Cursus::render_value)
            .into_iter()
            .collect();
        let campus: Vec<Value> = store
            .campuses
            .rows
            .values()
            .map(Campus::render_value)
            .collect();
        json!({
            "id": self.id,
            "name": self.name,
            "slug": self.slug,
            "difficulty": self.difficulty,
            "parent": parent,
            "children": children,
            "attachments": [],
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
            "exam": self.exam,
            "git_id": if self.exam { Value::Null } else { json!(self.id * 3 + 1000) },
            "repository": Value::Null,
            "cursus": cursus,
            "campus": campus,
            "videos": [],
            "project_sessions": [{
                "id": self.id + 5000,
                "solo": self.exam,
                "begin_at": Value::Null,
                "end_at": Value::Null,
                "estimate_time": format!("{} hours", 10 + self.difficulty / 50),
                "difficulty": self.difficulty,
                "objectives": [],
                "description": format!("Session of {}", self.name),
                "duration_days": Value::Null,
                "terminating_after": Value::Null,
                "project_id": self.id,
                "campus_id": Value::Null,
                "cursus_id": self.cursus_id,
                "created_at": ts(self.created_at),
                "updated_at": ts(self.updated_at),
                "max_people": Value::Null,
                "is_subscriptable": true,
                "scales": [{"id": self.id + 9000, "correction_number": 3, "is_primary": true}],
                "uploads": [],
                "team_behaviour": "by_team",
                "commit": Value::Null
            }]
        })
    }
}

/// An achievement.
#[derive(Debug, Clone)]
pub(crate) struct Achievement {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) tier: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) visible: bool,
    pub(crate) image: Option<String>,
    pub(crate) nbr_of_success: Option<i64>,
}

impl Achievement {
    fn render_value(&self, campus_names: Vec<Value>) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "tier": self.tier,
            "kind": self.kind,
            "visible": self.visible,
            "image": self.image,
            "nbr_of_success": self.nbr_of_success,
            "users_url": format!("https://api.intra.42.fr/v2/achievements/{}/users", self.id),
            "achievements": [],
            "campus": campus_names,
            "parent": Value::Null,
            "title": Value::Null
        })
    }

    /// The shorter form embedded in a user's detail (`achievements[]`).
    pub(crate) fn render_short(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "tier": self.tier,
            "kind": self.kind,
            "visible": self.visible,
            "image": self.image,
            "nbr_of_success": self.nbr_of_success,
            "users_url": format!("https://api.intra.42.fr/v2/achievements/{}/users", self.id)
        })
    }
}

impl Record for Achievement {
    const TABLE: &'static str = "achievements";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.id)),
        plain("name", Kind::Str, |r, _| Val::Str(Cow::Borrowed(&r.name))),
        plain("tier", Kind::Str, |r, _| Val::Str(Cow::Borrowed(r.tier))),
        plain("kind", Kind::Str, |r, _| Val::Str(Cow::Borrowed(r.kind))),
        plain("visible", Kind::Bool, |r, _| Val::Bool(r.visible)),
        plain("nbr_of_success", Kind::Int, |r, _| {
            opt_int(r.nbr_of_success)
        }),
    ];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("id", false)];

    fn id(&self) -> i64 {
        self.id
    }
    fn render(&self, ctx: &RenderCtx<'_>) -> Value {
        let names = ctx
            .store
            .campuses
            .rows
            .values()
            .map(|c| Value::String(c.name.clone()))
            .collect();
        self.render_value(names)
    }
}

// ---------------------------------------------------------------------------------------------
// Users

/// The data of one version of a user (what the short user shape shows).
#[derive(Debug, Clone)]
pub(crate) struct UserData {
    pub(crate) id: i64,
    pub(crate) login: String,
    pub(crate) email: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) usual_first_name: Option<String>,
    pub(crate) phone: Option<&'static str>,
    pub(crate) kind: &'static str,
    /// Hex path component of the avatar, `None` for a user without a photo (all-null image).
    pub(crate) image_hash: Option<u64>,
    pub(crate) staff: bool,
    pub(crate) correction_point: i64,
    pub(crate) pool_month: Option<&'static str>,
    pub(crate) pool_year: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) wallet: i64,
    pub(crate) anonymize_date: Option<Ms>,
    pub(crate) data_erasure_date: Option<Ms>,
    pub(crate) offset_minutes: i32,
    pub(crate) created_at: Ms,
    pub(crate) updated_at: Ms,
    pub(crate) alumnized_at: Option<Ms>,
    pub(crate) active: bool,
    /// A field clients do not know about, carried by a few users.
    pub(crate) pronoun: Option<&'static str>,
    /// Primary campus (not rendered in the short shape, used by `filter[primary_campus_id]`).
    pub(crate) primary_campus_id: i64,
}

impl UserData {
    pub(crate) fn url(&self) -> String {
        format!("https://api.intra.42.fr/v2/users/{}", self.login)
    }

    /// Whether the user has been anonymised (login rewritten to `3b3-<id>`).
    pub(crate) fn is_anonymised(&self) -> bool {
        self.login
            .strip_prefix("3b3-")
            .is_some_and(|rest| rest == self.id.to_string())
    }

    /// The short ("index") user shape, also embedded as `user` in relation rows.
    pub(crate) fn render_short(&self) -> Value {
        let image = match self.image_hash {
            Some(hash) => {
                let base = format!(
                    "https://cdn.intra.42.fr/users/{hash:016x}{:016x}",
                    hash.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                );
                json!({
                    "link": format!("{base}/{}.jpg", self.login),
                    "versions": {
                        "large": format!("{base}/large_{}.jpg", self.login),
                        "medium": format!("{base}/medium_{}.jpg", self.login),
                        "small": format!("{base}/small_{}.jpg", self.login),
                        "micro": format!("{base}/micro_{}.jpg", self.login)
                    }
                })
            }
            None => json!({
                "link": null,
                "versions": {"large": null, "medium": null, "small": null, "micro": null}
            }),
        };
        let usual_full_name = match &self.usual_first_name {
            Some(first) => format!("{first} {}", self.last_name),
            None => format!("{} {}", self.first_name, self.last_name),
        };
        let mut value = json!({
            "id": self.id,
            "email": self.email,
            "login": self.login,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "usual_full_name": usual_full_name,
            "usual_first_name": self.usual_first_name,
            "url": self.url(),
            "phone": self.phone,
            "displayname": format!("{} {}", self.first_name, self.last_name),
            "kind": self.kind,
            "image": image,
            "staff?": self.staff,
            "correction_point": self.correction_point,
            "pool_month": self.pool_month,
            "pool_year": self.pool_year,
            "location": self.location,
            "wallet": self.wallet,
            "anonymize_date": self.anonymize_date.map(|ms| fmt_offset(ms, self.offset_minutes)),
            "data_erasure_date": self.data_erasure_date.map(|ms| fmt_offset(ms, self.offset_minutes)),
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
            "alumnized_at": opt_ts(self.alumnized_at),
            "alumni?": self.alumnized_at.is_some(),
            "active?": self.active
        });
        if let (Some(pronoun), Value::Object(map)) = (self.pronoun, &mut value) {
            map.insert("pronoun".to_owned(), Value::String(pronoun.to_owned()));
        }
        value
    }
}

/// A user row: the current version, shared by `Arc` with the relation rows that embed it.
#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    pub(crate) data: Arc<UserData>,
}

impl Record for UserRow {
    const TABLE: &'static str = "users";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.data.id)),
        plain("login", Kind::Str, |r, _| {
            Val::Str(Cow::Borrowed(&r.data.login))
        }),
        plain("email", Kind::Str, |r, _| {
            Val::Str(Cow::Borrowed(&r.data.email))
        }),
        plain("created_at", Kind::Time, |r, _| {
            Val::Time(r.data.created_at)
        }),
        plain("updated_at", Kind::Time, |r, _| {
            Val::Time(r.data.updated_at)
        }),
        plain("first_name", Kind::Str, |r, _| {
            Val::Str(Cow::Borrowed(&r.data.first_name))
        }),
        plain("last_name", Kind::Str, |r, _| {
            Val::Str(Cow::Borrowed(&r.data.last_name))
        }),
        plain("pool_year", Kind::Str, |r, _| {
            r.data
                .pool_year
                .as_deref()
                .map_or(Val::Null, |y| Val::Str(Cow::Borrowed(y)))
        }),
        plain("pool_month", Kind::Str, |r, _| {
            r.data
                .pool_month
                .map_or(Val::Null, |m| Val::Str(Cow::Borrowed(m)))
        }),
        plain("kind", Kind::Str, |r, _| {
            Val::Str(Cow::Borrowed(r.data.kind))
        }),
        plain("staff?", Kind::Bool, |r, _| Val::Bool(r.data.staff)),
        plain("correction_point", Kind::Int, |r, _| {
            Val::Int(r.data.correction_point)
        }),
        plain("wallet", Kind::Int, |r, _| Val::Int(r.data.wallet)),
        plain("alumni?", Kind::Bool, |r, _| {
            Val::Bool(r.data.alumnized_at.is_some())
        }),
        plain("active?", Kind::Bool, |r, _| Val::Bool(r.data.active)),
        plain("anonymize_date", Kind::Time, |r, _| {
            opt_time(r.data.anonymize_date)
        }),
        virt("primary_campus_id", Kind::Int, |r, _| {
            Val::Int(r.data.primary_campus_id)
        }),
    ];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("id", true)];

    fn id(&self) -> i64 {
        self.data.id
    }
    fn render(&self, _ctx: &RenderCtx<'_>) -> Value {
        self.data.render_short()
    }
}

/// A campus membership.
#[derive(Debug, Clone)]
pub(crate) struct CampusUser {
    pub(crate) id: i64,
    pub(crate) user_id: i64,
    pub(crate) campus_id: i64,
    pub(crate) is_primary: bool,
    pub(crate) created_at: Ms,
    pub(crate) updated_at: Ms,
}

impl Record for CampusUser {
    const TABLE: &'static str = "campus_users";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.id)),
        plain("user_id", Kind::Int, |r, _| Val::Int(r.user_id)),
        plain("campus_id", Kind::Int, |r, _| Val::Int(r.campus_id)),
        plain("is_primary", Kind::Bool, |r, _| Val::Bool(r.is_primary)),
        plain("created_at", Kind::Time, |r, _| Val::Time(r.created_at)),
        plain("updated_at", Kind::Time, |r, _| Val::Time(r.updated_at)),
    ];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("id", true)];
    const USER_INDEX: bool = true;

    fn id(&self) -> i64 {
        self.id
    }
    fn user_id(&self) -> Option<i64> {
        Some(self.user_id)
    }
    fn render(&self, _ctx: &RenderCtx<'_>) -> Value {
        json!({
            "id": self.id,
            "user_id": self.user_id,
            "campus_id": self.campus_id,
            "is_primary": self.is_primary,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// cursus_users

/// Names of the skills a cursus_user can carry (`skills[]`).
pub(crate) const SKILLS: &[(i64, &str)] = &[
    (1, "Algorithms & AI"),
    (2, "Imperative programming"),
    (3, "Rigor"),
    (4, "Unix"),
    (5, "Graphics"),
    (6, "Network & system administration"),
    (7, "Object-oriented programming"),
    (10, "Group & interpersonal"),
    (14, "Adaptation & creativity"),
    (17, "Web"),
];

/// A user's enrolment in a cursus.
#[derive(Debug, Clone)]
pub(crate) struct CursusUser {
    pub(crate) id: i64,
    pub(crate) user: Arc<UserData>,
    pub(crate) cursus_id: i64,
    pub(crate) begin_at: Ms,
    pub(crate) end_at: Option<Ms>,
    pub(crate) grade: Option<&'static str>,
    /// Level in hundredths, so it renders as a short decimal (`7.42`).
    pub(crate) level_centi: i64,
    /// `(index into SKILLS, level in hundredths)`.
    pub(crate) skills: Vec<(u8, i32)>,
    pub(crate) has_coalition: bool,
    pub(crate) blackholed_at: Option<Ms>,
    pub(crate) created_at: Ms,
    pub(crate) updated_at: Ms,
}

fn centi(value: i64) -> f64 {
    // Two decimals, as the API shows levels (`7.42`); the division is exact enough for display.
    value as f64 / 100.0
}

impl Record for CursusUser {
    const TABLE: &'static str = "cursus_users";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.id)),
        plain("user_id", Kind::Int, |r, _| Val::Int(r.user.id)),
        plain("cursus_id", Kind::Int, |r, _| Val::Int(r.cursus_id)),
        plain("begin_at", Kind::Time, |r, _| Val::Time(r.begin_at)),
        plain("end_at", Kind::Time, |r, _| opt_time(r.end_at)),
        plain("grade", Kind::Str, |r, _| {
            r.grade.map_or(Val::Null, |g| Val::Str(Cow::Borrowed(g)))
        }),
        plain("level", Kind::Float, |r, _| {
            Val::Float(centi(r.level_centi))
        }),
        plain("has_coalition", Kind::Bool, |r, _| {
            Val::Bool(r.has_coalition)
        }),
        plain("blackholed_at", Kind::Time, |r, _| {
            opt_time(r.blackholed_at)
        }),
        plain("created_at", Kind::Time, |r, _| Val::Time(r.created_at)),
        plain("updated_at", Kind::Time, |r, _| Val::Time(r.updated_at)),
        virt("campus_id", Kind::Int, |r, _| {
            Val::Int(r.user.primary_campus_id)
        }),
        virt("active", Kind::Bool, |r, now| {
            Val::Bool(r.begin_at <= now && r.end_at.is_none_or(|end| end > now))
        }),
        virt("future", Kind::Bool, |r, now| Val::Bool(r.begin_at > now)),
        virt("end", Kind::Bool, |r, now| {
            Val::Bool(r.end_at.is_some_and(|end| end <= now))
        }),
        virt("blackholed", Kind::Bool, |r, now| {
            Val::Bool(r.blackholed_at.is_some_and(|at| at <= now))
        }),
    ];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("created_at", true), ("id", true)];
    const USER_INDEX: bool = true;

    fn id(&self) -> i64 {
        self.id
    }
    fn user_id(&self) -> Option<i64> {
        Some(self.user.id)
    }
    fn render(&self, ctx: &RenderCtx<'_>) -> Value {
        let mut value = self.render_without_user(ctx);
        if let Value::Object(map) = &mut value {
            map.insert("user".to_owned(), ctx.short_user(&self.user));
        }
        value
    }
}

impl CursusUser {
    /// The shape inside a user's detail, where the nested `user` is omitted.
    pub(crate) fn render_without_user(&self, ctx: &RenderCtx<'_>) -> Value {
        let skills: Vec<Value> = self
            .skills
            .iter()
            .map(|&(index, level)| {
                let (id, name) = SKILLS[usize::from(index) % SKILLS.len()];
                json!({"id": id, "name": name, "level": centi(i64::from(level))})
            })
            .collect();
        let cursus = ctx
            .store
            .cursus
            .rows
            .get(&self.cursus_id)
            .map_or(Value::Null, Cursus::render_value);
        json!({
            "id": self.id,
            "begin_at": ts(self.begin_at),
            "end_at": opt_ts(self.end_at),
            "grade": self.grade,
            "level": centi(self.level_centi),
            "skills": skills,
            "cursus_id": self.cursus_id,
            "has_coalition": self.has_coalition,
            "blackholed_at": opt_ts(self.blackholed_at),
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
            "cursus": cursus
        })
    }
}

// ---------------------------------------------------------------------------------------------
// projects_users

/// Project statuses seen in the wild.
pub(crate) const STATUSES: &[&str] = &[
    "finished",
    "in_progress",
    "waiting_for_correction",
    "searching_a_group",
    "creating_group",
    "waiting_to_start",
    "parent",
];

/// A user's attempt at a project.
#[derive(Debug, Clone)]
pub(crate) struct ProjectsUser {
    pub(crate) id: i64,
    pub(crate) user: Arc<UserData>,
    pub(crate) project_id: i64,
    pub(crate) cursus_id: i64,
    pub(crate) occurrence: i64,
    pub(crate) final_mark: Option<i64>,
    /// Index into `STATUSES`.
    pub(crate) status: u8,
    pub(crate) validated: Option<bool>,
    pub(crate) current_team_id: Option<i64>,
    pub(crate) marked_at: Option<Ms>,
    pub(crate) retriable_at: Option<Ms>,
    pub(crate) created_at: Ms,
    pub(crate) updated_at: Ms,
}

impl ProjectsUser {
    fn status(&self) -> &'static str {
        STATUSES[usize::from(self.status) % STATUSES.len()]
    }

    fn project_value(&self, ctx: &RenderCtx<'_>) -> Value {
        ctx.store.projects.rows.get(&self.project_id).map_or(
            Value::Null,
            |p| json!({"id": p.id, "name": p.name, "slug": p.slug, "parent_id": p.parent_id}),
        )
    }

    /// The light form inside a user's detail (no `user`, no `teams`).
    pub(crate) fn render_light(&self, ctx: &RenderCtx<'_>) -> Value {
        json!({
            "id": self.id,
            "occurrence": self.occurrence,
            "final_mark": self.final_mark,
            "status": self.status(),
            "validated?": self.validated,
            "current_team_id": self.current_team_id,
            "project": self.project_value(ctx),
            "cursus_ids": [self.cursus_id],
            "marked_at": opt_ts(self.marked_at),
            "marked": self.marked_at.is_some(),
            "retriable_at": opt_ts(self.retriable_at),
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at)
        })
    }
}

impl Record for ProjectsUser {
    const TABLE: &'static str = "projects_users";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.id)),
        plain("project_id", Kind::Int, |r, _| Val::Int(r.project_id)),
        plain("user_id", Kind::Int, |r, _| Val::Int(r.user.id)),
        plain("occurrence", Kind::Int, |r, _| Val::Int(r.occurrence)),
        plain("final_mark", Kind::Int, |r, _| opt_int(r.final_mark)),
        plain("status", Kind::Str, |r, _| {
            Val::Str(Cow::Borrowed(r.status()))
        }),
        plain("validated?", Kind::Bool, |r, _| {
            r.validated.map_or(Val::Null, Val::Bool)
        }),
        plain("current_team_id", Kind::Int, |r, _| {
            opt_int(r.current_team_id)
        }),
        plain("marked_at", Kind::Time, |r, _| opt_time(r.marked_at)),
        plain("marked", Kind::Bool, |r, _| {
            Val::Bool(r.marked_at.is_some())
        }),
        plain("retriable_at", Kind::Time, |r, _| opt_time(r.retriable_at)),
        plain("created_at", Kind::Time, |r, _| Val::Time(r.created_at)),
        plain("updated_at", Kind::Time, |r, _| Val::Time(r.updated_at)),
        virt("cursus", Kind::Ints, |r, _| Val::Ints(vec![r.cursus_id])),
        virt("campus", Kind::Int, |r, _| {
            Val::Int(r.user.primary_campus_id)
        }),
    ];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("id", true)];
    const USER_INDEX: bool = true;

    fn id(&self) -> i64 {
        self.id
    }
    fn user_id(&self) -> Option<i64> {
        Some(self.user.id)
    }
    fn render(&self, ctx: &RenderCtx<'_>) -> Value {
        let user = ctx.user(&self.user);
        let mut value = self.render_light(ctx);
        let teams: Vec<Value> = match self.current_team_id {
            Some(team_id) => {
                let closed = self.marked_at.is_some();
                vec![json!({
                    "id": team_id,
                    "name": format!("{}'s group", user.login),
                    "url": format!("https://api.intra.42.fr/v2/teams/{team_id}"),
                    "final_mark": self.final_mark,
                    "project_id": self.project_id,
                    "created_at": ts(self.created_at),
                    "updated_at": ts(self.updated_at),
                    "status": self.status(),
                    "terminating_at": Value::Null,
                    "users": [{
                        "id": user.id,
                        "login": user.login,
                        "url": user.url(),
                        "leader": true,
                        "occurrence": self.occurrence,
                        "validated": true,
                        "projects_user_id": self.id
                    }],
                    "locked?": self.status != 3 && self.status != 4,
                    "validated?": self.validated,
                    "closed?": closed,
                    "repo_url": format!("git@vogsphere.42.example:vogsphere/intra-uuid-{team_id:x}"),
                    "repo_uuid": format!("intra-uuid-{team_id:x}"),
                    "locked_at": ts(self.created_at),
                    "closed_at": opt_ts(self.marked_at),
                    "project_session_id": self.project_id + 5000,
                    "project_gitlab_path": Value::Null
                })]
            }
            None => Vec::new(),
        };
        if let Value::Object(map) = &mut value {
            map.insert("user".to_owned(), ctx.short_user(&self.user));
            map.insert("teams".to_owned(), Value::Array(teams));
        }
        value
    }
}

// ---------------------------------------------------------------------------------------------
// achievements_users

/// A user's achievement.
#[derive(Debug, Clone)]
pub(crate) struct AchievementsUser {
    pub(crate) id: i64,
    pub(crate) user: Arc<UserData>,
    pub(crate) achievement_id: i64,
    pub(crate) nbr_of_success: Option<i64>,
    pub(crate) created_at: Ms,
    pub(crate) updated_at: Ms,
}

impl Record for AchievementsUser {
    const TABLE: &'static str = "achievements_users";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.id)),
        plain("user_id", Kind::Int, |r, _| Val::Int(r.user.id)),
        plain("achievement_id", Kind::Int, |r, _| {
            Val::Int(r.achievement_id)
        }),
        plain("nbr_of_success", Kind::Int, |r, _| {
            opt_int(r.nbr_of_success)
        }),
        plain("created_at", Kind::Time, |r, _| Val::Time(r.created_at)),
        plain("updated_at", Kind::Time, |r, _| Val::Time(r.updated_at)),
    ];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("id", true)];
    const USER_INDEX: bool = true;

    fn id(&self) -> i64 {
        self.id
    }
    fn user_id(&self) -> Option<i64> {
        Some(self.user.id)
    }
    fn render(&self, ctx: &RenderCtx<'_>) -> Value {
        let user = ctx.user(&self.user);
        json!({
            "id": self.id,
            "achievement_id": self.achievement_id,
            "user_id": user.id,
            "login": user.login,
            "url": user.url(),
            "nbr_of_success": self.nbr_of_success,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// locations

/// A login session on a campus computer.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    pub(crate) id: i64,
    pub(crate) user: Arc<UserData>,
    pub(crate) campus_id: i64,
    pub(crate) begin_at: Ms,
    pub(crate) end_at: Option<Ms>,
    pub(crate) primary: bool,
    pub(crate) host: String,
    /// Old rows still carry the removed `floor`/`row`/`post` keys (always null).
    pub(crate) legacy_keys: bool,
}

impl Record for Location {
    const TABLE: &'static str = "locations";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.id)),
        plain("user_id", Kind::Int, |r, _| Val::Int(r.user.id)),
        plain("campus_id", Kind::Int, |r, _| Val::Int(r.campus_id)),
        plain("begin_at", Kind::Time, |r, _| Val::Time(r.begin_at)),
        plain("end_at", Kind::Time, |r, _| opt_time(r.end_at)),
        plain("primary", Kind::Bool, |r, _| Val::Bool(r.primary)),
        plain("host", Kind::Str, |r, _| Val::Str(Cow::Borrowed(&r.host))),
        virt("active", Kind::Bool, |r, _| Val::Bool(r.end_at.is_none())),
        virt("inactive", Kind::Bool, |r, _| Val::Bool(r.end_at.is_some())),
        virt("end", Kind::Bool, |r, _| Val::Bool(r.end_at.is_some())),
        virt("future", Kind::Bool, |r, now| Val::Bool(r.begin_at > now)),
    ];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("begin_at", true), ("id", true)];
    const USER_INDEX: bool = true;

    fn id(&self) -> i64 {
        self.id
    }
    fn user_id(&self) -> Option<i64> {
        Some(self.user.id)
    }
    fn render(&self, ctx: &RenderCtx<'_>) -> Value {
        let mut value = json!({
            "id": self.id,
            "begin_at": ts(self.begin_at),
            "end_at": opt_ts(self.end_at),
            "primary": self.primary,
            "host": self.host,
            "campus_id": self.campus_id,
            "user": ctx.short_user(&self.user)
        });
        if let (true, Value::Object(map)) = (self.legacy_keys, &mut value) {
            for key in ["floor", "row", "post"] {
                map.insert(key.to_owned(), Value::Null);
            }
        }
        value
    }
}

// ---------------------------------------------------------------------------------------------
// coalitions, blocs, coalitions_users

/// A coalition (four per campus, grouped by a bloc).
#[derive(Debug, Clone)]
pub(crate) struct Coalition {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) slug: String,
    pub(crate) color: &'static str,
    pub(crate) score: i64,
    pub(crate) user_id: i64,
    pub(crate) image_url: Option<String>,
}

impl Coalition {
    pub(crate) fn render_value(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "slug": self.slug,
            "image_url": self.image_url,
            "cover_url": self.image_url.as_ref().map(|_| format!("https://cdn.intra.42.fr/coalition/cover/{}/cover.jpg", self.id)),
            "color": self.color,
            "score": self.score,
            "user_id": self.user_id
        })
    }
}

impl Record for Coalition {
    const TABLE: &'static str = "coalitions";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.id)),
        plain("name", Kind::Str, |r, _| Val::Str(Cow::Borrowed(&r.name))),
        plain("slug", Kind::Str, |r, _| Val::Str(Cow::Borrowed(&r.slug))),
        plain("color", Kind::Str, |r, _| Val::Str(Cow::Borrowed(r.color))),
        plain("score", Kind::Int, |r, _| Val::Int(r.score)),
        plain("user_id", Kind::Int, |r, _| Val::Int(r.user_id)),
    ];
    const UNSORTABLE: &'static [&'static str] = &["score"];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("id", true)];

    fn id(&self) -> i64 {
        self.id
    }
    fn render(&self, _ctx: &RenderCtx<'_>) -> Value {
        self.render_value()
    }
}

/// A bloc: the coalitions of one campus and cursus.
#[derive(Debug, Clone)]
pub(crate) struct Bloc {
    pub(crate) id: i64,
    pub(crate) campus_id: i64,
    pub(crate) cursus_id: i64,
    pub(crate) squad_size: i64,
    pub(crate) coalition_ids: Vec<i64>,
    pub(crate) created_at: Ms,
    pub(crate) updated_at: Ms,
}

impl Record for Bloc {
    const TABLE: &'static str = "blocs";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.id)),
        plain("campus_id", Kind::Int, |r, _| Val::Int(r.campus_id)),
        plain("cursus_id", Kind::Int, |r, _| Val::Int(r.cursus_id)),
        plain("squad_size", Kind::Int, |r, _| Val::Int(r.squad_size)),
        plain("created_at", Kind::Time, |r, _| Val::Time(r.created_at)),
        plain("updated_at", Kind::Time, |r, _| Val::Time(r.updated_at)),
    ];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("id", true)];

    fn id(&self) -> i64 {
        self.id
    }
    fn render(&self, ctx: &RenderCtx<'_>) -> Value {
        let coalitions: Vec<Value> = self
            .coalition_ids
            .iter()
            .filter_map(|id| ctx.store.coalitions.rows.get(id))
            .map(Coalition::render_value)
            .collect();
        json!({
            "id": self.id,
            "campus_id": self.campus_id,
            "cursus_id": self.cursus_id,
            "squad_size": self.squad_size,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
            "coalitions": coalitions
        })
    }
}

/// A user's membership of a coalition.
#[derive(Debug, Clone)]
pub(crate) struct CoalitionsUser {
    pub(crate) id: i64,
    pub(crate) user_id: i64,
    pub(crate) coalition_id: i64,
    pub(crate) score: i64,
    pub(crate) rank: i64,
    pub(crate) created_at: Ms,
    pub(crate) updated_at: Ms,
}

impl Record for CoalitionsUser {
    const TABLE: &'static str = "coalitions_users";
    const FIELDS: &'static [FieldDef<Self>] = &[
        plain("id", Kind::Int, |r, _| Val::Int(r.id)),
        plain("coalition_id", Kind::Int, |r, _| Val::Int(r.coalition_id)),
        plain("user_id", Kind::Int, |r, _| Val::Int(r.user_id)),
        plain("score", Kind::Int, |r, _| Val::Int(r.score)),
        plain("rank", Kind::Int, |r, _| Val::Int(r.rank)),
        plain("created_at", Kind::Time, |r, _| Val::Time(r.created_at)),
        plain("updated_at", Kind::Time, |r, _| Val::Time(r.updated_at)),
    ];
    const DEFAULT_SORT: &'static [(&'static str, bool)] = &[("created_at", true), ("id", true)];
    const USER_INDEX: bool = true;

    fn id(&self) -> i64 {
        self.id
    }
    fn user_id(&self) -> Option<i64> {
        Some(self.user_id)
    }
    fn render(&self, _ctx: &RenderCtx<'_>) -> Value {
        json!({
            "id": self.id,
            "coalition_id": self.coalition_id,
            "user_id": self.user_id,
            "score": self.score,
            "rank": self.rank,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at)
        })
    }
}
