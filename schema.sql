-- lapsync laptop schema (SQLite): the baseline, migration 1. It is the schema of the
-- release of 2026-12-06 (25d7ea0), as that release applied it at every start: CREATE ...
-- IF NOT EXISTS only. A new database runs it and then every migration in
-- lapsync/laptop/migrations/ (0002 on); an existing one runs only what its version
-- (PRAGMA user_version) lacks: one of that release or earlier (version 0) runs this file
-- too and gets what it lacks. See lapsync/laptop/migrate.py. This file never changes: a
-- new table or column is a new numbered migration. Never DROP.
-- Times are epoch milliseconds of this laptop's clock. Ids are cuid2 strings
-- born on this laptop (or on the laptop/central that created the record).

-- Key/value facts about this laptop: device_id, hlc (hybrid logical clock),
-- pull cursor, last sync success/error.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS user (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,          -- the login
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'teacher', 'viewer')),
    created_at    INTEGER NOT NULL,
    hlc           TEXT NOT NULL                  -- last writer wins (hlc, origin)
);

-- Local only: a login on this laptop. Never synced.
CREATE TABLE IF NOT EXISTS user_session (
    id          TEXT PRIMARY KEY,                -- secrets.token_urlsafe
    user_id     TEXT NOT NULL REFERENCES user(id),
    valid_until INTEGER NOT NULL                 -- 8 h after login
);

-- start_number is unique for runners created here (checked in runners.py);
-- it is not a UNIQUE constraint because two laptops offline may give the same
-- number to two runners, and both must survive the merge (central records the
-- clash; laps reference runner ids).
CREATE TABLE IF NOT EXISTS runner (
    id           TEXT PRIMARY KEY,
    start_number INTEGER NOT NULL CHECK (start_number BETWEEN 1 AND 999999),
    name         TEXT NOT NULL,
    class        TEXT NOT NULL,
    grade        INTEGER NOT NULL CHECK (grade BETWEEN 1 AND 13),
    hlc          TEXT NOT NULL,                  -- last writer wins (hlc, origin)
    origin       TEXT NOT NULL                   -- device id of the last writer
);
CREATE INDEX IF NOT EXISTS runner_start_number ON runner(start_number);
CREATE INDEX IF NOT EXISTS runner_class ON runner(class, name);

-- A lap ("Round" in the earlier app). Never deleted: a wrong lap is voided.
CREATE TABLE IF NOT EXISTS lap (
    id          TEXT PRIMARY KEY,
    runner_id   TEXT NOT NULL REFERENCES runner(id),
    created_by  TEXT NOT NULL REFERENCES user(id),
    time        INTEGER NOT NULL,                -- device clock when entered
    device_id   TEXT NOT NULL,                   -- the laptop that recorded it
    client_key  TEXT UNIQUE,                     -- idempotency key of the POST
    voided_at   INTEGER,                         -- NULL = counts
    voided_by   TEXT REFERENCES user(id),
    void_reason TEXT,
    void_hlc    TEXT                             -- last void/restore wins
);
CREATE INDEX IF NOT EXISTS lap_runner_time ON lap(runner_id, time);
-- Laps that count, per runner: the lap count and the previous lap's time at every
-- entry are read from this index alone, not from ~200 table rows per runner
-- (bench/bench_laps.py: 0.5 ms -> 0.03 ms per lap on 1M laps).
CREATE INDEX IF NOT EXISTS lap_counting ON lap(runner_id, time) WHERE voided_at IS NULL;

-- The outbox: every local change, in the same transaction as the change.
-- AUTOINCREMENT keeps seq strictly increasing and never reused.
CREATE TABLE IF NOT EXISTS change (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    entity     TEXT NOT NULL CHECK (entity IN ('lap', 'lap_void', 'runner', 'user')),
    entity_id  TEXT NOT NULL,
    payload    TEXT NOT NULL,                    -- JSON snapshot of the change
    created_at INTEGER NOT NULL,
    pushed_at  INTEGER                           -- set after central acknowledged
);
CREATE INDEX IF NOT EXISTS change_pending ON change(seq) WHERE pushed_at IS NULL;

-- ---- sync (client.py) -------------------------------------------------------

-- Laps of a runner that count, recorded on other devices (pulled "total"):
-- the laptop shows its own laps + these.
CREATE TABLE IF NOT EXISTS runner_other_laps (
    runner_id TEXT PRIMARY KEY,
    laps      INTEGER NOT NULL CHECK (laps >= 0)
);

-- Runners the admin merged into another at central (a pulled runner with
-- merged_into): their laps count for the survivor from then on (client.py,
-- apply_runner) and they are hidden from lap entry and the roster. Final.
CREATE TABLE IF NOT EXISTS runner_merge (
    runner_id   TEXT PRIMARY KEY,
    merged_into TEXT NOT NULL
);

-- Outbox rows central acknowledged but refused for good (kept there for the
-- admin); listed by `flask sync-status` so they are seen, never wedging the queue.
CREATE TABLE IF NOT EXISTS rejected_change (
    seq         INTEGER PRIMARY KEY,             -- change.seq
    entity      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    error       TEXT NOT NULL,
    message     TEXT NOT NULL,
    rejected_at INTEGER NOT NULL
);

-- Pulled items this laptop could not apply (e.g. a user name taken locally by
-- another user); skipped, kept here and shown by `flask sync-status`.
CREATE TABLE IF NOT EXISTS rejected_pull (
    cursor      INTEGER PRIMARY KEY,             -- central's change id
    entity      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    error       TEXT NOT NULL,
    data        TEXT NOT NULL,                   -- the item as received (JSON)
    rejected_at INTEGER NOT NULL
);

-- The origin (device id) of the last pulled write of a record whose table has
-- no origin column (user, lap void), valid while the record's hlc equals `hlc`;
-- otherwise the record was last written here and its origin is this device.
CREATE TABLE IF NOT EXISTS lww_origin (
    entity    TEXT NOT NULL CHECK (entity IN ('user', 'lap_void')),
    entity_id TEXT NOT NULL,
    hlc       TEXT NOT NULL,
    origin    TEXT NOT NULL,
    PRIMARY KEY (entity, entity_id)
);

-- ---- login rate limit (auth.py) ---------------------------------------------

-- Local only, never synced: a login attempt is written here before its password is
-- checked and deleted again when the password was right, so a row is a failed (or
-- unfinished) login. auth.py refuses a login while the name typed has
-- LOGIN_MAX_FAILURES_PER_ACCOUNT rows, or the client's address has
-- LOGIN_MAX_FAILURES_PER_ADDRESS rows, younger than LOGIN_WINDOW_SECONDS; older
-- rows are deleted at the next attempt. Created at every start like every table
-- here, so an existing laptop database gets it too.
CREATE TABLE IF NOT EXISTS login_failure (
    id      INTEGER PRIMARY KEY,
    account TEXT NOT NULL,                       -- the name typed (first 100 characters)
    address TEXT NOT NULL,                       -- the client's IP address
    at      INTEGER NOT NULL                     -- this laptop's clock, epoch ms
);
CREATE INDEX IF NOT EXISTS login_failure_account ON login_failure(account, at);
CREATE INDEX IF NOT EXISTS login_failure_address ON login_failure(address, at);
CREATE INDEX IF NOT EXISTS login_failure_at ON login_failure(at);
