-- One index of a runner's laps, those that count (voided_at NULL) first, each part in
-- entry order: the lap count and the latest counting lap (max rowid) at every entry, the
-- big screen's counts after a lap and a merge's laps are all read from it alone. It
-- replaces lap_runner_time (runner_id, time), which no reader ordered by, and
-- lap_counting (runner_id, time) WHERE voided_at IS NULL, which lacked voided_at, so
-- that SQLite read every counted lap's table row (~200 a runner at 1M laps) to check it.
-- A lap now writes one index page fewer.
DROP INDEX IF EXISTS lap_runner_time;
DROP INDEX IF EXISTS lap_counting;
CREATE INDEX IF NOT EXISTS lap_runner ON lap(runner_id, voided_at);
