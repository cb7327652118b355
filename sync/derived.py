"""What the review queue and the time chart read, kept in step with the laps that count.

close_lap_pair holds every two laps of one runner that follow each other in corrected
device time (device_time + clock_offset_ms, then lap id in code-point order) and are
closer than the minimum lap time; runner_last_lap each runner id's last counting lap;
lap_bucket the counting laps per 5-minute bucket of corrected device time. Every
writer that changes which laps count (push, central voids and restores, merges)
collects what changed in its ledger Deltas, and apply_totals calls keep_in_step in
the same transaction, so the pages never sort or count a million laps. A new minimum
lap time rebuilds the pairs.

reference() is the from-scratch computation that defines what the tables hold: the
tests compare it with stored(), and `flask --app sync rebuild-review` rebuilds from it.

How a change finds its pairs without an index on (runner, time), which would make
every push's COPY about twice as slow (measured):
- laps that come after their runner's last lap (a laptop pushing as it counts): they
  pair among themselves and with that last lap; no lap is read;
- laps that come before it (a laptop back online): only laps within the batch's time
  span widened by the minimum lap time on both sides are read and re-paired, as a
  pair reaching out of that span is at least the minimum lap time apart;
- a void, restore or merge: all laps of the runners concerned (a few hundred each).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable

import click
import psycopg
from flask import Flask
from flask.cli import with_appcontext
from psycopg.rows import tuple_row

from . import bulk
from .db import connection, write_transaction

BUCKET_MS = 5 * 60 * 1000
DEFAULT_MIN_LAP_SECONDS = 60   # the laptops' default (lapsync MIN_LAP_SECONDS)

# A counting lap as the pairing sees it: (corrected time, lap id, laptop id); tuples
# sort by time, then id in code-point order, like COLLATE "C" in the SQL below.
Lap = tuple[int, str, str]

COUNTING = "FROM lap l LEFT JOIN lap_void v ON v.lap_id = l.id WHERE v.voided IS NOT TRUE"

REFERENCE_PAIRS = f"""
WITH counting AS (
    SELECT l.id, l.runner_id, l.device_id, l.device_time + l.clock_offset_ms AS t {COUNTING}
), paired AS (
    SELECT c.*, lag(c.id) OVER w AS prev_id, lag(c.t) OVER w AS prev_t,
           lag(c.device_id) OVER w AS prev_device
    FROM counting c
    WINDOW w AS (PARTITION BY c.runner_id ORDER BY c.t, c.id COLLATE "C")
)
SELECT id, prev_id, runner_id, prev_t, t, device_id <> prev_device
FROM paired WHERE prev_id IS NOT NULL AND t - prev_t < %(min_ms)s
"""
REFERENCE_LAST = f"""
SELECT DISTINCT ON (l.runner_id) l.runner_id, l.id, l.device_time + l.clock_offset_ms AS t,
       l.device_id {COUNTING}
ORDER BY l.runner_id, t DESC, l.id COLLATE "C" DESC
"""
REFERENCE_BUCKETS = f"""
SELECT floor((l.device_time + l.clock_offset_ms) / %(size)s::numeric)::bigint, count(*)
{COUNTING} GROUP BY 1
"""
STORED_PAIRS = ("SELECT second_id, first_id, runner_id, first_time, second_time, two_laptops "
                "FROM close_lap_pair")
STORED_LAST = "SELECT runner_id, lap_id, lap_time, laptop_id FROM runner_last_lap"
STORED_BUCKETS = "SELECT bucket, laps FROM lap_bucket WHERE laps <> 0"

RUNNER_LAPS = """
SELECT l.runner_id, l.device_time + l.clock_offset_ms, l.id, l.device_id
FROM lap l JOIN unnest(%b::text[]) AS u(id) ON l.runner_id = u.id
LEFT JOIN lap_void v ON v.lap_id = l.id
WHERE v.voided IS NOT TRUE
"""
WINDOW_LAPS = RUNNER_LAPS + "AND l.device_time + l.clock_offset_ms BETWEEN %b AND %b\n"
# The stored last laps of the batch's runners (as before this statement: every part of a
# statement sees the same snapshot), each replaced by the batch's last if that is later.
# Only the stored ones the pairing needs come back (the batch's first lap of the runner is
# within the minimum lap time after it, or not after it at all: usually none), and their
# number in all (runner NULL). Runners that had none get theirs from LAST_NEW (after the
# first batches: none).
LAST_STEP = """
WITH d AS MATERIALIZED (
    SELECT * FROM unnest(string_to_array(%s, E'\\n'), string_to_array(%s, ',')::bigint[],
                         string_to_array(%s, E'\\n'), string_to_array(%s, E'\\n'),
                         string_to_array(%s, ',')::bigint[], string_to_array(%s, E'\\n'))
        AS d(runner_id, lap_time, lap_id, laptop_id, first_time, first_id)
), stored AS MATERIALIZED (
    SELECT r.runner_id, r.lap_time, r.lap_id, r.laptop_id, d.first_time, d.first_id
    FROM runner_last_lap r JOIN d ON d.runner_id = r.runner_id
), updated AS (
    UPDATE runner_last_lap AS r
    SET lap_time = d.lap_time, lap_id = d.lap_id, laptop_id = d.laptop_id
    FROM d WHERE r.runner_id = d.runner_id
      AND (d.lap_time, d.lap_id COLLATE "C") > (r.lap_time, r.lap_id COLLATE "C")
)
SELECT runner_id, lap_time, lap_id, laptop_id FROM stored
WHERE first_time - lap_time < %s
   OR (first_time, first_id COLLATE "C") <= (lap_time, lap_id COLLATE "C")
