"""Apply a laptop's push: exactly once, in one transaction, conflicts resolved by id.

Rules (see docs/PROTOCOL.md): laps are inserted once by id and never change;
a lap's void state and every runner and user are last-writer-wins registers by
(hlc, origin); start-number and name clashes are recorded, never merged. Laps,
voids and runners commute (sets and registers), so a batch applies them by kind:
runners and users in seq order, then all laps in one COPY, then voids. A big batch of
laps alone is copied before the write lock is taken, while another batch holds it, and
checked under the lock (copy_early).
"""
from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable
from typing import NamedTuple

import psycopg
from flask_babel import gettext as _
from psycopg.copy import QueuedLibpqWriter
from psycopg.rows import tuple_row

from lapsync.hlc import MAX_AHEAD_S
from lapsync.protocol import CLOCK_JUMPS, DATA_FIELDS, DATABASE_FIELD, LAP_RUN, ProtocolError
from lapsync.protocol import last_seq as end_seq

from . import bulk, clock
from .authority import apply_runner, own_laps, own_origin, reject_all, void_refusal
from .clock_jumps import record_jumps
from .db import TABLES_LOCK, now_ms, take_write_lock
from .devices import bind_laptop, lock_device
from .derived import min_lap_ms
from .events import check_event, current_event
from .identity import current_database
from .ledger import CENTRAL_DECISION, Deltas, apply_totals, apply_void, class_spellings
from .pushed_users import apply_user

FOLLOW_WAIT_S, FOLLOW_RETRY_S = 5.0, 0.02   # how long a batch waits for the one sent before it
COPY_CHUNK = 4096                  # lap rows per COPY write (about 500 kB)
LAP_COLUMNS = ("id", "runner_id", "created_by", "device_time", "device_id", "pushed_by",
               "received_at", "clock_offset_ms")
LAP_TYPES = ("text", "text", "text", "int8", "text", "int8", "int8", "int8")

log = logging.getLogger(__name__)


def copy_laps(conn: psycopg.Connection, laps: dict[str, list], device: dict, received_at: int,
              offset: int, meanwhile: Callable[[int, int], None]) -> None:
    """COPY lap columns (id, runner_id, created_by, time, device_id) into the lap table.

    Binary rows, formatted by psycopg's C code: PostgreSQL parses them with about a
    tenth less CPU than text rows, for ~0.4 us of Python a row more, while PostgreSQL is
    busy anyway (200,000 laps, measured). Ids and times are validated (letters, digits,
    integers below 10**14). Written in chunks: PostgreSQL takes in one chunk while Python
    formats the next and does meanwhile(start, end), its own work on that chunk's laps; a
    writer thread sends the chunks, so that Python never waits for the socket (about a
    quarter more laps per second than writing them itself, measured).
    """
    columns = [laps[name] for name in DATA_FIELDS["lap"]]
    cursor = conn.cursor()
    with cursor.copy(f"COPY lap ({', '.join(LAP_COLUMNS)}) FROM STDIN (FORMAT BINARY)",
                     writer=QueuedLibpqWriter(cursor)) as copy:
        copy.set_types(LAP_TYPES)
        write = copy.write_row
        for start in range(0, len(columns[0]), COPY_CHUNK):
            end = start + COPY_CHUNK
            chunk = [column[start:end] for column in columns]
            for row in zip(*chunk, *(itertools.repeat(value, len(chunk[0]))
                                     for value in (device["id"], received_at, offset))):
                write(row)
            meanwhile(start, end)


def lap_columns(changes: list[dict]) -> dict[str, list]:
    """Gather the laps of lap changes and compact lap runs as columns, in seq order."""
    columns: dict[str, list] = {name: [] for name in DATA_FIELDS["lap"]}
    for change in changes:
        if change["entity"] == LAP_RUN:
            for name, values in columns.items():
                values += change["data"][name]
        elif change["entity"] == "lap":
            for name, values in columns.items():
                values.append(change["data"][name])
    return columns


