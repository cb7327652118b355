-- lapsync central schema (PostgreSQL), in full: a new database is made from this file
-- and stamped with every migration (sync/migrate.py); an existing one gets
-- sync/migrations/ instead, by init-db and at its first connection. A table, column or
-- index added here needs its migration there too (tests/central/test_migrations.py
-- names what lacks one). Never DROP.
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
-- The users page (sync/user_views.py): a deactivated user (deactivated_at set) cannot log
-- in at central, and laptops pull it with "active": false and no password hash, so it
-- cannot log in there either; users are never deleted (laps name them). last_login_at is
-- central's own and never synced.
ALTER TABLE app_user ADD COLUMN IF NOT EXISTS deactivated_at bigint;
ALTER TABLE app_user ADD COLUMN IF NOT EXISTS last_login_at bigint;

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

-- ---- what the review queue and the charts read (sync/derived.py) -------------

-- Kept in step with lap and lap_void by every writer in the same transaction (push,
-- central voids and restores, merges; a new min_lap_seconds rebuilds close_lap_pair),
-- so those pages never sort or count the lap table. Derived data: `flask --app sync
-- rebuild-review` recomputes all three from the laps (migration 0006 fills them for a
-- database made before them). Corrected time = device_time + clock_offset_ms.

-- Two counting laps of one runner id that follow each other (corrected time, then lap
-- id in code-point order) and are closer than the minimum lap time. Pairs the admin
-- kept (kept_lap_pair) stay here; the review queue leaves them out.
CREATE TABLE IF NOT EXISTS close_lap_pair (
    second_id   text PRIMARY KEY,                       -- the later lap (one pair per lap)
    first_id    text NOT NULL,
    runner_id   text NOT NULL,
    first_time  bigint NOT NULL,                        -- corrected times of both laps
    second_time bigint NOT NULL,
    two_laptops boolean NOT NULL                        -- recorded on two laptops
);
CREATE INDEX IF NOT EXISTS close_lap_pair_runner ON close_lap_pair (runner_id, first_time);
CREATE INDEX IF NOT EXISTS close_lap_pair_queue
    ON close_lap_pair (two_laptops DESC, (second_time - first_time), runner_id, second_id);

-- Each runner id's last counting lap (corrected time, then id): laps pushed after it are
-- paired with it without reading the runner's laps. Updated by every push: half-empty
-- pages keep those updates HOT, as for device_runner_laps.
CREATE TABLE IF NOT EXISTS runner_last_lap (
    runner_id text PRIMARY KEY,
    lap_id    text NOT NULL,
    lap_time  bigint NOT NULL,                          -- its corrected time
    laptop_id text NOT NULL
);
ALTER TABLE runner_last_lap SET (fillfactor = 50);

-- Counting laps per 5-minute bucket of corrected time (bucket = floor(time / 300000)).
CREATE TABLE IF NOT EXISTS lap_bucket (
    bucket bigint PRIMARY KEY,
    laps   bigint NOT NULL
);

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

-- ---- central's decisions as laptops see them (sync/review.py, sync/pull.py) -----------

-- A void or restore decided at central (the review page), not by a laptop: a pull sends
-- it with who and why, laptops refuse to restore it, and a device's restore of it is
-- refused for good (sync/ledger.py, apply_void). Voids made before: false.
ALTER TABLE lap_void ADD COLUMN IF NOT EXISTS central boolean NOT NULL DEFAULT false;

-- ---- clock jumps laptops reported (sync/clock_jumps.py) ---------------------

-- A laptop's wall clock moved more than a minute against its boot clock (someone set it):
-- that laptop's lap times around the jump are suspect (the devices page and the review
-- queue say so). at is the laptop's clock right after the jump; the laptop's changes up
-- to after_seq were made before it. Reported once by id; a re-sent report is a no-op.
CREATE TABLE IF NOT EXISTS clock_jump (
    laptop_id   text NOT NULL,                          -- the laptop's device id (lap.device_id)
    id          text NOT NULL,
    device_id   bigint NOT NULL,                        -- the device (token) that reported it
    at          bigint NOT NULL,
    jump_ms     bigint NOT NULL,                        -- negative: the clock went back
    after_seq   bigint NOT NULL,
    received_at bigint NOT NULL,                        -- central clock
    PRIMARY KEY (laptop_id, id)
);

-- Central's merge or renumber that made a runner's current state, as a pull sends it:
-- {action, by_name, reason, at, was_start_number}. A later edit that keeps the start
-- number keeps it; a merge's stays for ever (sync/ledger.py, RUNNER_UPSERT).
ALTER TABLE runner ADD COLUMN IF NOT EXISTS decision jsonb;

-- ---- start-number blocks (sync/blocks.py) -------------------------------------

