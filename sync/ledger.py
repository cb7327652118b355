"""The ledger of central: runner registers, lap totals, voids and runner clashes.

Push, review and roster change laps and runners through these functions, so that
totals, clashes, the review queue's lap pairs and the chart's buckets (sync/derived.py)
follow every change alike.
"""
from __future__ import annotations

import collections
import itertools
import operator
from collections.abc import Iterable, Iterator

import psycopg
from psycopg.rows import tuple_row

from lapsync import classes

from . import bulk, db, search
from .derived import BUCKET_MS, Lap, keep_in_step, min_lap_ms

RUNNER_UPSERT = """
INSERT INTO runner AS r (id, start_number, name, class, grade, hlc, origin, change_id)
VALUES (%(id)s, %(start_number)s, %(name)s, %(class)s, %(grade)s, %(hlc)s, %(origin)s,
        nextval('change_id_seq'))
ON CONFLICT (id) DO UPDATE SET
    start_number = {number}, name = excluded.name, class = excluded.class,
    grade = excluded.grade, hlc = excluded.hlc, origin = excluded.origin,
    change_id = excluded.change_id,
    decision = CASE WHEN r.merged_into IS NOT NULL OR {number} = r.start_number
                    THEN r.decision END
"""
# A laptop's runner change is a last-writer-wins register; central's own edits always apply.
# A laptop's edit that still carries the number central renumbered the runner away from
# (it had not pulled the renumber yet) keeps central's number and the decision.
KEPT_NUMBER = """CASE WHEN r.decision->>'action' = 'renumber'
    AND excluded.start_number = (r.decision->>'was_start_number')::int
    THEN r.start_number ELSE excluded.start_number END"""
RUNNER_UPSERT_NEWER = RUNNER_UPSERT.format(number=KEPT_NUMBER) + """WHERE (excluded.hlc, excluded.origin) > (r.hlc, r.origin)
RETURNING id, merged_into, start_number
"""
RUNNER_UPSERT_ANY = (RUNNER_UPSERT.format(number="excluded.start_number")
                     + "RETURNING id, merged_into, start_number\n")

# Each class's spellings with their runners (but one's), in roster order: lapsync/classes.py
# keeps the most used (ties: the first).
SPELLINGS = """
SELECT class, count(*) AS runners, min(start_number) AS first FROM runner
WHERE merged_into IS NULL AND id IS DISTINCT FROM %s
GROUP BY class ORDER BY min(start_number), class
"""

VOID_UPSERT = """
INSERT INTO lap_void AS v (lap_id, voided, at, by, reason, hlc, origin, central, change_id)
VALUES (%(lap_id)s, %(voided)s, %(at)s, %(by)s, %(reason)s, %(hlc)s, %(origin)s, %(central)s,
        nextval('change_id_seq'))
ON CONFLICT (lap_id) DO UPDATE SET
    voided = excluded.voided, at = excluded.at, by = excluded.by, reason = excluded.reason,
    hlc = excluded.hlc, origin = excluded.origin, central = excluded.central,
    change_id = excluded.change_id
WHERE (excluded.hlc, excluded.origin) > (v.hlc, v.origin)
RETURNING lap_id
"""
VOID_BEFORE = """
SELECT voided, central, (%(hlc)s COLLATE "C", %(origin)s COLLATE "C") > (hlc, origin) AS newer
FROM lap_void WHERE lap_id = %(lap_id)s
"""
CENTRAL_DECISION = "central_decision"

