//! One module per check; each returns its findings, or an error when it could not run.

pub(crate) mod api_totals;
pub(crate) mod counts;
pub(crate) mod foreign_keys;
pub(crate) mod freshness;
pub(crate) mod maintenance;
pub(crate) mod quarantine;
pub(crate) mod spot_check;
pub(crate) mod uniqueness;
