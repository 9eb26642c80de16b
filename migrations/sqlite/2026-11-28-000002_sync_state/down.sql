DROP TABLE integrity_runs;
DROP TABLE relation_queue;
DROP TABLE sync_runs;
DROP TABLE fetch_log;
DROP TABLE tasks;
DROP TABLE cursors;