# The lists go as texts (sync/bulk.py). After a push's first batch nearly every runner has
# its rows, so a batch's totals are a plain UPDATE (much cheaper than an upsert, and cheaper
# without RETURNING the rows for an INSERT of the missing ones in the same statement); only
# when it updated fewer rows than the batch counted are the missing ones inserted.
# runner_total's change ids: one block of the sequence for all rows (setval under the write
# lock, like every nextval: sync/db.py) instead of a nextval per row. Each statement logs
# its block and its runners in the order of their change ids (the k-th: first_id + k - 1)
# in total_change, which the pull reads (sync/pull.py) instead of an index on change_id,
# so that the updates stay on their page (HOT). The INSERT's nextvals, one statement under
# the write lock, are consecutive too.
TOTALS_ADD = """
WITH ids AS MATERIALIZED (
    SELECT setval('change_id_seq', nextval('change_id_seq') + %(n)s - 1) - %(n)s AS base
), logged AS (
    INSERT INTO total_change (last_id, first_id, runner_ids)
    SELECT base + %(n)s, base + 1, string_to_array(%(runners)s, E'\\n') FROM ids
)
UPDATE runner_total AS t SET laps = t.laps + d.n, change_id = ids.base + d.k
FROM ids, unnest(string_to_array(%(runners)s, E'\\n'), string_to_array(%(laps)s, ',')::int[])
    WITH ORDINALITY AS d(runner_id, n, k)
WHERE t.runner_id = d.runner_id
"""
TOTALS_INSERT = """
WITH added AS (
    INSERT INTO runner_total (runner_id, laps, change_id)
    SELECT d.runner_id, d.n, nextval('change_id_seq')
    FROM unnest(string_to_array(%(runners)s, E'\\n'), string_to_array(%(laps)s, ',')::int[])
        AS d(runner_id, n)
    RETURNING runner_id, change_id
)
INSERT INTO total_change (last_id, first_id, runner_ids)
SELECT max(change_id), min(change_id), array_agg(runner_id ORDER BY change_id)
FROM added HAVING count(*) > 0
"""
# Log rows older than the newest that no total's change id falls in any more. A total's
# row is the first whose last_id is at or after its change id: found by one binary search
# in the sorted last_ids (width_bucket), for all totals in one pass (~2 ms at 5,000).
# That pass reads every total, so it runs only when the newest row's last_id entered a new
# block of PRUNE_EVERY change ids: a push's small batches share its cost, a big batch
# (thousands of runners) pays it alone. The guard is a one-time filter: no row is read
# when it is false. A pull skips the dead rows kept in between (it sends current totals).
PRUNE_EVERY = 4096
TOTALS_PRUNE = """
DELETE FROM total_change WHERE last_id < (SELECT max(last_id) FROM total_change)
AND (SELECT max(last_id) FROM total_change) / %(every)s <> (
    SELECT max(last_id) FROM total_change
    WHERE last_id < (SELECT max(last_id) FROM total_change)) / %(every)s
AND last_id NOT IN (
    SELECT g.ends[width_bucket(t.change_id - 1, g.ends) + 1]
    FROM runner_total t, (SELECT array_agg(last_id ORDER BY last_id) AS ends FROM total_change) g)
"""
LAPTOP_TOTALS = """
unnest(string_to_array(%(laptops)s, E'\\n'), string_to_array(%(runners)s, E'\\n'),
       string_to_array(%(laps)s, ',')::int[]) AS d(laptop_id, runner_id, n)
"""
LAPTOP_TOTALS_ADD = f"""
UPDATE device_runner_laps AS t SET laps = t.laps + d.n FROM {LAPTOP_TOTALS}
WHERE t.laptop_id = d.laptop_id AND t.runner_id = d.runner_id
"""
LAPTOP_TOTALS_INSERT = f"""
INSERT INTO device_runner_laps (laptop_id, runner_id, laps)
SELECT d.laptop_id, d.runner_id, d.n FROM {LAPTOP_TOTALS}
"""
# The rows an UPDATE above did not find, read before they are inserted rather than by a
# NOT EXISTS in the INSERT: planned on a table analysed empty, that check scans the table
# once per row while the INSERT fills it (quadratic in the batch's runners).
MISSING_TOTALS = """
SELECT d.runner_id FROM unnest(string_to_array(%s, E'\\n')) AS d(runner_id)
WHERE NOT EXISTS (SELECT 1 FROM runner_total t WHERE t.runner_id = d.runner_id)
"""
MISSING_LAPTOP_TOTALS = """
SELECT d.laptop_id, d.runner_id
FROM unnest(string_to_array(%s, E'\\n'), string_to_array(%s, E'\\n')) AS d(laptop_id, runner_id)
WHERE NOT EXISTS (SELECT 1 FROM device_runner_laps t
                  WHERE t.laptop_id = d.laptop_id AND t.runner_id = d.runner_id)
"""


def upsert_runner(conn: psycopg.Connection, runner: dict, newer_only: bool) -> dict | None:
    """Write a runner (newer_only: if its (hlc, origin) wins); return id, merged_into and the
    start number it now has, or None."""
    return conn.execute(RUNNER_UPSERT_NEWER if newer_only else RUNNER_UPSERT_ANY,
                        runner).fetchone()


