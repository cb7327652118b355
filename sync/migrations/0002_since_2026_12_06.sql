-- From the release of 2026-12-06 to the first numbered migration: everything sync/schema.sql
-- gained in between (see the comments there). IF NOT EXISTS throughout: a database made by
-- code between that release and this migration (version 0 too) may have some of it already.

-- Central's decisions as laptops see them (sync/review.py, sync/pull.py).
ALTER TABLE lap_void ADD COLUMN IF NOT EXISTS central boolean NOT NULL DEFAULT false;
ALTER TABLE runner ADD COLUMN IF NOT EXISTS decision jsonb;

-- Start-number blocks (sync/blocks.py).
CREATE TABLE IF NOT EXISTS number_block (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id  bigint NOT NULL REFERENCES device (id),
    first      integer NOT NULL CHECK (first BETWEEN 1 AND 999999),
    last       integer NOT NULL CHECK (last BETWEEN first AND 999999),
    created_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS number_block_device ON number_block (device_id, id);

-- A device's authority comes from its token (sync/authority.py).
ALTER TABLE device ADD COLUMN IF NOT EXISTS manage_roster boolean NOT NULL DEFAULT false;

-- Runners from before created_on: the laptop that last wrote them, if a laptop did.
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

-- Every user id a laptop pushed first, filled from earlier refusals and from users
-- laptops made; then every laptop pulls the admins once more (sync/pull.py withholds
-- their hashes from untrusted devices), change ids taken under the write lock.
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
        PERFORM pg_advisory_xact_lock(1818325107);
        UPDATE app_user SET change_id = nextval('change_id_seq') WHERE role = 'admin';
    END IF;
END
$$;

-- Central-only settings (sync/bank_settings.py, sync/money_settings.py).
CREATE TABLE IF NOT EXISTS central_setting (
    key        text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_ms bigint NOT NULL
);

-- Sponsors' money (sync/pledges.py, sync/amounts.py).
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

CREATE TABLE IF NOT EXISTS money_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         bigint NOT NULL,
    user_id    text REFERENCES app_user (id),
    by_name    text NOT NULL,
    action     text NOT NULL,
    pledge_id  text,
    payment_id text,
    details    jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS money_log_pledge ON money_log (pledge_id);

-- The outgoing mail queue (sync/mail.py).
CREATE TABLE IF NOT EXISTS mail_out (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    to_addr     text NOT NULL,
    subject     text NOT NULL,
    body_text   text NOT NULL,
    body_html   text,
    kind        text NOT NULL,
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

-- Bank statements (sync/statement.py).
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

-- Closing the event (sync/freeze.py).
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

-- Class teachers (sync/class_lists.py).
CREATE TABLE IF NOT EXISTS class_teacher (
    class_name text PRIMARY KEY,
    email      text NOT NULL,
    updated_ms bigint NOT NULL
);

