-- The outbox's pushed mark: central has acknowledged every change up to pushed_seq.
-- Settling a batch moves it, one row written, where before each of the batch's up to
-- 50,000 changes got pushed_at (a rewrite of all their rows and index entries, fsync'd).
-- A change waits for central while its seq is above the mark and its pushed_at is empty
-- (db.py PENDING): the changes stamped before this migration stay pushed, and pushed_at
-- is no longer written by the sync. Pushed changes always form a prefix of the outbox,
-- so the mark starts just below the first pending change (or at the last one, if none).
CREATE TABLE IF NOT EXISTS outbox_mark (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    pushed_seq INTEGER NOT NULL CHECK (pushed_seq >= 0)
);
INSERT OR IGNORE INTO outbox_mark (one, pushed_seq)
SELECT 1, coalesce((SELECT min(seq) FROM change WHERE pushed_at IS NULL) - 1,
                   (SELECT max(seq) FROM change), 0);