UNION ALL
SELECT NULL, count(*), NULL, NULL FROM stored
"""
LAST_NEW = """
INSERT INTO runner_last_lap (runner_id, lap_time, lap_id, laptop_id)
SELECT * FROM unnest(string_to_array(%s, E'\\n'), string_to_array(%s, ',')::bigint[],
                     string_to_array(%s, E'\\n'), string_to_array(%s, E'\\n'))
"""
# Set outright (a re-read of the runner's laps): a plain UPDATE, the missing rows inserted.
LAST_UPDATE = """
UPDATE runner_last_lap AS r SET lap_time = d.t, lap_id = d.id, laptop_id = d.laptop
FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::text[]) AS d(runner_id, t, id, laptop)
WHERE r.runner_id = d.runner_id
RETURNING r.runner_id
"""
LAST_INSERT = """
INSERT INTO runner_last_lap (runner_id, lap_time, lap_id, laptop_id)
SELECT * FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::text[])
"""
# Upserts: a pair or bucket the caller did not expect must not fail a push.
PAIRS_INSERT = """
INSERT INTO close_lap_pair (second_id, first_id, runner_id, first_time, second_time, two_laptops)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::bool[])
ON CONFLICT (second_id) DO UPDATE SET first_id = excluded.first_id,
    runner_id = excluded.runner_id, first_time = excluded.first_time,
    second_time = excluded.second_time, two_laptops = excluded.two_laptops
"""
BUCKETS_ADD = """
INSERT INTO lap_bucket (bucket, laps) SELECT * FROM unnest(%b::bigint[], %b::bigint[])
ON CONFLICT (bucket) DO UPDATE SET laps = lap_bucket.laps + excluded.laps
"""


def min_lap_ms(conn: psycopg.Connection) -> int:
    """Return the event's minimum lap time in ms (central's setting, else the default)."""
    row = conn.cursor(row_factory=tuple_row).execute(
        "SELECT value FROM setting WHERE key = 'min_lap_seconds'").fetchone()
    value = row[0] if row else None
    seconds = value if isinstance(value, int) and not isinstance(value, bool) \
        else DEFAULT_MIN_LAP_SECONDS
    return seconds * 1000


def close_pairs(runner_id: str, laps: list[Lap], min_ms: int) -> list[tuple]:
    """Return pair rows of the neighbouring laps (sorted) closer than min_ms."""
    return [(b[1], a[1], runner_id, a[0], b[0], a[2] != b[2])
            for a, b in itertools.pairwise(laps) if b[0] - a[0] < min_ms]


def by_runner(rows: Iterable[tuple]) -> dict[str, list[Lap]]:
    """Group (runner, time, id, laptop) rows into each runner's sorted laps."""
    laps: dict[str, list[Lap]] = {}
    for runner_id, t, lap_id, laptop in rows:
        laps.setdefault(runner_id, []).append((t, lap_id, laptop))
    for runner_laps in laps.values():
        runner_laps.sort()
    return laps


# ---- keeping in step --------------------------------------------------------------------

