//! The registry: one declaration per listing the engine plans and runs.
//!
//! Everything the planner, the worker, replay and the docs need to know about a listing is
//! written here once: its name (task kind and cursor resource), the table its rows go to, its
//! stage and priority, the field a delta window ranges over, the listings of the same scope it
//! reads from, its scope shape, how its pages are produced and the model that fetches and maps
//! them. A new listing is one entry in [`RESOURCES`] plus one mapper in `mapping.rs`.

use ft_api::endpoints as ep;
use ft_api::models as m;
use ft_store::Table;
use serde::{Deserialize, Serialize};

use crate::config::What;
use crate::mapping;
use crate::pipeline::{Model, Typed};

/// A listing the engine knows how to walk: the key into [`RESOURCES`], stored in task payloads
/// by its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Listing {
    Campuses,
    Cursus,
    Projects,
    Achievements,
    Users,
    CampusUsers,
    CursusUsers,
    PiscineLevels,
    ProjectsUsers,
    AchievementsUsers,
    Blocs,
    CoalitionsUsers,
    Locations,
    OpenLocations,
    CursusUsersDeletions,
    ProjectsUsersDeletions,
    CoalitionsUsersDeletions,
    LocationsDeletions,
    MissingUsers,
    RelationUsers,
}

/// When a listing can be planned and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    /// Reference data read once for every campus; campuses are known after it.
    Global,
    /// Campus-scoped listings that read only the API.
    Campus,
    /// Campus-scoped work that also reads what the campus listings stored.
    AfterCampus,
    /// Work over everything stored.
    Last,
}

/// What one task of the listing covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScopeShape {
    /// One task for the whole network.
    Global,
    /// One global task, restricted to the request's campuses when it names some.
    CampusSet,
    /// One task per campus, or per campus set (see `crate::scope`).
    Campus,
}

/// How a keyset listing narrows its endpoint to a campus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CampusFilter {
    /// No campus filter (global listings).
    None,
    /// The campus is part of the path (`/v2/campus/:id/users`); a campus set reads
    /// `/v2/users?filter[primary_campus_id]=<set>` instead.
    Path,
    /// `filter[<name>]=<campus>` (a comma list for a campus set).
    Filter(&'static str),
    /// `filter[coalition_id]=<the stored coalitions of the campus or campus set>`.
    Coalitions,
}

/// Which stored ids a re-read asks for again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoredIds {
    /// cursus_users of active piscines: their level changes without touching `updated_at`.
    ActivePiscines,
    /// The campus's locally open sessions, so `end_at` gets filled in.
    OpenLocations,
}

/// How a listing's pages are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// A keyset walk over the endpoint, narrowed to the scope.
    Keyset(CampusFilter),
    /// Stored ids read again by id, 100 per request; ids not returned are marked deleted.
    Reread(StoredIds),
    /// achievements_users by batches of the campus's users, or the network-wide window.
    AchievementsUsers,
    /// Rows of the scope the API no longer has, found by `X-Total` probes and id ranges.
    Deletions(CampusFilter),
    /// Users that relation rows refer to but the database lacks.
    MissingUsers,
    /// Every relation of the users in the changed-user queue.
    RelationUsers,
}

/// One listing's declaration.
pub(crate) struct Resource {
    pub(crate) listing: Listing,
    /// Task kind, cursor resource and progress name.
    pub(crate) name: &'static str,
    /// Where its rows go.
    pub(crate) table: Table,
    pub(crate) stage: Stage,
    /// Queue priority: parents before children, so a full sync fills tables in order.
    pub(crate) priority: i32,
    /// The field a delta window ranges over; `None`: every pass reads the whole scope.
    pub(crate) time_field: Option<&'static str>,
    /// Listings of the same scope whose rows this one reads from the store: it waits for them.
    pub(crate) reads_from: &'static [Listing],
    pub(crate) scope: ScopeShape,
    pub(crate) pass: Pass,
    /// Fetches and maps the listing's pages.
    pub(crate) model: &'static dyn Model,
    /// The `ft42 sync <what>` targets that include it (besides `all`).
    pub(crate) targets: &'static [What],
}

