//! The integration tests of `ft-e2e`, linked into one test binary: one link
//! instead of one per file keeps a clean build small and quick (see ARCHITECTURE.md).

mod anonymised;
mod budget;
mod chaos;
mod common;
mod crash;
mod network;
mod pacer_restart;
mod quarantine;
mod real_api;
mod relations;
mod scale_out;
mod sync_engine;
