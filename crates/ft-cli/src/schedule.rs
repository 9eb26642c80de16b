//! The sync schedule shared by `ft42 cron install` and `ft42 daemon`.
//!
//! The defaults are paced to stay under the API's 1200 requests/hour: a nightly full sync,
//! deltas every 10 minutes and the relation worker every 5 minutes; plus a nightly encrypted
//! backup (no API requests). Each job can be moved or
//! switched off in the config file's `[schedule]` table, so each environment (one config file
//! per environment) can have its own:
//!
//! ```toml
//! [schedule]
//! full = "daily 03:17"      # or "off"
//! delta = "every 10m"
//! relations = "every 5m"
//! backup = "daily 04:43"    # `ft42 backup`; needs FT42_BACKUP_RECIPIENT or _PASSPHRASE_FILE
//! ```

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, Origin};

/// When a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Never.
    Off,
    /// Every so many whole minutes, aligned to the clock (like cron's `*/N`).
    Every(Duration),
    /// Once a day at this UTC-or-local (cron's) hour and minute.
    Daily {
        /// 0..=23.
        hour: u8,
        /// 0..=59.
        minute: u8,
    },
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            When::Off => f.write_str("off"),
            When::Every(d) => write!(f, "every {}m", d.as_secs() / 60),
            When::Daily { hour, minute } => write!(f, "daily {hour:02}:{minute:02}"),
        }
    }
}

impl When {
    /// Parses `off`, `every 10m` (any humantime duration of whole minutes) or `daily HH:MM`.
    pub fn parse(text: &str) -> Result<When, String> {
        let text = text.trim();
        if text == "off" {
            return Ok(When::Off);
        }
        if let Some(rest) = text.strip_prefix("every ") {
            let d = humantime::parse_duration(rest.trim())
                .map_err(|e| format!("{rest:?} is not a duration ({e})"))?;
            let secs = d.as_secs();
            if secs == 0 || !secs.is_multiple_of(60) || d.subsec_nanos() != 0 {
                return Err(format!("{rest:?} is not a whole number of minutes"));
            }
            let minutes = secs / 60;
            // Cron can only express intervals that divide an hour or a day evenly.
            let cron_ok = (minutes < 60 && 60u64.is_multiple_of(minutes))
                || (minutes.is_multiple_of(60) && (24 * 60u64).is_multiple_of(minutes));
            if !cron_ok {
                return Err(format!(
                    "every {minutes}m cannot be written in cron; use a divisor of 60 minutes \
                     or of 24 hours"
                ));
            }
            return Ok(When::Every(d));
        }
        if let Some(rest) = text.strip_prefix("daily ") {
            let (h, m) = rest
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("{rest:?} is not HH:MM"))?;
            let hour: u8 = h.parse().map_err(|_| format!("bad hour {h:?}"))?;
            let minute: u8 = m.parse().map_err(|_| format!("bad minute {m:?}"))?;
            if hour > 23 || minute > 59 {
                return Err(format!("{rest:?} is not a time of day"));
            }
            return Ok(When::Daily { hour, minute });
        }
        Err(format!(
            "{text:?} is not a schedule; use \"off\", \"every 10m\" or \"daily 03:17\""
        ))
    }

    /// The five cron fields.
    pub fn cron_fields(self) -> Option<String> {
        match self {
            When::Off => None,
            When::Every(d) => {
                let minutes = d.as_secs() / 60;
                Some(if minutes < 60 {
                    format!("*/{minutes} * * * *")
                } else if minutes == 24 * 60 {
                    "0 0 * * *".to_owned()
                } else {
                    format!("0 */{} * * *", minutes / 60)
                })
            }
            When::Daily { hour, minute } => Some(format!("{minute} {hour} * * *")),
        }
    }

    /// Whether the job is due in the minute starting at `minute_of_day` (local time, minutes
    /// since midnight), using the same rule as cron.
    pub fn due_at(self, minute_of_day: u32) -> bool {
        match self {
            When::Off => false,
            When::Every(d) => {
                let every = (d.as_secs() / 60) as u32;
                minute_of_day.is_multiple_of(every)
            }
            When::Daily { hour, minute } => {
                minute_of_day == u32::from(hour) * 60 + u32::from(minute)
            }
        }
    }
}

/// Which job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Everything, refetched.
    Full,
    /// Everything, changes only.
    Delta,
    /// The queued per-user relation tasks.
    Relations,
    /// A database backup.
    Backup,
}

/// One scheduled job: when it runs and which `ft42` arguments it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Which job.
    pub kind: JobKind,
    /// Its config-file key (`full`, `delta`, `relations`, `backup`).
    pub name: &'static str,
    /// When it runs.
    pub when: When,
    /// The `ft42` arguments, without the binary.
    pub args: Vec<&'static str>,
}

/// The `[schedule]` table of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    full: Option<String>,
    delta: Option<String>,
    relations: Option<String>,
    backup: Option<String>,
}

/// The resolved schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// All jobs, including those switched off.
    pub jobs: Vec<Job>,
}

