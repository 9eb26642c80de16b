-- How many rows the in-flight pass expects in all (rows read so far plus the X-Total the last
-- page reported): the budget planner's backlog estimate reads it.
ALTER TABLE cursors ADD COLUMN expected_rows BIGINT;
