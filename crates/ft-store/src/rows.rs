//! Write structs for the mirror tables, the [`Table`] names and the [`Rows`] batch enum.
//!
//! One macro invocation per table defines the row struct, its table, and the column list the
//! upsert updates, so a column cannot be inserted but forgotten in the `DO UPDATE SET` list.
//! The store sets `ingested_at` and clears `deleted_at` itself on every upsert, so the structs
//! leave both out. `raw` is the item's JSON text as received from the API.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;

/// Declares the mirror tables. For each: the row struct (insertable and loadable), its [`Table`]
/// and [`Rows`] variants, its typed columns, and whether it has an `updated_at` that guards
/// against stale overwrites (`guarded`) or not (`unguarded`).
macro_rules! mirror_tables {
    ($(
        $(#[$meta:meta])*
        $variant:ident => $table:ident, $row:ident, $guard:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, diesel::Insertable, diesel::Queryable, diesel::Selectable)]
            #[diesel(table_name = crate::schema::$table)]
            #[diesel(treat_none_as_default_value = false)]
            pub struct $row {
                /// The 42 id (primary key).
                pub id: i64,
                $( $(#[$fmeta])* pub $field: $ty, )*
                /// The item's JSON as received from the API.
                #[diesel(serialize_as = crate::raw_json::RawJsonText)]
                pub raw: String,
            }

            impl crate::upsert::MirrorRow for $row {
                fn id(&self) -> i64 {
                    self.id
                }
            }

            impl From<Vec<$row>> for Rows {
                fn from(rows: Vec<$row>) -> Rows {
                    Rows::$variant(rows)
                }
            }
        )*

        /// A mirror table. [`Table::as_str`] is the SQL table name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Table {
            $(
                #[doc = concat!("The `", stringify!($table), "` table.")]
                $variant,
            )*
        }

        impl Table {
            /// Every mirror table, in declaration order (parents before relations).
            pub const ALL: &'static [Table] = &[$(Table::$variant),*];

            /// The SQL table name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Table::$variant => stringify!($table),)*
                }
            }

            /// The typed columns besides `id`, `raw`, `ingested_at` and `deleted_at`.
            pub fn columns(self) -> &'static [&'static str] {
                match self {
                    $(Table::$variant => &[$(stringify!($field)),*],)*
                }
            }

            /// Whether the table has an `updated_at` column that protects newer rows from older
            /// data in upserts.
            pub fn has_updated_at(self) -> bool {
                self.columns().contains(&"updated_at")
            }
        }

        impl FromStr for Table {
            type Err = UnknownTable;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $(stringify!($table) => Ok(Table::$variant),)*
                    _ => Err(UnknownTable(s.to_owned())),
                }
            }
        }

        /// A batch of rows for one mirror table.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Rows {
            $(
                #[doc = concat!("Rows of `", stringify!($table), "`.")]
                $variant(Vec<$row>),
            )*
        }

        impl Rows {
            /// The table these rows belong to.
            pub fn table(&self) -> Table {
                match self {
                    $(Rows::$variant(_) => Table::$variant,)*
                }
            }

            /// The number of rows (duplicates included).
            pub fn len(&self) -> usize {
                match self {
                    $(Rows::$variant(rows) => rows.len(),)*
                }
            }

            /// Whether there are no rows.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// An empty batch for `table`.
            pub fn empty(table: Table) -> Rows {
                match table {
                    $(Table::$variant => Rows::$variant(Vec::new()),)*
                }
            }

            /// Appends `other`'s rows; `false` (and nothing appended) when it is another table's.
            pub fn append(&mut self, other: Rows) -> bool {
                match (self, other) {
                    $((Rows::$variant(a), Rows::$variant(b)) => {
                        a.extend(b);
                        true
                    })*
                    _ => false,
                }
            }

            /// The ids of the rows, in order, duplicates included.
            pub fn ids(&self) -> Vec<i64> {
                match self {
                    $(Rows::$variant(rows) => rows.iter().map(|r| r.id).collect(),)*
                }
            }
        }

        /// Expands `$body` for the schema module and row type of a [`Table`].
        macro_rules! for_table {
            ($value:expr, |$t_:ident, $row_:ident| $body:block) => {
                match $value {
                    $(crate::rows::Table::$variant => {
                        #[allow(unused_imports)]
                        use crate::schema::$table as $t_;
                        #[allow(unused_imports)]
                        use crate::rows::$row as $row_;
                        $body
                    })*
                }
            };
        }
        pub(crate) use for_table;

        /// Expands the upsert statement of each table for one backend's connection.
        macro_rules! upsert_any {
            ($conn:expr, $value:expr, $backend:ident) => {
                match $value {
                    $(crate::rows::Rows::$variant(rows) => crate::upsert::upsert_chunks!(
                        $conn, $backend, $table, rows, $guard, [$($field : $ty),*]
                    ),)*
                }
            };
        }
        pub(crate) use upsert_any;
    };
}