static CAMPUSES: Typed<m::Campus> = Typed::new(ep::CAMPUSES, mapping::campuses);
static CURSUS: Typed<m::Cursus> = Typed::new(ep::CURSUS, mapping::cursus);
static PROJECTS: Typed<m::Project> = Typed::new(ep::PROJECTS, mapping::projects);
static ACHIEVEMENTS: Typed<m::Achievement> = Typed::new(ep::ACHIEVEMENTS, mapping::achievements);
static USERS_OF_CAMPUS: Typed<m::User> = Typed::new(ep::USERS_OF_CAMPUS, mapping::users);
pub(crate) static USERS: Typed<m::User> = Typed::new(ep::USERS, mapping::users);
static CAMPUS_USERS: Typed<m::CampusUser> = Typed::new(ep::CAMPUS_USERS, mapping::campus_users);
pub(crate) static CURSUS_USERS: Typed<m::CursusUser> =
    Typed::new(ep::CURSUS_USERS, mapping::cursus_users);
pub(crate) static PROJECTS_USERS: Typed<m::ProjectsUser> =
    Typed::new(ep::PROJECTS_USERS, mapping::projects_users);
pub(crate) static ACHIEVEMENTS_USERS: Typed<m::AchievementsUser> =
    Typed::new(ep::ACHIEVEMENTS_USERS, mapping::achievements_users);
static BLOCS: Typed<m::Bloc> = Typed::new(ep::BLOCS, mapping::blocs);
pub(crate) static COALITIONS_USERS: Typed<m::CoalitionsUser> =
    Typed::new(ep::COALITIONS_USERS, mapping::coalitions_users);
static LOCATIONS: Typed<m::Location> = Typed::new(ep::LOCATIONS, mapping::locations);

use CampusFilter as F;
use What::{Coalitions as C, Locations as L, Relations as R, Users as U};

