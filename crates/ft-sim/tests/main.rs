//! The integration tests of `ft-sim`, linked into one test binary: one link
//! instead of one per file keeps a clean build small and quick (see ARCHITECTURE.md).

mod common;
mod dataset;
mod drift;
mod faults;
mod listing;
mod oauth;
mod rate_limits;
mod serve;
mod smoke;
mod traps;