# Ids of a batch that central has, as a lap or as a void that came first. A join with
# the unnested ids, not `id = ANY(ids)`: for that the planner estimates the
# selectivity of each of the batch's 50,000 ids one by one (~25 ms of PostgreSQL's
# CPU per batch, even with lap_void empty); the join costs ~3 ms while lap_void
# holds a few thousand voids. The ids go as one text (sync/bulk.py).
VOIDED_FIRST = """
SELECT v.lap_id FROM lap_void v JOIN unnest(string_to_array(%s, E'\\n')) AS u(id)
ON v.lap_id = u.id WHERE v.voided
"""
# The voids central holds, if they are few (a handful to a few thousand at an event): the
# batch's ids are then checked against them here, and its 50,000 ids never go to
# PostgreSQL for a join before the COPY can start. More than VOIDS_AT_ONCE: the join above.
VOIDS_AT_ONCE = 10_000
VOIDED = "SELECT lap_id FROM lap_void WHERE voided LIMIT %s"
KNOWN_LAPS = """
SELECT l.id FROM lap l JOIN unnest(string_to_array(%s, E'\\n')) AS u(id) ON l.id = u.id
"""


def voided_first(conn: psycopg.Connection, ids: list[str]) -> set[str]:
    """Return the ids of ids that central holds a void for (a void that came before its lap)."""
    voids = conn.cursor(row_factory=tuple_row).execute(VOIDED, [VOIDS_AT_ONCE + 1]).fetchall()
    if len(voids) <= VOIDS_AT_ONCE:
        return {row[0] for row in voids}.intersection(ids)
    return {row["lap_id"] for row in conn.execute(VOIDED_FIRST, [bulk.lines(ids)])}


def new_laps(conn: psycopg.Connection, laps: dict[str, list]) -> dict[str, list]:
    """Return the laps central does not have, each id once (its first change wins, order kept)."""
    known = {row["id"] for row in conn.execute(KNOWN_LAPS, [bulk.lines(laps["id"])])}
    keep = []
    for index, lap_id in enumerate(laps["id"]):
        if lap_id not in known:
            known.add(lap_id)
            keep.append(index)
    return {name: [values[i] for i in keep] for name, values in laps.items()}


COUNTED = ("id", "runner_id", "time", "device_id")   # the lap columns counting reads


class Counted(NamedTuple):
    """A batch's laps counted before the write lock, and what that count assumed."""

    columns: tuple[list, ...]   # COUNTED, as the batch holds them
    offset: int
    min_ms: int
    deltas: Deltas


def count_ahead(conn: psycopg.Connection, batch: dict, now: int) -> Counted | None:
    """Count a batch's laps for totals, buckets and pairs before taking the write lock.

    For a batch sent while central applies the one before it (Lapsync-Follows): its
    laps are counted meanwhile, not while PostgreSQL waits for them under the lock.
    insert_laps uses the count only if the laps it inserts are exactly these.
    """
    laps = lap_columns(batch["changes"])
    if not laps["id"]:
        return None
    columns, offset, min_ms = tuple(laps[name] for name in COUNTED), now - batch["device_time"], \
        min_lap_ms(conn)
    deltas = Deltas()
    deltas.arrived(*columns, offset, min_ms)
    deltas.settle()
    return Counted(columns, offset, min_ms, deltas)


def still_counted(ahead: Counted | None, laps: dict[str, list], offset: int, min_ms: int,
                  voided: set[str]) -> Deltas | None:
    """Return the count made ahead if it counted exactly these laps as they count now."""
    if ahead is None or voided or (ahead.offset, ahead.min_ms) != (offset, min_ms):
        return None
    # The same string objects in the same order unless a lap was refused, cut off as
    # applied or moved to a merged runner's survivor: a C-level comparison.
    return ahead.deltas if ahead.columns == tuple(laps[name] for name in COUNTED) else None


