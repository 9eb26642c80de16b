//! Post-fetch hygiene and fidelity checks: counts, orphans, duplicates, freshness, spot checks.
