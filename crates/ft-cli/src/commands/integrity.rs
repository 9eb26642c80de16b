//! `ft42 integrity`: can the mirror be trusted? Counts, orphans, duplicates, freshness, an
//! optional spot check against the API, and optional maintenance. See docs/INTEGRITY.md.

use anyhow::Context;
use ft_integrity::{Maintenance, Options, SpotCheck};

use crate::cli::IntegrityArgs;
use crate::commands::support::{api_client, blocking, open_store};
use crate::config::Settings;
use crate::exit::{Classified, Exit};

/// Runs the checks, prints the report (text or JSON), stores it in `integrity_runs`, and exits
/// 0 when clean or with warnings only, 6 when a finding is an error, and with the failing
/// class's code when a check could not run.
pub(crate) async fn integrity(settings: &Settings, args: &IntegrityArgs) -> anyhow::Result<Exit> {
    let store = open_store(settings).await?;
    let s = store.clone();
    blocking(move || {
        s.schema_check()
            .context("the database schema is not the one this ft42 expects (run `ft42 migrate`)")
    })
    .await?;

    let spot_check = args.spot_check.map(|n| SpotCheck::new(usize::from(n)));
    let api_totals = args
        .api_totals
        .map(|max_requests| ft_integrity::ApiTotals { max_requests });
    // Only the spot check and the X-Total comparison talk to the API; without them no
    // credentials are needed.
    let client = if spot_check.is_some() || api_totals.is_some() {
        Some(api_client(settings)?)
    } else {
        None
    };
    let export_dir = settings.export_dir.clone();
    let options = Options {
        exports_dir: export_dir.is_dir().then_some(export_dir),
        // The same targets as `ft42 status` and the engine (defaults, [freshness], schedule).
        freshness: settings.freshness.clone(),
        spot_check,
        api_totals,
        maintenance: Maintenance {
            analyze: args.analyze,
            vacuum: args.vacuum,
            reindex: args.reindex,
        },
        ..Options::default()
    };
    let report = ft_integrity::run_with_api(&store, client.as_ref(), &options)
        .await
        .context("the integrity report could not be stored")?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.to_text());
    }
    if !report.is_complete() {
        let failed: Vec<String> = report
            .checks_failed_to_run
            .iter()
            .map(|f| format!("{}: {}", f.check, f.error))
            .collect();
        return Err(Classified::error(
            Exit::Other,
            format!(
                "{} check(s) could not run: {}",
                failed.len(),
                failed.join("; ")
            ),
        ));
    }
    Ok(if report.has_errors() {
        Exit::IntegrityFindings
    } else {
        Exit::Ok
    })
}