def insert_laps(conn: psycopg.Connection, laps: dict[str, list], device: dict, received_at: int,
                offset: int, deltas: Deltas, ahead: Counted | None = None,
                early: Early | None = None) -> int:
    """Insert laps central does not have yet (a re-sent lap is a no-op); return how many.

    laps holds columns (lap_columns). COPY rather than INSERT ... ON CONFLICT:
    several times faster. New seqs almost never hold a lap central has (or an id
    twice), so the COPY is tried first (in a savepoint); if it meets a known id, the
    batch's new laps are copied instead. Safe because every other writer of laps waits
    for the write lock (sync/db.py) before it commits: laps another push copied early
    and has not committed make the COPY wait for it while it waits for this lock, a
    deadlock PostgreSQL ends by rolling one of them back (push applies it again). The
    laps are counted for the totals, the time buckets and the review queue's pairs
    (sync/derived.py) while PostgreSQL takes in the COPY, unless they were counted ahead
    (count_ahead). Laps copied before the lock (copy_early) are not copied again.
    """
    if early is not None:
        return early_inserted(conn, laps, offset, deltas, early)
    voided = voided_first(conn, laps["id"])
    counted, min_ms = Deltas(), min_lap_ms(conn)
    known = still_counted(ahead, laps, offset, min_ms, voided)

    def count(start: int, end: int) -> None:
        """Count the laps of one COPY chunk (a void that came first: not counted)."""
        if known is not None:
            return
        chunk = [laps[name][start:end] for name in COUNTED]
        if voided:
            kept = [i for i, lap_id in enumerate(chunk[0]) if lap_id not in voided]
            chunk = [[column[i] for i in kept] for column in chunk]
        counted.arrived(*chunk, offset, min_ms)
        if end >= len(laps["id"]):  # while PostgreSQL takes in the COPY's last chunks
            counted.settle()

    try:
        with conn.transaction():
            copy_laps(conn, laps, device, received_at, offset, count)
        counted = counted if known is None else known
    except psycopg.errors.UniqueViolation:
        laps, counted, known = new_laps(conn, laps), Deltas(), None
        if laps["id"]:
            copy_laps(conn, laps, device, received_at, offset, count)
    deltas.merge(counted)
    return len(laps["id"])


class EarlyStale(Exception):
    """The laps copied before the write lock are not the ones the batch inserts under it."""


class Early(NamedTuple):
    """A batch's laps copied before the write lock, and what that copy assumed."""

    last_seq: int               # the device's last applied seq before this batch
    columns: tuple[list, ...]   # the lap columns copied (DATA_FIELDS["lap"])
    min_ms: int
    deltas: Deltas              # the laps counted, none taken as voided


EARLY_ENTITIES = ("lap", LAP_RUN)
# Laps in a batch from which copy_early pays for its extra statements (~1 ms); a
# laptop keeping up with the track pushes a handful, the usual way.
EARLY_FROM = 1_000


