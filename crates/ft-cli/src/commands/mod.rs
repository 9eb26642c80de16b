//! One module per command; each returns `anyhow::Result<Exit>`.

pub(crate) mod backup;
pub(crate) mod cron;
pub(crate) mod daemon;
pub(crate) mod demo;
pub(crate) mod integrity;
pub(crate) mod migrate;
pub(crate) mod replay;
pub(crate) mod sim;
pub(crate) mod status;
pub(crate) mod support;
pub(crate) mod sync;
pub(crate) mod token;
