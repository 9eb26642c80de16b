//! API models to store rows: the one place that knows both shapes.
//!
//! Each function maps a whole page. The row keeps the item's JSON exactly as received (`raw`),
//! beside the typed columns people query. Timestamps are stored as UTC.

use chrono::{DateTime, NaiveDateTime, Utc};
use ft_api::Page;
use ft_api::models::{
    Achievement, AchievementsUser, Bloc, Campus, CampusUser, CoalitionsUser, Cursus, CursusUser,
    Location, Project, ProjectsUser, User,
};
use ft_store::Rows;
use ft_store::rows::{
    AchievementRow, AchievementsUserRow, BlocRow, CampusRow, CampusUserRow, CoalitionRow,
    CoalitionsUserRow, CursusRow, CursusUserRow, LocationRow, ProjectRow, ProjectsUserRow, UserRow,
};

use crate::error::Result;

/// One page turned into rows, with what the pass needs to know about it.
#[derive(Debug)]
pub(crate) struct Mapped {
    /// The rows to upsert.
    pub(crate) rows: Rows,
    /// Users this page brought in or changed (for the relation queue).
    pub(crate) user_ids: Vec<i64>,
    /// Rows of other tables embedded in the page (the coalitions inside blocs).
    pub(crate) also: Vec<Rows>,
}

impl Mapped {
    /// Adds another mapping of the same table (one item mapped on its own).
    pub(crate) fn append(&mut self, other: Mapped) {
        let appended = self.rows.append(other.rows);
        debug_assert!(appended, "mappings of one model share a table");
        self.user_ids.extend(other.user_ids);
        for extra in other.also {
            match self.also.iter_mut().find(|a| a.table() == extra.table()) {
                Some(a) => {
                    a.append(extra);
                }
                None => self.also.push(extra),
            }
        }
    }

    fn new(rows: Rows) -> Mapped {
        Mapped {
            rows,
            user_ids: Vec::new(),
            also: Vec::new(),
        }
    }
}

fn ts(t: Option<DateTime<Utc>>) -> Option<NaiveDateTime> {
    t.map(|t| t.naive_utc())
}

fn raw<M>(page: &Page<M>, i: usize) -> String {
    page.raw[i].get().to_owned()
}

/// A foreign id the row cannot be stored without: its absence is a decode error for the page,
/// never a silently dropped or zeroed row.
fn required(value: Option<i64>, what: &str, id: i64, field: &str) -> Result<i64> {
    value.ok_or_else(|| crate::error::SyncError::Data {
        what: format!("{what} {id}"),
        detail: format!("`{field}` is missing or null"),
    })
}

pub(crate) fn campuses(page: &Page<Campus>) -> Result<Mapped> {
    let rows: Vec<CampusRow> = page
        .items
        .iter()
        .enumerate()
        .map(|(i, c)| CampusRow {
            id: c.id,
            name: c.name.clone().unwrap_or_default(),
            time_zone: c.time_zone.clone(),
            country: c.country.clone(),
            city: c.city.clone(),
            active: c.active,
            public: c.public,
            users_count: c.users_count,
            raw: raw(page, i),
        })
        .collect();
    Ok(Mapped {
        rows: Rows::Campuses(rows),
        user_ids: Vec::new(),
        also: Vec::new(),
    })
}

pub(crate) fn cursus(page: &Page<Cursus>) -> Result<Mapped> {
    let rows: Vec<CursusRow> = page
        .items
        .iter()
        .enumerate()
        .map(|(i, c)| CursusRow {
            id: c.id,
            name: c.name.clone(),
            slug: c.slug.clone(),
            kind: c.kind.clone(),
            created_at: ts(c.created_at),
            raw: raw(page, i),
        })
        .collect();
    Ok(Mapped {
        rows: Rows::Cursus(rows),
        user_ids: Vec::new(),
        also: Vec::new(),
    })
}

pub(crate) fn projects(page: &Page<Project>) -> Result<Mapped> {
    let rows: Vec<ProjectRow> = page
        .items
        .iter()
        .enumerate()
        .map(|(i, p)| ProjectRow {
            id: p.id,
            name: p.name.clone(),
            slug: p.slug.clone(),
            difficulty: p.difficulty,
            parent_id: p.parent.as_ref().map(|parent| parent.id),
            exam: p.exam,
            created_at: ts(p.created_at),
            updated_at: ts(p.updated_at),
            raw: raw(page, i),
        })
        .collect();
    Ok(Mapped {
        rows: Rows::Projects(rows),
        user_ids: Vec::new(),
        also: Vec::new(),
    })
}

