"""How long a login on this laptop lives: 8 h after the helper's last action, 7 days at most.

A 24-hour relay outlasts any fixed login: every helper at the track was logged out 8 h
after logging in, typing or not. The idle end (user_session.valid_until) moves on with
what a helper does: a lap typed, a void, a page opened (auth.is_action). A page's
background poll (the recent laps, the big screen) is no action: a page left open on an
unattended laptop still ends 8 h after it was last used. The idle end is written at most
every RENEW_MS per login, never once per lap: lap entry is the hot path.

ends_at caps a login that is used without an 8 h gap for ever (a laptop shared by shifts
of helpers, a copied cookie): 7 days after the login. That outlasts any run or relay
with its day of setting up (the longest are 48 h), and still ends within a week a login
that nobody ended.

Both ends are times of this laptop's clock. A clock set forward by hours (a correction
when a network appears, a wrong time zone fixed) ended every login at once, and one set
back lengthened them: the clock watch moves both ends by every jump it keeps
(clockwatch.record), and a jump not kept yet is kept before a login is found ended or
renewed, so that a login lives its real time, whatever the clock says.
"""
from __future__ import annotations

import secrets

import sqlite_utils

from lapsync.authcore import SESSION_MS

from . import clockwatch
from .db import now_ms, rows, transaction

IDLE_MS = SESSION_MS                 # a login ends this long after the helper's last action
MAX_MS = 7 * 24 * 3600 * 1000        # and this long after the login at the latest
RENEW_MS = 5 * 60 * 1000             # its idle end is written at most this often
LOGIN_SQL = """
SELECT user.id, user.name, user.role, s.valid_until, s.ends_at FROM user_session s
JOIN user ON user.id = s.user_id
WHERE s.id = ? AND user.id NOT IN (SELECT user_id FROM inactive_user)
"""


def start(db: sqlite_utils.Database, user_id: str) -> str:
    """Store a new login of USER_ID and return its id (in the caller's transaction).

    The clocks are checked first: a jump not kept yet would make live logins look ended,
    and this deletes the ended ones.
    """
    clockwatch.check(db)
    session_id, now = secrets.token_urlsafe(32), now_ms()
    db.execute("DELETE FROM user_session WHERE valid_until <= ? OR ends_at <= ?", [now, now])
    db.execute("INSERT INTO user_session (id, user_id, valid_until, ends_at) VALUES (?, ?, ?, ?)",
               [session_id, user_id, now + IDLE_MS, now + MAX_MS])
    return session_id


def lives(login: dict, now: int) -> bool:
    """Tell whether a login (LOGIN_SQL's row) has neither reached its idle end nor its cap."""
    return now < login["valid_until"] and now < login["ends_at"]


def live_user(db: sqlite_utils.Database, session_id: str | None,
              locked: bool = False) -> dict | None:
    """Return the active user of a live login (with its ends), or None.

    locked: the caller holds the write lock and has checked the clocks (a lap's batch),
    so what it reads is final. Otherwise a login that looks ended, or a clock jump not
    kept yet, is read again under the write lock once the jump is kept: a jump another
    thread is keeping (the watch's reading taken, the shift not yet committed) never ends
    a login.
    """
    if not session_id:
        return None
    found = rows(db, LOGIN_SQL, [session_id])  # on every request: no savepoint (db.rows)
    if not found:
        return None
    now = now_ms()
    if locked or (lives(found[0], now) and not clockwatch.pending(db, now)):
        return found[0] if lives(found[0], now) else None
    return confirmed(db, session_id)


def confirmed(db: sqlite_utils.Database, session_id: str) -> dict | None:
    """Read a login again under the write lock, a clock jump kept first."""
    with transaction(db):
        clockwatch.check(db)
        found = rows(db, LOGIN_SQL, [session_id])
    return found[0] if found and lives(found[0], now_ms()) else None


def due(login: dict, now: int) -> bool:
    """Tell whether a login's idle end is RENEW_MS or more short of IDLE_MS from now."""
    return login["valid_until"] < now + IDLE_MS - RENEW_MS


def renew(db: sqlite_utils.Database, session_id: str, login: dict, locked: bool = False) -> bool:
    """Move a login's idle end to IDLE_MS from now if it is due; return whether it was.

    locked: in the caller's write transaction, its clocks checked (a lap's batch);
    otherwise in a transaction of its own, a clock jump kept first.
    """
    if not due(login, now_ms()):
        return False
    if locked:
        write_idle_end(db, session_id)
        return True
    with transaction(db):
        clockwatch.check(db)
        write_idle_end(db, session_id)
    return True


def write_idle_end(db: sqlite_utils.Database, session_id: str) -> None:
    """Set a login's idle end to IDLE_MS from now (in the caller's transaction)."""
    db.execute("UPDATE user_session SET valid_until = ? WHERE id = ?",
               [now_ms() + IDLE_MS, session_id])