def class_spellings(conn: psycopg.Connection, except_id: str | None = None) -> dict[str, str]:
    """Map each class key to the spelling the roster has for it (leaving one runner out)."""
    rows = conn.execute(SPELLINGS, [except_id]).fetchall()
    return classes.preferred((row["class"], row["runners"]) for row in rows)


def class_rows(conn: psycopg.Connection) -> list[tuple[str, int, int]]:
    """Return each stored spelling with its live runners and lowest start number (classes.tallied)."""
    return [(row["class"], row["runners"], row["first"])
            for row in conn.execute(SPELLINGS, [None]).fetchall()]


class Deltas:
    """Changes to the laps that count in one batch: totals per runner and per (laptop,
    runner), per time bucket, the laps that arrived and the runners whose laps must be
    read again (voids, restores, moves) for the review queue's pairs (sync/derived.py)."""

    def __init__(self) -> None:
        """Start with no changes."""
        self.runner: collections.Counter = collections.Counter()
        self.laptop: collections.Counter = collections.Counter()
        self.buckets: collections.Counter = collections.Counter()
        # The laps that arrived, as columns in arrival order: corrected time, id, laptop, runner.
        self.arrivals: tuple[list, list, list, list] = ([], [], [], [])
        self.min_ms, self.counted = 0, 0   # counted: arrivals counted in the Counters so far
        self.reread: set[str] = set()
        self.sorted_laps: tuple[dict[str, list[Lap]], set[str]] | None = None

    def add(self, runner_id: str, laptop_id: str, n: int) -> None:
        """Count n more (or fewer) laps of runner_id recorded on laptop_id."""
        self.runner[runner_id] += n
        self.laptop[(laptop_id, runner_id)] += n

    def merge(self, other: Deltas) -> None:
        """Add another batch part's changes to these (its arrivals after these)."""
        fresh, sorted_laps = not self.arrivals[0], other.settle()
        self.settle()
        self.runner.update(other.runner)
        self.laptop.update(other.laptop)
        self.buckets.update(other.buckets)
        for mine, theirs in zip(self.arrivals, other.arrivals):
            mine += theirs
        self.counted, self.sorted_laps = len(self.arrivals[0]), sorted_laps if fresh else None
        self.min_ms = max(self.min_ms, other.min_ms)
        self.reread |= other.reread

    def arrived(self, ids: list[str], runner_ids: list[str], times: list[int],
                laptop_ids: list[str], offset: int, min_ms: int) -> None:
        """Note laps that count from now on, at device time + offset (settle() counts them)."""
        corrected = list(map(operator.add, times, itertools.repeat(offset)))
        for column, values in zip(self.arrivals, (corrected, ids, laptop_ids, runner_ids)):
            column += values
        self.min_ms, self.sorted_laps = min_ms, None

    def settle(self) -> tuple[dict[str, list[Lap]], set[str]]:
        """Count the laps that arrived in totals and buckets; return them by runner (sort_arrivals).

        Once for all of a batch's laps rather than per part: a count is one C-level pass
        and the Counters' Python-level merges happen once.
        """
        times, _, laptops, runners = self.arrivals
        if self.counted < len(times):
            self.add_laps(runners[self.counted:], laptops[self.counted:])
            self.buckets.update(map(operator.floordiv, times[self.counted:],
                                    itertools.repeat(BUCKET_MS)))
            self.counted = len(times)
        if self.sorted_laps is None:
            self.sorted_laps = sort_arrivals(*self.arrivals, self.min_ms)
        return self.sorted_laps

    def changed(self, runner_id: str, at: int, n: int) -> None:
        """Note a lap of runner_id at corrected time AT that stops (-1) or starts (1) counting."""
        self.reread.add(runner_id)
        self.buckets[at // BUCKET_MS] += n

    def add_laps(self, runner_ids: list[str], laptop_ids: list[str]) -> None:
        """Count one more lap for each (runner, laptop) pair (Counter.update counts in C)."""
        laptops = set(laptop_ids)
        if len(laptops) != 1:
            self.runner.update(runner_ids)
            self.laptop.update(zip(laptop_ids, runner_ids))
            return
        # The usual batch: all laps of one laptop. Count runners once, not 50,000 pairs.
        laptop, counts = laptops.pop(), collections.Counter(runner_ids)
        self.runner.update(counts)
        self.laptop.update({(laptop, runner): n for runner, n in counts.items()})


def sort_arrivals(times: list[int], ids: list[str], laptops: list[str], runners: list[str],
                  min_ms: int) -> tuple[dict[str, list[Lap]], set[str]]:
    """Return each runner's arrived laps (time, id, laptop) and the tangled runners.

    A runner is tangled if two of its laps, one after the other in arrival order, are
    out of order or closer than min_ms (a tie in time counts: ids order it): only those
    need sorting and pairing among themselves, and only theirs are listed in full,
    sorted. The others' laps arrived in order, so their first and last lap stand for
    them. This runs for every lap of every push: one pass finds the tangled runners,
    C-level passes over the columns do the rest.
    """
    tangled = tangled_runners(runners, times, min_ms)
    # Positions, not a (time, id, laptop) tuple per lap: 50,000 new tuples a batch would
    # also wake the garbage collector. A runner with one lap has it as first and last.
    first = dict(zip(reversed(runners), range(len(runners) - 1, -1, -1)))
    last = dict(zip(runners, range(len(runners))))
    found = dict(zip(first, map(list, zip(laps_at(times, ids, laptops, first.values()),
                                          laps_at(times, ids, laptops,
                                                  map(last.__getitem__, first))))))
    found.update((runner, []) for runner in tangled)
    for runner, at in itertools.compress(zip(runners, itertools.count()),
                                         map(tangled.__contains__, runners)):
        found[runner].append((times[at], ids[at], laptops[at]))
    for runner in tangled:
        found[runner].sort()
    return found, tangled


def tangled_runners(runners: list[str], times: list[int], min_ms: int) -> set[str]:
    """Return the runners with a lap out of order or closer than min_ms after their lap before.

    One pass with each runner's latest time: about five times faster than a stable sort
    by runner with neighbours compared (50,000 laps, 5,000 runners, measured).
    """
    gap, latest, tangled = max(min_ms, 1), {}, set()
    before = latest.get
    for runner, at in zip(runners, times):
        previous = before(runner)
        if previous is not None and at - previous < gap:
            tangled.add(runner)
        latest[runner] = at
    return tangled


def laps_at(times: list[int], ids: list[str], laptops: list[str],
            positions: Iterable[int]) -> Iterator[Lap]:
    """Return the laps (time, id, laptop) at these positions of the columns."""
    positions = list(positions)
    return zip(map(times.__getitem__, positions), map(ids.__getitem__, positions),
               map(laptops.__getitem__, positions))


def apply_totals(conn: psycopg.Connection, deltas: Deltas) -> None:
    """Add a batch's lap deltas to runner_total (new change ids) and device_runner_laps.

    Then bring the review queue's pairs and the chart's buckets in step (sync/derived.py).
    The statements go out in one pipeline: PostgreSQL runs each while Python makes the
    next one's lists, instead of waiting for them (~5,000 runners a push's batch).
    """
    deltas.settle()
    # Laps that arrived were counted with the minimum lap time read in this transaction.
    min_ms = deltas.min_ms if deltas.arrivals[0] else min_lap_ms(conn)
    runners = {r: n for r, n in deltas.runner.items() if n}
    laptops = {k: n for k, n in deltas.laptop.items() if n}
    with db.pipeline(conn) as pipeline:
        totals = runner_lists(runners) if runners else None
        updated = conn.execute(TOTALS_ADD, totals) if totals else None
        per_laptop = laptop_lists(laptops) if laptops else None
        counted = conn.execute(LAPTOP_TOTALS_ADD, per_laptop) if per_laptop else None
        keep_in_step(conn, deltas, min_ms)
        pipeline.sync()
        # Rows the UPDATEs did not find (a runner's first laps): inserted.
        if updated is not None and updated.rowcount < len(runners):
            new = missing(conn, MISSING_TOTALS, [totals["runners"]], runners, updated.rowcount)
            conn.execute(TOTALS_INSERT, runner_lists(new))
        if counted is not None and counted.rowcount < len(laptops):
            new = missing(conn, MISSING_LAPTOP_TOTALS, [per_laptop["laptops"], per_laptop["runners"]],
                          laptops, counted.rowcount)
            conn.execute(LAPTOP_TOTALS_INSERT, laptop_lists(new))
        if totals:
            conn.execute(TOTALS_PRUNE, {"every": PRUNE_EVERY})


def runner_lists(runners: dict[str, int]) -> dict:
    """Return the totals statements' parameters for {runner: laps} (sync/bulk.py)."""
    return {"n": len(runners), "runners": bulk.lines(runners), "laps": bulk.numbers(runners.values())}


def laptop_lists(laptops: dict[tuple[str, str], int]) -> dict:
    """Return the per-laptop totals statements' parameters for {(laptop, runner): laps}."""
    return {"laptops": bulk.lines(k[0] for k in laptops), "runners": bulk.lines(k[1] for k in laptops),
            "laps": bulk.numbers(laptops.values())}


def missing(conn: psycopg.Connection, query: str, lists: list[str], counts: dict,
            found: int) -> dict:
    """Return the part of counts whose rows the UPDATE of lists did not find (found: the
    rows it updated): all if it found none, else as query reads them."""
    if found == 0:
        return counts
    rows = conn.cursor(row_factory=tuple_row).execute(query, lists).fetchall()
    return {key: counts[key] for key in (row[0] if len(row) == 1 else row for row in rows)}


def apply_void(conn: psycopg.Connection, void: dict, deltas: Deltas) -> str | None:
    """Apply a void or restore if it is the latest by (hlc, origin); adjust totals.

    A void central decided (void["central"]) stands against devices: a device's newer
    restore of it is refused (returns CENTRAL_DECISION), a device's newer void of it
    changes nothing. Only central restores it.
    """
    void = {**void, "central": bool(void.get("central"))}
    before = conn.execute(VOID_BEFORE, void).fetchone()
    if before and before["central"] and before["voided"] and before["newer"] \
            and not void["central"]:
        return None if void["voided"] else CENTRAL_DECISION
    if conn.execute(VOID_UPSERT, void).fetchone() is None:
        return None  # an older or the same change: the stored state stays
    was_voided = bool(before and before["voided"])
    if was_voided == void["voided"]:
        return None
    lap = conn.execute("SELECT runner_id, device_id, device_time + clock_offset_ms AS at "
                       "FROM lap WHERE id = %s", [void["lap_id"]]).fetchone()
    if lap is not None:  # no lap yet: the void waits in lap_void and applies on arrival
        deltas.add(lap["runner_id"], lap["device_id"], -1 if void["voided"] else 1)
        deltas.changed(lap["runner_id"], lap["at"], -1 if void["voided"] else 1)
    return None


def record_clash(conn: psycopg.Connection, kind: str, value: str, one: str, other: str,
                 now: int) -> None:
    """Record (or reopen) a clash between two runner ids."""
    a, b = sorted((one, other))
    conn.execute("INSERT INTO clash (kind, value, runner_a, runner_b, detected_at) "
                 "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (kind, value, runner_a, runner_b) "
                 "DO UPDATE SET resolved_at = NULL, detected_at = excluded.detected_at "
                 "WHERE clash.resolved_at IS NOT NULL", [kind, value, a, b, now])


# A changed runner's clashes: the same start number, or one child typed twice (search.py).
RUNNER_KEYS = f"SELECT {search.SAME_CHILD.format(name='%(name)s', class_='%(class)s')} AS same_child"
SAME_NUMBER_OR_NAME = """
SELECT id, start_number, same_child FROM runner WHERE id <> %(id)s AND merged_into IS NULL
AND (start_number = %(start_number)s OR same_child = %(same_child)s)
"""


def detect_clashes(conn: psycopg.Connection, runner: dict, now: int) -> None:
    """Record clashes of a changed runner; resolve its clashes that no longer hold."""
    same_child = conn.execute(RUNNER_KEYS, runner).fetchone()["same_child"]
    values = {"start_number": str(runner["start_number"]), "name": same_child}
    for other in conn.execute(SAME_NUMBER_OR_NAME, {**runner, "same_child": same_child}).fetchall():
        if other["start_number"] == runner["start_number"]:
            record_clash(conn, "start_number", values["start_number"], runner["id"], other["id"], now)
        if other["same_child"] == same_child:
            record_clash(conn, "name", same_child, runner["id"], other["id"], now)
    current = set(values.items())
    for clash in conn.execute("SELECT id, kind, value FROM clash WHERE resolved_at IS NULL "
                              "AND %(id)s IN (runner_a, runner_b)", runner).fetchall():
        if (clash["kind"], clash["value"]) not in current:
            conn.execute("UPDATE clash SET resolved_at = %s WHERE id = %s", [now, clash["id"]])
