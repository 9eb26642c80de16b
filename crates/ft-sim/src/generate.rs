//! Deterministic dataset generation from a seed and a scale.
//!
//! Every user gets its own random generator seeded from `(seed, user id)`, so the dataset does not
//! depend on generation order and drift can add users with the same code.

use std::sync::Arc;

use rand::rngs::ChaCha8Rng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};

use crate::model::{
    Achievement, AchievementsUser, Bloc, Campus, CampusUser, Coalition, CoalitionsUser, Cursus,
    CursusUser, Location, Project, ProjectsUser, UserData, UserRow,
};
use crate::store::Store;
use crate::time::{DAY, HOUR, Ms, parse_timestamp};

/// Cursus ids the dataset uses (the real ones).
pub(crate) const PISCINE: i64 = 9;
pub(crate) const CURSUS_42: i64 = 21;

const FIRST_USER_ID: i64 = 40_000;

const FIRST_NAMES: &[&str] = &[
    "Alice",
    "Bruno",
    "Chloe",
    "Damien",
    "Emma",
    "Farid",
    "Gaelle",
    "Hugo",
    "Ines",
    "Jules",
    "Karim",
    "Lea",
    "Marius",
    "Nina",
    "Oscar",
    "Pauline",
    "Quentin",
    "Rose",
    "Sami",
    "Théo",
    "Ugo",
    "Valentine",
    "William",
    "Xavier",
    "Yasmine",
    "Zoé",
    "Adrien",
    "Baptiste",
    "Camille",
    "Dorian",
    "Elif",
    "François",
    "Gabriel",
    "Hana",
    "Ilyes",
    "Jade",
    "Kenji",
    "Lucas",
    "Mina",
    "Noah",
];
const LAST_NAMES: &[&str] = &[
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "André",
    "Lefèvre",
    "Mercier",
    "Dupont",
    "Lambert",
    "Bonnet",
    "François",
    "Martinez",
    "Nguyen",
    "Kowalski",
    "Schmidt",
    "Tanaka",
    "Okafor",
    "Haddad",
    "Rossi",
    "Silva",
    "Yilmaz",
    "Kim",
];
const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// `(name, time zone, offset minutes, country, language, host pattern)` for campus ids 1, 2, ...
/// `(id, name, identifier)` of a campus language.
type Language = (i64, &'static str, &'static str);

const CAMPUSES: &[(&str, &str, i32, &str, Language, &str)] = &[
    (
        "Paris",
        "Europe/Paris",
        120,
        "France",
        (1, "Français", "fr"),
        "c{a}r{b}s{c}",
    ),
    (
        "Madrid",
        "Europe/Madrid",
        120,
        "Spain",
        (11, "Español", "es"),
        "c{a}r{b}s{c}",
    ),
    (
        "Berlin",
        "Europe/Berlin",
        120,
        "Germany",
        (12, "Deutsch", "de"),
        "c{a}-r{b}-p{c}",
    ),
    (
        "Tokyo",
        "Asia/Tokyo",
        540,
        "Japan",
        (13, "日本語", "ja"),
        "c{a}r{b}s{c}",
    ),
    (
        "Lyon",
        "Europe/Paris",
        120,
        "France",
        (1, "Français", "fr"),
        "z{a}r{b}p{c}",
    ),
    (
        "Seoul",
        "Asia/Seoul",
        540,
        "South Korea",
        (14, "한국어", "ko"),
        "c{a}r{b}s{c}",
    ),
    (
        "Quebec",
        "America/Toronto",
        -240,
        "Canada",
        (2, "English", "en"),
        "e{a}r{b}p{c}",
    ),
    (
        "Heilbronn",
        "Europe/Berlin",
        120,
        "Germany",
        (12, "Deutsch", "de"),
        "c{a}r{b}s{c}",
    ),
];

