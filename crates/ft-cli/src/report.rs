//! Draws the sync engine's progress events: bars on a terminal, log lines elsewhere.

use crate::progress::{PROGRESS_TARGET, bars, interactive};

/// Draws (or logs) the engine's progress events until the sender side is dropped.
pub struct Reporter {
    handle: tokio::task::JoinHandle<()>,
}

impl Reporter {
    /// Starts a reporter; give the returned sender to the engine. `client` is read for the
    /// request and 429 counters shown next to the bars.
    pub fn spawn(client: Option<ft_api::FtClient>) -> (ft_sync::ProgressTx, Reporter) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let handle = tokio::spawn(report(rx, client));
        (tx, Reporter { handle })
    }

    /// Waits until every event was drawn; call after the engine returned (and dropped its
    /// senders).
    pub async fn finish(self) {
        let _ = self.handle.await;
    }
}

async fn report(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<ft_sync::Progress>,
    client: Option<ft_api::FtClient>,
) {
    use ft_sync::Progress;
    use indicatif::{ProgressBar, ProgressStyle};
    use std::collections::HashMap;

    let interactive = interactive();
    let bar_style =
        ProgressStyle::with_template("{spinner} {prefix:<28} [{bar:30}] {pos}/{len} rows {msg}")
            .expect("static template")
            .progress_chars("=> ");
    let spin_style =
        ProgressStyle::with_template("{spinner} {prefix:<28} {pos} rows {msg}").expect("static");
    let status = interactive.then(|| {
        let bar = bars().add(ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("static"));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    let mut tasks: HashMap<i64, (ProgressBar, String)> = HashMap::new();
    let update_status = |msg: Option<String>| {
        let Some(status) = &status else { return };
        let counters = client.as_ref().map(|c| {
            let s = c.stats();
            format!("{} requests, {} × 429", s.requests, s.responses_429)
        });
        let text = match (counters, msg) {
            (Some(c), Some(m)) => format!("{c} — {m}"),
            (Some(c), None) => c,
            (None, Some(m)) => m,
            (None, None) => String::new(),
        };
        status.set_message(text);
    };
    while let Some(event) = rx.recv().await {
        match event {
            Progress::TaskStarted {
                task_id,
                kind,
                scope,
                total,
            } => {
                // The engine logs task starts and ends itself; these are for `-v`.
                tracing::debug!(target: PROGRESS_TARGET, task_id, %kind, %scope, total, "task started");
                if interactive {
                    let bar = match total {
                        Some(total) => ProgressBar::new(total).with_style(bar_style.clone()),
                        None => ProgressBar::new_spinner().with_style(spin_style.clone()),
                    };
                    let bar = bars().insert_before(status.as_ref().expect("interactive"), bar);
                    bar.set_prefix(format!("{kind} {scope}"));
                    tasks.insert(task_id, (bar, kind));
                }
                update_status(None);
            }
            Progress::Page {
                task_id,
                rows,
                total,
                pages_done,
            } => {
                tracing::info!(target: PROGRESS_TARGET, task_id, rows, total, pages_done, "page committed");
                if let Some((bar, _)) = tasks.get(&task_id) {
                    if let Some(total) = total {
                        if bar.length().is_none() {
                            bar.set_style(bar_style.clone());
                        }
                        bar.set_length(total.max(rows));
                    }
                    bar.set_position(rows);
                    bar.set_message(format!("({pages_done} pages)"));
                }
                update_status(None);
            }
            Progress::Waiting { wait, reason } => {
                tracing::debug!(target: PROGRESS_TARGET, wait_ms = wait.as_millis() as u64, %reason, "waiting");
                update_status(Some(format!(
                    "waiting {:.1}s for {reason}",
                    wait.as_secs_f64()
                )));
            }
            Progress::TaskFinished {
                task_id,
                ok,
                message,
            } => {
                tracing::debug!(target: PROGRESS_TARGET, task_id, ok, message, "task finished");
                if let Some((bar, _)) = tasks.remove(&task_id) {
                    let note = match (ok, message) {
                        (true, _) => "done".to_owned(),
                        (false, Some(m)) => format!("stopped: {m}"),
                        (false, None) => "stopped".to_owned(),
                    };
                    bar.finish_with_message(note);
                }
                update_status(None);
            }
            other => tracing::debug!(target: PROGRESS_TARGET, event = ?other, "progress"),
        }
    }
    if let Some(status) = status {
        status.finish_and_clear();
    }
}
