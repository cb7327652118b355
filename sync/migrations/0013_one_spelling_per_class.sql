-- One spelling per class. Rosters mixed "8B", "8b" and "8 b", stored as typed, so money
-- pages, standings, letters and certificates showed half-classes. Every writer now gives a
-- runner its class's spelling (lapsync/classes.py); this mends what is stored by the same
-- rule: a class (case and spaces aside, NFKC: lapsync.names.class_fold, here with the
-- server's lower() for the case, the same for the Latin letters of class names) takes the
-- spelling most of its runners have, ties to the one of the lowest start number.
-- Change ids are taken under central's write lock (sync/db.py, WRITE_LOCK = 0x6C617073).
SELECT pg_advisory_xact_lock(1818325107);

CREATE TEMPORARY TABLE class_spelling ON COMMIT DROP AS
SELECT DISTINCT ON (key) key, class
FROM (SELECT regexp_replace(lower(normalize(class, NFKC)), '\s', '', 'g') AS key, class,
             count(*) FILTER (WHERE merged_into IS NULL) AS runners, min(start_number) AS first
      FROM runner GROUP BY class) AS spellings
ORDER BY key, runners DESC, first, class;

-- The runners re-spelled are central's edit: one new stamp of central's clock (as an import
-- takes one) and a change id each, so that every laptop pulls the spelling.
WITH clock AS (
    SELECT split_part(last, '.', 1)::bigint AS physical, split_part(last, '.', 2)::int AS counter,
           (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now
    FROM (SELECT coalesce((SELECT value FROM meta WHERE key = 'hlc'),
                          '0000000000000.0000') AS last) AS stored
), stamp AS (
    SELECT CASE WHEN now > physical THEN lpad(now::text, 13, '0') || '.0000'
                WHEN counter < 9999 THEN lpad(physical::text, 13, '0') || '.'
                                         || lpad((counter + 1)::text, 4, '0')
                ELSE lpad((physical + 1)::text, 13, '0') || '.0000' END AS hlc
    FROM clock
), respelled AS (
    UPDATE runner AS r SET class = s.class, hlc = stamp.hlc,
        origin = (SELECT value FROM meta WHERE key = 'node_id'),
        change_id = nextval('change_id_seq')
    FROM class_spelling AS s, stamp
    WHERE regexp_replace(lower(normalize(r.class, NFKC)), '\s', '', 'g') = s.key
      AND r.class <> s.class
    RETURNING r.id
)
INSERT INTO meta (key, value)
SELECT 'hlc', hlc FROM stamp WHERE EXISTS (SELECT 1 FROM respelled)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- A class teacher's address follows its class: of the addresses set for the spellings of
-- one class the one of the kept spelling stays, else the latest set is moved there. The
-- others are kept as they are, under a class the roster no longer has.
UPDATE class_teacher AS t SET class_name = s.class
FROM class_spelling AS s
WHERE regexp_replace(lower(normalize(t.class_name, NFKC)), '\s', '', 'g') = s.key
  AND NOT EXISTS (SELECT 1 FROM class_teacher AS k WHERE k.class_name = s.class)
  AND t.class_name = (
      SELECT v.class_name FROM class_teacher AS v
      WHERE regexp_replace(lower(normalize(v.class_name, NFKC)), '\s', '', 'g') = s.key
      ORDER BY v.updated_ms DESC, v.class_name LIMIT 1);

-- A class list e-mail queued for one spelling is then replaced by the next one queued for
-- the class (sync/sponsors/mail.py), as for any class.
UPDATE mail_out AS m SET class_name = s.class
FROM class_spelling AS s
WHERE regexp_replace(lower(normalize(m.class_name, NFKC)), '\s', '', 'g') = s.key
  AND m.class_name <> s.class;