const PISCINE_PROJECTS: &[&str] = &[
    "C Piscine Shell 00",
    "C Piscine Shell 01",
    "C Piscine C 00",
    "C Piscine C 01",
    "C Piscine C 02",
    "C Piscine C 03",
    "C Piscine C 04",
    "C Piscine C 05",
    "C Piscine C 06",
    "C Piscine C 07",
    "C Piscine C 08",
    "C Piscine C 09",
    "C Piscine C 10",
    "C Piscine C 11",
    "C Piscine C 12",
    "C Piscine C 13",
    "C Piscine Rush 00",
    "C Piscine Rush 01",
    "C Piscine Rush 02",
    "C Piscine Exam 00",
    "C Piscine Exam 01",
    "C Piscine Final Exam",
    "C Piscine BSQ",
];
const CURSUS_PROJECTS: &[&str] = &[
    "Libft",
    "get_next_line",
    "ft_printf",
    "Born2beroot",
    "so_long",
    "FdF",
    "fract-ol",
    "minitalk",
    "pipex",
    "push_swap",
    "Exam Rank 02",
    "philosophers",
    "minishell",
    "Exam Rank 03",
    "NetPractice",
    "cub3d",
    "miniRT",
    "CPP Module 00",
    "CPP Module 01",
    "CPP Module 02",
    "CPP Module 03",
    "CPP Module 04",
    "Exam Rank 04",
    "CPP Module 05",
    "CPP Module 06",
    "CPP Module 07",
    "CPP Module 08",
    "CPP Module 09",
    "Inception",
    "webserv",
    "ft_irc",
    "Exam Rank 05",
    "ft_transcendence",
    "Exam Rank 06",
    "Internship I",
    "Internship I - Contract Upload",
    "Internship I - Duration",
    "Internship I - Company Mid Evaluation",
    "Internship I - Company Final Evaluation",
    "Internship I - Peer Video",
];
/// Index in `CURSUS_PROJECTS` of the parent project and its children.
const INTERNSHIP_PARENT: usize = 34;

const ACHIEVEMENTS: &[(&str, &str, &str)] = &[
    ("Welcome, Cadet!", "easy", "pedagogy"),
    ("Bonus hunter", "medium", "project"),
    ("Code Explorer", "easy", "project"),
    ("Curious", "none", "social"),
    ("Rigorous Basterd", "hard", "pedagogy"),
    ("Attendee", "easy", "social"),
    ("All work and no play", "medium", "scolarity"),
    ("Wildcard", "challenge", "project"),
    ("Sensei", "medium", "pedagogy"),
    ("Encyclopedist", "hard", "project"),
    ("Bookworm", "easy", "scolarity"),
    ("Ready for this", "easy", "scolarity"),
    ("The Seeker", "medium", "social"),
    ("Survivor", "hard", "scolarity"),
    ("Cheerleader", "easy", "social"),
    ("Lifelong learner", "challenge", "scolarity"),
    ("Builder", "medium", "project"),
    ("Home is where the code is", "easy", "scolarity"),
    ("Perfect examiner", "hard", "pedagogy"),
    ("Film buff", "none", "social"),
];

const COALITIONS: &[(&str, &str)] = &[
    ("The Federation", "#4180db"),
    ("The Alliance", "#33c47f"),
    ("The Order", "#ff6950"),
    ("The Assembly", "#a061d1"),
];

/// Scale and seed of a dataset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GenParams {
    pub(crate) seed: u64,
    pub(crate) campuses: u32,
    pub(crate) users_per_campus: u32,
    /// The simulated "now" at start; every generated `created_at`/`updated_at` is before it.
    pub(crate) epoch: Ms,
}

