-- Which runners' totals changed, and under which change ids: one row a statement that
-- gives totals new change ids (sync/ledger.py), holding the runners it wrote in the order
-- of their change ids, first_id, first_id + 1, ... (one statement's block of
-- change_id_seq, taken under the write lock): runner_ids[k] got change id first_id + k - 1.
-- A total is current in the row where its change id is that, and in no other.
-- The pull finds the totals changed after its cursor through this log and reads them by
-- primary key (sync/pull.py), so runner_total needs no index on change_id, and a push's
-- ~5,000 updates of it change no indexed column: they stay on their page (HOT).
-- Rows none of whose runners is current there any more are pruned.
CREATE TABLE IF NOT EXISTS total_change (
    last_id    bigint PRIMARY KEY,
    first_id   bigint NOT NULL,
    runner_ids text[] NOT NULL
);

-- The totals an existing database holds: a row each (pruned as pushes update them).
INSERT INTO total_change (last_id, first_id, runner_ids)
SELECT change_id, change_id, ARRAY[runner_id] FROM runner_total
ON CONFLICT (last_id) DO NOTHING;

DROP INDEX IF EXISTS runner_total_change;
-- Half-empty pages keep the updates HOT, as for device_runner_laps and runner_last_lap.
ALTER TABLE runner_total SET (fillfactor = 50);
