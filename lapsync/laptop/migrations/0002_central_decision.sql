-- Decisions central's admin made on records of this laptop, as pulled (an item with
-- "decision"): a lap voided at central (only central can restore it: laps.py, set_void),
-- a runner merged or renumbered at central (shown on the runners page). Who and why as
-- central sent them. A lap's row goes when a later void or restore of it applies; a
-- renumber's row when the runner's number changes again; a merge's row never.
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
