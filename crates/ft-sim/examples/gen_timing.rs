//! Quick timing of generation, truth and a keyset page (a development aid; the benchmark is
//! `benches/generate.rs`).

use std::time::Instant;

#[tokio::main]
async fn main() {
    let users: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let t = Instant::now();
    let sim = ft_sim::Sim::builder()
        .seed(5)
        .campuses(2)
        .users_per_campus(users / 2)
        .start()
        .await;
    println!("start: {:?}", t.elapsed());
    let t = Instant::now();
    let truth = sim.truth();
    println!(
        "truth: {:?} ({} users)",
        t.elapsed(),
        truth.table("users").len()
    );
}