/// Seeds a generator from the simulator seed and a stream number (users use their id).
pub(crate) fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Builds the reference data (campuses, cursus, projects, achievements, blocs, coalitions) and
/// `users_per_campus` users per campus with all their relations.
pub(crate) fn generate(params: GenParams) -> Store {
    let mut store = Store::empty();
    let mut rng = rng_for(params.seed, u64::MAX);
    let start_2014 = parse_timestamp("2014-11-01T08:00:00.000Z").unwrap_or_default();

    for id in 1..=i64::from(params.campuses.max(1)) {
        let spec = CAMPUSES[usize::try_from(id - 1).unwrap_or(0) % CAMPUSES.len()];
        let round = (id - 1) / CAMPUSES.len() as i64;
        let name = if round == 0 {
            spec.0.to_owned()
        } else {
            format!("{} {}", spec.0, round + 1)
        };
        store.campuses.insert(Campus {
            id,
            city: name.clone(),
            name,
            time_zone: spec.1,
            offset_minutes: spec.2,
            country: spec.3,
            language: spec.4,
            users_count: 0,
            vogsphere_id: if id % 3 == 0 { None } else { Some(id) },
            host_prefix: spec.5,
        });
    }
    store.cursus.insert(Cursus {
        id: PISCINE,
        name: "C Piscine",
        slug: "c-piscine",
        kind: "piscine",
        created_at: start_2014 + 400 * DAY,
    });
    store.cursus.insert(Cursus {
        id: CURSUS_42,
        name: "42cursus",
        slug: "42cursus",
        kind: "main",
        created_at: start_2014 + 1200 * DAY,
    });

    let mut project_id = 1300;
    let mut internship_parent = None;
    for (list, cursus_id) in [(PISCINE_PROJECTS, PISCINE), (CURSUS_PROJECTS, CURSUS_42)] {
        for (index, name) in list.iter().enumerate() {
            project_id += rng.random_range(1..12);
            let created_at = start_2014 + rng.random_range(300..1500) * DAY;
            let is_child = cursus_id == CURSUS_42 && index > INTERNSHIP_PARENT;
            if cursus_id == CURSUS_42 && index == INTERNSHIP_PARENT {
                internship_parent = Some(project_id);
            }
            store.projects.insert(Project {
                id: project_id,
                name: (*name).to_owned(),
                slug: slug(name),
                difficulty: if is_child {
                    0
                } else {
                    1000 + 500 * index as i64
                },
                parent_id: if is_child { internship_parent } else { None },
                exam: name.contains("Exam"),
                cursus_id,
                created_at,
                updated_at: created_at + rng.random_range(10..1500) * DAY,
            });
        }
    }

    for (index, (name, tier, kind)) in ACHIEVEMENTS.iter().cycle().take(40).enumerate() {
        let id = index as i64 + 1;
        let name = if index < ACHIEVEMENTS.len() {
            (*name).to_owned()
        } else {
            format!("{name} II")
        };
        store.achievements.insert(Achievement {
            id,
            description: format!("Earned by doing what \"{name}\" says."),
            name,
            tier,
            kind,
            visible: id % 13 != 0,
            image: if id % 7 == 0 {
                None
            } else {
                Some(format!("/uploads/achievement/image/{id}/SCO001.svg"))
            },
            nbr_of_success: if id % 4 == 0 { Some(10 * id) } else { None },
        });
    }

    let campus_ids: Vec<i64> = store.campuses.rows.keys().copied().collect();
    for &campus_id in &campus_ids {
        let bloc_id = store.blocs.allocate_id();
        let mut coalition_ids = Vec::new();
        for (name, color) in COALITIONS {
            let id = store.coalitions.allocate_id();
            coalition_ids.push(id);
            store.coalitions.insert(Coalition {
                id,
                name: (*name).to_owned(),
                slug: format!("{}-{}", slug(name), campus_id),
                color,
                score: rng.random_range(10_000..90_000),
                user_id: 0,
                image_url: if id % 5 == 0 {
                    None
                } else {
                    Some(format!(
                        "https://cdn.intra.42.fr/coalition/image/{id}/logo.svg"
                    ))
                },
            });
        }
        let created_at = start_2014 + rng.random_range(1300..1500) * DAY;
        store.blocs.insert(Bloc {
            id: bloc_id,
            campus_id,
            cursus_id: CURSUS_42,
            squad_size: 0,
            coalition_ids,
            created_at,
            updated_at: created_at + rng.random_range(1..600) * DAY,
        });
    }

    store.users.next_id = FIRST_USER_ID;
    store.campus_users.next_id = 30_000;
    store.cursus_users.next_id = 100_000;
    store.projects_users.next_id = 2_000_000;
    store.achievements_users.next_id = 500_000;
    store.locations.next_id = 10_000_000;
    store.coalitions_users.next_id = 60_000;

    let total = u64::from(params.campuses.max(1)) * u64::from(params.users_per_campus);
    for index in 0..total {
        // Users of all campuses interleave, as real ids do.
        let campus_id = campus_ids[usize::try_from(index).unwrap_or(0) % campus_ids.len()];
        add_user(&mut store, params.seed, campus_id, params.epoch, None);
    }

    // Derived reference fields: coalition leaders, squad sizes, users_count (which, like the real
    // one, differs from the number of users `/v2/campus/:id/users` returns).
    let coalition_ids: Vec<i64> = store.coalitions.rows.keys().copied().collect();
    for id in coalition_ids {
        let leader = store
            .coalitions_users
            .rows
            .values()
            .filter(|cu| cu.coalition_id == id)
            .max_by_key(|cu| (cu.score, cu.id))
            .map_or(0, |cu| cu.user_id);
        if let Some(coalition) = store.coalitions.rows.get_mut(&id) {
            coalition.user_id = leader;
        }
    }
    for campus in store.campuses.rows.values_mut() {
        let members = store
            .users_by_campus
            .get(&campus.id)
            .map_or(0, |set| set.len() as i64);
        campus.users_count = members * 17 / 10 + 3;
    }
    store
}

fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

fn ascii_lower(name: &str) -> String {
    name.chars()
        .filter_map(|ch| match ch {
            'é' | 'è' | 'ê' => Some('e'),
            'ç' => Some('c'),
            'ï' => Some('i'),
            ch if ch.is_ascii_alphabetic() => Some(ch.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// What stage of the school a generated user is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// Registered for a piscine that starts in the future.
    Upcoming,
    /// In a piscine right now (levels still move).
    Pisciner,
    /// Did the piscine long ago and never joined the cursus.
    PiscineOnly,
    /// In the 42cursus.
    Student,
}

/// Adds one user with all relations. `created_at` is `None` for the initial dataset (a date is
/// drawn) and the drift time for users added later. Returns the new user's id.
pub(crate) fn add_user(
    store: &mut Store,
    seed: u64,
    campus_id: i64,
    now: Ms,
    created_at: Option<Ms>,
) -> i64 {
    let id = store.users.allocate_id();
    let mut rng = rng_for(seed, u64::try_from(id).unwrap_or(0));
    // Relative to the epoch, so any `SimBuilder::epoch` leaves room for a decade of history.
    let start = now - 3_950 * DAY;
    let campus = store
        .campuses
        .rows
        .get(&campus_id)
        .cloned()
        .expect("campus exists");

    let roll = rng.random_range(0..100);
    let profile = match (created_at.is_some(), roll) {
        (true, _) | (false, 0..=7) => Profile::Upcoming,
        (false, 8..=14) => Profile::Pisciner,
        (false, 15..=34) => Profile::PiscineOnly,
        _ => Profile::Student,
    };
    let created_at = match (created_at, profile) {
        (Some(at), _) => at,
        (None, Profile::Upcoming) => now - rng.random_range(1..40) * DAY - rng.random_range(0..DAY),
        (None, Profile::Pisciner) => {
            now - rng.random_range(30..60) * DAY - rng.random_range(0..DAY)
        }
        (None, _) => rng.random_range(start..now - 120 * DAY),
    };
    let piscine_begin = match profile {
        Profile::Upcoming => now + rng.random_range(2..45) * DAY,
        Profile::Pisciner => now - rng.random_range(1..25) * DAY,
        _ => created_at + rng.random_range(5..40) * DAY,
    };
    let piscine_end = piscine_begin + 26 * DAY;

    let first = *FIRST_NAMES.choose(&mut rng).unwrap_or(&"Alex");
    let last = *LAST_NAMES.choose(&mut rng).unwrap_or(&"Doe");
    let old = profile == Profile::PiscineOnly || created_at < now - 5 * 365 * DAY;
    let anonymised = old && rng.random_bool(0.12);
    let (login, email, first_name, last_name) = if anonymised {
        (
            format!("3b3-{id}"),
            format!("3b3-{id}@student.42.fr"),
            "3b3".to_owned(),
            id.to_string(),
        )
    } else {
        let base: String =
            ascii_lower(&first[..1]) + &ascii_lower(last).chars().take(7).collect::<String>();
        let mut login = base.clone();
        let mut n = 1;
        while store.logins.contains_key(&login) {
            n += 1;
            login = format!("{base}{n}");
        }
        let email = format!("{login}@student.42{}.example", slug(&campus.name));
        (login, email, first.to_owned(), last.to_owned())
    };
    store.logins.insert(login.clone(), id);

    let staff = rng.random_bool(0.005);
    let external = !staff && rng.random_bool(0.01);
    let last_active = match profile {
        Profile::PiscineOnly => piscine_end,
        Profile::Upcoming => created_at,
        _ => now,
    };
    let anonymize_date = if anonymised {
        // An anonymised user was anonymised in the past.
        Some(
            (last_active + rng.random_range(400..900) * DAY)
                .min(now - rng.random_range(1..60) * DAY),
        )
    } else if rng.random_bool(0.05) {
        None
    } else {
        // Midnight in the campus's time zone, as the API shows it.
        let at = last_active + rng.random_range(700..1500) * DAY;
        Some(at - at.rem_euclid(DAY) - i64::from(campus.offset_minutes) * 60_000)
    };
    let mut updated_at = created_at + rng.random_range(0..=(now - HOUR - created_at).max(0));
    if anonymised {
        updated_at = updated_at.max(anonymize_date.unwrap_or(0).min(now - HOUR));
    }

    let mut data = UserData {
        id,
        login,
        email,
        first_name,
        last_name,
        usual_first_name: if !anonymised && rng.random_bool(0.04) {
            Some(format!("{first}ie"))
        } else {
            None
        },
        phone: if rng.random_bool(0.9) {
            Some("hidden")
        } else {
            None
        },
        kind: if staff {
            "admin"
        } else if external {
            "external"
        } else {
            "student"
        },
        image_hash: if anonymised || rng.random_bool(0.08) {
            None
        } else {
            Some(rng.random::<u64>())
        },
        staff,
        correction_point: rng.random_range(0..12),
        pool_month: if external {
            None
        } else {
            Some(MONTHS[month_index(piscine_begin)])
        },
        pool_year: if external {
            None
        } else {
            Some(year_of(piscine_begin).to_string())
        },
        location: None,
        wallet: rng.random_range(0..400),
        anonymize_date,
        data_erasure_date: anonymize_date.map(|at| at + 1095 * DAY),
        offset_minutes: campus.offset_minutes,
        created_at,
        updated_at,
        alumnized_at: None,
        active: !anonymised,
        pronoun: if rng.random_bool(0.02) {
            Some("they/them")
        } else {
            None
        },
        primary_campus_id: campus_id,
    };

    // Locations come first because an open session sets the user's `location`.
    let mut sessions: Vec<(Ms, Option<Ms>, bool, String, bool)> = Vec::new();
    if profile != Profile::Upcoming {
        let window_start = piscine_begin.max(now - 730 * DAY);
        let window_end = last_active.min(now - HOUR);
        if window_end > window_start + DAY {
            let count = rng.random_range(12..=28);
            for _ in 0..count {
                let begin = rng.random_range(window_start..window_end);
                let end = (begin + rng.random_range(20 * 60_000..10 * HOUR)).min(now - 60_000);
                sessions.push((
                    begin,
                    Some(end),
                    rng.random_bool(0.95),
                    host(&campus, &mut rng),
                    rng.random_bool(0.05),
                ));
            }
        }
        let open_chance = if profile == Profile::Pisciner {
            0.4
        } else if profile == Profile::Student {
            0.15
        } else {
            0.0
        };
        if !anonymised && rng.random_bool(open_chance) {
            let begin = now - rng.random_range(5 * 60_000..9 * HOUR);
            let seat = host(&campus, &mut rng);
            data.location = Some(seat.clone());
            sessions.push((begin, None, true, seat, false));
        }
        sessions.sort_by_key(|s| s.0);
    }

    let student = profile == Profile::Student;
    let cursus_begin = piscine_end + rng.random_range(20..90) * DAY;
    let alumni =
        student && !anonymised && cursus_begin < now - 4 * 365 * DAY && rng.random_bool(0.3);
    if alumni {
        data.alumnized_at = Some(cursus_begin + rng.random_range(900..1400) * DAY);
    }
    let user = Arc::new(data);
    store.users.insert(UserRow {
        data: Arc::clone(&user),
    });

    // campus_users: a primary one, and a second campus for a few users.
    let stamp =
        |rng: &mut ChaCha8Rng, from: Ms| from + rng.random_range(0..=(now - HOUR - from).max(0));
    let cu_created = created_at;
    let campus_user_id = store.campus_users.allocate_id();
    let cu_updated = stamp(&mut rng, cu_created);
    store.insert_campus_user(CampusUser {
        id: campus_user_id,
        user_id: id,
        campus_id,
        is_primary: true,
        created_at: cu_created,
        updated_at: cu_updated,
    });
    let campus_count = store.campuses.len() as i64;
    if campus_count > 1 && rng.random_bool(0.06) {
        let other = 1 + (campus_id + rng.random_range(0..campus_count - 1)) % campus_count;
        let other = if other == campus_id {
            1 + campus_id % campus_count
        } else {
            other
        };
        let created = stamp(&mut rng, created_at);
        let cu_id = store.campus_users.allocate_id();
        let updated = stamp(&mut rng, created);
        store.insert_campus_user(CampusUser {
            id: cu_id,
            user_id: id,
            campus_id: other,
            is_primary: false,
            created_at: created,
            updated_at: updated,
        });
    }

    // cursus_users
    let piscine_level = match profile {
        Profile::Upcoming => 0,
        Profile::Pisciner => rng.random_range(0..700),
        _ => rng.random_range(150..1400),
    };
    // Registration for the piscine happens when the account is created.
    let piscine_created = created_at;
    let piscine_cu = CursusUser {
        id: store.cursus_users.allocate_id(),
        user: Arc::clone(&user),
        cursus_id: PISCINE,
        begin_at: piscine_begin,
        end_at: Some(piscine_end),
        grade: if student { Some("Pisciner") } else { None },
        level_centi: piscine_level,
        skills: skills(&mut rng, piscine_level),
        has_coalition: false,
        blackholed_at: None,
        created_at: piscine_created,
        updated_at: if profile == Profile::Upcoming {
            piscine_created
        } else {
            stamp(&mut rng, piscine_created.min(now - HOUR))
        },
    };
    store.cursus_users.insert(piscine_cu);
    if student {
        let level = rng.random_range(0..2100);
        let blackholed_at = if alumni {
            None
        } else if rng.random_bool(0.3) {
            Some(cursus_begin + rng.random_range(60..700) * DAY)
                .filter(|&at| at < now)
                .or(Some(now - rng.random_range(1..30) * DAY))
        } else {
            Some(now + rng.random_range(5..300) * DAY)
        };
        let created = piscine_end + rng.random_range(5..20) * DAY;
        let created = created.min(now - 2 * HOUR);
        let id = store.cursus_users.allocate_id();
        store.cursus_users.insert(CursusUser {
            id,
            user: Arc::clone(&user),
            cursus_id: CURSUS_42,
            begin_at: cursus_begin,
            end_at: None,
            grade: Some(if alumni {
                "Member"
            } else if rng.random_bool(0.02) {
                "Lieutenant"
            } else {
                "Cadet"
            }),
            level_centi: level,
            skills: skills(&mut rng, level),
            has_coalition: true,
            blackholed_at,
            created_at: created,
            updated_at: stamp(&mut rng, created),
        });
    }

    // projects_users
    let piscine_ids: Vec<i64> = store
        .projects
        .rows
        .values()
        .filter(|p| p.cursus_id == PISCINE)
        .map(|p| p.id)
        .collect();
    let cursus_ids: Vec<(i64, Option<i64>)> = store
        .projects
        .rows
        .values()
        .filter(|p| p.cursus_id == CURSUS_42)
        .map(|p| (p.id, p.parent_id))
        .collect();
    let parent_project = cursus_ids.iter().find_map(|&(_, parent)| parent);
    // (project, cursus, start, latest mark time, still ongoing)
    let mut attempts: Vec<(i64, i64, Ms, Ms, bool)> = Vec::new();
    match profile {
        Profile::Upcoming => {}
        Profile::Pisciner | Profile::PiscineOnly => {
            let count = rng.random_range(8..=piscine_ids.len().min(22));
            let end = if profile == Profile::Pisciner {
                now - HOUR
            } else {
                piscine_end
            };
            for (k, &project) in piscine_ids.iter().take(count).enumerate() {
                let at = piscine_begin + (k as i64) * DAY + rng.random_range(0..DAY);
                if at < end {
                    attempts.push((
                        project,
                        PISCINE,
                        at,
                        end,
                        profile == Profile::Pisciner && k + 2 >= count,
                    ));
                }
            }
        }
        Profile::Student => {
            for &project in piscine_ids.iter().take(rng.random_range(8..15)) {
                let at = rng.random_range(piscine_begin..piscine_end);
                attempts.push((project, PISCINE, at, piscine_end, false));
            }
            let count = rng.random_range(14..31);
            let regular: Vec<i64> = cursus_ids
                .iter()
                .filter(|&&(id, parent)| parent.is_none() && Some(id) != parent_project)
                .map(|&(id, _)| id)
                .collect();
            let mut at = cursus_begin;
            for (k, &project) in regular.iter().take(count).enumerate() {
                at += rng.random_range(5..40) * DAY;
                if at >= now - DAY {
                    break;
                }
                attempts.push((project, CURSUS_42, at, now - HOUR, k + 1 == count));
            }
            // Some students did the internship: a parent project and its children.
            if rng.random_bool(0.15) && at < now - 30 * DAY {
                for &(project, parent) in &cursus_ids {
                    if Some(project) == parent_project || parent.is_some() {
                        attempts.push((project, CURSUS_42, at + DAY, now - HOUR, false));
                    }
                }
            }
        }
    }
    for (project, cursus_id, start_at, end_limit, ongoing) in attempts {
        let created = start_at.min(now - 2 * HOUR);
        let (status, final_mark, marked_at) = if Some(project) == parent_project {
            (6u8, None, None)
        } else if ongoing {
            let status = [1u8, 1, 1, 2, 3, 4, 5][rng.random_range(0..7)];
            (status, None, None)
        } else {
            let mark = match rng.random_range(0..200) {
                0..=1 => Some(-42),
                2..=6 => None,
                7..=30 => Some(0),
                31..=50 => Some(125),
                _ => Some(rng.random_range(0..=115)),
            };
            let marked = (created + rng.random_range(HOUR..14 * DAY))
                .min(end_limit)
                .max(created);
            (0u8, mark, Some(marked))
        };
        let validated = marked_at.map(|_| final_mark.is_some_and(|m| m >= 50));
        let validated = if final_mark.is_none() && status == 0 {
            None
        } else {
            validated
        };
        let retriable_at = match (marked_at, validated) {
            (Some(at), Some(false)) => Some(at + rng.random_range(1..8) * DAY),
            _ => None,
        };
        let occurrence = if validated == Some(false) && rng.random_bool(0.3) {
            rng.random_range(1..3)
        } else {
            0
        };
        let id = store.projects_users.allocate_id();
        let updated_at = marked_at.unwrap_or(created).max(created).min(now - HOUR);
        store.projects_users.insert(ProjectsUser {
            id,
            user: Arc::clone(&user),
            project_id: project,
            cursus_id,
            occurrence,
            final_mark,
            status,
            validated,
            current_team_id: if status == 3 {
                None
            } else {
                Some(3_000_000 + id)
            },
            marked_at,
            retriable_at,
            created_at: created,
            updated_at,
        });
    }

    // achievements_users
    if profile != Profile::Upcoming {
        let achievement_ids: Vec<(i64, bool)> = store
            .achievements
            .rows
            .values()
            .map(|a| (a.id, a.nbr_of_success.is_some()))
            .collect();
        let count = rng.random_range(5..16).min(achievement_ids.len());
        for &(achievement_id, counted) in achievement_ids.sample(&mut rng, count) {
            let created = rng.random_range(piscine_begin.min(now - 2 * HOUR)..now - HOUR);
            let id = store.achievements_users.allocate_id();
            let updated = stamp(&mut rng, created);
            store.achievements_users.insert(AchievementsUser {
                id,
                user: Arc::clone(&user),
                achievement_id,
                nbr_of_success: if counted {
                    Some(rng.random_range(1..60))
                } else {
                    None
                },
                created_at: created,
                updated_at: updated,
            });
        }
    }

    for (begin_at, end_at, primary, seat, legacy) in sessions {
        let id = store.locations.allocate_id();
        store.locations.insert(Location {
            id,
            user: Arc::clone(&user),
            campus_id,
            begin_at,
            end_at,
            primary,
            host: seat,
            legacy_keys: legacy,
        });
    }

    // coalitions_users: one per cursus student, in a coalition of the primary campus.
    if student {
        let coalitions: Vec<i64> = store
            .blocs
            .rows
            .values()
            .find(|b| b.campus_id == campus_id)
            .map(|b| b.coalition_ids.clone())
            .unwrap_or_default();
        if let Some(&coalition_id) = coalitions.choose(&mut rng) {
            let created = (cursus_begin + DAY).min(now - 2 * HOUR);
            let id = store.coalitions_users.allocate_id();
            let updated = stamp(&mut rng, created);
            store.coalitions_users.insert(CoalitionsUser {
                id,
                user_id: user.id,
                coalition_id,
                score: rng.random_range(0..6000),
                rank: rng.random_range(1..400),
                created_at: created,
                updated_at: updated,
            });
        }
    }
    id
}

fn skills(rng: &mut ChaCha8Rng, level: i64) -> Vec<(u8, i32)> {
    if level == 0 {
        return Vec::new();
    }
    let count = rng.random_range(1..5);
    let mut out: Vec<(u8, i32)> = Vec::with_capacity(count);
    for _ in 0..count {
        let index = rng.random_range(0..crate::model::SKILLS.len() as u8);
        if out.iter().all(|s| s.0 != index) {
            out.push((index, rng.random_range(1..1200)));
        }
    }
    out
}

/// A seat name in the campus's naming scheme (`c2r7s4`).
pub(crate) fn host(campus: &Campus, rng: &mut ChaCha8Rng) -> String {
    campus
        .host_prefix
        .replace("{a}", &rng.random_range(1..4).to_string())
        .replace("{b}", &rng.random_range(1..14).to_string())
        .replace("{c}", &rng.random_range(1..9).to_string())
}

fn month_index(ms: Ms) -> usize {
    use chrono::Datelike;
    crate::time::to_datetime(ms).month0() as usize
}

fn year_of(ms: Ms) -> i32 {
    use chrono::Datelike;
    crate::time::to_datetime(ms).year()
}
