-- Rows the API sent that could not be decoded or mapped (issue #16): kept as received, with
-- the reason, instead of failing their page forever. A row leaves when a later page brings it
-- in a form that stores. `item_key` is the id, or `raw:<hash>` for an item without one.
CREATE TABLE quarantine (
    resource TEXT NOT NULL,
    item_key TEXT NOT NULL,
    item_id BIGINT,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    times INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (resource, item_key)
);
