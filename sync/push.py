"""Apply a laptop's push: exactly once, in one transaction, conflicts resolved by id.

Rules (see lapsync/protocol.py): laps are inserted once by id and never change;
a lap's void state and every runner and user are last-writer-wins registers by
(hlc, origin); start-number and name clashes are recorded, never merged. Laps,
voids and runners commute (sets and registers), so a batch applies them by kind:
runners and users in seq order, then all laps in one COPY, then voids.
"""
from __future__ import annotations

import collections
import json

import psycopg

from lapsync.protocol import ProtocolError

from . import clock
from .db import now_ms, write_transaction
from .devices import bind_laptop, lock_device

LAP_COLUMNS = ("id", "runner_id", "created_by", "device_time", "device_id", "pushed_by",
               "received_at", "clock_offset_ms")
RUNNER_UPSERT = """
INSERT INTO runner AS r (id, start_number, name, class, grade, hlc, origin, change_id)
VALUES (%(id)s, %(start_number)s, %(name)s, %(class)s, %(grade)s, %(hlc)s, %(origin)s,
        nextval('change_id_seq'))
ON CONFLICT (id) DO UPDATE SET
    start_number = excluded.start_number, name = excluded.name, class = excluded.class,
    grade = excluded.grade, hlc = excluded.hlc, origin = excluded.origin,
    change_id = excluded.change_id
WHERE (excluded.hlc, excluded.origin) > (r.hlc, r.origin)
RETURNING id, merged_into
"""

USER_UPSERT = """
INSERT INTO app_user AS u (id, name, password_hash, role, created_at, hlc, origin, change_id)
VALUES (%(id)s, %(name)s, %(password_hash)s, %(role)s, %(created_at)s, %(hlc)s, %(origin)s,
        nextval('change_id_seq'))
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, password_hash = excluded.password_hash, role = excluded.role,
    hlc = excluded.hlc, origin = excluded.origin, change_id = excluded.change_id
WHERE (excluded.hlc, excluded.origin) > (u.hlc, u.origin)
RETURNING id
"""

VOID_UPSERT = """
INSERT INTO lap_void AS v (lap_id, voided, at, by, reason, hlc, origin, change_id)
VALUES (%(lap_id)s, %(voided)s, %(at)s, %(by)s, %(reason)s, %(hlc)s, %(origin)s,
        nextval('change_id_seq'))
ON CONFLICT (lap_id) DO UPDATE SET
    voided = excluded.voided, at = excluded.at, by = excluded.by, reason = excluded.reason,
    hlc = excluded.hlc, origin = excluded.origin, change_id = excluded.change_id
WHERE (excluded.hlc, excluded.origin) > (v.hlc, v.origin)
RETURNING lap_id
"""


class Deltas:
    """Changes to the lap totals of one batch: per runner and per (laptop, runner)."""

    def __init__(self) -> None:
        """Start with no changes."""
        self.runner: collections.Counter = collections.Counter()
        self.laptop: collections.Counter = collections.Counter()

    def add(self, runner_id: str, laptop_id: str, n: int) -> None:
        """Count n more (or fewer) laps of runner_id recorded on laptop_id."""
        self.runner[runner_id] += n
        self.laptop[(laptop_id, runner_id)] += n


def apply_totals(conn: psycopg.Connection, deltas: Deltas) -> None:
    """Add a batch's lap deltas to runner_total (new change ids) and device_runner_laps."""
    runners = [(r, n) for r, n in deltas.runner.items() if n]
    if runners:
        conn.execute(
            "INSERT INTO runner_total (runner_id, laps, change_id) "
            "SELECT r, n, nextval('change_id_seq') FROM unnest(%s::text[], %s::int[]) AS t(r, n) "
            "ON CONFLICT (runner_id) DO UPDATE SET laps = runner_total.laps + excluded.laps, "
            "change_id = excluded.change_id",
            [[r for r, _ in runners], [n for _, n in runners]])
    laptops = [(k, n) for k, n in deltas.laptop.items() if n]
    if laptops:
        conn.execute(
            "INSERT INTO device_runner_laps (laptop_id, runner_id, laps) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::int[]) "
            "ON CONFLICT (laptop_id, runner_id) DO UPDATE "
            "SET laps = device_runner_laps.laps + excluded.laps",
            [[k[0] for k, _ in laptops], [k[1] for k, _ in laptops], [n for _, n in laptops]])


def copy_laps(conn: psycopg.Connection, laps: list[dict], device: dict, received_at: int,
              offset: int) -> None:
    """COPY laps into the lap table (ids and times are validated: nothing to escape)."""
    tail = f"\t{device['id']}\t{received_at}\t{offset}\n"
    rows = "".join(f"{lap['id']}\t{lap['runner_id']}\t{lap['created_by']}\t{lap['time']}"
                   f"\t{lap['device_id']}{tail}" for lap in laps)
    with conn.cursor().copy(f"COPY lap ({', '.join(LAP_COLUMNS)}) FROM STDIN") as copy:
        copy.write(rows)


