//! Rebuilds the crate when a migration changes: `embed_migrations!` cannot see new files itself.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