def copy_early(conn: psycopg.Connection, device: dict, batch: dict, now: int, event: str | None,
               follows: int | None, deadline: float) -> Early | None:
    """COPY a batch of laps before taking the write lock; None if the batch is not for that.

    PostgreSQL then takes in this batch's laps while another batch (the one before it from
    the same laptop, or another laptop's) holds the lock. Only a big batch of new laps
    alone, named for central's EVENT, that continues the device's applied seqs or the
    batch in flight before it (FOLLOWS), with laps the device may push. Under the lock,
    apply_push checks that it inserts exactly these laps (early_inserted), else the whole
    transaction is redone the usual way (EarlyStale). Waits until the batch before it is
    applied (up to DEADLINE).
    """
    changes = batch["changes"]
    if not early_batch(changes):
        return None
    if not conn.execute("SELECT pg_try_advisory_xact_lock_shared(%s) AS ok",
                        [TABLES_LOCK]).fetchone()["ok"]:
        return None  # tables are being emptied or dropped: wait for the write lock instead
    row = conn.execute("SELECT laptop_id, last_seq, revoked_at FROM device WHERE id = %s",
                       [device["id"]]).fetchone()
    first = changes[0]["seq"]
    if row is None or row["revoked_at"] is not None or row["laptop_id"] != batch["device_id"] \
            or (first != row["last_seq"] + 1 and follows != row["last_seq"] + 1) \
            or first <= row["last_seq"] or event not in (None, current_event(conn)):
        return None
    laps, refused = own_laps(conn, {**device, **row}, changes, lap_columns(changes))
    if refused or not laps["id"]:
        return None
    redirect_merged(conn, laps)
    offset, min_ms, deltas = now - batch["device_time"], min_lap_ms(conn), Deltas()

    def count(start: int, end: int) -> None:
        """Count the laps of one COPY chunk."""
        deltas.arrived(*(laps[name][start:end] for name in COUNTED), offset, min_ms)
        if end >= len(laps["id"]):
            deltas.settle()

    try:
        with conn.transaction():
            copy_laps(conn, laps, device, now, offset, count)
    except psycopg.errors.UniqueViolation:
        return None  # central has some of them: the usual way finds which
    wait_applied(conn, device["id"], first - 1, deadline)
    return Early(first - 1, tuple(laps[name] for name in DATA_FIELDS["lap"]), min_ms, deltas)


def early_batch(changes: list[dict]) -> bool:
    """Tell whether a batch is one for copy_early: laps alone, EARLY_FROM or more of them."""
    return bool(changes) and all(change["entity"] in EARLY_ENTITIES for change in changes) \
        and end_seq(changes[-1]) - changes[0]["seq"] + 1 >= EARLY_FROM


def wait_applied(conn: psycopg.Connection, device_id: int, last_seq: int, deadline: float) -> None:
    """Wait until the device's applied seqs reach LAST_SEQ (another batch's commit), or DEADLINE."""
    query = "SELECT last_seq FROM device WHERE id = %s"
    while conn.execute(query, [device_id]).fetchone()["last_seq"] < last_seq \
            and time.monotonic() < deadline:
        time.sleep(FOLLOW_RETRY_S)


def early_inserted(conn: psycopg.Connection, laps: dict[str, list], offset: int, deltas: Deltas,
                   early: Early) -> int:
    """Count the laps copied before the lock if they are these laps; else raise EarlyStale."""
    if early.columns != tuple(laps[name] for name in DATA_FIELDS["lap"]):
        raise EarlyStale
    voided, min_ms = voided_first(conn, laps["id"]), min_lap_ms(conn)
    counted = early.deltas
    if voided or min_ms != early.min_ms:  # counted anew: a void came first, or a new minimum
        counted, kept = Deltas(), [i for i, lap_id in enumerate(laps["id"]) if lap_id not in voided]
        counted.arrived(*([laps[name][i] for i in kept] for name in COUNTED), offset, min_ms)
        counted.settle()
    deltas.merge(counted)
    return len(laps["id"])


def redirect_merged(conn: psycopg.Connection, laps: dict[str, list]) -> None:
    """Count laps of a merged runner for its survivor (sent before the laptop knew of the merge)."""
    # All merged runners, not a lookup of the batch's runners: merges are a handful of
    # admin decisions (index runner_merged), a batch touches thousands of runners.
    merged = conn.execute("SELECT id, merged_into FROM runner WHERE merged_into IS NOT NULL")
    survivors = {row["id"]: row["merged_into"] for row in merged}
    if survivors:
        laps["runner_id"] = [survivors.get(r, r) for r in laps["runner_id"]]


CENTRAL_VOID = ("An admin at central voided this lap: only central can restore it. The "
                "laptop learns the void at its next pull.")


