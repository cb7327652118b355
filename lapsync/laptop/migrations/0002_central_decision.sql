-- Decisions central's admin made on this laptop's records, as pulled (see schema.sql).
-- IF NOT EXISTS: a database made by code between the release of 2026-12-06 and the first
-- migration (version 0 too) may have the table already.
CREATE TABLE IF NOT EXISTS central_decision (
    entity           TEXT NOT NULL CHECK (entity IN ('lap', 'runner')),
    entity_id        TEXT NOT NULL,
    action           TEXT NOT NULL CHECK (action IN ('void_lap', 'renumber', 'merge')),
    by_name          TEXT,                       -- the admin's name at central, if sent
    reason           TEXT,
    at               INTEGER NOT NULL,           -- central's clock, epoch ms
    was_start_number INTEGER,                    -- a renumber's number before
    PRIMARY KEY (entity, entity_id)
);
