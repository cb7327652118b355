-- Pending changes are those above the outbox mark (migration 0005), read as a range of
-- seq, the table's own key. The partial index change_pending (seq WHERE pushed_at IS
-- NULL) no longer loses an entry when a change is pushed, since pushed_at stays empty:
-- it had become a second copy of every seq, one more page written for every lap.
DROP INDEX IF EXISTS change_pending;
