-- Which runners' totals changed, and under which change ids: one row a statement that
-- gives totals new change ids (sync/ledger.py), holding the runners it wrote. A runner's
-- current change id lies in exactly one row's range (first_id..last_id; ranges never
-- overlap: each is one statement's block of change_id_seq, taken under the write lock).
-- The pull finds the totals changed after its cursor through this log and reads them by
-- primary key (sync/pull.py), so runner_total needs no index on change_id, and a push's
-- ~5,000 updates of it change no indexed column: they stay on their page (HOT).
-- Rows none of whose runners still has a change id in their range are pruned.
CREATE TABLE IF NOT EXISTS total_change (
    last_id    bigint PRIMARY KEY,
    first_id   bigint NOT NULL,
    runner_ids text[] NOT NULL
);

-- The totals an existing database holds: one row covering all of them (other rows'
-- change ids in between are no totals' and match no runner there).
INSERT INTO total_change (last_id, first_id, runner_ids)
SELECT max(change_id), min(change_id), array_agg(runner_id ORDER BY change_id)
FROM runner_total HAVING count(*) > 0
ON CONFLICT (last_id) DO NOTHING;

DROP INDEX IF EXISTS runner_total_change;
-- Half-empty pages keep the updates HOT, as for device_runner_laps and runner_last_lap.
ALTER TABLE runner_total SET (fillfactor = 50);
