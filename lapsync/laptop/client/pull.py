"""Pull from central: apply pages of runners, users, voids, settings, totals and the number block."""
from __future__ import annotations

import json
import sqlite3
from typing import Any

import sqlite_utils

from lapsync import hlc, protocol
from lapsync.protocol import (
    MAX_CLASS,
    MAX_TIME,
    MAX_PASSWORD_HASH,
    MAX_RUNNER_NAME,
    MAX_USER_NAME,
    pulled_decision,
    pulled_hlc,
    pulled_id,
    pulled_integer,
    pulled_text,
)
from lapsync.protocol.pull import pulled_flag

from .. import clock
from ..db import PENDING, device_id, get_meta, now_ms, set_meta, transaction
from ..new_event import follow_event
from ..numbers import store_block
from .realign import acked_seq, replaced_database, start_over
from .transport import (
    PROTOCOL,
    REFUSED,
    Central,
    SyncError,
    SyncResult,
    as_seq,
    decoded,
)

MAX_PAGES_PER_RUN = 10_000      # a run always ends
NOT_SENT = object()             # a pull page without number_block (an older central)


def local_origin(db: sqlite_utils.Database, entity: str, entity_id: str,
                 local_hlc: str | None, me: str) -> str:
    """Return who wrote the local version (tables without an origin column)."""
    row = db.execute("SELECT hlc, origin FROM lww_origin WHERE entity = ? AND entity_id = ?",
                     [entity, entity_id]).fetchone()
    return row[1] if row and row[0] == local_hlc else me


def remember_origin(db: sqlite_utils.Database, entity: str, entity_id: str, stamp: str,
                    origin: str) -> None:
    """Remember the origin of a pulled write that won."""
    db.execute("INSERT OR REPLACE INTO lww_origin (entity, entity_id, hlc, origin) "
               "VALUES (?, ?, ?, ?)", [entity, entity_id, stamp, origin])


def apply_runner(db: sqlite_utils.Database, data: dict, me: str) -> None:
    """Upsert a pulled runner if its (hlc, origin) beats the local one; apply a merge."""
    runner = {"id": pulled_id(data, "id"), "start_number": pulled_integer(data, "start_number"),
              "name": pulled_text(data, "name", MAX_RUNNER_NAME),
              "class": pulled_text(data, "class", MAX_CLASS),
              "grade": pulled_integer(data, "grade"), "hlc": pulled_hlc(data["hlc"]),
              "origin": pulled_id(data, "origin")}
    merged_into = pulled_id(data, "merged_into") if data.get("merged_into") is not None else None
    decision = pulled_decision(data, "runner")
    if merged_into == runner["id"]:
        raise ValueError("runner merged into itself")
    if decision and decision["action"] == "merge" and merged_into is None:
        raise ValueError("a merge decision without merged_into")
    clock.observe(db, runner["hlc"])
    row = db.execute("SELECT hlc, origin FROM runner WHERE id = ?", [runner["id"]]).fetchone()
    won = not row or (runner["hlc"], runner["origin"]) > (row[0], row[1])
    if won:
        db.execute("INSERT INTO runner (id, start_number, name, class, grade, hlc, origin) "
                   "VALUES (:id, :start_number, :name, :class, :grade, :hlc, :origin) "
                   "ON CONFLICT (id) DO UPDATE SET start_number = excluded.start_number, "
                   "name = excluded.name, class = excluded.class, grade = excluded.grade, "
                   "hlc = excluded.hlc, origin = excluded.origin", runner)
        if decision is None:  # central's latest state of it is no renumber of its own
            forget_decision(db, "runner", runner["id"], "renumber")
    if merged_into is not None:  # final, whatever the LWW order: not part of the register
        db.execute("INSERT INTO runner_merge (runner_id, merged_into) VALUES (?, ?) "
                   "ON CONFLICT (runner_id) DO UPDATE SET merged_into = excluded.merged_into",
                   [runner["id"], merged_into])
    if decision is not None and (won or merged_into is not None):
        keep_decision(db, "runner", runner["id"], decision)
    relink_merged(db, runner["id"])


def keep_decision(db: sqlite_utils.Database, entity: str, entity_id: str, decision: dict) -> None:
    """Remember a decision central's admin made on a lap or runner: who, why, when."""
    db.execute("INSERT OR REPLACE INTO central_decision (entity, entity_id, action, by_name, "
               "reason, at, was_start_number) VALUES (?, ?, ?, ?, ?, ?, ?)",
               [entity, entity_id, decision["action"], decision["by_name"], decision["reason"],
                decision["at"], decision["was_start_number"]])


