//! One module per command; each exposes functions returning `anyhow::Result<Exit>`.

pub(crate) mod cron;
