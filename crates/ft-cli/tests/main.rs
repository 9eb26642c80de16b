//! The integration tests of `ft-cli`, linked into one test binary: one link
//! instead of one per file keeps a clean build small and quick (see ARCHITECTURE.md).

mod backup;
mod bad_input;
mod common;
mod cron;
mod errors;
mod scale;
mod secrets;
mod serve;
mod settings;
mod sync;