def insert_laps(conn: psycopg.Connection, laps: list[dict], device: dict, received_at: int,
                offset: int, deltas: Deltas) -> int:
    """Insert laps central does not have yet (a re-sent lap is a no-op); return how many.

    COPY rather than INSERT ... ON CONFLICT: several times faster. New seqs almost
    never hold a lap central has, so the COPY is tried first (in a savepoint); if
    one is there already, the known ids are filtered out and the rest copied.
    Safe because every writer holds the write lock (sync/db.py): no other
    transaction inserts laps between the check and the COPY.
    """
    unique: dict[str, dict] = {}
    for lap in laps:  # the first change of an id wins; batch order kept (live feed order)
        unique.setdefault(lap["id"], lap)
    try:
        with conn.transaction():
            copy_laps(conn, list(unique.values()), device, received_at, offset)
    except psycopg.errors.UniqueViolation:
        known = conn.execute("SELECT id FROM lap WHERE id = ANY(%s)", [list(unique)]).fetchall()
        for row in known:
            del unique[row["id"]]
        if unique:
            copy_laps(conn, list(unique.values()), device, received_at, offset)
    voided = {row["lap_id"] for row in conn.execute(  # voids that arrived before their laps
        "SELECT lap_id FROM lap_void WHERE lap_id = ANY(%s) AND voided", [list(unique)])}
    for lap in unique.values():
        if lap["id"] not in voided:
            deltas.add(lap["runner_id"], lap["device_id"], 1)
    return len(unique)


def redirect_merged(conn: psycopg.Connection, laps: list[dict]) -> None:
    """Count laps of a merged runner for its survivor (sent before the laptop knew of the merge)."""
    merged = conn.execute("SELECT id, merged_into FROM runner WHERE id = ANY(%s) "
                          "AND merged_into IS NOT NULL",
                          [list({lap["runner_id"] for lap in laps})]).fetchall()
    survivors = {row["id"]: row["merged_into"] for row in merged}
    for lap in laps if survivors else ():
        lap["runner_id"] = survivors.get(lap["runner_id"], lap["runner_id"])


def apply_void(conn: psycopg.Connection, void: dict, deltas: Deltas) -> None:
    """Apply a void or restore if it is the latest by (hlc, origin); adjust totals."""
    before = conn.execute("SELECT voided FROM lap_void WHERE lap_id = %(lap_id)s",
                          void).fetchone()
    if conn.execute(VOID_UPSERT, void).fetchone() is None:
        return  # an older or the same change: the stored state stays
    was_voided = bool(before and before["voided"])
    if was_voided == void["voided"]:
        return
    lap = conn.execute("SELECT runner_id, device_id FROM lap WHERE id = %s",
                       [void["lap_id"]]).fetchone()
    if lap is not None:  # no lap yet: the void waits in lap_void and applies on arrival
        deltas.add(lap["runner_id"], lap["device_id"], -1 if void["voided"] else 1)


def record_clash(conn: psycopg.Connection, kind: str, value: str, one: str, other: str,
                 now: int) -> None:
    """Record (or reopen) a clash between two runner ids."""
    a, b = sorted((one, other))
    conn.execute("INSERT INTO clash (kind, value, runner_a, runner_b, detected_at) "
                 "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (kind, value, runner_a, runner_b) "
                 "DO UPDATE SET resolved_at = NULL, detected_at = excluded.detected_at "
                 "WHERE clash.resolved_at IS NOT NULL", [kind, value, a, b, now])


def clash_value(kind: str, runner: dict) -> str:
    """Return the value two runners share in a clash of this kind."""
    if kind == "start_number":
        return str(runner["start_number"])
    return f"{runner['name'].lower()} / {runner['class'].lower()}"


def detect_clashes(conn: psycopg.Connection, runner: dict, now: int) -> None:
    """Record clashes of a changed runner; resolve its clashes that no longer hold."""
    others = conn.execute(
        "SELECT id, start_number, name, class FROM runner WHERE id <> %(id)s "
        "AND merged_into IS NULL AND (start_number = %(start_number)s "
        "OR (lower(name) = lower(%(name)s) AND lower(class) = lower(%(class)s)))",
        runner).fetchall()
    for other in others:
        for kind in ("start_number", "name"):
            if clash_value(kind, other) == clash_value(kind, runner):
                record_clash(conn, kind, clash_value(kind, runner), runner["id"], other["id"], now)
    current = {(kind, clash_value(kind, runner)) for kind in ("start_number", "name")}
    for clash in conn.execute("SELECT id, kind, value FROM clash WHERE resolved_at IS NULL "
                              "AND %(id)s IN (runner_a, runner_b)", runner).fetchall():
        if (clash["kind"], clash["value"]) not in current:
            conn.execute("UPDATE clash SET resolved_at = %s WHERE id = %s", [now, clash["id"]])