def apply_changes(conn: psycopg.Connection, device: dict, changes: list[dict], device_time: int,
                  now: int, ahead: Counted | None = None,
                  early: Early | None = None) -> tuple[list[dict], int]:
    """Apply new changes of one batch; return (rejected, laps inserted).

    What the device may not say (sync/authority.py) is refused item by item.
    """
    laptop_id, refusals, deltas = device["laptop_id"], [], Deltas()
    own_origin(device, changes)
    # Read once a batch, and only for one that writes runners: most push laps alone.
    spellings = class_spellings(conn) if any(c["entity"] == "runner" for c in changes) else {}
    writers = {"runner": functools.partial(apply_runner, spellings=spellings), "user": apply_user}
    for change in changes:
        write = writers.get(change["entity"])
        refusal = write(conn, device, change["data"], now) if write else None
        refusals += [(change, *refusal)] if refusal else []
    laps, refused_laps = own_laps(conn, device, changes, lap_columns(changes))
    refusals += refused_laps
    if laps["id"]:
        redirect_merged(conn, laps)
    inserted = insert_laps(conn, laps, device, now, now - device_time, deltas, ahead, early) \
        if laps["id"] or early else 0
    for change in changes:
        if change["entity"] == "lap_void":
            refusal = void_refusal(conn, device, change["data"])
            if refusal is None and apply_void(conn, change["data"], deltas):
                refusal = CENTRAL_DECISION, CENTRAL_VOID
            refusals += [(change, *refusal)] if refusal else []
    apply_totals(conn, deltas)
    rejected = reject_all(conn, laptop_id, sorted(refusals, key=lambda r: r[0]["seq"]), now)
    refused = {r["seq"] for r in rejected}  # a refused change moves nothing, not even the clock
    stamps = [c["data"]["hlc"] for c in changes if "hlc" in c["data"] and c["seq"] not in refused]
    if stamps:
        clock.observe(conn, max(stamps))
    return rejected, inserted


def earlier_rejections(conn: psycopg.Connection, laptop_id: str, first: int,
                       last: int) -> list[dict]:
    """Return rejections already given for seqs first..last (a replayed batch)."""
    return conn.execute("SELECT seq, error, message FROM rejected_change "
                        "WHERE laptop_id = %s AND seq BETWEEN %s AND %s ORDER BY seq",
                        [laptop_id, first, last]).fetchall()


def unapplied(changes: list[dict], last_seq: int) -> list[dict]:
    """Return the changes after last_seq; a lap run central has in part is cut."""
    kept = []
    for change in changes:
        if end_seq(change) <= last_seq:
            continue
        if change["seq"] <= last_seq:  # only a lap run stands for several seqs
            cut = last_seq + 1 - change["seq"]
            change = {"seq": last_seq + 1, "entity": LAP_RUN,
                      "data": {name: values[cut:] for name, values in change["data"].items()}}
        kept.append(change)
    return kept


def log_applied(device: dict, last_seq: int, acked: int, laps: int, refused: int) -> None:
    """Log one line for a push that applied changes: the sign of life an operator watches."""
    if acked > last_seq:  # a replay or an empty batch changed nothing: no line
        log.info("push from device %r applied seq %d..%d: %d change(s), %d new lap(s), "
                 "%d refused", device["name"], last_seq + 1, acked, acked - last_seq, laps,
                 refused)


def push(conn: psycopg.Connection, device: dict, batch: dict, now: int | None = None,
         max_ahead_ms: int = MAX_AHEAD_S * 1000, follows: int | None = None,
         event: str | None = None) -> dict:
    """Apply a validated push batch in one transaction; return the push answer.

    FOLLOWS: the first seq of the batch the laptop sent just before this one and has no
    answer to yet. If that batch is exactly what this one lacks, it is waited for (up to
    FOLLOW_WAIT_S, a retry every FOLLOW_RETRY_S) instead of refused as a gap: it was sent
    first but may reach the write lock second. Anything else is refused at once. A big
    batch of laps is copied before the write lock (copy_early); if what it assumed no longer
    holds under the lock, it is applied again the usual way, its laps counted before
    the lock (count_ahead) at the time it arrived.
    EVENT: the event the laptop counts for (its Lapsync-Event header); another than
    central's is refused (sync/events.py).
    """
    deadline, counted = time.monotonic() + FOLLOW_WAIT_S, None
    now = now_ms() if now is None else now
    early = early_batch(batch["changes"])
    while True:
        if counted is None and follows is not None and not early:
            counted = count_ahead(conn, batch, now)
        try:
            return apply_push(conn, device, batch, now, max_ahead_ms, counted, event,
                              (follows, deadline) if early else None)
        except (EarlyStale, psycopg.errors.DeadlockDetected):
            # A deadlock: another attempt at the same laps copied them early; both are
            # rolled back whole, and the usual way waits for the lock before any COPY.
            early = False
            continue
        except ProtocolError as refused:
            if refused.code != "seq_gap" or follows is None \
                    or refused.extra["resume_from"] != follows or time.monotonic() >= deadline:
                raise
        early = False
        time.sleep(FOLLOW_RETRY_S)


