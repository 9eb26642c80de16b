//! Backup file names and rotation: which backups to keep, as a pure function of the file names,
//! the settings and "now", so it is tested without a clock.
//!
//! A backup is named `ft42-backup-YYYYMMDDTHHMMSSZ.age` (its UTC creation time). Rotation keeps
//!
//! * **daily**: the newest backup of each of the `keep_daily` most recent UTC days that have
//!   a backup, and
//! * **weekly**: the newest backup of each of the `keep_weekly` most recent ISO weeks (Monday to
//!   Sunday, UTC) that have a backup,
//!
//! and deletes every other backup. Counting days and weeks that *have* a backup (rather than
//! calendar days back from today) means a machine that was down for a month still keeps its
//! last good backups. Files that are not backups, and backups dated after "now" (a clock that
//! went backwards), are never touched.

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};

/// File names start with this.
pub const PREFIX: &str = "ft42-backup-";
/// File names end with this.
pub const SUFFIX: &str = ".age";
const STAMP: &str = "%Y%m%dT%H%M%SZ";

/// The file name of a backup made at `at`.
pub fn file_name(at: DateTime<Utc>) -> String {
    format!("{PREFIX}{}{SUFFIX}", at.format(STAMP))
}

/// The UTC time in a backup's file name, or `None` when the name is not a backup's.
pub fn parse_name(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    NaiveDateTime::parse_from_str(stamp, STAMP)
        .ok()
        .map(|t| t.and_utc())
}

/// What rotation does with a folder's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Backups kept, newest first.
    pub keep: Vec<String>,
    /// Backups to delete, newest first.
    pub delete: Vec<String>,
}

/// Decides which of `names` to keep and delete (see the module docs). Names that are not
/// backups appear in neither list.
pub fn plan(names: &[String], now: DateTime<Utc>, keep_daily: u32, keep_weekly: u32) -> Plan {
    let mut dated: Vec<(DateTime<Utc>, &String)> = names
        .iter()
        .filter_map(|n| parse_name(n).map(|t| (t, n)))
        .collect();
    // Newest first; equal times (impossible with distinct names, but cheap) by name.
    dated.sort_by(|a, b| b.cmp(a));
    let mut plan = Plan::default();
    let mut days = Vec::new();
    let mut weeks = Vec::new();
    for (at, name) in dated {
        if at > now {
            plan.keep.push(name.clone());
            continue;
        }
        let day = at.date_naive();
        let week = (at.iso_week().year(), at.iso_week().week());
        let mut keep = false;
        if !days.contains(&day) && days.len() < keep_daily as usize {
            days.push(day);
            keep = true;
        }
        if !weeks.contains(&week) && weeks.len() < keep_weekly as usize {
            weeks.push(week);
            keep = true;
        }
        if keep {
            plan.keep.push(name.clone());
        } else {
            plan.delete.push(name.clone());
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 30, 0).unwrap()
    }

    /// One backup a day at 04:30 for `days` days up to `last`, plus a second one at 16:30 on
    /// each of those days when `twice` is set.
    fn nightly(last: DateTime<Utc>, days: i64, twice: bool) -> Vec<String> {
        let mut names = Vec::new();
        for back in 0..days {
            let day = last - TimeDelta::days(back);
            names.push(file_name(day));
            if twice {
                names.push(file_name(day + TimeDelta::hours(12)));
            }
        }
        names
    }

    #[test]
    fn names_round_trip_and_foreign_files_are_ignored() {
        let t = at(2026, 11, 28, 4);
        assert_eq!(file_name(t), "ft42-backup-20261128T043000Z.age");
        assert_eq!(parse_name(&file_name(t)), Some(t));
        for other in [
            "notes.txt",
            "ft42-backup-2026.age",
            ".ft42-backup-20261128T043000Z.age.partial",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
        let names = vec!["notes.txt".to_owned(), file_name(t)];
        let p = plan(&names, t, 1, 0);
        assert_eq!(p.keep, vec![file_name(t)]);
        assert!(p.delete.is_empty());
    }

    #[test]
    fn keeps_exactly_n_daily_and_m_weekly() {
        // 60 nightly backups ending Saturday 2026-11-28, with the defaults (7 daily, 4 weekly).
        let last = at(2026, 11, 28, 4);
        let names = nightly(last, 60, false);
        let p = plan(&names, last + TimeDelta::hours(1), 7, 4);
        let mut expected: Vec<String> = (0..7)
            .map(|back| file_name(last - TimeDelta::days(back)))
            .collect();
        // The newest backup of each of the 4 most recent ISO weeks: this week's is today's and
        // last week's is Sunday the 22nd (both already kept as dailies), then the two Sundays
        // before.
        for sunday in [at(2026, 11, 15, 4), at(2026, 11, 8, 4)] {
            expected.push(file_name(sunday));
        }
        assert_eq!(p.keep, expected);
        assert_eq!(p.keep.len(), 9);
        assert_eq!(p.delete.len(), 51);
        // Daily only: exactly the last 7; weekly only: today and the 3 Sundays before.
        assert_eq!(plan(&names, last, 7, 0).keep.len(), 7);
        assert_eq!(plan(&names, last, 0, 4).keep.len(), 4);
    }

    #[test]
    fn several_backups_a_day_keep_the_newest_of_each_day() {
        let last = at(2026, 11, 28, 4);
        let names = nightly(last, 3, true);
        let p = plan(&names, last + TimeDelta::days(1), 2, 0);
        assert_eq!(
            p.keep,
            vec![
                file_name(last + TimeDelta::hours(12)),
                file_name(last - TimeDelta::days(1) + TimeDelta::hours(12)),
            ]
        );
        assert_eq!(p.delete.len(), 4);
    }

    #[test]
    fn gaps_do_not_empty_the_folder_and_future_files_are_left_alone() {
        // Backups stopped for a month: the last ones are still kept.
        let last = at(2026, 10, 1, 4);
        let names = nightly(last, 10, false);
        let now = at(2026, 11, 28, 4);
        let p = plan(&names, now, 3, 0);
        assert_eq!(p.keep.len(), 3);
        assert_eq!(p.keep[0], file_name(last));
        // A file dated tomorrow (clock skew) is neither counted nor deleted.
        let mut names = nightly(now, 2, false);
        let future = file_name(now + TimeDelta::days(1));
        names.push(future.clone());
        let p = plan(&names, now, 1, 0);
        assert_eq!(p.keep, vec![future, file_name(now)]);
        assert_eq!(p.delete, vec![file_name(now - TimeDelta::days(1))]);
    }

    #[test]
    fn weekly_only() {
        let last = at(2026, 11, 28, 4);
        let names = nightly(last, 21, false);
        let p = plan(&names, last, 0, 2);
        assert_eq!(
            p.keep,
            vec![file_name(last), file_name(at(2026, 11, 22, 4))]
        );
        assert_eq!(p.delete.len(), 19);
    }
}
