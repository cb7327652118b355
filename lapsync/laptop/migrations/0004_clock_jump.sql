-- The wall clock moved more than a minute against the boot clock while the app ran
-- (someone set it, a correction). Entry order places the jump among the laps: laps up
-- to after_lap (rowid) and outbox seqs up to after_seq came before it. Intervals
-- between laps subtract the jumps between them; the helper sees each jump until
-- acknowledged (shown_at); central gets it with the next push (reported_at).
CREATE TABLE IF NOT EXISTS clock_jump (
    id          TEXT PRIMARY KEY,                -- cuid2, the same at central
    at          INTEGER NOT NULL,                -- this laptop's clock right after the jump
    jump_ms     INTEGER NOT NULL,                -- how far it moved (negative: back)
    after_lap   INTEGER NOT NULL,                -- the latest lap's rowid when it was noticed
    after_seq   INTEGER NOT NULL,                -- the outbox's latest seq when it was noticed
    shown_at    INTEGER,                         -- the helper acknowledged the notice
    reported_at INTEGER                          -- central acknowledged the report
);
CREATE INDEX IF NOT EXISTS clock_jump_after_lap ON clock_jump(after_lap);
