ALTER TABLE cursors DROP COLUMN expected_rows;