mirror_tables! {
    /// A campus (`/v2/campus`).
    Campuses => campuses, CampusRow, unguarded {
        name: String,
        time_zone: Option<String>,
        country: Option<String>,
        city: Option<String>,
        active: Option<bool>,
        public: Option<bool>,
        users_count: Option<i64>,
    }

    /// A user (`/v2/users`, `/v2/campus/:id/users`).
    Users => users, UserRow, guarded {
        login: String,
        email: Option<String>,
        first_name: Option<String>,
        last_name: Option<String>,
        usual_full_name: Option<String>,
        displayname: Option<String>,
        kind: Option<String>,
        staff: Option<bool>,
        pool_month: Option<String>,
        pool_year: Option<String>,
        location: Option<String>,
        wallet: Option<i64>,
        correction_point: Option<i64>,
        alumni: Option<bool>,
        active: Option<bool>,
        image_url: Option<String>,
        anonymize_date: Option<NaiveDateTime>,
        data_erasure_date: Option<NaiveDateTime>,
        alumnized_at: Option<NaiveDateTime>,
        created_at: Option<NaiveDateTime>,
        updated_at: Option<NaiveDateTime>,
    }

    /// A user's membership of a campus (`/v2/campus_users`).
    CampusUsers => campus_users, CampusUserRow, guarded {
        user_id: i64,
        campus_id: i64,
        is_primary: Option<bool>,
        created_at: Option<NaiveDateTime>,
        updated_at: Option<NaiveDateTime>,
    }

    /// A cursus (`/v2/cursus`).
    Cursus => cursus, CursusRow, unguarded {
        name: Option<String>,
        slug: Option<String>,
        kind: Option<String>,
        created_at: Option<NaiveDateTime>,
    }

    /// A user's enrolment in a cursus (`/v2/cursus_users`).
    CursusUsers => cursus_users, CursusUserRow, guarded {
        user_id: i64,
        cursus_id: i64,
        grade: Option<String>,
        level: Option<f64>,
        begin_at: Option<NaiveDateTime>,
        end_at: Option<NaiveDateTime>,
        blackholed_at: Option<NaiveDateTime>,
        has_coalition: Option<bool>,
        created_at: Option<NaiveDateTime>,
        updated_at: Option<NaiveDateTime>,
    }

    /// A project (`/v2/projects`).
    Projects => projects, ProjectRow, guarded {
        name: Option<String>,
        slug: Option<String>,
        difficulty: Option<i64>,
        parent_id: Option<i64>,
        exam: Option<bool>,
        created_at: Option<NaiveDateTime>,
        updated_at: Option<NaiveDateTime>,
    }

    /// A user's attempt at a project (`/v2/projects_users`).
    ProjectsUsers => projects_users, ProjectsUserRow, guarded {
        user_id: i64,
        project_id: i64,
        occurrence: Option<i64>,
        final_mark: Option<i64>,
        status: Option<String>,
        validated: Option<bool>,
        current_team_id: Option<i64>,
        marked: Option<bool>,
        marked_at: Option<NaiveDateTime>,
        retriable_at: Option<NaiveDateTime>,
        created_at: Option<NaiveDateTime>,
        updated_at: Option<NaiveDateTime>,
    }

    /// An achievement (`/v2/achievements`).
    Achievements => achievements, AchievementRow, unguarded {
        name: Option<String>,
        description: Option<String>,
        tier: Option<String>,
        kind: Option<String>,
        visible: Option<bool>,
        image: Option<String>,
        nbr_of_success: Option<i64>,
        parent_id: Option<i64>,
    }

    /// An achievement earned by a user (`/v2/achievements_users`).
    AchievementsUsers => achievements_users, AchievementsUserRow, guarded {
        user_id: i64,
        achievement_id: Option<i64>,
        nbr_of_success: Option<i64>,
        created_at: Option<NaiveDateTime>,
        updated_at: Option<NaiveDateTime>,
    }

    /// A login session on a campus host (`/v2/locations`).
    Locations => locations, LocationRow, unguarded {
        user_id: i64,
        campus_id: Option<i64>,
        host: Option<String>,
        primary: Option<bool>,
        begin_at: Option<NaiveDateTime>,
        end_at: Option<NaiveDateTime>,
    }

    /// A coalition (`/v2/coalitions`).
    Coalitions => coalitions, CoalitionRow, unguarded {
        name: Option<String>,
        slug: Option<String>,
        color: Option<String>,
        image_url: Option<String>,
        cover_url: Option<String>,
        score: Option<i64>,
        user_id: Option<i64>,
        bloc_id: Option<i64>,
    }

    /// A bloc of coalitions for a campus and cursus (`/v2/blocs`).
    Blocs => blocs, BlocRow, guarded {
        campus_id: Option<i64>,
        cursus_id: Option<i64>,
        squad_size: Option<i64>,
        created_at: Option<NaiveDateTime>,
        updated_at: Option<NaiveDateTime>,
    }

    /// A user's membership of a coalition (`/v2/coalitions_users`).
    CoalitionsUsers => coalitions_users, CoalitionsUserRow, guarded {
        user_id: i64,
        coalition_id: i64,
        score: Option<i64>,
        rank: Option<i64>,
        created_at: Option<NaiveDateTime>,
        updated_at: Option<NaiveDateTime>,
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A table name that is not one of the mirror tables.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown table `{0}` (expected one of: campuses, users, campus_users, cursus, cursus_users, projects, projects_users, achievements, achievements_users, locations, coalitions, blocs, coalitions_users)"
)]
pub struct UnknownTable(pub String);
