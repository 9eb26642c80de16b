//! The Diesel store: schema, migrations, upserts, cursors and the durable task queue, on SQLite
//! and PostgreSQL.
