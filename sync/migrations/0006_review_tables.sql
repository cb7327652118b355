-- What the review queue and the time chart read (sync/derived.py), filled from the laps
-- an existing database holds: the same computation as derived.reference(). Kept in step
-- with lap and lap_void by every writer in the same transaction (push, central voids and
-- restores, merges; a new min_lap_seconds rebuilds close_lap_pair), so those pages never
-- sort or count the lap table. Derived data: `flask --app sync rebuild-review` recomputes
-- all three from the laps. Corrected time = device_time + clock_offset_ms.

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

WITH counting AS (
    SELECT l.id, l.runner_id, l.device_id, l.device_time + l.clock_offset_ms AS t
    FROM lap l LEFT JOIN lap_void v ON v.lap_id = l.id WHERE v.voided IS NOT TRUE
), paired AS (
    SELECT c.*, lag(c.id) OVER w AS prev_id, lag(c.t) OVER w AS prev_t,
           lag(c.device_id) OVER w AS prev_device
    FROM counting c
    WINDOW w AS (PARTITION BY c.runner_id ORDER BY c.t, c.id COLLATE "C")
), min_lap AS (
    -- the event's minimum lap time (a whole number of seconds), else the default 60 s
    SELECT 1000 * coalesce((SELECT (value #>> '{}')::bigint FROM setting
                            WHERE key = 'min_lap_seconds' AND jsonb_typeof(value) = 'number'),
                           60) AS ms
)
INSERT INTO close_lap_pair (second_id, first_id, runner_id, first_time, second_time, two_laptops)
SELECT id, prev_id, runner_id, prev_t, t, device_id <> prev_device
FROM paired, min_lap WHERE prev_id IS NOT NULL AND t - prev_t < min_lap.ms
ON CONFLICT (second_id) DO NOTHING;

INSERT INTO runner_last_lap (runner_id, lap_id, lap_time, laptop_id)
SELECT DISTINCT ON (l.runner_id) l.runner_id, l.id, l.device_time + l.clock_offset_ms AS t,
       l.device_id
FROM lap l LEFT JOIN lap_void v ON v.lap_id = l.id WHERE v.voided IS NOT TRUE
ORDER BY l.runner_id, t DESC, l.id COLLATE "C" DESC
ON CONFLICT (runner_id) DO NOTHING;

INSERT INTO lap_bucket (bucket, laps)
SELECT floor((l.device_time + l.clock_offset_ms) / 300000::numeric)::bigint, count(*)
FROM lap l LEFT JOIN lap_void v ON v.lap_id = l.id WHERE v.voided IS NOT TRUE
GROUP BY 1
ON CONFLICT (bucket) DO NOTHING;