/// Every listing, in declaration order (the order of [`Listing`]).
pub(crate) static RESOURCES: [Resource; 20] = [
    Resource {
        listing: Listing::Campuses,
        name: "campuses",
        table: Table::Campuses,
        stage: Stage::Global,
        priority: 100,
        time_field: None,
        reads_from: &[],
        scope: ScopeShape::CampusSet,
        pass: Pass::Keyset(F::None),
        model: &CAMPUSES,
        targets: &[U],
    },
    Resource {
        listing: Listing::Cursus,
        name: "cursus",
        table: Table::Cursus,
        stage: Stage::Global,
        priority: 95,
        time_field: None,
        reads_from: &[],
        scope: ScopeShape::Global,
        pass: Pass::Keyset(F::None),
        model: &CURSUS,
        targets: &[U],
    },
    Resource {
        listing: Listing::Projects,
        name: "projects",
        table: Table::Projects,
        stage: Stage::Global,
        priority: 90,
        time_field: Some("updated_at"),
        reads_from: &[],
        scope: ScopeShape::Global,
        pass: Pass::Keyset(F::None),
        model: &PROJECTS,
        targets: &[U],
    },
    Resource {
        listing: Listing::Achievements,
        name: "achievements",
        table: Table::Achievements,
        stage: Stage::Global,
        priority: 85,
        time_field: None,
        reads_from: &[],
        scope: ScopeShape::Global,
        pass: Pass::Keyset(F::None),
        model: &ACHIEVEMENTS,
        targets: &[U],
    },
    Resource {
        listing: Listing::Users,
        name: "users",
        table: Table::Users,
        stage: Stage::Campus,
        priority: 80,
        time_field: Some("updated_at"),
        reads_from: &[],
        scope: ScopeShape::Campus,
        pass: Pass::Keyset(F::Path),
        model: &USERS_OF_CAMPUS,
        targets: &[U],
    },
    Resource {
        listing: Listing::CampusUsers,
        name: "campus_users",
        table: Table::CampusUsers,
        stage: Stage::Campus,
        priority: 75,
        time_field: Some("updated_at"),
        reads_from: &[],
        scope: ScopeShape::Campus,
        pass: Pass::Keyset(F::Filter("campus_id")),
        model: &CAMPUS_USERS,
        targets: &[U],
    },
    Resource {
        listing: Listing::CursusUsers,
        name: "cursus_users",
        table: Table::CursusUsers,
        stage: Stage::Campus,
        priority: 70,
        time_field: Some("updated_at"),
        reads_from: &[],
        scope: ScopeShape::Campus,
        pass: Pass::Keyset(F::Filter("campus_id")),
        model: &CURSUS_USERS,
        targets: &[U],
    },
    Resource {
        listing: Listing::PiscineLevels,
        name: "piscine_levels",
        table: Table::CursusUsers,
        stage: Stage::AfterCampus,
        priority: 48,
        time_field: None,
        reads_from: &[Listing::CursusUsers],
        scope: ScopeShape::CampusSet,
        pass: Pass::Reread(StoredIds::ActivePiscines),
        model: &CURSUS_USERS,
        targets: &[U],
    },
    Resource {
        listing: Listing::ProjectsUsers,
        name: "projects_users",
        table: Table::ProjectsUsers,
        stage: Stage::Campus,
        priority: 65,
        time_field: Some("updated_at"),
        reads_from: &[],
        scope: ScopeShape::Campus,
        pass: Pass::Keyset(F::Filter("campus")),
        model: &PROJECTS_USERS,
        targets: &[R],
    },
    Resource {
        listing: Listing::AchievementsUsers,
        name: "achievements_users",
        table: Table::AchievementsUsers,
        stage: Stage::AfterCampus,
        priority: 50,
        time_field: Some("updated_at"),
        reads_from: &[Listing::CampusUsers],
        scope: ScopeShape::Campus,
        pass: Pass::AchievementsUsers,
        model: &ACHIEVEMENTS_USERS,
        targets: &[R],
    },
    Resource {
        listing: Listing::Blocs,
        name: "blocs",
        table: Table::Blocs,
        stage: Stage::Campus,
        priority: 68,
        time_field: None,
        reads_from: &[],
        scope: ScopeShape::Campus,
        pass: Pass::Keyset(F::Filter("campus_id")),
        model: &BLOCS,
        targets: &[C],
    },
    Resource {
        listing: Listing::CoalitionsUsers,
        name: "coalitions_users",
        table: Table::CoalitionsUsers,
        stage: Stage::AfterCampus,
        priority: 55,
        time_field: Some("updated_at"),
        reads_from: &[Listing::Blocs],
        scope: ScopeShape::Campus,
        pass: Pass::Keyset(F::Coalitions),
        model: &COALITIONS_USERS,
        targets: &[C],
    },
    Resource {
        listing: Listing::Locations,
        name: "locations",
        table: Table::Locations,
        stage: Stage::Campus,
        priority: 60,
        time_field: Some("begin_at"),
        reads_from: &[],
        scope: ScopeShape::Campus,
        pass: Pass::Keyset(F::Filter("campus_id")),
        model: &LOCATIONS,
        targets: &[L],
    },
    Resource {
        listing: Listing::OpenLocations,
        name: "open_locations",
        table: Table::Locations,
        stage: Stage::AfterCampus,
        priority: 46,
        time_field: None,
        reads_from: &[Listing::Locations],
        scope: ScopeShape::Campus,
        pass: Pass::Reread(StoredIds::OpenLocations),
        model: &LOCATIONS,
        targets: &[L],
    },
    Resource {
        listing: Listing::CursusUsersDeletions,
        name: "cursus_users_deletions",
        table: Table::CursusUsers,
        stage: Stage::AfterCampus,
        priority: 40,
        time_field: None,
        reads_from: &[Listing::CursusUsers, Listing::CampusUsers],
        scope: ScopeShape::Campus,
        pass: Pass::Deletions(F::Filter("campus_id")),
        model: &CURSUS_USERS,
        targets: &[U],
    },
    Resource {
        listing: Listing::ProjectsUsersDeletions,
        name: "projects_users_deletions",
        table: Table::ProjectsUsers,
        stage: Stage::AfterCampus,
        priority: 39,
        time_field: None,
        reads_from: &[Listing::ProjectsUsers, Listing::CampusUsers],
        scope: ScopeShape::Campus,
        pass: Pass::Deletions(F::Filter("campus")),
        model: &PROJECTS_USERS,
        targets: &[R],
    },
    Resource {
        listing: Listing::CoalitionsUsersDeletions,
        name: "coalitions_users_deletions",
        table: Table::CoalitionsUsers,
        stage: Stage::AfterCampus,
        priority: 38,
        time_field: None,
        reads_from: &[Listing::CoalitionsUsers, Listing::Blocs],
        scope: ScopeShape::Campus,
        pass: Pass::Deletions(F::Coalitions),
        model: &COALITIONS_USERS,
        targets: &[C],
    },
    Resource {
        listing: Listing::LocationsDeletions,
        name: "locations_deletions",
        table: Table::Locations,
        stage: Stage::AfterCampus,
        priority: 37,
        time_field: None,
        reads_from: &[Listing::Locations, Listing::OpenLocations],
        scope: ScopeShape::Campus,
        pass: Pass::Deletions(F::Filter("campus_id")),
        model: &LOCATIONS,
        targets: &[L],
    },
    Resource {
        listing: Listing::MissingUsers,
        name: "missing_users",
        table: Table::Users,
        stage: Stage::Last,
        priority: 20,
        time_field: None,
        reads_from: &[],
        scope: ScopeShape::Global,
        pass: Pass::MissingUsers,
        model: &USERS,
        targets: &[R, C, L],
    },
    Resource {
        listing: Listing::RelationUsers,
        name: "relation_users",
        table: Table::ProjectsUsers,
        stage: Stage::Last,
        priority: 10,
        time_field: None,
        reads_from: &[],
        scope: ScopeShape::Global,
        pass: Pass::RelationUsers,
        model: &PROJECTS_USERS,
        targets: &[R],
    },
];

