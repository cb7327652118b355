"""The laptop's hybrid logical clock, kept in its meta table, and its way back from the future.

A clock can be far ahead: this laptop's date was wrong when it stamped an edit, or
it took a stamp from far in the future before stamps were bounded. Three repairs,
all in the caller's transaction (docs/PROTOCOL.md, "Clocks are bounded"):

- recover: when central's clock (a pull's server_time) shows the stored clock more
  than the bound ahead of both this laptop's clock and central's, the clock goes back
  to the latest stamp within the bound that it holds or sent, so that its next
  stamps still follow every stamp central may have taken from it. Pending edits
  stamped beyond the bound get fresh stamps in their order (central would refuse
  them); other records stamped beyond it get ZERO, so that central's version wins.
- forget_refused: a change central refused as stamped too far ahead loses its stamp
  (ZERO) on the record, so that any version from central wins over it.
- recover_unusable: at start, a clock outside the fixed width or at its last
  millisecond (it could make no further stamp) comes back by this laptop's clock
  (its own transaction).
"""
from __future__ import annotations

import json

import sqlite_utils

from lapsync import hlc
from lapsync.hlc import ZERO, observe_meta, tick_meta

from .db import PENDING, get_meta, now_ms, set_meta, transaction

# The stamped records of each pushed entity: table and stamp column (key: id).
STAMPED = {"runner": ("runner", "hlc"), "user": ("user", "hlc"), "lap_void": ("lap", "void_hlc")}
FORM = "[0-9]" * 13 + "." + "[0-9]" * 4          # a stamp in the fixed width, as a GLOB
OUTBOX_STAMPS = """
SELECT seq, entity, entity_id, payload, json_extract(payload, '$.hlc') AS stamp FROM change
WHERE entity IN ('runner', 'user', 'lap_void')
"""
LATEST_WITHIN = f"""
WITH stamps(s) AS (
    SELECT max(hlc) FROM runner WHERE hlc GLOB :form AND hlc <= :ceiling
    UNION ALL SELECT max(hlc) FROM user WHERE hlc GLOB :form AND hlc <= :ceiling
    UNION ALL SELECT max(void_hlc) FROM lap WHERE void_hlc GLOB :form AND void_hlc <= :ceiling
    UNION ALL SELECT max(stamp) FROM ({OUTBOX_STAMPS}) WHERE stamp GLOB :form AND stamp <= :ceiling
)
SELECT coalesce(max(s), '{ZERO}') FROM stamps
"""


def tick(db: sqlite_utils.Database) -> str:
    """Return a new local timestamp, later than any seen (call inside a transaction)."""
    return tick_meta(db, get_meta, set_meta, now_ms())


def observe(db: sqlite_utils.Database, remote: str) -> None:
    """Move the local clock past a timestamp received from another node."""
    observe_meta(db, get_meta, set_meta, remote)


def recover(db: sqlite_utils.Database, clock_ms: int, bound_ms: int) -> bool:
    """Bring back a stored clock beyond BOUND_MS ahead of CLOCK_MS; return whether it was."""
    if not hlc.too_far_ahead(get_meta(db, "hlc", ZERO), clock_ms, bound_ms):
        return False
    ceiling = hlc.ceiling(clock_ms, bound_ms)
    set_meta(db, "hlc", db.execute(LATEST_WITHIN, {"form": FORM, "ceiling": ceiling}).fetchone()[0])
    restamp_pending(db, ceiling)
    forget_beyond(db, ceiling)
    return True


def recover_unusable(db: sqlite_utils.Database, bound_ms: int) -> bool:
    """Bring back a clock that can make no further stamp by this laptop's clock; return whether.

    Its own transaction, only when it must: the app calls it at every start.
    """
    stored = get_meta(db, "hlc", ZERO)
    if hlc.is_stamp(stored) and hlc.parse(stored)[0] < hlc.MAX_PHYSICAL:
        return False
    with transaction(db):
        return recover(db, now_ms(), bound_ms)


def restamp_pending(db: sqlite_utils.Database, ceiling: str) -> None:
    """Give unpushed edits stamped beyond CEILING fresh stamps, in their order, and their records."""
    for seq, entity, entity_id, payload, stamp in db.execute(
            f"{OUTBOX_STAMPS} AND {PENDING} ORDER BY seq").fetchall():
        if hlc.is_stamp(stamp) and stamp <= ceiling:
            continue
        data = {**json.loads(payload), "hlc": tick(db)}
        db.execute("UPDATE change SET payload = ? WHERE seq = ?",
                   [json.dumps(data, separators=(",", ":")), seq])
        table, column = STAMPED[entity]
        db.execute(f"UPDATE {table} SET {column} = ? WHERE id = ? AND {column} = ?",
                   [data["hlc"], entity_id, stamp])


def forget_beyond(db: sqlite_utils.Database, ceiling: str) -> None:
    """Set every other record stamp beyond CEILING to ZERO: any version from central wins."""
    for table, column in STAMPED.values():
        db.execute(f"UPDATE {table} SET {column} = ? WHERE {column} IS NOT NULL "
                   f"AND ({column} > ? OR NOT {column} GLOB ?)", [ZERO, ceiling, FORM])
    db.execute("DELETE FROM lww_origin WHERE hlc > ? OR NOT hlc GLOB ?", [ceiling, FORM])


def forget_refused(db: sqlite_utils.Database, entity: str, entity_id: str, stamp: str) -> None:
    """Let central's version win over a local change it refused as stamped too far ahead."""
    if entity in STAMPED:
        table, column = STAMPED[entity]
        db.execute(f"UPDATE {table} SET {column} = ? WHERE id = ? AND {column} = ?",
                   [ZERO, entity_id, stamp])