-- Start numbers reserved for one device's late registrations: a laptop numbers a runner
-- it adds from its block (sent in every pull), so two laptops never give out the same
-- number offline. A device's latest block is its current one; every block stays
-- reserved (its numbers may be in use), and central's own next free number, its roster
-- import and its number checks skip them all. Blocks never overlap (checked under the
-- write lock).
CREATE TABLE IF NOT EXISTS number_block (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id  bigint NOT NULL REFERENCES device (id),
    first      integer NOT NULL CHECK (first BETWEEN 1 AND 999999),
    last       integer NOT NULL CHECK (last BETWEEN first AND 999999),
    created_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS number_block_device ON number_block (device_id, id);

-- ---- a device's authority comes from its token (sync/authority.py) -------------------

-- A device trusted with the roster: its pushed runner changes apply to any runner. Any
-- other device edits only runners it created (runner.created_on); its changes of other
-- runners are refused for good. Off by default; set by `register-device NAME
-- --manage-roster`, `set-device NAME --manage-roster` or the devices page (logged).
ALTER TABLE device ADD COLUMN IF NOT EXISTS manage_roster boolean NOT NULL DEFAULT false;

-- The laptop (its laptop_id) whose push created a runner; NULL: made at central. Runners
-- from before this column: the laptop that last wrote them, if a laptop did (only once,
-- when the column is added).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'runner'
                     AND column_name = 'created_on') THEN
        ALTER TABLE runner ADD COLUMN created_on text;
        UPDATE runner SET created_on = origin
        WHERE origin IN (SELECT laptop_id FROM device WHERE laptop_id IS NOT NULL);
    END IF;
END
$$;

-- Every user id a laptop pushed first, with its name, whether central took the user or
-- refused it: the id is that laptop's and that name's for good (never reused for another
-- laptop or name), and that laptop's laps and voids may name it. Filled once from earlier
-- refusals (the first laptop that sent an id, unless central made that user itself) and
-- from users laptops made before this table existed.
DO $$
BEGIN
    IF to_regclass('laptop_user') IS NULL THEN
        CREATE TABLE laptop_user (
            user_id   text PRIMARY KEY,
            laptop_id text NOT NULL,
            name      text NOT NULL,
            at        bigint NOT NULL
        );
        INSERT INTO laptop_user (user_id, laptop_id, name, at)
        SELECT DISTINCT ON (entity_id) entity_id, laptop_id, payload->>'name', at
        FROM rejected_change WHERE entity = 'user' AND payload->>'name' IS NOT NULL
          AND entity_id NOT IN (SELECT id FROM app_user WHERE origin NOT IN (
              SELECT laptop_id FROM device WHERE laptop_id IS NOT NULL))
        ORDER BY entity_id, at;
        INSERT INTO laptop_user (user_id, laptop_id, name, at)
        SELECT u.id, u.origin, u.name, u.created_at FROM app_user u
        WHERE u.origin IN (SELECT laptop_id FROM device WHERE laptop_id IS NOT NULL)
        ON CONFLICT (user_id) DO NOTHING;
        -- Admins' hashes go to trusted devices only from now on (sync/pull.py): every laptop
        -- pulls the admins once more, and an untrusted one drops the hashes it holds. Change
        -- ids are taken under central's write lock (sync/db.py, WRITE_LOCK = 0x6C617073).
        PERFORM pg_advisory_xact_lock(1818325107);
        UPDATE app_user SET change_id = nextval('change_id_seq') WHERE role = 'admin';
    END IF;
END
$$;

-- ---- central-only settings (sync/central_settings.py, sync/bank_settings.py) ----------

-- Settings only central uses (the organiser's bank account for letters and their GiroCode,
-- the outgoing mail server, ...). Kept apart from setting, which every laptop pulls: no
-- pull reads this table.
CREATE TABLE IF NOT EXISTS central_setting (
    key        text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_ms bigint NOT NULL
);

-- ---- sponsors' money (sync/pledges.py, sync/amounts.py, sync/payments.py) ----------------

-- A sponsor's promise for one runner: per lap, per km or a fixed sum, in cents of the
-- currency setting, with an optional cap. The amount due is computed from the laps that
-- count (sync/amounts.py), never stored. reference is an ISO 11649 creditor reference
-- (RF..), printed on letters and matched in bank statements. Deleted pledges keep their
-- row (deleted_ms) and count nowhere. A pledge of a runner merged into another counts
-- the survivor's laps.
CREATE TABLE IF NOT EXISTS pledge (
    id           text PRIMARY KEY,
    runner_id    text NOT NULL REFERENCES runner (id),
    sponsor_name text NOT NULL,
    email        text,
    address      text,
    kind         text NOT NULL CHECK (kind IN ('per_lap', 'per_km', 'fixed')),
    rate_cents   integer NOT NULL CHECK (rate_cents > 0),
    cap_cents    integer CHECK (cap_cents > 0),
    reference    text NOT NULL UNIQUE,
    created_ms   bigint NOT NULL,
    updated_ms   bigint NOT NULL,
    created_by   text REFERENCES app_user (id),
    deleted_ms   bigint
);
CREATE INDEX IF NOT EXISTS pledge_runner ON pledge (runner_id);