impl Resource {
    /// Whether the listing's campus filter lists the campuses' coalitions.
    pub(crate) fn filters_by_coalition(&self) -> bool {
        matches!(
            self.pass,
            Pass::Keyset(CampusFilter::Coalitions) | Pass::Deletions(CampusFilter::Coalitions)
        )
    }
}

impl Listing {
    /// The listing's declaration.
    pub(crate) fn resource(self) -> &'static Resource {
        &RESOURCES[self as usize]
    }

    /// The resource name used for tasks, cursors and progress.
    pub(crate) fn as_str(self) -> &'static str {
        self.resource().name
    }

    pub(crate) fn stage(self) -> Stage {
        self.resource().stage
    }

    /// Whether the listing is walked once per campus.
    pub(crate) fn campus_scoped(self) -> bool {
        self.resource().scope == ScopeShape::Campus
    }

    /// Whether the listing must wait until the campus-scoped listings were planned (it reads
    /// what they store, or needs the campus list).
    pub(crate) fn after_campuses(self) -> bool {
        self.stage() != Stage::Global
    }

    /// Whether a delta can be asked for: rows carry a usable change time.
    pub(crate) fn has_updated_at(self) -> bool {
        self.resource().time_field.is_some()
    }
}

/// The listings a request covers, in planning order: by stage, then by priority, so a listing
/// comes after those it reads.
pub(crate) fn listings_for(what: What) -> Vec<Listing> {
    let mut out: Vec<Listing> = RESOURCES
        .iter()
        .filter(|r| what == What::All || r.targets.contains(&what))
        .map(|r| r.listing)
        .collect();
    out.sort_by_key(|l| (l.stage(), -l.resource().priority));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listing_is_declared_at_its_own_index_with_a_unique_name() {
        let mut names = std::collections::HashSet::new();
        for (i, r) in RESOURCES.iter().enumerate() {
            assert_eq!(r.listing as usize, i, "{} is declared out of order", r.name);
            assert!(names.insert(r.name), "{} declared twice", r.name);
            let json = serde_json::to_value(r.listing).unwrap();
            assert_eq!(json, r.name, "the payload name is the resource name");
            assert_eq!(
                r.model.table(),
                r.table,
                "{}: model and table disagree",
                r.name
            );
        }
    }

    #[test]
    fn a_listing_is_planned_after_what_it_reads() {
        for what in [
            What::Users,
            What::Relations,
            What::Coalitions,
            What::Locations,
            What::All,
        ] {
            let order = listings_for(what);
            for (i, l) in order.iter().enumerate() {
                for dep in l.resource().reads_from {
                    if let Some(j) = order.iter().position(|x| x == dep) {
                        assert!(
                            j < i,
                            "{what:?}: {} planned before {}",
                            l.as_str(),
                            dep.as_str()
                        );
                    }
                }
            }
        }
        assert_eq!(listings_for(What::All).len(), RESOURCES.len());
        assert_eq!(listings_for(What::Users).first(), Some(&Listing::Campuses));
        assert_eq!(
            listings_for(What::Relations).last(),
            Some(&Listing::RelationUsers)
        );
    }
}