def forget_decision(db: sqlite_utils.Database, entity: str, entity_id: str, action: str) -> None:
    """Forget central's decision of ACTION on a record: a later change replaced it."""
    db.execute("DELETE FROM central_decision WHERE entity = ? AND entity_id = ? AND action = ?",
               [entity, entity_id, action])


def relink_merged(db: sqlite_utils.Database, runner_id: str) -> None:
    """Point laps of a merged runner to its survivor once both are here (RUNNER_ID is either)."""
    db.execute("UPDATE lap SET runner_id = (SELECT merged_into FROM runner_merge "
               "WHERE runner_merge.runner_id = lap.runner_id) "
               "WHERE runner_id IN (SELECT m.runner_id FROM runner_merge m "
               "JOIN runner s ON s.id = m.merged_into WHERE ? IN (m.runner_id, m.merged_into))",
               [runner_id])


# A user this laptop created whose change central refused, or has not taken yet: central
# never accepted it, so no pulled change may touch it (another device could otherwise push
# a user with its id, and this laptop would hand its local admin over).
UNACCEPTED_USER = f"""
SELECT 1 FROM rejected_change WHERE entity = 'user' AND entity_id = :id
UNION ALL
SELECT 1 FROM change WHERE {PENDING} AND entity = 'user' AND entity_id = :id
LIMIT 1
"""


def user_refusal(db: sqlite_utils.Database, user: dict, row: tuple, me: str) -> str | None:
    """Say why a pulled user may not change the local user ROW (hlc, name), or None."""
    if row[1] != user["name"]:
        return (f"user id {user['id']!r} is {row[1]!r} on this laptop: a user id is never "
                "reused for another name")
    if local_origin(db, "user", user["id"], row[0], me) == me \
            and db.execute(UNACCEPTED_USER, {"id": user["id"]}).fetchone():
        return (f"user {row[1]!r} was made on this laptop and central never accepted it: "
                "no pull changes it")
    return None


def apply_user(db: sqlite_utils.Database, data: dict, me: str) -> None:
    """Upsert a pulled user (with password hash, for offline login) by LWW."""
    user = {"id": pulled_id(data, "id"), "name": pulled_text(data, "name", MAX_USER_NAME),
            "password_hash": pulled_text(data, "password_hash", MAX_PASSWORD_HASH),
            "role": pulled_text(data, "role", 20), "created_at": pulled_integer(data, "created_at"), "hlc": pulled_hlc(data["hlc"])}
    origin, active = pulled_id(data, "origin"), pulled_flag(data, "active", True)
    clock.observe(db, user["hlc"])
    row = db.execute("SELECT hlc, name FROM user WHERE id = ?", [user["id"]]).fetchone()
    refusal = row and user_refusal(db, user, row, me)
    if refusal:
        raise ValueError(refusal)
    if row and (user["hlc"], origin) == (row[0], local_origin(db, "user", user["id"], row[0], me)):
        # The same version again: only its hash may differ, withheld from a laptop not (or no
        # longer) trusted to manage users, or given to one trusted since (sync/pull.py).
        db.execute("UPDATE user SET password_hash = ? WHERE id = ?",
                   [user["password_hash"], user["id"]])
        return
    if row and (user["hlc"], origin) < (row[0], local_origin(db, "user", user["id"], row[0], me)):
        return
    upsert_user(db, user, origin, active)


def upsert_user(db: sqlite_utils.Database, user: dict, origin: str, active: bool) -> None:
    """Store a pulled user's version that won; a deactivated one can no longer log in here."""
    db.execute("INSERT INTO user (id, name, password_hash, role, created_at, hlc) "
               "VALUES (:id, :name, :password_hash, :role, :created_at, :hlc) "
               "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
               "password_hash = excluded.password_hash, role = excluded.role, "
               "hlc = excluded.hlc", user)
    remember_origin(db, "user", user["id"], user["hlc"], origin)
    if active:
        db.execute("DELETE FROM inactive_user WHERE user_id = ?", [user["id"]])
        return
    db.execute("INSERT OR IGNORE INTO inactive_user (user_id, since) VALUES (?, ?)",
               [user["id"], now_ms()])
    db.execute("DELETE FROM user_session WHERE user_id = ?", [user["id"]])


