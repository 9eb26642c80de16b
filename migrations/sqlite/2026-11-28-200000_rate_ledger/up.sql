-- The rate ledger (see the PostgreSQL migration). SQLite serves one process at a time, so the
-- ledger is not needed there; the table exists so both backends keep the same schema.
CREATE TABLE rate_reservations (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    app TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX rate_reservations_app_at_idx ON rate_reservations (app, at);
