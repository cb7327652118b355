"""Sync status for the top bar and the CLI: pending, oldest, last success, last error."""
from __future__ import annotations

import json

import sqlite_utils
from flask import Flask
from flask_babel import gettext, ngettext

from lapsync.text import age

from ..db import PENDING, now_ms
from .state import STATE_KEYS
from .transport import config_fingerprint

STATUS_SQL = f"""
WITH pending AS (
    SELECT count(*) AS n, coalesce(sum(entity = 'lap'), 0) AS laps
    FROM change WHERE {PENDING}
)
SELECT pending.n, pending.laps,
       (SELECT created_at FROM change WHERE {PENDING} ORDER BY seq LIMIT 1),
       (SELECT count(*) FROM rejected_change) + (SELECT count(*) FROM rejected_pull),
       (SELECT json_group_object(key, value) FROM meta
        WHERE key IN (SELECT value FROM json_each(?)))
FROM pending
"""


def waiting_text(pending: int, laps: int, oldest_ms: int | None, now: int) -> str:
    """Describe the backlog: '37 laps waiting (oldest 14 min)'."""
    if not pending:
        return gettext("nothing waiting")
    if laps == pending:
        text = ngettext("%(num)s lap waiting", "%(num)s laps waiting", pending)
    else:
        text = ngettext("%(num)s change waiting", "%(num)s changes waiting", pending)
    if oldest_ms is None:
        return text
    return gettext("%(waiting)s (oldest %(age)s)", waiting=text, age=age(now - oldest_ms))


def failing(state: dict) -> bool:
    """Tell whether the latest sync attempt failed, by the attempts' order (not their times).

    A database from before attempts were numbered compares the times, once: its next
    attempt is numbered.
    """
    error, success = (int(state.get(key) or 0) for key in ("last_error_attempt",
                                                          "last_success_attempt"))
    if error or success:
        return error > success
    return int(state.get("last_error_ms") or 0) > int(state.get("last_success_ms") or 0)


def synced_text(success: int, now: int) -> str:
    """Say when the last sync succeeded; its age is unknown when the clock went back since."""
    if now < success:
        return gettext("synced (the laptop's clock was set back since)")
    return gettext("synced %(age)s ago", age=age(now - success))


def status_text(state: dict, central_url: str | None, fingerprint: str | None,
                waiting: str, pending: int, now: int) -> tuple[str, str]:
    """Return (state, text) for the top bar: synced, offline, not authorised, ..."""
    success = int(state.get("last_success_ms") or 0)
    if not central_url:
        kind, text_ = "not_connected", gettext("not connected to central")
    elif fingerprint and state.get("auth_failed") == fingerprint:
        kind, text_ = "unauthorised", gettext("device not authorised")
    elif failing(state):
        return "offline", gettext("offline – %(waiting)s", waiting=waiting)
    elif success:
        kind, text_ = "synced", synced_text(success, now)
    else:
        kind, text_ = "never", gettext("not synced yet")
    return kind, text_ + (f" – {waiting}" if pending else "")


def sync_status(db: sqlite_utils.Database, central_url: str | None, fingerprint: str | None,
                now: int | None = None) -> dict:
    """Return the sync state for the page and the CLI, from one cheap query."""
    now = now_ms() if now is None else now
    pending, laps, oldest, rejected, meta = db.execute(STATUS_SQL, [json.dumps(STATE_KEYS)]).fetchone()
    state = json.loads(meta or "{}")
    kind, text_ = status_text(state, central_url, fingerprint,
                              waiting_text(pending, laps, oldest, now), pending, now)
    if rejected:  # refused for good (e.g. an admin only central may make): seen on every page
        text_ += " – " + ngettext("%(num)s change refused (see sync-status)",
                                  "%(num)s changes refused (see sync-status)", rejected)
    level = {"synced": "good", "never": "warn", "not_connected": "neutral"}.get(kind, "bad")
    number = lambda key: int(state.get(key) or 0) or None  # noqa: E731
    return {"state": kind, "text": text_, "level": level, "central_url": central_url,
            "pending": pending, "pending_laps": laps, "oldest_pending_ms": oldest,
            "oldest_pending_age_s": None if oldest is None else max(0, (now - oldest) // 1000),
            "last_success_ms": number("last_success_ms"), "last_error": state.get("last_error") or None,
            "last_error_ms": number("last_error_ms"), "failures": number("failures") or 0,
            "backoff_until_ms": number("backoff_until_ms"),
            "clock_offset_ms": int(state["clock_offset_ms"]) if state.get("clock_offset_ms") else None,
            "authorised": state.get("auth_failed") != fingerprint if fingerprint else None,
            "attempts": number("attempts") or 0, "past_errors": json.loads(state.get("past_errors") or "[]"),
            "rejected": rejected}


def status_for(app: Flask, db: sqlite_utils.Database) -> dict:
    """Return sync_status with the app's configured central."""
    url, token = app.config.get("CENTRAL_URL"), app.config.get("CENTRAL_TOKEN")
    return sync_status(db, url, config_fingerprint(url, token) if url and token else None)


def rejected_items(db: sqlite_utils.Database, limit: int = 50) -> list[dict]:
    """Return the pushed and pulled items that central or this laptop refused."""
    pushed = list(db.query("SELECT 'push' AS direction, seq AS ref, entity, entity_id, error, "
                           "message, rejected_at FROM rejected_change ORDER BY seq LIMIT ?", [limit]))
    pulled = list(db.query("SELECT 'pull' AS direction, cursor AS ref, entity, entity_id, error, "
                           "'' AS message, rejected_at FROM rejected_pull ORDER BY cursor LIMIT ?",
                           [limit]))
    return pushed + pulled

