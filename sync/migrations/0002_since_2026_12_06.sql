-- From the release of 2026-12-06 to the first numbered migration: everything central's
-- schema gained in between. IF NOT EXISTS throughout: a database made by code between
-- that release and this migration (version 0 too) may have some of it already.

-- A void or restore decided at central (the review page), not by a laptop: a pull sends
-- it with who and why, laptops refuse to restore it, and a device's restore of it is
-- refused for good (sync/ledger.py, apply_void). Voids made before: false.
ALTER TABLE lap_void ADD COLUMN IF NOT EXISTS central boolean NOT NULL DEFAULT false;

-- Central's merge or renumber that made a runner's current state, as a pull sends it:
-- {action, by_name, reason, at, was_start_number}. A later edit that keeps the start
-- number keeps it; a merge's stays for ever (sync/ledger.py, RUNNER_UPSERT).
ALTER TABLE runner ADD COLUMN IF NOT EXISTS decision jsonb;

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

-- Settings only central uses (the organiser's bank account for letters and their GiroCode,
-- the outgoing mail server, ...). Kept apart from setting, which every laptop pulls: no
-- pull reads this table.
CREATE TABLE IF NOT EXISTS central_setting (
    key        text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_ms bigint NOT NULL
);

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

-- The class teacher's e-mail address per class, for the class list e-mail. Central only.
CREATE TABLE IF NOT EXISTS class_teacher (
    class_name text PRIMARY KEY,
    email      text NOT NULL,
    updated_ms bigint NOT NULL
);

