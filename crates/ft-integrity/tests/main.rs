//! The integration tests of `ft-integrity`, linked into one test binary: one link
//! instead of one per file keeps a clean build small and quick (see ARCHITECTURE.md).

mod against_sim;
mod common;
mod planted;
