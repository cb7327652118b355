-- The sync log (sync/sync_log.py): pushes and pulls central refused as a whole.

-- Pushes and pulls central refused as a whole (a 4xx to the laptop), the latest 50 per
-- device, for the Logs page; changes refused one by one are in rejected_change.
CREATE TABLE IF NOT EXISTS sync_failure (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id bigint NOT NULL REFERENCES device (id),
    at        bigint NOT NULL,
    path      text NOT NULL CHECK (path IN ('push', 'pull')),
    status    integer NOT NULL,
    error     text NOT NULL,
    message   text NOT NULL
);
CREATE INDEX IF NOT EXISTS sync_failure_device ON sync_failure (device_id, id);
