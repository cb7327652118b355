-- lapsync central schema (PostgreSQL): the baseline, migration 1. It is the schema of the
-- release of 2026-12-06 (25d7ea0), as that release's init-db applied it: CREATE ... IF
-- NOT EXISTS and ADD COLUMN IF NOT EXISTS only. A new database runs it and then every
-- migration in sync/migrations/ (0002 on); an existing one runs only what table
-- schema_migration lacks: one of that release or earlier (version 0) runs this file too
-- and gets what it lacks. See sync/migrate.py. This file never changes: a new table or
-- column is a new numbered migration. Never DROP.
-- Times are epoch milliseconds. Ids of users, runners and laps are cuid2 strings
-- born on the laptop (or at central) that created the record.
--
-- change_id: every row a pull can return (runner, app_user, lap_void, setting,
-- runner_total) carries the change id of its latest change. Change ids come from
-- change_id_seq, taken only while holding the central write lock (sync/db.py,
-- write_transaction), so they are handed out in commit order and a pull cursor
-- never skips a row that commits late.
-- hlc and origin columns use the "C" collation so that (hlc, origin) compares
-- byte-wise, exactly like Python and SQLite compare them on the laptops.

CREATE SEQUENCE IF NOT EXISTS change_id_seq AS bigint;

-- Facts about this central node: node_id (its origin for central edits), hlc.
CREATE TABLE IF NOT EXISTS meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE IF NOT EXISTS app_user (
    id            text PRIMARY KEY,
    name          text NOT NULL UNIQUE,                 -- the login
    password_hash text NOT NULL,                        -- argon2id, as on the laptops
    role          text NOT NULL CHECK (role IN ('admin', 'teacher', 'viewer')),
    created_at    bigint NOT NULL,
    hlc           text COLLATE "C" NOT NULL,            -- last writer wins (hlc, origin)
    origin        text COLLATE "C" NOT NULL,            -- node of the last writer
    change_id     bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS app_user_change ON app_user (change_id);

-- A login to central's admin pages (next issue). Never synced.
CREATE TABLE IF NOT EXISTS user_session (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES app_user (id),
    valid_until bigint NOT NULL
);

-- start_number is deliberately not UNIQUE: two laptops offline may give the same
-- number to two runners; both are kept and the clash is recorded (table clash).
CREATE TABLE IF NOT EXISTS runner (
    id           text PRIMARY KEY,
    start_number integer NOT NULL CHECK (start_number BETWEEN 1 AND 999999),
    name         text NOT NULL,
    class        text NOT NULL,
    grade        integer NOT NULL CHECK (grade BETWEEN 1 AND 13),
    hlc          text COLLATE "C" NOT NULL,
    origin       text COLLATE "C" NOT NULL,
    change_id    bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS runner_start_number ON runner (start_number);
CREATE INDEX IF NOT EXISTS runner_name_class ON runner (lower(name), lower(class));
CREATE INDEX IF NOT EXISTS runner_change ON runner (change_id);

-- A laptop's sync identity. The token is shown once and stored as its sha256
-- (tokens are 256-bit random, so a fast hash is enough). laptop_id is the
-- laptop's own device id, bound at the token's first push.
CREATE TABLE IF NOT EXISTS device (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL,
    token_hash      text NOT NULL UNIQUE,
    laptop_id       text,
    created_at      bigint NOT NULL,
    revoked_at      bigint,
    last_contact    bigint,
    last_seq        bigint NOT NULL DEFAULT 0,          -- last applied outbox seq
    clock_offset_ms bigint,                             -- server clock - laptop clock
    laps_pushed     bigint NOT NULL DEFAULT 0           -- laps this token delivered first
);
CREATE UNIQUE INDEX IF NOT EXISTS device_live_name ON device (name) WHERE revoked_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS device_live_laptop ON device (laptop_id)
    WHERE revoked_at IS NULL;

-- A lap ("Round" in the earlier app). Inserted once by id and never changed.
-- runner_id and created_by have NO foreign key on purpose: a lap may arrive before
-- its runner (or user) does; it is kept, counts for that runner id, and links as
-- soon as the runner arrives. Its void state lives in lap_void.
-- pushed_by has no foreign key either, and that is deliberate: only sync/push.py
-- writes laps, and it writes the id of the device row it has just locked FOR
-- UPDATE in the same transaction; devices are never deleted (revoked only). The
-- check could never fail, and it cost about 2 us per lap (a COPY of 1M laps with it
-- ran at 0.7x of one without: docs/BENCHMARKS.md); tests/test_sync_push.py
-- checks that every lap's pushed_by names a real device. (A database created
-- before this change keeps its lap_pushed_by_fkey: harmless, only slower; to
-- drop it by hand: ALTER TABLE lap DROP CONSTRAINT lap_pushed_by_fkey.)
CREATE TABLE IF NOT EXISTS lap (
    id              text PRIMARY KEY,
    runner_id       text NOT NULL,
    created_by      text NOT NULL,
    device_time     bigint NOT NULL,                    -- laptop clock when entered
    device_id       text NOT NULL,                      -- the laptop that recorded it
    pushed_by       bigint NOT NULL,                    -- device (id) that delivered it, see above
    received_at     bigint NOT NULL,                    -- central clock at receipt
    clock_offset_ms bigint NOT NULL                     -- laptop's offset at receipt:
                                                        -- device_time + offset ~ central time
);
CREATE INDEX IF NOT EXISTS lap_runner ON lap (runner_id);

-- The void state of a lap: a last-writer-wins register by (hlc, origin), keyed by
-- lap id and kept apart from the lap, so a void that arrives before its lap is
-- simply stored and applies when the lap arrives. No row = the lap counts.
CREATE TABLE IF NOT EXISTS lap_void (
    lap_id    text PRIMARY KEY,
    voided    boolean NOT NULL,                         -- false = restored
    at        bigint NOT NULL,
    by        text NOT NULL,
    reason    text,
    hlc       text COLLATE "C" NOT NULL,
    origin    text COLLATE "C" NOT NULL,
    change_id bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS lap_void_change ON lap_void (change_id);

-- Event settings decided centrally (minimum lap time, metres per lap, ...).
CREATE TABLE IF NOT EXISTS setting (
    key       text PRIMARY KEY,
    value     jsonb NOT NULL,
    change_id bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS setting_change ON setting (change_id);

-- Laps that count (inserted, not voided) per runner id, kept in step with lap and
-- lap_void in the same transaction; and the part of it recorded by each laptop,
-- so a pull can send other_laps = total - the pulling laptop's own laps.
CREATE TABLE IF NOT EXISTS runner_total (
    runner_id text PRIMARY KEY,
    laps      integer NOT NULL,
    change_id bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS runner_total_change ON runner_total (change_id);
CREATE INDEX IF NOT EXISTS runner_total_standings ON runner_total (laps DESC);

CREATE TABLE IF NOT EXISTS device_runner_laps (
    laptop_id text NOT NULL,
    runner_id text NOT NULL,
    laps      integer NOT NULL,
    PRIMARY KEY (laptop_id, runner_id)
);
-- Every push updates a row per runner it touched. Half-empty pages let those updates
-- stay on their page without touching the index (HOT): a 10,000-lap push updates its
-- ~4,300 rows in half the time (bench/bench_push.py). Applies to pages written from now on.
ALTER TABLE device_runner_laps SET (fillfactor = 50);

-- Two runner ids that share a start number (kind start_number) or a name in the
-- same class (kind name). Nothing is merged or dropped; the admin decides.
-- resolved_at is set when a later edit removes the clash (and cleared if it returns).
CREATE TABLE IF NOT EXISTS clash (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('start_number', 'name')),
    value       text NOT NULL,                          -- the number, or name / class
    runner_a    text NOT NULL,                          -- runner_a < runner_b
    runner_b    text NOT NULL,
    detected_at bigint NOT NULL,
    resolved_at bigint,
    UNIQUE (kind, value, runner_a, runner_b)
);

-- Changes refused for good (acknowledged so they never wedge a laptop's queue).
CREATE TABLE IF NOT EXISTS rejected_change (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    laptop_id text NOT NULL,
    seq       bigint NOT NULL,
    entity    text NOT NULL,
    entity_id text NOT NULL,
    error     text NOT NULL,
    message   text NOT NULL,
    payload   jsonb NOT NULL,
    at        bigint NOT NULL,
    UNIQUE (laptop_id, seq)
);

-- The live view's cursor (sync/live.py): every lap gets a feed id from its own
-- sequence when it is inserted. Laps are only inserted under the central write
-- lock (sync/db.py, write_transaction), so feed ids are handed out in commit
-- order, like change ids: a poll that has seen feed id N has seen every lap below
-- N, however late a lap's received_at is. (received_at is taken before the lock,
-- so it can be out of commit order.) The sequence must keep CACHE 1: per-session
-- caches would break the order. Existing laps get ids in table order once.
CREATE SEQUENCE IF NOT EXISTS lap_feed_seq AS bigint;
ALTER TABLE lap ADD COLUMN IF NOT EXISTS feed_id bigint NOT NULL DEFAULT nextval('lap_feed_seq');
CREATE INDEX IF NOT EXISTS lap_feed ON lap (feed_id);

-- ---- review queue and decision log (sync/review.py) -------------------------

-- A runner the admin merged into another (the survivor, which keeps its id): its
-- laps moved to the survivor, it is hidden from standings and lap entry, and a
-- pull sends it with "merged_into" so laptops do the same. Never cleared: a merge
-- is final, whatever later edits of the runner say.
ALTER TABLE runner ADD COLUMN IF NOT EXISTS merged_into text;
-- Push reads all merged runners for every batch of laps: this keeps that read small.
CREATE INDEX IF NOT EXISTS runner_merged ON runner (id) WHERE merged_into IS NOT NULL;

-- A clash the admin decided to keep (both runners stay as they are).
ALTER TABLE clash ADD COLUMN IF NOT EXISTS dismissed_at bigint;

-- Every decision made at central: who, when, what, on which records.
CREATE TABLE IF NOT EXISTS decision (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          bigint NOT NULL,
    user_id     text NOT NULL REFERENCES app_user (id),
    action      text NOT NULL,         -- void_lap, keep_laps, renumber, merge, keep_runners,
                                       -- register_device, revoke_device, settings
    subject_ids text[] NOT NULL,       -- the laps, runners, clash or device decided on
    details     jsonb NOT NULL
);

-- Two laps of one runner closer than the minimum lap time that the admin kept:
-- the pair leaves the review queue (lap_a < lap_b).
CREATE TABLE IF NOT EXISTS kept_lap_pair (
    lap_a       text NOT NULL,
    lap_b       text NOT NULL,
    decision_id bigint NOT NULL REFERENCES decision (id),
    PRIMARY KEY (lap_a, lap_b)
);

-- ---- login rate limit (sync/auth.py) ----------------------------------------

-- Never synced: a login attempt is written here before its password is checked and
-- deleted again when the password was right, so a row is a failed (or unfinished)
-- login. The state lives here, not in a worker's memory, so every gunicorn worker
-- (and every central machine on this database) counts the same attempts. Logins
-- are refused while the name typed has LOGIN_MAX_FAILURES_PER_ACCOUNT rows, or the
-- client's address LOGIN_MAX_FAILURES_PER_ADDRESS rows, younger than
-- LOGIN_WINDOW_SECONDS; older rows are deleted at the next attempt. An existing
-- database gets the table from `flask --app sync init-db` (run it after upgrading).
CREATE TABLE IF NOT EXISTS login_failure (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account text NOT NULL,                              -- the name typed (first 100 chars)
    address text NOT NULL,                              -- the client's IP address
    at      bigint NOT NULL                             -- central clock, epoch ms
);
CREATE INDEX IF NOT EXISTS login_failure_account ON login_failure (account, at);
CREATE INDEX IF NOT EXISTS login_failure_address ON login_failure (address, at);
CREATE INDEX IF NOT EXISTS login_failure_at ON login_failure (at);

-- ---- who may manage users (sync/push.py apply_user, sync/devices.py) ----------

-- A device trusted to manage users: its pushed user changes apply as they come
-- (last writer wins). Any other device's user change is refused for good (kept in
-- rejected_change, reported to the laptop) if it would create an admin, make a user
-- an admin, change anything of an admin, or demote one: only central grants or
-- changes the admin role and an admin's password. Off by default; set by
-- `register-device NAME --manage-users`, `set-device NAME --manage-users` or the
-- devices page (logged in decision with the admin's name; the commands print and
-- log it). An existing database gets the column from init-db; devices made before
-- count as not trusted.
ALTER TABLE device ADD COLUMN IF NOT EXISTS manage_users boolean NOT NULL DEFAULT false;
