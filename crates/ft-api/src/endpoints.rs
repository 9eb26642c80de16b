//! The list endpoints ft42 reads: each one's path, model and the filter names it is read with,
//! declared together, so a path or a filter name is written once.
//!
//! ```
//! use ft_api::endpoints;
//! assert_eq!(endpoints::USERS_OF_CAMPUS.path_for(Some(12)).unwrap(), "/v2/campus/12/users");
//! let q = endpoints::CURSUS_USERS.filter(ft_api::Query::new(), "campus_id", [12]);
//! assert_eq!(q.get("filter[campus_id]"), Some("12"));
//! ```

use std::fmt::{self, Display};
use std::marker::PhantomData;

use crate::models::{
    Achievement, AchievementsUser, Bloc, Campus, CampusUser, Coalition, CoalitionsUser, Cursus,
    CursusUser, Location, Project, ProjectsUser, User,
};
use crate::pager::Identified;
use crate::query::{DEFAULT_PER_PAGE, Query};

/// A list endpoint returning `M`. `path` may hold `{campus_id}`.
pub struct ListEndpoint<M> {
    path: &'static str,
    filters: &'static [&'static str],
    max_per_page: u32,
    model: PhantomData<fn() -> M>,
}

impl<M> ListEndpoint<M> {
    const fn new(
        path: &'static str,
        filters: &'static [&'static str],
        max_per_page: u32,
    ) -> ListEndpoint<M> {
        ListEndpoint {
            path,
            filters,
            max_per_page,
            model: PhantomData,
        }
    }

    /// The path template, e.g. `/v2/campus/{campus_id}/users`.
    pub const fn path(&self) -> &'static str {
        self.path
    }

    /// Whether the path needs a campus id.
    pub fn is_campus_path(&self) -> bool {
        self.path.contains("{campus_id}")
    }

    /// The path to request, with the campus filled in where the template has one.
    pub fn path_for(&self, campus: Option<i64>) -> Result<String, MissingCampus> {
        match (self.is_campus_path(), campus) {
            (false, _) => Ok(self.path.to_owned()),
            (true, Some(id)) => Ok(self.path.replace("{campus_id}", &id.to_string())),
            (true, None) => Err(MissingCampus { path: self.path }),
        }
    }

    /// The filter names ft42 reads this endpoint with.
    pub const fn filters(&self) -> &'static [&'static str] {
        self.filters
    }

    /// The largest page the endpoint serves reliably.
    pub const fn max_per_page(&self) -> u32 {
        self.max_per_page
    }

    /// `filter[name]=values` on `query`. Panics on a filter name this endpoint does not declare:
    /// an undeclared name is a programming error that the real API answers with a 400.
    pub fn filter<I>(&self, query: Query, name: &str, values: I) -> Query
    where
        I: IntoIterator,
        I::Item: Display,
    {
        assert!(
            self.filters.contains(&name),
            "filter[{name}] is not declared for {}",
            self.path
        );
        query.filter(name, values)
    }
}

impl<M> Clone for ListEndpoint<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for ListEndpoint<M> {}

impl<M> fmt::Debug for ListEndpoint<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListEndpoint")
            .field("path", &self.path)
            .field("filters", &self.filters)
            .field("max_per_page", &self.max_per_page)
            .finish()
    }
}

/// A campus path was used without a campus id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} needs a campus id")]
pub struct MissingCampus {
    /// The path template.
    pub path: &'static str,
}

/// `/v2/campus`.
pub const CAMPUSES: ListEndpoint<Campus> =
    ListEndpoint::new("/v2/campus", &["id"], DEFAULT_PER_PAGE);
/// `/v2/cursus`.
pub const CURSUS: ListEndpoint<Cursus> = ListEndpoint::new("/v2/cursus", &["id"], DEFAULT_PER_PAGE);
/// Rows per request on `/v2/projects`: a project carries every campus and session, and the
/// real server times out on pages of 100.
pub const PROJECTS_PER_PAGE: u32 = 30;