def apply_push(conn: psycopg.Connection, device: dict, batch: dict, now: int | None,
               max_ahead_ms: int, counted: Counted | None = None, event: str | None = None,
               early: tuple[int | None, float] | None = None) -> dict:
    """Apply a validated push batch in one transaction; return the push answer.

    Replays are no-ops: seqs at or below the device's last applied seq are
    skipped; a batch whose first new seq leaves a gap is refused (409) whole. A
    change stamped more than max_ahead_ms ahead of central's clock is refused.
    EARLY: (follows, deadline) to copy a batch of laps before the write lock (copy_early).
    """
    now = now_ms() if now is None else now
    with conn.transaction():
        # A batch holds 1 to 50,000 changes, so its statements' arrays vary as much. After a
        # few batches PostgreSQL may keep a generic plan for a prepared statement (an index
        # lookup per row), far slower for a big batch's thousands of rows than its own plan.
        conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        conn.execute("SET LOCAL lock_timeout = '30s'")  # as under the write lock
        copied = copy_early(conn, device, batch, now, event, *early) if early else None
        take_write_lock(conn)
        device = bind_laptop(conn, lock_device(conn, device["id"]), batch["device_id"])
        check_event(conn, event)
        # Under the write lock, as acked_seq: both from the same database (a restore takes it).
        database = {DATABASE_FIELD: current_database(conn)}
        last_seq = device["last_seq"]
        if copied is not None and copied.last_seq != last_seq:
            raise EarlyStale
        changes = unapplied(batch["changes"], last_seq)
        if changes and changes[0]["seq"] != last_seq + 1:
            raise ProtocolError("seq_gap", _("Central has applied up to seq %(last)s; this "
                                             "batch starts at %(first)s.", last=last_seq,
                                             first=changes[0]["seq"]), 409,
                                acked_seq=last_seq, resume_from=last_seq + 1, **database)
        rejected = []
        if batch["changes"] and batch["changes"][0]["seq"] <= last_seq:  # a replay, in part
            rejected = earlier_rejections(conn, device["laptop_id"], batch["changes"][0]["seq"],
                                          min(last_seq, end_seq(batch["changes"][-1])))
        kept, ahead = clock.refuse_ahead(conn, device["laptop_id"], changes, now, max_ahead_ms)
        new_rejected, inserted = apply_changes(conn, device, kept, batch["device_time"], now,
                                               counted, copied)
        new_rejected = sorted(ahead + new_rejected, key=lambda r: r["seq"])
        acked = end_seq(changes[-1]) if changes else last_seq
        record_jumps(conn, device, batch.get(CLOCK_JUMPS, []), now)
        conn.execute("UPDATE device SET last_seq = %s, last_contact = %s, clock_offset_ms = %s, "
                     "laps_pushed = laps_pushed + %s WHERE id = %s",
                     [acked, now, now - batch["device_time"], inserted, device["id"]])
    log_applied(device, last_seq, acked, inserted, len(new_rejected))
    return {"acked_seq": acked, "server_time": now, "rejected": rejected + new_rejected,
            **database}