/// Default: nightly full sync.
pub const DEFAULT_FULL: When = When::Daily {
    hour: 3,
    minute: 17,
};
/// Default: deltas every 10 minutes.
pub const DEFAULT_DELTA: When = When::Every(Duration::from_secs(600));
/// Default: the relation worker every 5 minutes.
pub const DEFAULT_RELATIONS: When = When::Every(Duration::from_secs(300));
/// Default: a nightly backup, after the full sync has usually finished (a backup during a sync
/// is consistent too: both copy methods read one snapshot).
pub const DEFAULT_BACKUP: When = When::Daily {
    hour: 4,
    minute: 43,
};

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            jobs: vec![
                Job {
                    kind: JobKind::Full,
                    name: "full",
                    when: DEFAULT_FULL,
                    args: vec!["sync", "all", "--full"],
                },
                Job {
                    kind: JobKind::Delta,
                    name: "delta",
                    when: DEFAULT_DELTA,
                    args: vec!["sync", "all", "--delta"],
                },
                Job {
                    kind: JobKind::Relations,
                    name: "relations",
                    when: DEFAULT_RELATIONS,
                    args: vec!["worker", "--once"],
                },
                Job {
                    kind: JobKind::Backup,
                    name: "backup",
                    when: DEFAULT_BACKUP,
                    args: vec!["backup"],
                },
            ],
        }
    }
}

impl ScheduleConfig {
    /// Applies the config file's `[schedule]` table to the defaults.
    pub fn from_file(
        file: Option<&ScheduleFile>,
        path: Option<&Path>,
    ) -> Result<ScheduleConfig, ConfigError> {
        let mut config = ScheduleConfig::default();
        let Some(file) = file else { return Ok(config) };
        let origin = |key: &'static str| Origin::File {
            key,
            path: path.map(Path::to_path_buf).unwrap_or_default(),
        };
        for job in &mut config.jobs {
            let (key, value) = match job.kind {
                JobKind::Full => ("schedule.full", &file.full),
                JobKind::Delta => ("schedule.delta", &file.delta),
                JobKind::Relations => ("schedule.relations", &file.relations),
                JobKind::Backup => ("schedule.backup", &file.backup),
            };
            let Some(value) = value else { continue };
            let when = When::parse(value).map_err(|reason| ConfigError::Invalid {
                origin: origin(key),
                reason,
            })?;
            job.when = when;
        }
        Ok(config)
    }

    /// The jobs that are switched on.
    pub fn active(&self) -> impl Iterator<Item = &Job> {
        self.jobs.iter().filter(|j| j.when != When::Off)
    }

    /// How long after its refresh interval a scope may go without a complete pass before it
    /// is stale: three delta intervals when deltas run (two missed runs are tolerated), else a
    /// day and a half for the nightly full sync ([`ft_store::DEFAULT_GRACE`]).
    pub fn freshness_grace(&self) -> Duration {
        match self
            .jobs
            .iter()
            .find(|j| j.kind == JobKind::Delta)
            .map(|j| j.when)
        {
            Some(When::Every(d)) => 3 * d,
            _ => ft_store::DEFAULT_GRACE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(When::parse("off"), Ok(When::Off));
        assert_eq!(
            When::parse("every 15m"),
            Ok(When::Every(Duration::from_secs(900)))
        );
        assert_eq!(
            When::parse("every 2h"),
            Ok(When::Every(Duration::from_secs(7200)))
        );
        assert_eq!(
            When::parse("daily 03:17"),
            Ok(When::Daily {
                hour: 3,
                minute: 17
            })
        );
        for bad in ["every 7m", "every 30s", "daily 25:00", "hourly", "every 5h"] {
            assert!(When::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_fields_match_the_schedule() {
        assert_eq!(DEFAULT_FULL.cron_fields().unwrap(), "17 3 * * *");
        assert_eq!(DEFAULT_DELTA.cron_fields().unwrap(), "*/10 * * * *");
        assert_eq!(
            When::parse("every 2h").unwrap().cron_fields().unwrap(),
            "0 */2 * * *"
        );
        assert_eq!(When::Off.cron_fields(), None);
    }

    #[test]
    fn due_at_agrees_with_cron() {
        assert!(DEFAULT_DELTA.due_at(0) && DEFAULT_DELTA.due_at(130));
        assert!(!DEFAULT_DELTA.due_at(131));
        assert!(DEFAULT_FULL.due_at(3 * 60 + 17));
        assert!(!DEFAULT_FULL.due_at(3 * 60 + 18));
        let two_hours = When::parse("every 2h").unwrap();
        assert!(two_hours.due_at(120) && !two_hours.due_at(60));
    }

    #[test]
    fn file_overrides_and_disables_jobs() {
        let file: ScheduleFile = toml::from_str("delta = \"every 30m\"\nfull = \"off\"\n").unwrap();
        let cfg = ScheduleConfig::from_file(Some(&file), None).unwrap();
        let names: Vec<_> = cfg.active().map(|j| (j.name, j.when.to_string())).collect();
        assert_eq!(
            names,
            vec![
                ("delta", "every 30m".into()),
                ("relations", "every 5m".into()),
                ("backup", "daily 04:43".into())
            ]
        );
    }

    #[test]
    fn backup_is_nightly_by_default_and_can_be_moved_or_switched_off() {
        let backup = |cfg: &ScheduleConfig| {
            cfg.jobs
                .iter()
                .find(|j| j.kind == JobKind::Backup)
                .cloned()
                .unwrap()
        };
        let default = ScheduleConfig::default();
        assert_eq!(backup(&default).when, DEFAULT_BACKUP);
        assert_eq!(backup(&default).args, vec!["backup"]);
        let file: ScheduleFile = toml::from_str("backup = \"daily 01:05\"\n").unwrap();
        let cfg = ScheduleConfig::from_file(Some(&file), None).unwrap();
        assert_eq!(backup(&cfg).when.cron_fields().unwrap(), "5 1 * * *");
        let file: ScheduleFile = toml::from_str("backup = \"off\"\n").unwrap();
        let cfg = ScheduleConfig::from_file(Some(&file), None).unwrap();
        assert!(cfg.active().all(|j| j.kind != JobKind::Backup));
    }
}
