"""One sync run and its state: backoff, auth failures, last success, the background job."""
from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable

import sqlite_utils
from flask import Flask

from .. import clockwatch
from ..db import connect, get_meta, now_ms, set_meta, transaction
from .connect import refresh_central_config
from .pull import pull
from .push import push
from .transport import (
    AUTH,
    TRANSIENT,
    Central,
    EventChanged,
    SyncError,
    SyncResult,
    central_from_config,
)

BACKOFF_BASE_MS = 1_000
BACKOFF_CAP_MS = 30 * 1000       # back within 30 s of central returning, at ~1 request/15 s while down
# attempts numbers every sync attempt; last_success_attempt and last_error_attempt say
# which attempt ended how. The badge follows their order, never the wall clock, which
# may have been set back since (docs/RELIABILITY.md).
STATE_KEYS = ("last_success_ms", "last_error", "last_error_ms", "auth_failed",
              "backoff_until_ms", "failures", "clock_offset_ms", "attempts",
              "last_success_attempt", "last_error_attempt", "past_errors")
PAST_ERRORS = 5  # errors a success moved into the history sync-status shows


def backoff_ms(failures: int, rng: random.Random | None = None) -> int:
    """Return a full-jitter exponential backoff delay for the n-th failure in a row."""
    ceiling = min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (min(max(failures, 1), 30) - 1))
    return int((rng or random).uniform(0, ceiling))


def sync_state(db: sqlite_utils.Database) -> dict:
    """Return the sync state kept in meta."""
    rows = db.execute(f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(STATE_KEYS))})",
                      list(STATE_KEYS)).fetchall()
    return dict(rows)


def blocked(db: sqlite_utils.Database, fingerprint: str, now: int | None = None) -> str | None:
    """Tell why the background job must not try now: 'auth', 'backoff' or None."""
    state = sync_state(db)
    if state.get("auth_failed") == fingerprint:
        return "auth"
    now = now if now is not None else now_ms()
    # No backoff is longer than the cap: one further ahead was set before this laptop's
    # clock went back (a correction, a restart) and must not stall sync for hours.
    if now < int(state.get("backoff_until_ms") or 0) <= now + BACKOFF_CAP_MS:
        return "backoff"
    return None


def next_attempt(db: sqlite_utils.Database) -> str:
    """Count one more sync attempt (inside the caller's transaction); return its number."""
    attempt = str(int(get_meta(db, "attempts", "0") or 0) + 1)
    set_meta(db, "attempts", attempt)
    return attempt


def retire_error(db: sqlite_utils.Database) -> None:
    """Move the last error into the short history of past errors (caller's transaction)."""
    error = get_meta(db, "last_error")
    if not error:
        return
    past = json.loads(get_meta(db, "past_errors") or "[]")
    past.insert(0, {"error": error, "at_ms": int(get_meta(db, "last_error_ms") or 0) or None,
                    "failures": int(get_meta(db, "failures") or 0)})
    set_meta(db, "past_errors", json.dumps(past[:PAST_ERRORS]))
    for key in ("last_error", "last_error_ms", "last_error_attempt"):
        set_meta(db, key, "")


def record_success(db: sqlite_utils.Database) -> None:
    """Note a complete sync; clear failures, backoff, auth state and the last error."""
    with transaction(db):
        retire_error(db)
        set_meta(db, "last_success_attempt", next_attempt(db))
        for key, value in [("last_success_ms", str(now_ms())), ("failures", "0"),
                           ("backoff_until_ms", "0"), ("auth_failed", "")]:
            set_meta(db, key, value)


def record_failure(db: sqlite_utils.Database, error: SyncError, fingerprint: str) -> None:
    """Note a failed sync: auth failures stick to this URL and token, others back off."""
    with transaction(db):
        now = now_ms()
        set_meta(db, "last_error_attempt", next_attempt(db))
        set_meta(db, "last_error", f"{error.kind}: {error.message}"[:500])
        set_meta(db, "last_error_ms", str(now))
        if error.kind == AUTH:
            set_meta(db, "auth_failed", fingerprint)
            return
        failures = int(get_meta(db, "failures", "0") or 0) + 1
        set_meta(db, "failures", str(failures))
        set_meta(db, "backoff_until_ms", str(now + backoff_ms(failures)))


def reset_state(db: sqlite_utils.Database) -> None:
    """Forget auth failures and backoff (after `connect`)."""
    with transaction(db):
        for key, value in [("auth_failed", ""), ("failures", "0"), ("backoff_until_ms", "0")]:
            set_meta(db, key, value)


def sync_once(db: sqlite_utils.Database, central: Central, force: bool = False,
              progress: Callable[[int], None] | None = None) -> SyncResult:
    """Push, then pull; record success or the classified error; return what moved."""
    result = SyncResult()
    clockwatch.check_now(db)  # a jump is noticed here too while nobody types laps
    if not force and (reason := blocked(db, central.fingerprint)):
        result.skipped = reason
        return result
    try:
        push_error = None
        try:
            push(db, central, result, progress)
        except SyncError as exc:
            if exc.kind in (TRANSIENT, AUTH):
                raise
            push_error = exc  # a refused batch must not stop the roster arriving
        pull(db, central, result)
        if isinstance(push_error, EventChanged) and result.new_event:
            push_error = None  # refused as the last event's; the new one's goes now
        if result.resend and not push_error:
            push(db, central, result, progress)
        if push_error:
            raise push_error
    except SyncError as exc:
        result.error = exc
    except sqlite3.OperationalError as exc:  # e.g. locked longer than busy_timeout
        result.error = SyncError(TRANSIENT, f"local database busy: {exc}")
    if result.error:
        record_failure(db, result.error, central.fingerprint)
    else:
        record_success(db)
    return result


def sync_app(app: Flask, cache: dict | None = None) -> SyncResult | None:
    """Run one background sync with its own connection (no request context)."""
    if not app.testing:
        refresh_central_config(app)
    central = central_from_config(app.config)
    if central is None:
        return None
    if cache is not None:  # keep one HTTP session (keep-alive) per URL and token
        central = cache.setdefault(central.fingerprint, central)
    db = connect(app.config["DATABASE"])
    try:
        return sync_once(db, central)
    finally:
        db.close()