def apply_void(db: sqlite_utils.Database, data: dict, me: str) -> None:
    """Void or restore a local lap if the pulled change is newer (LWW) or central's decision."""
    lap_id, stamp = pulled_id(data, "lap_id"), pulled_hlc(data["hlc"])
    origin = pulled_id(data, "origin")
    if not isinstance(data["voided"], bool):
        raise ValueError("invalid voided")
    decision = pulled_decision(data, "lap_void")
    if decision and (decision["action"] == "void_lap") != data["voided"]:
        raise ValueError("a decision that contradicts voided")
    clock.observe(db, stamp)
    row = db.execute("SELECT void_hlc FROM lap WHERE id = ?", [lap_id]).fetchone()
    if row is None:  # a lap of another device: its effect arrives in the totals
        return
    # Central's decision is its current state of the lap and applies whatever the order:
    # central refuses a laptop's restore of it, so a local change it beats stays local.
    if decision is None and row[0] is not None and (stamp, origin) <= (
            row[0], local_origin(db, "lap_void", lap_id, row[0], me)):
        return
    values = [None, None, None]
    if data["voided"]:
        by = data.get("by")
        known = isinstance(by, str) and db.execute("SELECT 1 FROM user WHERE id = ?", [by]).fetchone()
        values = [pulled_integer(data, "at"), by if known else None,
                  str(data.get("reason") or "voided centrally")[:200]]
    db.execute("UPDATE lap SET voided_at = ?, voided_by = ?, void_reason = ?, void_hlc = ? "
               "WHERE id = ?", [*values, stamp, lap_id])
    remember_origin(db, "lap_void", lap_id, stamp, origin)
    forget_decision(db, "lap", lap_id, "void_lap")
    if decision is not None and data["voided"]:
        keep_decision(db, "lap", lap_id, decision)


def apply_setting(db: sqlite_utils.Database, data: dict, me: str) -> None:
    """Store a pulled event setting in meta as `setting:<key>` (JSON value)."""
    set_meta(db, f"setting:{pulled_text(data, 'key', 100)}", json.dumps(data["value"]))


def apply_total(db: sqlite_utils.Database, data: dict, me: str) -> None:
    """Store how many laps of a runner other devices recorded."""
    laps = pulled_integer(data, "other_laps")
    if laps < 0:
        raise ValueError("invalid other_laps")
    db.execute("INSERT INTO runner_other_laps (runner_id, laps) VALUES (?, ?) "
               "ON CONFLICT (runner_id) DO UPDATE SET laps = excluded.laps",
               [pulled_id(data, "runner_id"), laps])


APPLY = {"runner": apply_runner, "user": apply_user, "lap_void": apply_void,
         "setting": apply_setting, "total": apply_total}


def check_ahead(data: dict, limit: tuple[int, int]) -> None:
    """Refuse a pulled stamp beyond the bound (ms) ahead of the clock (ms) in LIMIT."""
    clock_ms, bound_ms = limit
    stamp = data.get("hlc")
    if hlc.is_stamp(stamp) and hlc.too_far_ahead(stamp, clock_ms, bound_ms):
        raise ValueError(f"{hlc.CLOCK_AHEAD}: the " + hlc.ahead_message(
            stamp, clock_ms, bound_ms, "this laptop's and central's") + "; set aside")


def apply_change(db: sqlite_utils.Database, change: Any, me: str,
                 limit: tuple[int, int] | None = None) -> bool:
    """Apply one pulled change (never to the outbox); record it if unusable; return success.

    LIMIT: (clock ms, bound ms); a stamp further ahead is set aside and moves no clock.
    """
    db.execute("SAVEPOINT pulled_change")
    try:
        apply = APPLY.get(change.get("entity")) if isinstance(change, dict) else None
        if apply is None or not isinstance(change.get("data"), dict):
            raise ValueError(f"unknown entity {change.get('entity') if isinstance(change, dict) else change!r}")
        if limit is not None:
            check_ahead(change["data"], limit)
        apply(db, change["data"], me)
        ok = True
    except (KeyError, TypeError, ValueError, sqlite3.IntegrityError) as exc:
        db.execute("ROLLBACK TO pulled_change")
        store_rejected_pull(db, change, exc)
        ok = False
    db.execute("RELEASE pulled_change")
    return ok


def store_rejected_pull(db: sqlite_utils.Database, change: Any, exc: Exception) -> None:
    """Keep a pulled item that could not be applied, for sync-status."""
    change = change if isinstance(change, dict) else {"data": change}
    cursor = change.get("cursor")
    db.execute("INSERT OR REPLACE INTO rejected_pull (cursor, entity, entity_id, error, data, "
               "rejected_at) VALUES (?, ?, ?, ?, ?, ?)",
               [cursor if isinstance(cursor, int) and not isinstance(cursor, bool) else None,
                str(change.get("entity"))[:50], str(change.get("id"))[:64],
                f"{exc.__class__.__name__}: {exc}"[:300], json.dumps(change)[:10_000], now_ms()])


