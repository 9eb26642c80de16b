//! Progress display: indicatif bars when stderr is a terminal, plain lines otherwise.
//!
//! All bars live in one process-wide [`MultiProgress`], so log lines written to stderr can be
//! printed "around" them (see `logging`), and a wait for budget is shown as waiting rather than
//! looking stuck.

use std::io::IsTerminal;
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressDrawTarget};

/// The process-wide bar container; hidden when stderr is not a terminal.
pub fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| {
        if std::io::stderr().is_terminal() {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        }
    })
}

/// Whether progress is drawn as bars (a terminal) or written as plain lines.
pub fn interactive() -> bool {
    !bars().is_hidden()
}

/// Log target of the per-page progress events. They always reach the JSON-lines files; on a
/// terminal the bars replace them on stderr.
pub const PROGRESS_TARGET: &str = "ft42_progress";