def keep_in_step(conn: psycopg.Connection, deltas, min_ms: int | None = None) -> None:
    """Bring pairs, last laps and buckets in step with a batch's changes (ledger Deltas).

    min_ms: the event's minimum lap time if the caller read it already (min_lap_ms).
    """
    buckets = {b: n for b, n in deltas.buckets.items() if n}
    if buckets:
        conn.execute(BUCKETS_ADD, [list(buckets), list(buckets.values())])
        conn.execute("DELETE FROM lap_bucket WHERE laps = 0 AND bucket = ANY(%b::bigint[])",
                     [list(buckets)])
    arrived, tangled = deltas.settle()
    if not arrived and not deltas.reread:
        return
    min_ms = min_lap_ms(conn) if min_ms is None else min_ms
    cursor = conn.cursor(row_factory=tuple_row)
    # A tangled runner's laps are all there, sorted; the others' first and last stand for them.
    appended = {r: laps for r, laps in arrived.items() if r not in deltas.reread}
    before, pairs, late = step_last(cursor, appended, min_ms), [], {}
    for runner_id, laps in appended.items():
        last = before.get(runner_id)
        if last is not None and laps[0] < last:
            late[runner_id] = laps
            continue
        if runner_id in tangled:  # else no two of its new laps are closer than min_ms
            pairs += close_pairs(runner_id, laps, min_ms)
        if last is not None and laps[0][0] - last[0] < min_ms:
            pairs += close_pairs(runner_id, [last, laps[0]], min_ms)
    if late:
        pairs += repair_window(cursor, late, min_ms)
    if deltas.reread:
        reread, reread_pairs, gone = reread_runners(cursor, deltas.reread, min_ms)
        pairs += reread_pairs
        write_last(cursor, reread)
        if gone:
            conn.execute("DELETE FROM runner_last_lap WHERE runner_id = ANY(%b::text[])", [gone])
    write_pairs(conn, pairs)


def step_last(cursor: psycopg.Cursor, appended: dict[str, list[Lap]], min_ms: int) -> dict[str, Lap]:
    """Make each runner's last lap the later of its stored one and its arrived laps' last.

    Return the stored ones as they were where the pairing needs them: the runner's first
    arrived lap is less than min_ms after it, or not after it (one statement, lists as
    texts: sync/bulk.py). Any other stored last lap pairs with none of the batch's laps.
    """
    if not appended:
        return {}
    lasts, firsts = [laps[-1] for laps in appended.values()], [laps[0] for laps in appended.values()]
    rows = cursor.execute(LAST_STEP, [*last_lists(appended, lasts),
                                      bulk.numbers(lap[0] for lap in firsts),
                                      bulk.lines(lap[1] for lap in firsts), min_ms]).fetchall()
    before = {row[0]: row[1:] for row in rows if row[0] is not None}
    stored = next(row[1] for row in rows if row[0] is None)
    if stored < len(appended):
        known = set() if stored == 0 else {row[0] for row in cursor.execute(
            "SELECT runner_id FROM runner_last_lap WHERE runner_id = ANY(%b::text[])",
            [list(appended)])}
        new = {r: laps[-1] for r, laps in appended.items() if r not in known}
        cursor.execute(LAST_NEW, last_lists(new, new.values()))
    return before


def last_lists(runners: Iterable[str], lasts: Iterable[Lap]) -> list[str]:
    """Return runner ids and their last laps (time, id, laptop) as four texts (sync/bulk.py)."""
    lasts = list(lasts)
    return [bulk.lines(runners), bulk.numbers(lap[0] for lap in lasts),
            bulk.lines(lap[1] for lap in lasts), bulk.lines(lap[2] for lap in lasts)]


def repair_window(cursor: psycopg.Cursor, late: dict[str, list[Lap]], min_ms: int) -> list[tuple]:
    """Re-pair the laps of runners that got laps before their last one; return the pairs.

    Reads their laps within the batch's span widened by min_ms on both sides and
    replaces the pairs lying wholly inside it.
    """
    low = min(laps[0][0] for laps in late.values()) - min_ms
    high = max(laps[-1][0] for laps in late.values()) + min_ms
    runners = list(late)
    cursor.execute("DELETE FROM close_lap_pair WHERE runner_id = ANY(%b::text[]) "
                   "AND first_time >= %b AND second_time <= %b", [runners, low, high])
    laps = by_runner(cursor.execute(WINDOW_LAPS, [runners, low, high]).fetchall())
    return [pair for runner_id, runner_laps in laps.items()
            for pair in close_pairs(runner_id, runner_laps, min_ms)]


def reread_runners(cursor: psycopg.Cursor, runners: set[str],
                   min_ms: int) -> tuple[dict[str, Lap], list[tuple], list[str]]:
    """Re-pair all laps of runners whose laps were voided, restored or moved.

    Return (each runner's last lap, the pairs, runners left without a counting lap).
    """
    runners_list = list(runners)
    cursor.execute("DELETE FROM close_lap_pair WHERE runner_id = ANY(%b::text[])", [runners_list])
    laps = by_runner(cursor.execute(RUNNER_LAPS, [runners_list]).fetchall())
    pairs = [pair for runner_id, runner_laps in laps.items()
             for pair in close_pairs(runner_id, runner_laps, min_ms)]
    return ({runner_id: runner_laps[-1] for runner_id, runner_laps in laps.items()}, pairs,
            [r for r in runners_list if r not in laps])


