"""After a restored snapshot: ask central where this laptop stopped, then carry on after it.

restore.py marks a restored database with the snapshot's last seq R (meta
restored_seq). Central may have applied seqs up to A > R, made by this laptop after
the snapshot and lost with it; the laptop's own changes since the restore were given
seqs R+1, R+2, ... which central would skip as applied. So before the first push:
an empty push answers A; changes after R move to A+1, A+2, ... (same order, no gap);
changes up to A count as pushed (central has them, by the same seqs); the mark goes.
All of it in one transaction, and never before central answered.

That leaves a hole in the outbox (R+1..A: central had them). A central that lost them
later (a new central, or one restored from an older dump) asks for R+1 again: then the
changes after the hole move down to close it (db.close_hole), since that central has
applied exactly up to R and none of the later ones.

The other way round, central restored from an older dump: its answers name a new
database identity (sync/identity.py). The laptop then moves its outbox mark back to
central's acknowledged seq and pulls again from 0 (start_over), whatever central's
change ids and seqs say: writes at central after the restore may have hidden it.
"""
from __future__ import annotations

import logging

import sqlite_utils

from lapsync.protocol import answer_database

from ..db import close_hole, device_id, get_meta, move_pushed_mark, now_ms, set_meta, transaction
from ..new_event import EVENT_KEY
from .batch import encode_batch
from .transport import REFUSED, Central, SyncError, SyncResult, as_seq

RESTORED = "restored_seq"  # as restore.py writes it
HOLE = "outbox_hole"       # the last seq before the queue's hole that carry_on left
DATABASE = "central_database"  # the identity of central's database at the last answer
log = logging.getLogger(__name__)


def acked_seq(db: sqlite_utils.Database, central: Central) -> int:
    """Return the last seq central applied from this laptop (an empty push's answer)."""
    last = db.execute("SELECT max(seq) FROM change").fetchone()[0] or 0
    central.event = get_meta(db, EVENT_KEY)  # a pull may have just started central's new event
    status, answer = central.push(encode_batch(db, last + 1).body(device_id(db), now_ms()))
    if status != 200:
        raise SyncError(REFUSED, f"central answered {status} to the empty push after a restore")
    return as_seq(answer.get("acked_seq"), "acked_seq")


def carry_on(db: sqlite_utils.Database, restored: int, acked: int) -> int:
    """Move the changes after RESTORED behind ACKED and mark up to ACKED pushed; return how many moved."""
    with transaction(db):
        if get_meta(db, RESTORED) is None:  # another sync (the CLI's) did it meanwhile
            return 0
        moved = 0
        if acked > restored:
            by = acked - restored
            # Through negative seqs: shifting in place would collide with the rows ahead.
            moved = db.execute("UPDATE change SET seq = -(seq + ?) WHERE seq > ?", [by, restored]).rowcount
            db.execute("UPDATE change SET seq = -seq WHERE seq < 0")
            # The next change gets a seq after central's too, even with none moved.
            top = max(acked, db.execute("SELECT max(seq) FROM change").fetchone()[0] or 0)
            db.execute("DELETE FROM sqlite_sequence WHERE name = 'change'")
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('change', ?)", [top])
            set_meta(db, HOLE, str(restored))
        move_pushed_mark(db, acked)
        db.execute("DELETE FROM meta WHERE key = ?", [RESTORED])
    return moved


def realign(db: sqlite_utils.Database, central: Central) -> None:
    """Carry on after central's last applied seq if this database was restored from a snapshot."""
    restored = get_meta(db, RESTORED)
    if restored is not None:
        carry_on(db, int(restored), acked_seq(db, central))


def close_hole_below(db: sqlite_utils.Database, start: int) -> bool:
    """Close the hole carry_on left if central asks for a seq at or before it (close_hole);
    return whether it did. One meta read when there is none, as on every push."""
    hole = get_meta(db, HOLE)
    if hole is None or start > int(hole) + 1:
        return False
    closed = close_hole(db, start)
    with transaction(db):
        db.execute("DELETE FROM meta WHERE key = ?", [HOLE])
    return closed


def replaced_database(db: sqlite_utils.Database, answer: dict) -> str | None:
    """Return the database identity ANSWER names if it is a new one (central was restored).

    The first one this laptop learns is only stored; an answer without one (an older
    central) tells nothing.
    """
    named = answer_database(answer)
    known = get_meta(db, DATABASE)
    if named is None or named == known:
        return None
    if known is None:
        with transaction(db):
            set_meta(db, DATABASE, named)
        return None
    return named


def start_over(db: sqlite_utils.Database, acked: int, result: SyncResult,
               named: str | None = None, cursor: int = 0) -> None:
    """Push again everything after ACKED and pull again from CURSOR: central was restored.

    NAMED: the identity of central's new database, stored in the same transaction.
    Laps are idempotent by id at central, so what it kept costs only bandwidth.
    """
    with transaction(db):
        set_meta(db, "pull_cursor", str(cursor))
        if named is not None:
            set_meta(db, DATABASE, named)
        moved = db.execute("UPDATE outbox_mark SET pushed_seq = ? WHERE pushed_seq > ?",
                           [acked, acked]).rowcount > 0
    result.resend = result.resend or moved  # sync_once pushes them in the same run
    log.warning("central's database was replaced (restored from a backup?): pulling again from "
                "%d%s", cursor, f", pushing again after seq {acked}" if moved else "")
