"""Clock jumps: the wall clock moved against the boot clock (a correction, a wrong setting).

Lap times are this laptop's wall clock. When someone sets the clock back ten minutes,
the laps before lie "in the future"; set forward, an interval looks an hour long. The
boot clock (CLOCK_BOOTTIME: it counts suspended time too, and nobody sets it) tells
how much time really passed, so each check compares the two since the last check of
this process. A jump of more than JUMP_MS is logged, kept in table clock_jump (with
the latest lap and outbox seq before it, so that entry order places it among the laps),
shown to the helper until acknowledged, and reported to central with the next push.
Intervals between laps subtract the jumps noticed between them (elapsed_ms). The ends of
the logins (user_session) move with each jump kept: a jump neither ends nor lengthens one.

The checks run where the laptop already works: before each lap is recorded, at each
sync attempt, and before a login is found ended or renewed (lapsync/laptop/logins.py). A
jump while the app was not running is not seen here; an interval that comes out negative
is then "unknown", never "too soon".
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from datetime import datetime

import sqlite_utils
from flask_babel import gettext

from lapsync.ids import new_id
from lapsync.text import age

from .db import now_ms, transaction

JUMP_MS = 60_000          # a smaller step is a clock being adjusted, not a jump
log = logging.getLogger(__name__)
JUMPS_SQL = """
SELECT id, at, jump_ms, after_seq FROM clock_jump WHERE {where} ORDER BY rowid LIMIT ?
"""


def boot_ms() -> int:
    """Return the boot clock in ms: time since boot, suspended time included, never set."""
    clock = getattr(time, "CLOCK_BOOTTIME", getattr(time, "CLOCK_MONOTONIC", None))
    if clock is None or not hasattr(time, "clock_gettime_ns"):
        # Windows has no clock_gettime: its monotonic clock (GetTickCount64) counts suspended time too.
        return time.monotonic_ns() // 1_000_000
    return time.clock_gettime_ns(clock) // 1_000_000


class ClockWatch:
    """The readings of the last check per database file, in this process.

    rate: wall-clock seconds per boot-clock second. 1 on a real laptop; a test that
    runs the app under an accelerated clock (libfaketime x30) sets CLOCK_RATE to 30.
    """

    def __init__(self, rate: float = 1.0):
        self.rate = rate
        self.lock = threading.Lock()
        self.last: dict[str, tuple[int, int]] = {}

    def step(self, key: str, wall: int, boot: int) -> int:
        """Take one reading; return how far the wall clock jumped since the last (0: none)."""
        with self.lock:
            before = self.last.get(key)
            self.last[key] = (wall, boot)
        return self.drift(before, wall, boot)

    def peek(self, key: str, wall: int, boot: int) -> int:
        """Return how far the wall clock jumped since the last reading, keeping that reading."""
        with self.lock:
            before = self.last.get(key)
        return self.drift(before, wall, boot)

    def drift(self, before: tuple[int, int] | None, wall: int, boot: int) -> int:
        """Return the wall clock's jump from reading BEFORE to (wall, boot); 0: none."""
        if before is None:
            return 0
        drift = (wall - before[0]) - round(self.rate * (boot - before[1]))
        return drift if abs(drift) > JUMP_MS else 0


WATCH = ClockWatch()


_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection -> its file


def database_key(db: sqlite_utils.Database) -> str:
    """Return the database file a connection is open on (each file keeps its own readings).

    Asked once per connection: the app's connections are kept and reused, and every lap
    checks the clocks.
    """
    key = _KEYS.get(db)
    if key is None:
        key = _KEYS[db] = db.execute("PRAGMA database_list").fetchone()[2] or f"memory:{id(db.conn)}"
    return key


def check(db: sqlite_utils.Database, wall: int | None = None, boot: int | None = None) -> dict | None:
    """Compare the clocks; record a jump found (in the caller's transaction); return it or None."""
    wall = now_ms() if wall is None else wall
    jump = WATCH.step(database_key(db), wall, boot_ms() if boot is None else boot)
    return record(db, wall, jump) if jump else None