-- Money received: for a pledge, or (pledge_id NULL) a bank line that matched none.
CREATE TABLE IF NOT EXISTS payment (
    id           text PRIMARY KEY,
    pledge_id    text REFERENCES pledge (id),
    amount_cents integer NOT NULL CHECK (amount_cents <> 0),
    paid_on      date NOT NULL,
    method       text NOT NULL CHECK (method IN ('transfer', 'cash', 'other')),
    reference    text NOT NULL DEFAULT '',
    note         text NOT NULL DEFAULT '',
    created_ms   bigint NOT NULL,
    created_by   text REFERENCES app_user (id)
);
CREATE INDEX IF NOT EXISTS payment_pledge ON payment (pledge_id);

-- Every change of money: who (a user, or the command line), when, what.
CREATE TABLE IF NOT EXISTS money_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         bigint NOT NULL,
    user_id    text REFERENCES app_user (id),
    by_name    text NOT NULL,
    action     text NOT NULL,      -- pledge_add, pledge_edit, pledge_delete, pledge_import,
                                   -- payment_add, payment_delete, ...
    pledge_id  text,
    payment_id text,
    details    jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS money_log_pledge ON money_log (pledge_id);

-- ---- outgoing mail (sync/mail.py) -------------------------------------------------------

-- Letters to sponsors and class lists to teachers, queued by an admin and sent only when
-- an admin sends the queue (mail page or send-mail) with the SMTP settings. status:
-- queued (waits; next_try_ms after a temporary refusal), sent, failed (refused for good
-- or MAX_ATTEMPTS used), cancelled (taken out of the queue, or replaced by a newer mail
-- of the same kind for the same pledge or class).
CREATE TABLE IF NOT EXISTS mail_out (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    to_addr     text NOT NULL,
    subject     text NOT NULL,
    body_text   text NOT NULL,
    body_html   text,
    kind        text NOT NULL,              -- letter, reminder, thanks, class_list
    pledge_id   text,
    class_name  text,
    status      text NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'cancelled')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    next_try_ms bigint NOT NULL DEFAULT 0,
    created_ms  bigint NOT NULL,
    sent_ms     bigint
);
CREATE INDEX IF NOT EXISTS mail_out_queued ON mail_out (next_try_ms) WHERE status = 'queued';

-- ---- bank statements (sync/statement.py) -------------------------------------------------

-- A credit line of an imported bank statement. line_key (a hash of the line's fields and
-- its occurrence among identical lines of its file) makes a second import of the same
-- lines record nothing. A line matched by its RF reference (matched_by 'reference') or
-- assigned by an admin ('admin') points to the payment it became; one with neither a
-- payment nor ignored_ms waits on the statement page; a payment deleted later (recorded
-- for the wrong pledge) puts its line back there, and no import records it again.
CREATE TABLE IF NOT EXISTS statement_line (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_key     text NOT NULL UNIQUE,
    booked_on    date NOT NULL,
    amount_cents integer NOT NULL CHECK (amount_cents > 0),
    purpose      text NOT NULL,
    counterparty text NOT NULL,
    file_name    text NOT NULL,
    imported_ms  bigint NOT NULL,
    imported_by  text REFERENCES app_user (id),
    pledge_id    text REFERENCES pledge (id),
    payment_id   text REFERENCES payment (id) ON DELETE SET NULL,
    matched_by   text CHECK (matched_by IN ('reference', 'admin')),
    ignored_ms   bigint,
    ignored_by   text REFERENCES app_user (id)
);
CREATE INDEX IF NOT EXISTS statement_line_open ON statement_line (booked_on)
    WHERE payment_id IS NULL AND ignored_ms IS NULL;

-- ---- closing the event (sync/freeze.py) ---------------------------------------------------

-- A freeze of the results (FREEZE is a reserved word in PostgreSQL, hence event_freeze):
-- letters use its figures while it is in force (unfrozen_ms NULL; at most one).
-- frozen_amount holds each pledge's laps, distance and amount at the freeze, or as an
-- admin accepted them later; kept/kept_cents: the admin kept the frozen figure against
-- this live amount (the case stays off the changes page until the live amount changes
-- again); removed: a pledge deleted after the freeze, accepted as gone.
CREATE TABLE IF NOT EXISTS event_freeze (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    frozen_ms   bigint NOT NULL,
    frozen_by   text REFERENCES app_user (id),
    unfrozen_ms bigint,
    unfrozen_by text REFERENCES app_user (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS event_freeze_in_force ON event_freeze ((true)) WHERE unfrozen_ms IS NULL;
CREATE TABLE IF NOT EXISTS frozen_amount (
    freeze_id    bigint NOT NULL REFERENCES event_freeze (id),
    pledge_id    text NOT NULL REFERENCES pledge (id),
    laps         integer NOT NULL,
    distance_m   numeric,
    amount_cents bigint NOT NULL,
    kept         boolean NOT NULL DEFAULT false,
    kept_cents   bigint,
    removed      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (freeze_id, pledge_id)
);

-- ---- class teachers (sync/class_lists.py) -------------------------------------------------

-- The class teacher's e-mail address per class, for the class list e-mail. Central only.
CREATE TABLE IF NOT EXISTS class_teacher (
    class_name text PRIMARY KEY,
    email      text NOT NULL,
    updated_ms bigint NOT NULL
);

-- ---- the sync log (sync/sync_log.py) ------------------------------------------------------

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