def write_pairs(conn: psycopg.Connection, pairs: list[tuple]) -> None:
    """Insert pair rows (second, first, runner, first time, second time, two laptops)."""
    if pairs:
        conn.execute(PAIRS_INSERT, [list(column) for column in zip(*pairs)])


def write_last(cursor: psycopg.Cursor, last: dict[str, Lap]) -> None:
    """Store each runner's last counting lap."""
    if not last:
        return
    rows = dict(last)
    columns = [list(rows), [lap[0] for lap in rows.values()], [lap[1] for lap in rows.values()],
               [lap[2] for lap in rows.values()]]
    for (runner_id,) in cursor.execute(LAST_UPDATE, columns).fetchall():
        del rows[runner_id]
    if rows:
        cursor.execute(LAST_INSERT, [list(rows), [lap[0] for lap in rows.values()],
                                     [lap[1] for lap in rows.values()],
                                     [lap[2] for lap in rows.values()]])


# ---- from scratch --------------------------------------------------------------------------

PARTS = ("pairs", "last", "buckets")


def reference(conn: psycopg.Connection, parts: tuple[str, ...] = PARTS) -> dict:
    """Compute pairs, last laps and buckets from the laps that count: what the tables must hold."""
    cursor, found = conn.cursor(row_factory=tuple_row), {}
    if "pairs" in parts:
        found["pairs"] = {row[0]: row[1:] for row in cursor.execute(
            REFERENCE_PAIRS, {"min_ms": min_lap_ms(conn)})}
    if "last" in parts:
        found["last"] = {row[0]: row[1:] for row in cursor.execute(REFERENCE_LAST)}
    if "buckets" in parts:
        found["buckets"] = dict(cursor.execute(REFERENCE_BUCKETS, {"size": BUCKET_MS}).fetchall())
    return found


def stored(conn: psycopg.Connection, parts: tuple[str, ...] = PARTS) -> dict:
    """Return what the three tables hold, shaped like reference()."""
    cursor, queries = conn.cursor(row_factory=tuple_row), {
        "pairs": STORED_PAIRS, "last": STORED_LAST, "buckets": STORED_BUCKETS}
    found = {part: {row[0]: row[1:] for row in cursor.execute(queries[part])} for part in parts}
    if "buckets" in found:
        found["buckets"] = {bucket: row[0] for bucket, row in found["buckets"].items()}
    return found


def rebuild(conn: psycopg.Connection, only_pairs: bool = False) -> dict[str, int]:
    """Replace the tables' rows with reference() (caller's write transaction).

    Return per table how many rows differed (missing, extra or changed).
    """
    parts = ("pairs",) if only_pairs else PARTS
    want, have = reference(conn, parts), stored(conn, parts)
    differed = {part: sum(1 for key in want[part].keys() | have[part].keys()
                          if want[part].get(key) != have[part].get(key)) for part in parts}
    if differed["pairs"]:
        conn.execute("DELETE FROM close_lap_pair")
        write_pairs(conn, [(key, *row) for key, row in want["pairs"].items()])
    if differed.get("last"):
        conn.execute("DELETE FROM runner_last_lap")
        write_last(conn.cursor(row_factory=tuple_row),
                   {key: (row[1], row[0], row[2]) for key, row in want["last"].items()})
    if differed.get("buckets"):
        conn.execute("DELETE FROM lap_bucket")
        buckets = want["buckets"]
        if buckets:
            conn.execute(BUCKETS_ADD, [list(buckets), list(buckets.values())])
    return differed


@click.command("rebuild-review")
@with_appcontext
def rebuild_review_command() -> None:
    """Recompute the review queue's lap pairs and the charts' counts from the laps (a repair)."""
    with connection() as conn, write_transaction(conn):
        differed = rebuild(conn)
        counts = stored(conn)
    click.echo(f"Rebuilt: {len(counts['pairs'])} close lap pairs, {len(counts['last'])} "
               f"runners' last laps, {len(counts['buckets'])} time buckets; rows that "
               f"differed: {differed['pairs']}, {differed['last']}, {differed['buckets']}.")


def init_app(app: Flask) -> None:
    """Register the rebuild-review command."""
    app.cli.add_command(rebuild_review_command)
