//! Stale and future watermarks, stuck tasks and failed tasks.

use chrono::{NaiveDateTime, TimeDelta};
use ft_store::{Store, TaskFilter, TaskState};

use crate::error::IntegrityError;
use crate::finding::{Finding, Severity};
use crate::options::Options;

/// The check's name.
pub(crate) const NAME: &str = "freshness";

/// Errors quoted in a finding about failed tasks.
const ERRORS_SHOWN: usize = 3;

fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// `3d 4h`, `5h 12m` or `42m`: an age for people.
fn human(age: TimeDelta) -> String {
    let minutes = age.num_minutes();
    let (d, h, m) = (minutes / 1440, (minutes % 1440) / 60, minutes % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m")
    }
}

/// Cursors older than their target (Warning) or in the future (Error), cursors that never
/// completed a pass (Warning), running tasks whose lease expired more than the grace ago
/// (Warning) and failed tasks (Warning, with their last errors).
pub(crate) fn run(
    store: &Store,
    options: &Options,
    now: NaiveDateTime,
) -> Result<Vec<Finding>, IntegrityError> {
    let mut findings = Vec::new();
    for cursor in store.cursors()? {
        let scope = format!("{} {}", cursor.resource, cursor.scope);
        let target = options.freshness.target(&cursor.resource, &cursor.scope);
        let table = Some(cursor.resource.as_str());
        match cursor.watermark {
            None if cursor.page > 0 || cursor.last_id.is_some() => {
                findings.push(Finding::new(
                    NAME,
                    Severity::Info,
                    table,
                    1,
                    format!(
                        "{scope}: first pass in progress ({} pages, {} rows so far)",
                        cursor.page, cursor.rows
                    ),
                ));
            }
            None => findings.push(Finding::new(
                NAME,
                Severity::Warning,
                table,
                1,
                format!("{scope}: no pass has completed yet; run a sync"),
            )),
            Some(watermark) if watermark > now + delta(options.future_tolerance) => {
                findings.push(Finding::new(
                    NAME,
                    Severity::Error,
                    table,
                    1,
                    format!(
                        "{scope}: watermark {watermark} is {} in the future; later deltas would \
                         skip changes (check the clocks, then run a full sync of this scope)",
                        human(watermark - now)
                    ),
                ));
            }
            Some(watermark) if now - watermark > delta(target) => {
                findings.push(Finding::new(
                    NAME,
                    Severity::Warning,
                    table,
                    1,
                    format!(
                        "{scope}: last complete pass up to {watermark}, {} ago (target {}); run a sync",
                        human(now - watermark),
                        human(delta(target))
                    ),
                ));
            }
            Some(_) => {}
        }
    }

    let running = store.tasks(&TaskFilter {
        state: Some(TaskState::Running),
        ..TaskFilter::default()
    })?;
    let grace = delta(options.stale_lease_grace);
    let stuck: Vec<_> = running
        .iter()
        .filter(|t| t.lease_expires_at.is_none_or(|e| e + grace < now))
        .collect();
    if let Some(first) = stuck.first() {
        findings.push(
            Finding::new(
                NAME,
                Severity::Warning,
                Some("tasks"),
                stuck.len() as i64,
                format!(
                    "{} tasks are `running` with a lease that expired (first: {} {} held by {}); \
                     their worker died or hangs: the next sync takes them over",
                    stuck.len(),
                    first.kind,
                    first.scope,
                    first.lease_owner.as_deref().unwrap_or("nobody")
                ),
            )
            .with_ids(stuck.iter().map(|t| t.id)),
        );
    }

    let failed = store.tasks(&TaskFilter {
        state: Some(TaskState::Error),
        ..TaskFilter::default()
    })?;
    if !failed.is_empty() {
        let shown: Vec<String> = failed
            .iter()
            .take(ERRORS_SHOWN)
            .map(|t| {
                let error: String = t
                    .last_error
                    .as_deref()
                    .unwrap_or("no error recorded")
                    .chars()
                    .take(160)
                    .collect();
                format!("#{} {} {}: {error}", t.id, t.kind, t.scope)
            })
            .collect();
        findings.push(
            Finding::new(
                NAME,
                Severity::Warning,
                Some("tasks"),
                failed.len() as i64,
                format!(
                    "{} tasks failed for good ({}); requeue them once the cause is fixed",
                    failed.len(),
                    shown.join("; ")
                ),
            )
            .with_ids(failed.iter().map(|t| t.id)),
        );
    }
    Ok(findings)
}
