//! [`Report`]: the findings of one run, with text and JSON renderings.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::IntegrityError;
use crate::finding::{Finding, Severity};

/// A check that could not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCheck {
    /// The check's name.
    pub check: String,
    /// The error, as text.
    pub error: String,
}

/// The result of one integrity run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When the run started (UTC).
    pub started_at: DateTime<Utc>,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// What the checks found, in the order the checks ran.
    pub findings: Vec<Finding>,
    /// Checks that ran to the end.
    pub checks_run: Vec<String>,
    /// Checks that could not run.
    pub checks_failed_to_run: Vec<FailedCheck>,
    /// How long the run took.
    #[serde(with = "duration_secs")]
    pub duration: Duration,
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

impl Report {
    /// An empty report started at `started_at`.
    pub fn new(started_at: DateTime<Utc>, backend: &str) -> Report {
        Report {
            started_at,
            backend: backend.to_owned(),
            findings: Vec::new(),
            checks_run: Vec::new(),
            checks_failed_to_run: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    /// Records the outcome of one check: its findings, or the reason it could not run.
    pub fn add(&mut self, check: &str, outcome: Result<Vec<Finding>, IntegrityError>) {
        match outcome {
            Ok(findings) => {
                self.findings.extend(findings);
                self.checks_run.push(check.to_owned());
            }
            Err(error) => {
                tracing::warn!(check, %error, "integrity check could not run");
                self.checks_failed_to_run.push(FailedCheck {
                    check: check.to_owned(),
                    error: error.to_string(),
                });
            }
        }
    }

    /// Findings of exactly this severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// No warning, no error, and every check ran.
    pub fn is_clean(&self) -> bool {
        self.is_complete() && self.findings.iter().all(|f| f.severity == Severity::Info)
    }

    /// At least one finding is an [`Severity::Error`] (the CLI's exit code 6).
    pub fn has_errors(&self) -> bool {
        self.count(Severity::Error) > 0
    }

    /// Every check ran (none is in [`Report::checks_failed_to_run`]).
    pub fn is_complete(&self) -> bool {
        self.checks_failed_to_run.is_empty()
    }

    /// One word for the `integrity_runs.status` column: `incomplete` when a check could not
    /// run, else `errors`, `warnings` or `clean`.
    pub fn status(&self) -> &'static str {
        if !self.is_complete() {
            "incomplete"
        } else if self.has_errors() {
            "errors"
        } else if self.count(Severity::Warning) > 0 {
            "warnings"
        } else {
            "clean"
        }
    }

    /// The report as JSON (the form stored in `integrity_runs` and printed by `--json`).
    pub fn to_json(&self) -> serde_json::Value {
        // Serializing plain structs of strings, numbers and vectors cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The report as a readable table: errors first, then warnings, then figures.
    pub fn to_text(&self) -> String {
        let mut rows: Vec<&Finding> = self.findings.iter().collect();
        rows.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let headers = ["SEVERITY", "CHECK", "TABLE", "COUNT", "DETAIL"];
        let cells: Vec<[String; 5]> = rows
            .iter()
            .map(|f| {
                let mut detail = f.detail.clone();
                if !f.ids.is_empty() {
                    let ids: Vec<String> = f.ids.iter().map(i64::to_string).collect();
                    let _ = write!(detail, " [ids: {}]", ids.join(", "));
                }
                [
                    f.severity.to_string(),
                    f.check.clone(),
                    f.table.clone().unwrap_or_else(|| "-".to_owned()),
                    f.count.to_string(),
                    detail,
                ]
            })
            .collect();
        let mut widths = headers.map(str::len);
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ft42 integrity on {} at {} ({:.1} s): {} checks run, {} could not run",
            self.backend,
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.duration.as_secs_f64(),
            self.checks_run.len(),
            self.checks_failed_to_run.len()
        );
        let line = |out: &mut String, row: [&str; 5]| {
            let _ = writeln!(
                out,
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
            );
        };
        line(&mut out, headers);
        for row in &cells {
            line(&mut out, [&row[0], &row[1], &row[2], &row[3], &row[4]]);
        }
        for failed in &self.checks_failed_to_run {
            let _ = writeln!(out, "could not run {}: {}", failed.check, failed.error);
        }
        let _ = writeln!(
            out,
            "status: {} ({} errors, {} warnings, {} info)",
            self.status(),
            self.count(Severity::Error),
            self.count(Severity::Warning),
            self.count(Severity::Info)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> Report {
        let mut report = Report::new(
            Utc.with_ymd_and_hms(2026, 11, 28, 20, 0, 0).unwrap(),
            "sqlite",
        );
        report.add(
            "counts",
            Ok(vec![Finding::new(
                "counts",
                Severity::Info,
                Some("users"),
                120,
                "120 live, 0 marked deleted",
            )]),
        );
        report.add(
            "foreign_keys",
            Ok(vec![
                Finding::new(
                    "foreign_keys",
                    Severity::Error,
                    Some("campus_users"),
                    2,
                    "user_id -> users: 2 live rows name no live row",
                )
                .with_ids([7, 9]),
            ]),
        );
        report.add("exports", Err(IntegrityError::Join("cancelled".to_owned())));
        report.duration = Duration::from_millis(1500);
        report
    }

    #[test]
    fn text_report_is_a_table_with_errors_first() {
        let text = sample().to_text();
        let expected = "\
ft42 integrity on sqlite at 2026-11-28 20:00:00 UTC (1.5 s): 2 checks run, 1 could not run
SEVERITY  CHECK         TABLE         COUNT  DETAIL
error     foreign_keys  campus_users      2  user_id -> users: 2 live rows name no live row [ids: 7, 9]
info      counts        users           120  120 live, 0 marked deleted
could not run exports: a blocking store call did not finish: cancelled
status: incomplete (1 errors, 0 warnings, 1 info)
";
        assert_eq!(text, expected);
    }

    #[test]
    fn json_report_round_trips_and_has_stable_field_names() {
        let report = sample();
        let json = report.to_json();
        assert_eq!(json["findings"][1]["severity"], "error");
        assert_eq!(json["findings"][1]["ids"], serde_json::json!([7, 9]));
        assert_eq!(json["checks_failed_to_run"][0]["check"], "exports");
        assert_eq!(json["duration"], 1.5);
        assert_eq!(json["started_at"], "2026-11-28T20:00:00Z");
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn status_orders_incomplete_errors_warnings_clean() {
        let mut report = sample();
        assert_eq!(report.status(), "incomplete");
        assert!(report.has_errors() && !report.is_clean());
        report.checks_failed_to_run.clear();
        assert_eq!(report.status(), "errors");
        report.findings.retain(|f| f.severity != Severity::Error);
        assert_eq!(report.status(), "clean");
        assert!(report.is_clean());
        report
            .findings
            .push(Finding::new("freshness", Severity::Warning, None, 1, "x"));
        assert_eq!(report.status(), "warnings");
        assert!(!report.is_clean() && !report.has_errors());
    }
}