/// `/v2/projects` (30 per page, see [`PROJECTS_PER_PAGE`]).
pub const PROJECTS: ListEndpoint<Project> =
    ListEndpoint::new("/v2/projects", &["id"], PROJECTS_PER_PAGE);
/// `/v2/achievements`.
pub const ACHIEVEMENTS: ListEndpoint<Achievement> =
    ListEndpoint::new("/v2/achievements", &["id"], DEFAULT_PER_PAGE);
/// `/v2/users`: by id (parents that relation rows refer to) or by primary campus (the users of
/// a campus set; it has no `campus_id` filter).
pub const USERS: ListEndpoint<User> =
    ListEndpoint::new("/v2/users", &["id", "primary_campus_id"], DEFAULT_PER_PAGE);
/// `/v2/campus/:id/users`.
pub const USERS_OF_CAMPUS: ListEndpoint<User> =
    ListEndpoint::new("/v2/campus/{campus_id}/users", &["id"], DEFAULT_PER_PAGE);
/// `/v2/campus_users`.
pub const CAMPUS_USERS: ListEndpoint<CampusUser> =
    ListEndpoint::new("/v2/campus_users", &["campus_id", "id"], DEFAULT_PER_PAGE);
/// `/v2/cursus_users` (its `campus_id` filter is the user's primary campus).
pub const CURSUS_USERS: ListEndpoint<CursusUser> = ListEndpoint::new(
    "/v2/cursus_users",
    &["campus_id", "id", "user_id"],
    DEFAULT_PER_PAGE,
);
/// `/v2/projects_users` (its `campus` filter is the user's primary campus).
pub const PROJECTS_USERS: ListEndpoint<ProjectsUser> = ListEndpoint::new(
    "/v2/projects_users",
    &["campus", "id", "user_id"],
    DEFAULT_PER_PAGE,
);
/// `/v2/achievements_users` (no campus filter).
pub const ACHIEVEMENTS_USERS: ListEndpoint<AchievementsUser> = ListEndpoint::new(
    "/v2/achievements_users",
    &["id", "user_id"],
    DEFAULT_PER_PAGE,
);
/// `/v2/blocs` (coalitions embedded).
pub const BLOCS: ListEndpoint<Bloc> =
    ListEndpoint::new("/v2/blocs", &["campus_id", "id"], DEFAULT_PER_PAGE);
/// `/v2/coalitions`.
pub const COALITIONS: ListEndpoint<Coalition> =
    ListEndpoint::new("/v2/coalitions", &["id"], DEFAULT_PER_PAGE);
/// `/v2/coalitions_users`.
pub const COALITIONS_USERS: ListEndpoint<CoalitionsUser> = ListEndpoint::new(
    "/v2/coalitions_users",
    &["coalition_id", "id", "user_id"],
    DEFAULT_PER_PAGE,
);
/// `/v2/locations` (windowed on `begin_at`: no usable `updated_at`).
pub const LOCATIONS: ListEndpoint<Location> =
    ListEndpoint::new("/v2/locations", &["campus_id", "id"], DEFAULT_PER_PAGE);

macro_rules! identified {
    ($($model:ty),* $(,)?) => {
        $(impl Identified for $model {
            fn id(&self) -> i64 {
                self.id
            }
        })*
    };
}

identified!(
    Achievement,
    AchievementsUser,
    Bloc,
    Campus,
    CampusUser,
    Coalition,
    CoalitionsUser,
    Cursus,
    CursusUser,
    Location,
    Project,
    ProjectsUser,
    User,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campus_paths_need_a_campus() {
        assert_eq!(
            USERS_OF_CAMPUS.path_for(Some(3)).unwrap(),
            "/v2/campus/3/users"
        );
        assert!(USERS_OF_CAMPUS.path_for(None).is_err());
        assert_eq!(CURSUS_USERS.path_for(None).unwrap(), "/v2/cursus_users");
    }

    #[test]
    #[should_panic(expected = "filter[campus_id] is not declared for /v2/achievements_users")]
    fn an_undeclared_filter_is_a_programming_error() {
        let _ = ACHIEVEMENTS_USERS.filter(Query::new(), "campus_id", [1]);
    }
}