def reject(conn: psycopg.Connection, laptop_id: str, change: dict, error: str, message: str,
           now: int) -> dict:
    """Keep a change refused for good for the admin; return its entry for the answer."""
    conn.execute("INSERT INTO rejected_change (laptop_id, seq, entity, entity_id, error, "
                 "message, payload, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                 "ON CONFLICT (laptop_id, seq) DO NOTHING",
                 [laptop_id, change["seq"], change["entity"], change["id"], error, message,
                  json.dumps(change["data"]), now])
    return {"seq": change["seq"], "error": error, "message": message}


def apply_user(conn: psycopg.Connection, laptop_id: str, change: dict, now: int) -> dict | None:
    """Upsert a user (last writer wins); return a rejection if its name is taken."""
    user = change["data"]
    taken = conn.execute("SELECT id FROM app_user WHERE name = %s AND id <> %s",
                         [user["name"], user["id"]]).fetchone()
    if taken is not None:
        return reject(conn, laptop_id, change, "duplicate_user",
                      f"Another user is called {user['name']!r} at central already.", now)
    conn.execute(USER_UPSERT, user)
    return None


def apply_changes(conn: psycopg.Connection, device: dict, changes: list[dict],
                  device_time: int, now: int) -> tuple[list[dict], int]:
    """Apply new changes of one batch; return (rejected, laps inserted)."""
    laptop_id, rejected, deltas = device["laptop_id"], [], Deltas()
    for change in changes:
        if change["entity"] == "runner":
            row = conn.execute(RUNNER_UPSERT, change["data"]).fetchone()
            if row is not None and row["merged_into"] is None:  # a merged runner clashes no more
                detect_clashes(conn, change["data"], now)
        elif change["entity"] == "user":
            refused = apply_user(conn, laptop_id, change, now)
            rejected += [refused] if refused else []
    laps = [c["data"] for c in changes if c["entity"] == "lap"]
    if laps:
        redirect_merged(conn, laps)
    inserted = insert_laps(conn, laps, device, now, now - device_time, deltas) if laps else 0
    for change in changes:
        if change["entity"] == "lap_void":
            apply_void(conn, change["data"], deltas)
    apply_totals(conn, deltas)
    stamps = [c["data"]["hlc"] for c in changes if "hlc" in c["data"]]
    if stamps:
        clock.observe(conn, max(stamps))
    return rejected, inserted


def earlier_rejections(conn: psycopg.Connection, laptop_id: str, first: int,
                       last: int) -> list[dict]:
    """Return rejections already given for seqs first..last (a replayed batch)."""
    return conn.execute("SELECT seq, error, message FROM rejected_change "
                        "WHERE laptop_id = %s AND seq BETWEEN %s AND %s ORDER BY seq",
                        [laptop_id, first, last]).fetchall()


def push(conn: psycopg.Connection, device: dict, batch: dict, now: int | None = None) -> dict:
    """Apply a validated push batch in one transaction; return the push answer.

    Replays are no-ops: seqs at or below the device's last applied seq are
    skipped; a batch whose first new seq leaves a gap is refused (409) whole.
    """
    now = now_ms() if now is None else now
    with write_transaction(conn):
        device = bind_laptop(conn, lock_device(conn, device["id"]), batch["device_id"])
        last_seq = device["last_seq"]
        changes = [c for c in batch["changes"] if c["seq"] > last_seq]
        if changes and changes[0]["seq"] != last_seq + 1:
            raise ProtocolError("seq_gap", f"Central has applied up to seq {last_seq}; "
                                f"this batch starts at {changes[0]['seq']}.", 409,
                                acked_seq=last_seq, resume_from=last_seq + 1)
        old = batch["changes"][:len(batch["changes"]) - len(changes)]
        rejected = earlier_rejections(conn, device["laptop_id"], old[0]["seq"],
                                      old[-1]["seq"]) if old else []
        new_rejected, inserted = apply_changes(conn, device, changes, batch["device_time"], now)
        acked = changes[-1]["seq"] if changes else last_seq
        conn.execute("UPDATE device SET last_seq = %s, last_contact = %s, clock_offset_ms = %s, "
                     "laps_pushed = laps_pushed + %s WHERE id = %s",
                     [acked, now, now - batch["device_time"], inserted, device["id"]])
    return {"acked_seq": acked, "server_time": now, "rejected": rejected + new_rejected}
