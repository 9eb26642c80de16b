//! The status page: one self-contained HTML document rendered on the server from a
//! [`StatusReport`]. No script, no external asset (the Content-Security-Policy forbids both), so
//! it works from a terminal browser, behind a strict proxy and with JavaScript off; it reloads
//! itself every minute.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::commands::status::{StatusReport, ago, short_age};

/// Seconds between reloads of the page.
pub(crate) const REFRESH_SECONDS: u32 = 60;

/// Fill of a budget-burn bar within the hourly budget (also read back by the browser test).
pub(crate) const BAR_COLOR: &str = "#2f6fd6";
/// Fill of a bar over the hourly budget.
pub(crate) const OVER_COLOR: &str = "#c62828";

/// Escapes text for HTML element content and double-quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:12px 24px}
header h1{font-size:18px;margin:0}
header p{margin:2px 0 0;color:#c9d1e0}
main{padding:16px 24px;max-width:1400px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px 16px;margin:0 0 16px}
h2{font-size:15px;margin:0 0 8px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:0 0 16px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:8px 12px;min-width:180px}
.card b{display:block;font-size:12px;color:#5a6478;font-weight:600}
.state{display:inline-block;padding:2px 8px;border-radius:4px;font-weight:700}
.ok{background:#dff3e4;color:#17622c}
.warn{background:#fff1cc;color:#7a5200}
.bad{background:#fde0e0;color:#8e1b1b}
table{border-collapse:collapse;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid #eceef2;text-align:left;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid td.cell{text-align:center}
.fresh{background:#dff3e4}
.stale{background:#fde0e0;font-weight:700}
.never{background:#eceef2;color:#5a6478}
.scroll{overflow-x:auto}
footer{padding:0 24px 24px;color:#5a6478}
";

/// The whole page.
pub(crate) fn render(r: &StatusReport, campus_names: &BTreeMap<i64, String>) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let stale = r.scopes.iter().filter(|s| !s.fresh).count();
    let (state_class, state_text) = if r.scopes.is_empty() {
        ("warn", "NOTHING SYNCED YET".to_owned())
    } else if stale > 0 {
        ("bad", format!("STALE: {stale} scope(s) past target"))
    } else if r.failed_tasks > 0 {
        ("warn", format!("{} FAILED TASK(S)", r.failed_tasks))
    } else {
        ("ok", "FRESH".to_owned())
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>ft42 status: {state}</title><style>{STYLE}</style></head><body>\
         <header><h1>ft42 mirror status <span id=\"state\" class=\"state {state_class}\">{state}</span></h1>\
         <p>{db} &middot; read at {at} UTC &middot; reloads every {REFRESH_SECONDS} s</p></header><main>",
        state = escape(&state_text),
        db = escape(&r.database),
        at = r.at.format("%Y-%m-%d %H:%M:%S"),
    );
    cards(&mut out, r);
    burn_chart(&mut out, r);
    freshness_grid(&mut out, r, campus_names);
    runs(&mut out, r);
    tables(&mut out, r);
    out.push_str(
        "</main><footer>Machine-readable: <a href=\"/metrics\">/metrics</a> (Prometheus) \
         &middot; <a href=\"/status.json\">/status.json</a> (the same as <code>ft42 status \
         --json</code>)</footer></body></html>\n",
    );
    out
}

fn card(out: &mut String, id: &str, title: &str, body: &str, class: Option<&str>) {
    let body = match class {
        Some(c) => format!("<span class=\"state {c}\">{body}</span>"),
        None => body.to_owned(),
    };
    let _ = write!(
        out,
        "<div class=\"card\" id=\"{id}\"><b>{}</b>{body}</div>",
        escape(title)
    );
}

fn cards(out: &mut String, r: &StatusReport) {
    out.push_str("<div class=\"cards\">");
    let last_success = r.last_success.map_or_else(
        || "none".to_owned(),
        |t| {
            format!(
                "{} ({})",
                t.format("%Y-%m-%d %H:%M"),
                ago(Some((r.at - t).num_seconds()))
            )
        },
    );
    card(
        out,
        "last-success",
        "Last successful run (UTC)",
        &escape(&last_success),
        r.last_success.is_none().then_some("warn"),
    );
    let b = &r.budget;
    card(
        out,
        "budget",
        "Requests in the last hour",
        &format!(
            "{} of {}/h ({} left)",
            b.used_last_hour, b.per_hour, b.remaining
        ),
        None,
    );
    card(out, "queue", "Queue", &escape(&r.queue.describe()), None);
    card(
        out,
        "tasks",
        "Tasks",
        &format!(
            "{} pending or running, {} failed",
            r.pending_tasks, r.failed_tasks
        ),
        (r.failed_tasks > 0).then_some("warn"),
    );
    match &r.last_backup {
        Some(backup) => card(
            out,
            "backup",
            "Last backup (UTC)",
            &format!(
                "{} ({})",
                backup.made_at.format("%Y-%m-%d %H:%M"),
                ago(Some(backup.age_seconds))
            ),
            (backup.age_seconds > 2 * 86_400).then_some("warn"),
        ),
        None => card(
            out,
            "backup",
            "Last backup",
            &format!("none in {}", escape(&r.backup_dir)),
            Some("warn"),
        ),
    }
    match &r.secret {
        Some(secret) => {
            let left = ft_api::SecretExpiry::describe_left(secret.valid_until, r.at.and_utc());
            let class = secret
                .expiry
                .map(|e| if e.is_urgent() { "bad" } else { "warn" });
            card(out, "secret", "Client secret", &escape(&left), class);
        }
        None => card(
            out,
            "secret",
            "Client secret",
            "validity unknown (no sync has recorded it yet)",
            None,
        ),
    }
    if r.quarantined > 0 {
        card(
            out,
            "quarantine",
            "Quarantined rows",
            &format!("{} (see <code>ft42 status</code>)", r.quarantined),
            Some("warn"),
        );
    }
    out.push_str("</div>");
}

/// Requests per clock hour as an SVG bar chart, with the hourly budget as a dashed line.
fn burn_chart(out: &mut String, r: &StatusReport) {
    const W: f64 = 760.0;
    const H: f64 = 200.0;
    const LEFT: f64 = 48.0;
    const BOTTOM: f64 = 22.0;
    const TOP: f64 = 10.0;
    let hours = &r.budget.hourly;
    let budget = f64::from(r.budget.per_hour);
    let peak = hours.iter().map(|h| h.requests).max().unwrap_or(0) as f64;
    let scale_max = budget.max(peak).max(1.0) * 1.1;
    let plot_h = H - BOTTOM - TOP;
    let y = |v: f64| TOP + plot_h - v / scale_max * plot_h;
    let slot = (W - LEFT) / hours.len().max(1) as f64;
    let total: i64 = hours.iter().map(|h| h.requests).sum();
    let _ = write!(
        out,
        "<section id=\"burn\"><h2>Budget burn: requests per hour, last {} hours (UTC)</h2>\
         <p>{total} requests in {} hours; budget {}/h (dashed line).</p>\
         <svg id=\"burn-chart\" role=\"img\" aria-label=\"requests per hour\" width=\"{W}\" \
         height=\"{H}\" viewBox=\"0 0 {W} {H}\" xmlns=\"http://www.w3.org/2000/svg\">",
        hours.len(),
        hours.len(),
        r.budget.per_hour,
    );
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{W}\" y2=\"{base}\" stroke=\"#8892a6\"/>",
        base = y(0.0)
    );
    for (i, h) in hours.iter().enumerate() {
        let x = LEFT + i as f64 * slot + slot * 0.15;
        // An hour with requests shows at least a 2-pixel bar, however small next to the budget.
        let height = match h.requests {
            0 => 0.0,
            n => (y(0.0) - y(n as f64)).max(2.0),
        };
        let top = y(0.0) - height;
        let fill = if h.requests as f64 > budget {
            OVER_COLOR
        } else {
            BAR_COLOR
        };
        let label = h.hour.format("%H:00");
        let _ = write!(
            out,
            "<rect class=\"bar\" data-hour=\"{}\" data-requests=\"{}\" x=\"{x:.1}\" y=\"{top:.1}\" \
             width=\"{:.1}\" height=\"{height:.1}\" fill=\"{fill}\"><title>{} UTC: {} requests</title></rect>",
            h.hour.format("%Y-%m-%dT%H:00"),
            h.requests,
            slot * 0.7,
            h.hour.format("%Y-%m-%d %H:00"),
            h.requests,
        );
        if i % 3 == 0 || i + 1 == hours.len() {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5a6478\">{label}</text>",
                x + slot * 0.35,
                H - 6.0
            );
        }
    }
    let _ = write!(
        out,
        "<line id=\"budget-line\" x1=\"{LEFT}\" y1=\"{b:.1}\" x2=\"{W}\" y2=\"{b:.1}\" \
         stroke=\"#c62828\" stroke-dasharray=\"6 4\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#c62828\">{}/h</text>\
         </svg></section>",
        LEFT - 4.0,
        y(budget) + 3.0,
        r.budget.per_hour,
        b = y(budget),
    );
}

/// The order of scopes in the grid: `global` first, then campuses by id, then the rest.
fn scope_order(scope: &str) -> (u8, i64, String) {
    if scope == "global" {
        return (0, 0, String::new());
    }
    match scope
        .strip_prefix("campus:")
        .and_then(|id| id.parse::<i64>().ok())
    {
        Some(id) => (1, id, String::new()),
        None => (2, 0, scope.to_owned()),
    }
}

/// Freshness per campus (rows) and resource (columns): the age of the last complete pass,
/// green within its target, red past it, grey when no pass has completed.
fn freshness_grid(out: &mut String, r: &StatusReport, campus_names: &BTreeMap<i64, String>) {
    let _ = write!(
        out,
        "<section id=\"freshness\"><h2>Freshness per campus and table</h2>"
    );
    if r.scopes.is_empty() {
        out.push_str(
            "<p>Nothing has been synced yet: run <code>ft42 sync all</code>.</p></section>",
        );
        return;
    }
    let mut resources: Vec<&str> = Vec::new();
    for s in &r.scopes {
        if !resources.contains(&s.resource.as_str()) {
            resources.push(&s.resource);
        }
    }
    // Sort key -> (scope, resource -> index into `r.scopes`).
    type Row<'a> = (&'a str, BTreeMap<&'a str, usize>);
    let mut by_scope: BTreeMap<(u8, i64, String), Row<'_>> = BTreeMap::new();
    for (i, s) in r.scopes.iter().enumerate() {
        by_scope
            .entry(scope_order(&s.scope))
            .or_insert_with(|| (s.scope.as_str(), BTreeMap::new()))
            .1
            .insert(s.resource.as_str(), i);
    }
    let _ = write!(
        out,
        "<p>Age of the last complete pass; green: within its target, red: past it (\
         <code>ft42 status --check</code> alerts), grey: never completed.</p>\
         <div class=\"scroll\"><table class=\"grid\"><thead><tr><th>scope</th>"
    );
    for res in &resources {
        let _ = write!(out, "<th>{}</th>", escape(res));
    }
    out.push_str("</tr></thead><tbody>");
    for (scope, cells) in by_scope.values() {
        let name = campus_label(campus_names, scope);
        let _ = write!(
            out,
            "<tr data-scope=\"{}\"><th>{}</th>",
            escape(scope),
            escape(&name)
        );
        for res in &resources {
            let Some(&i) = cells.get(res) else {
                out.push_str("<td></td>");
                continue;
            };
            let s = &r.scopes[i];
            let class = match (s.age_seconds, s.fresh) {
                (None, _) => "never",
                (Some(_), true) => "fresh",
                (Some(_), false) => "stale",
            };
            let age = match s.age_seconds {
                None => "never".to_owned(),
                Some(a) => short_age(a.max(0)),
            };
            let paging = if s.page > 0 {
                format!(", pass at page {}", s.page)
            } else {
                String::new()
            };
            let _ = write!(
                out,
                "<td class=\"cell {class}\" data-resource=\"{res}\" title=\"{res} {scope}: {rows} rows, \
                 target {target} min{paging}\">{age}</td>",
                res = escape(res),
                scope = escape(scope),
                rows = s.rows,
                target = s.target_seconds / 60,
                paging = escape(&paging),
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div></section>");
}

/// `campus:1` with the campus's name when the mirror has it: `campus:1 Paris`.
fn campus_label(campus_names: &BTreeMap<i64, String>, scope: &str) -> String {
    scope
        .strip_prefix("campus:")
        .and_then(|id| id.parse::<i64>().ok())
        .and_then(|id| campus_names.get(&id))
        .map_or_else(|| scope.to_owned(), |name| format!("{scope} {name}"))
}

fn runs(out: &mut String, r: &StatusReport) {
    let _ = write!(
        out,
        "<section id=\"runs\"><h2>Last runs</h2><table><thead><tr><th>run</th><th>kind</th>\
         <th>started (UTC)</th><th>duration</th><th>rows</th><th>requests</th><th>429s</th>\
         <th>status</th></tr></thead><tbody>"
    );
    if r.last_runs.is_empty() {
        out.push_str("<tr><td colspan=\"8\">no run yet</td></tr>");
    }
    for run in &r.last_runs {
        let duration = run.finished_at.map_or_else(
            || "running".to_owned(),
            |f| format!("{}s", (f - run.started_at).num_seconds()),
        );
        let class = match run.status.as_str() {
            "ok" => "ok",
            "empty" | "running" | "interrupted" => "warn",
            _ => "bad",
        };
        let _ = write!(
            out,
            "<tr class=\"run\"><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{duration}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td><span class=\"state {class}\">{}</span></td></tr>",
            run.id,
            escape(&run.kind),
            run.started_at.format("%Y-%m-%d %H:%M:%S"),
            run.figure("rows_written"),
            run.figure("requests"),
            run.figure("responses_429"),
            escape(&run.status),
        );
    }
    out.push_str("</tbody></table></section>");
}

fn tables(out: &mut String, r: &StatusReport) {
    out.push_str("<section id=\"tables\"><h2>Rows per table</h2><table><tbody>");
    for (table, n) in &r.tables {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{n}</td></tr>",
            escape(table)
        );
    }
    out.push_str("</tbody></table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            escape(r#"<b a="x">'&'</b>"#),
            "&lt;b a=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn scopes_sort_global_then_campuses_by_number() {
        let mut scopes = vec!["campus:10", "campuses:1,2", "campus:2", "global"];
        scopes.sort_by_key(|s| scope_order(s));
        assert_eq!(scopes, ["global", "campus:2", "campus:10", "campuses:1,2"]);
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(short_age(5), "5s");
        assert_eq!(short_age(600), "10m");
        assert_eq!(short_age(3 * 3600), "3h");
        assert_eq!(short_age(3 * 86400), "3d");
    }
}
