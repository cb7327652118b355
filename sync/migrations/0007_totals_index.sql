-- runner_total's rows are updated by every push (one per runner the batch counted laps
-- for, ~5,000 a batch) and every void, each update changing laps and change_id. Every
-- index on a changed column takes a new entry per update (no HOT update possible), and
-- the one on laps served no query: the standings rank every runner of their filter.
-- change_id keeps its btree: the pull walks it (its plan must not depend on statistics).
DROP INDEX IF EXISTS runner_total_standings;
