//! The integration tests of `ft-store`, linked into one test binary: one link
//! instead of one per file keeps a clean build small and quick (see ARCHITECTURE.md).

mod apply;
mod common;
mod embedded;
mod engine_support;
mod integrity_queries;
mod logs;
mod ops;
mod schema;
mod tasks;
mod tls;
mod upsert;