def check_page(page: dict, cursor: int) -> tuple[list, int, bool]:
    """Return (changes, next_cursor, more) of a pull answer or raise a protocol SyncError."""
    return decoded(protocol.check_pull_page, page, cursor)


def central_time(page: dict) -> int | None:
    """Return a pull page's server_time (central's clock), None if it has none that fits."""
    value = page.get("server_time")
    return value if type(value) is int and 0 <= value < MAX_TIME else None


def apply_page(db: sqlite_utils.Database, changes: list, next_cursor: int, result: SyncResult,
               block: Any = NOT_SENT, central_ms: int | None = None,
               bound_ms: int = hlc.MAX_AHEAD_S * 1000) -> None:
    """Apply one page, its number block and the new cursor, in one transaction.

    Stamps are bounded by the later of this laptop's clock and central's (CENTRAL_MS):
    a laptop behind central still takes central's stamps. With central's clock known,
    a stored clock beyond that bound comes back first (clock.recover).
    """
    with transaction(db):
        me, clock_ms = device_id(db), max(now_ms(), central_ms or 0)
        if central_ms is not None:
            clock.recover(db, clock_ms, bound_ms)
        for change in changes:
            ok = apply_change(db, change, me, (clock_ms, bound_ms))
            result.pulled[change.get("entity") if ok else "not applied"] += 1
        if block is not NOT_SENT:
            apply_block(db, block)
        set_meta(db, "pull_cursor", str(next_cursor))


def apply_block(db: sqlite_utils.Database, block: Any) -> None:
    """Store the page's number block; keep a bad one aside (as a bad item) and the old block."""
    try:
        store_block(db, block)
    except (KeyError, TypeError, ValueError) as exc:
        # Every page carries the block: keep only the latest bad one, not one per page.
        db.execute("DELETE FROM rejected_pull WHERE entity = 'number_block'")
        store_rejected_pull(db, {"entity": "number_block", "data": block}, exc)


def restart_pull(db: sqlite_utils.Database, central: Central, answer: dict, restarted: bool,
                 result: SyncResult) -> int:
    """Move the cursor where central says (its database was replaced); return it.

    Central restored from a backup may also lack this laptop's latest changes: where its
    copy stopped (an empty push's answer), the outbox mark goes back, so that they are
    pushed again (sync_once does it in the same run: result.resend).
    """
    if answer.get("error") != "cursor_ahead" or restarted:
        raise SyncError(REFUSED, f"central answered 409 to a pull: {answer.get('message', '')}"[:300], 409)
    cursor = as_seq(answer.get("resume_from"), "resume_from")
    start_over(db, acked_seq(db, central), result, protocol.answer_database(answer), cursor)
    return cursor


def pull(db: sqlite_utils.Database, central: Central, result: SyncResult) -> None:
    """Pull pages from the stored cursor until central says there is no more."""
    cursor, restarted = int(get_meta(db, "pull_cursor", "0")), False
    bound_ms = getattr(central, "clock_bound_ms", hlc.MAX_AHEAD_S * 1000)  # any pull source
    for _ in range(MAX_PAGES_PER_RUN):
        status, page = central.pull(cursor)
        if status == 409:
            cursor = restart_pull(db, central, page, restarted, result)
            restarted = True
            continue
        event = page.get("event")
        if isinstance(event, str) and 0 < len(event) <= 64 and follow_event(db, event):
            result.new_event = result.resend = True  # the last event's page: from the start
            cursor = 0
            continue
        named = replaced_database(db, page)
        if named is not None:  # restored: it may lack pushed changes and hold some below cursor
            start_over(db, acked_seq(db, central), result, named)
            cursor = 0
            continue
        changes, next_cursor, more = check_page(page, cursor)
        apply_page(db, changes, next_cursor, result, page.get("number_block", NOT_SENT),
                   central_time(page), bound_ms)
        if not more:
            return
        if next_cursor == cursor and not changes:
            raise SyncError(PROTOCOL, f"central says there is more after cursor {cursor} "
                            "but sends nothing")
        cursor = next_cursor


# Settings and totals as the last pull left them.


def min_lap_seconds(db: sqlite_utils.Database, default: float) -> float:
    """Return the event's minimum lap time: central's setting if pulled, else DEFAULT."""
    raw = get_meta(db, "setting:min_lap_seconds")
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86_400:
        return default
    return value


def other_laps(db: sqlite_utils.Database, runner_id: str) -> int:
    """Return the runner's laps recorded on other devices (as last pulled)."""
    row = db.execute("SELECT laps FROM runner_other_laps WHERE runner_id = ?", [runner_id]).fetchone()
    return row[0] if row else 0