def record(db: sqlite_utils.Database, wall: int, jump: int) -> dict:
    """Keep a jump noticed at WALL with its place among the laps and changes; log it."""
    last_lap, last_seq = db.execute("SELECT (SELECT coalesce(max(rowid), 0) FROM lap), "
                                    "(SELECT coalesce(max(seq), 0) FROM change)").fetchone()
    row = {"id": new_id(), "at": wall, "jump_ms": jump, "after_lap": last_lap, "after_seq": last_seq}
    db.execute("INSERT INTO clock_jump (id, at, jump_ms, after_lap, after_seq) "
               "VALUES (:id, :at, :jump_ms, :after_lap, :after_seq)", row)
    # A login's ends are times of this clock: they move with it, so that a clock set
    # forward ends no login and one set back lengthens none.
    db.execute("UPDATE user_session SET valid_until = valid_until + ?, ends_at = ends_at + ?",
               [jump, jump])
    log.warning("clock jump: this laptop's clock moved %+d s against its boot clock "
                "(laps after #%d, outbox seq %d); lap times around it are uncertain",
                jump // 1000, last_lap, last_seq)
    return row


def pending(db: sqlite_utils.Database, wall: int | None = None) -> int:
    """Return how far the wall clock jumped since the last reading, not kept yet (0: none)."""
    return WATCH.peek(database_key(db), now_ms() if wall is None else wall, boot_ms())


def check_now(db: sqlite_utils.Database, wall: int | None = None,
              boot: int | None = None) -> dict | None:
    """Check the clocks (the sync job's attempt); a jump is kept in a transaction of its own.

    A jump is taken as the new reading only inside that write transaction: taken
    before it, a lap written while this waits for the lock would neither notice the
    jump itself nor find it recorded, and could be refused as too soon.
    """
    wall = now_ms() if wall is None else wall
    boot = boot_ms() if boot is None else boot
    key = database_key(db)
    if not WATCH.peek(key, wall, boot):
        WATCH.step(key, wall, boot)
        return None  # no write transaction for nothing: lap entry never waits for it
    with transaction(db):
        return check(db, wall, boot)


def elapsed_ms(db: sqlite_utils.Database, since: int, since_lap: int, until: int,
               until_lap: int | None = None) -> int | None:
    """Return the time from lap SINCE_LAP (at SINCE) to UNTIL less the jumps noticed between.

    None when it comes out negative: the clock went back by more than it was seen to.
    until_lap: the later lap's rowid if it is recorded already (jumps after it do not count).
    """
    shift = db.execute("SELECT coalesce(sum(jump_ms), 0) FROM clock_jump WHERE after_lap >= ? "
                       "AND after_lap < ?", [since_lap, until_lap or 2 ** 62]).fetchone()[0]
    elapsed = until - since - shift
    return elapsed if elapsed >= 0 else None


def unshown(db: sqlite_utils.Database, limit: int = 5) -> list[dict]:
    """Return the jumps the helper has not acknowledged yet, oldest first."""
    return list(db.query(JUMPS_SQL.format(where="shown_at IS NULL"), [limit]))


def acknowledge(db: sqlite_utils.Database, ids: list[str]) -> int:
    """Mark jumps as seen by the helper; return how many were new."""
    with transaction(db):
        return sum(db.execute("UPDATE clock_jump SET shown_at = ? WHERE id = ? AND shown_at IS NULL",
                              [now_ms(), jump_id]).rowcount for jump_id in ids[:20])


def jump_text(jump: dict) -> str:
    """Tell the helper about one clock jump, in the page's language."""
    amount = age(abs(jump["jump_ms"]))
    at = datetime.fromtimestamp(jump["at"] / 1000).strftime("%H:%M:%S")
    if jump["jump_ms"] < 0:
        return gettext("The laptop's clock was set back by %(amount)s (noticed at %(time)s by the "
                       "clock as it is now). Laps count as before; central is told that their "
                       "times around then are uncertain.", amount=amount, time=at)
    return gettext("The laptop's clock was set forward by %(amount)s (noticed at %(time)s by the "
                   "clock as it is now). Laps count as before; central is told that their times "
                   "around then are uncertain.", amount=amount, time=at)


def notices(db: sqlite_utils.Database) -> list[dict]:
    """Return the jumps to show the helper: id and text."""
    return [{"id": jump["id"], "text": jump_text(jump)} for jump in unshown(db)]


def unreported(db: sqlite_utils.Database, limit: int) -> list[dict]:
    """Return the jumps central has not acknowledged, oldest first (the push's clock_jumps)."""
    return list(db.query(JUMPS_SQL.format(where="reported_at IS NULL"), [limit]))


def mark_reported(db: sqlite_utils.Database, ids: list[str]) -> None:
    """Note that central took these jumps."""
    with transaction(db):
        for jump_id in ids:
            db.execute("UPDATE clock_jump SET reported_at = ? WHERE id = ?", [now_ms(), jump_id])


def history(db: sqlite_utils.Database, limit: int = 10) -> list[dict]:
    """Return the latest jumps, newest first, for sync-status."""
    return list(db.query("SELECT id, at, jump_ms, after_seq, shown_at, reported_at FROM clock_jump "
                         "ORDER BY rowid DESC LIMIT ?", [limit]))


def init_app(app) -> None:
    """Take the app's CLOCK_RATE (1 unless a test accelerates the clock)."""
    WATCH.rate = float(app.config.get("CLOCK_RATE") or 1)