pub(crate) fn achievements(page: &Page<Achievement>) -> Result<Mapped> {
    let rows: Vec<AchievementRow> = page
        .items
        .iter()
        .enumerate()
        .map(|(i, a)| AchievementRow {
            id: a.id,
            name: a.name.clone(),
            description: a.description.clone(),
            tier: a.tier.clone(),
            kind: a.kind.clone(),
            visible: a.visible,
            image: a.image.clone(),
            nbr_of_success: a.nbr_of_success,
            parent_id: a
                .parent
                .as_ref()
                .and_then(|parent| parent.get("id"))
                .and_then(serde_json::Value::as_i64),
            raw: raw(page, i),
        })
        .collect();
    Ok(Mapped {
        rows: Rows::Achievements(rows),
        user_ids: Vec::new(),
        also: Vec::new(),
    })
}

pub(crate) fn users(page: &Page<User>) -> Result<Mapped> {
    let rows: Vec<UserRow> = page
        .items
        .iter()
        .enumerate()
        .map(|(i, u)| UserRow {
            id: u.id,
            login: u.login.clone().unwrap_or_default(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            usual_full_name: u.usual_full_name.clone(),
            displayname: u.displayname.clone(),
            kind: u.kind.clone(),
            staff: u.staff,
            pool_month: u.pool_month.clone(),
            pool_year: u.pool_year.clone(),
            location: u.location.clone(),
            wallet: u.wallet,
            correction_point: u.correction_point,
            alumni: u.alumni,
            active: u.active,
            image_url: u.image.as_ref().and_then(|img| img.link.clone()),
            anonymize_date: ts(u.anonymize_date),
            data_erasure_date: ts(u.data_erasure_date),
            alumnized_at: ts(u.alumnized_at),
            created_at: ts(u.created_at),
            updated_at: ts(u.updated_at),
            raw: raw(page, i),
        })
        .collect();
    let user_ids = rows.iter().map(|r| r.id).collect();
    Ok(Mapped {
        rows: Rows::Users(rows),
        user_ids,
        also: Vec::new(),
    })
}

pub(crate) fn campus_users(page: &Page<CampusUser>) -> Result<Mapped> {
    let mut rows = Vec::with_capacity(page.items.len());
    for (i, c) in page.items.iter().enumerate() {
        rows.push(CampusUserRow {
            id: c.id,
            user_id: required(c.user_id, "campus_user", c.id, "user_id")?,
            campus_id: required(c.campus_id, "campus_user", c.id, "campus_id")?,
            is_primary: c.is_primary,
            created_at: ts(c.created_at),
            updated_at: ts(c.updated_at),
            raw: raw(page, i),
        });
    }
    Ok(Mapped {
        rows: Rows::CampusUsers(rows),
        user_ids: Vec::new(),
        also: Vec::new(),
    })
}

pub(crate) fn cursus_users(page: &Page<CursusUser>) -> Result<Mapped> {
    let mut rows = Vec::with_capacity(page.items.len());
    for (i, c) in page.items.iter().enumerate() {
        let user_id =
            c.user
                .as_ref()
                .map(|u| u.id)
                .ok_or_else(|| crate::error::SyncError::Data {
                    what: format!("cursus_user {}", c.id),
                    detail: "no user id (neither `user_id` nor an embedded `user`)".to_owned(),
                })?;
        rows.push(CursusUserRow {
            id: c.id,
            user_id,
            cursus_id: required(c.cursus_id, "cursus_user", c.id, "cursus_id")?,
            grade: c.grade.clone(),
            level: c.level,
            begin_at: ts(c.begin_at),
            end_at: ts(c.end_at),
            blackholed_at: ts(c.blackholed_at),
            has_coalition: c.has_coalition,
            created_at: ts(c.created_at),
            updated_at: ts(c.updated_at),
            raw: raw(page, i),
        });
    }
    Ok(Mapped {
        rows: Rows::CursusUsers(rows),
        user_ids: Vec::new(),
        also: Vec::new(),
    })
}

/// The user id of a relation row: `user_id` when the API sends it, else the embedded `user`.
fn user_of(
    what: &str,
    id: i64,
    user_id: Option<i64>,
    user: Option<&ft_api::models::ShortUser>,
) -> Result<i64> {
    user_id
        .or_else(|| user.map(|u| u.id))
        .ok_or_else(|| crate::error::SyncError::Data {
            what: format!("{what} {id}"),
            detail: "no user id (neither `user_id` nor an embedded `user`)".to_owned(),
        })
}

pub(crate) fn projects_users(page: &Page<ProjectsUser>) -> Result<Mapped> {
    let mut rows = Vec::with_capacity(page.items.len());
    for (i, p) in page.items.iter().enumerate() {
        rows.push(ProjectsUserRow {
            id: p.id,
            user_id: user_of("projects_user", p.id, None, p.user.as_ref())?,
            project_id: required(
                p.project.as_ref().map(|r| r.id),
                "projects_user",
                p.id,
                "project.id",
            )?,
            occurrence: p.occurrence,
            final_mark: p.final_mark,
            status: p.status.clone(),
            validated: p.validated,
            current_team_id: p.current_team_id,
            marked: p.marked,
            marked_at: ts(p.marked_at),
            retriable_at: ts(p.retriable_at),
            created_at: ts(p.created_at),
            updated_at: ts(p.updated_at),
            raw: raw(page, i),
        });
    }
    Ok(Mapped::new(Rows::ProjectsUsers(rows)))
}

pub(crate) fn achievements_users(page: &Page<AchievementsUser>) -> Result<Mapped> {
    let mut rows = Vec::with_capacity(page.items.len());
    for (i, a) in page.items.iter().enumerate() {
        rows.push(AchievementsUserRow {
            id: a.id,
            user_id: user_of("achievements_user", a.id, a.user_id, None)?,
            achievement_id: a.achievement_id,
            nbr_of_success: a.nbr_of_success,
            created_at: ts(a.created_at),
            updated_at: ts(a.updated_at),
            raw: raw(page, i),
        });
    }
    Ok(Mapped::new(Rows::AchievementsUsers(rows)))
}

pub(crate) fn locations(page: &Page<Location>) -> Result<Mapped> {
    let mut rows = Vec::with_capacity(page.items.len());
    for (i, l) in page.items.iter().enumerate() {
        rows.push(LocationRow {
            id: l.id,
            user_id: user_of("location", l.id, None, l.user.as_ref())?,
            campus_id: l.campus_id,
            host: l.host.clone(),
            primary: l.primary,
            begin_at: ts(l.begin_at),
            end_at: ts(l.end_at),
            raw: raw(page, i),
        });
    }
    Ok(Mapped::new(Rows::Locations(rows)))
}

/// Blocs, and the coalitions embedded in them (which get their `bloc_id` from here: the
/// coalition JSON does not carry it). A coalition's stored `raw` is its embedded JSON, which is
/// the same object `/v2/coalitions` serves.
pub(crate) fn blocs(page: &Page<Bloc>) -> Result<Mapped> {
    let mut rows = Vec::with_capacity(page.items.len());
    let mut coalitions = Vec::new();
    for (i, b) in page.items.iter().enumerate() {
        let embedded: Vec<&serde_json::value::RawValue> =
            match serde_json::from_str::<EmbeddedCoalitions<'_>>(page.raw[i].get()) {
                Ok(e) => e.coalitions,
                Err(e) => {
                    return Err(crate::error::SyncError::Data {
                        what: format!("bloc {}", b.id),
                        detail: format!("`coalitions` is not a list of objects: {e}"),
                    });
                }
            };
        for (c, raw_c) in b.coalitions.iter().zip(embedded) {
            coalitions.push(CoalitionRow {
                id: c.id,
                name: c.name.clone(),
                slug: c.slug.clone(),
                color: c.color.clone(),
                image_url: c.image_url.clone(),
                cover_url: c.cover_url.clone(),
                score: c.score,
                user_id: c.user_id,
                bloc_id: Some(b.id),
                raw: raw_c.get().to_owned(),
            });
        }
        rows.push(BlocRow {
            id: b.id,
            campus_id: b.campus_id,
            cursus_id: b.cursus_id,
            squad_size: b.squad_size,
            created_at: ts(b.created_at),
            updated_at: ts(b.updated_at),
            raw: raw(page, i),
        });
    }
    let mut mapped = Mapped::new(Rows::Blocs(rows));
    mapped.also.push(Rows::Coalitions(coalitions));
    Ok(mapped)
}

#[derive(serde::Deserialize)]
struct EmbeddedCoalitions<'a> {
    #[serde(borrow, default)]
    coalitions: Vec<&'a serde_json::value::RawValue>,
}

pub(crate) fn coalitions_users(page: &Page<CoalitionsUser>) -> Result<Mapped> {
    let mut rows = Vec::with_capacity(page.items.len());
    for (i, c) in page.items.iter().enumerate() {
        rows.push(CoalitionsUserRow {
            id: c.id,
            user_id: user_of("coalitions_user", c.id, c.user_id, None)?,
            coalition_id: required(c.coalition_id, "coalitions_user", c.id, "coalition_id")?,
            score: c.score,
            rank: c.rank,
            created_at: ts(c.created_at),
            updated_at: ts(c.updated_at),
            raw: raw(page, i),
        });
    }
    Ok(Mapped::new(Rows::CoalitionsUsers(rows)))
}
