//! The integration tests of `ft-api`, linked into one test binary: one link
//! instead of one per file keeps a clean build small and quick (see ARCHITECTURE.md).

mod applications;
mod client;
mod common;
mod logging;
mod sim;
