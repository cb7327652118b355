"""Clock jumps laptops reported: kept with each push, shown on the devices page and the review.

A laptop whose clock was set (moved more than a minute against its boot clock) reports
the jump with its next push (lapsync.protocol.jumps). Its lap times near the jump are
suspect: laps from before and after it overlap in that laptop's time, and the clock
offset central measured at receipt no longer fits the laps made before it. Central
marks a lap suspect when its device time lies within the jump's size (plus a minute)
of the moment the laptop noticed it.
"""
from __future__ import annotations

import psycopg
from flask import Flask, g

from .db import get_db, init_schema

MARGIN_MS = 60_000    # the laptop notices a jump at its next check: a minute around it
RECENT_SHOWN = 50     # jumps listed on the devices page
INSERT = """
INSERT INTO clock_jump (laptop_id, id, device_id, at, jump_ms, after_seq, received_at)
VALUES (%(laptop_id)s, %(id)s, %(device_id)s, %(at)s, %(jump_ms)s, %(after_seq)s, %(now)s)
ON CONFLICT (laptop_id, id) DO NOTHING
"""
RECENT = """
SELECT j.laptop_id, j.id, j.at, j.jump_ms, j.after_seq, j.received_at, d.name AS device_name
FROM clock_jump j LEFT JOIN device d ON d.id = j.device_id
ORDER BY j.received_at DESC, j.at DESC LIMIT %s
"""


def record_jumps(conn: psycopg.Connection, device: dict, jumps: list[dict], now: int) -> None:
    """Keep a push's clock jumps (inside the push's transaction); a re-sent one is a no-op.

    A central upgraded without init-db gets the table here, in the same transaction.
    """
    rows = [{**jump, "laptop_id": device["laptop_id"], "device_id": device["id"], "now": now}
            for jump in jumps]
    if not rows:
        return
    try:
        with conn.transaction():
            conn.cursor().executemany(INSERT, rows)
    except psycopg.errors.UndefinedTable:
        init_schema(conn)
        conn.cursor().executemany(INSERT, rows)


def suspect_window(jump: dict) -> tuple[int, int]:
    """Return the laptop times (first, last) whose laps the jump makes suspect."""
    reach = abs(jump["jump_ms"]) + MARGIN_MS
    return jump["at"] - reach, jump["at"] + reach


def reported(conn: psycopg.Connection, limit: int = RECENT_SHOWN) -> list[dict]:
    """Return the latest jumps, newest first, each with its suspect window."""
    try:
        rows = conn.execute(RECENT, [limit]).fetchall()
    except psycopg.errors.UndefinedTable:  # init-db not run since the upgrade: none reported
        return []
    return [{**row, "suspect_from": suspect_window(row)[0], "suspect_until": suspect_window(row)[1]}
            for row in rows]


def jumps_by_laptop() -> dict[str, list[dict]]:
    """Return every reported jump by laptop id, read once per request."""
    if "clock_jumps" not in g:
        found: dict[str, list[dict]] = {}
        for jump in reported(get_db(), limit=10_000):
            found.setdefault(jump["laptop_id"], []).append(jump)
        g.clock_jumps = found
    return g.clock_jumps


def suspect_jump(laptop_id: str, device_time: int) -> dict | None:
    """Return the reported jump that makes a lap's time suspect, or None."""
    for jump in jumps_by_laptop().get(laptop_id, []):
        if jump["suspect_from"] <= device_time <= jump["suspect_until"]:
            return jump
    return None


def init_app(app: Flask) -> None:
    """Offer the templates the reported jumps and the suspect check."""
    app.add_template_global(lambda: reported(get_db()), "reported_clock_jumps")
    app.add_template_global(suspect_jump, "clock_suspect")
