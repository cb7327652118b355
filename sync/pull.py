"""Serve a laptop's pull: everything changed since its cursor, in change-id order, and the
device's start-number block."""
from __future__ import annotations

import json
import logging

import psycopg
from flask_babel import gettext as _

from lapsync.protocol import DATABASE_FIELD, MAX_PULL_LIMIT, PROTOCOL_VERSION, ProtocolError
from lapsync.protocol.limits import WITHHELD_HASH

from .blocks import current_block
from .events import EVENT_KEY
from .db import now_ms
from .identity import DATABASE_KEY

log = logging.getLogger(__name__)

# One statement, so one snapshot. Change ids are commit-ordered (sync/db.py,
# write_transaction), so every id below the highest visible one is visible too.
# An admin's password hash goes only to a device trusted to manage users; any other gets
# WITHHELD_HASH in its place (docs/SECURITY.md). A deactivated user goes with "active":
# false and no hash either, so that a laptop that does not know "active" refuses it too.
# A void central decided, and a runner central merged or renumbered, carry "decision"
# (who, why, when) so that laptops show it and leave undoing it to central.
# Rows the pulling laptop made itself are read (own = true) so that the cursor
# moves past them, but not sent back; a merged runner is always sent (the laptop's
# own later edit of it must not hide the merge from it).
# Each branch has its own ORDER BY change_id LIMIT: a walk of its change_id index
# that stops after one page, whatever the planner believes about the table. Without
# it the plan depended on statistics: before the first autovacuum of a big push,
# runner_total (full of dead rows) got a parallel seq scan, ~10 ms at 1M laps for
# nothing to send, growing with the table (bench/bench_sync_cost.py).
# Totals are found through their log, total_change (migration 0008): the change ids its
# rows handed out after the cursor, sorted (no table read), then each runner read by primary
# key (LIMIT 1: one lookup each, never a join that reads runner_total whole) and sent if
# that is still its change id, until the page is full.
# data comes as JSON text, parsed by one json.loads per page in pull(): psycopg's
# jsonb loader parses row by row, half the time of a 1,000-row page.
PULL_SQL = """
(SELECT change_id, 'runner' AS entity, id,
        (origin = %(laptop)s AND merged_into IS NULL) IS TRUE AS own,
        (jsonb_build_object('id', id, 'start_number', start_number, 'name', name,
                           'class', class, 'grade', grade, 'hlc', hlc, 'origin', origin)
        || CASE WHEN merged_into IS NULL THEN '{}'::jsonb
                ELSE jsonb_build_object('merged_into', merged_into) END
        || CASE WHEN decision IS NULL THEN '{}'::jsonb
                ELSE jsonb_build_object('decision', decision) END)::text AS data
 FROM runner WHERE change_id > %(cursor)s ORDER BY change_id LIMIT %(limit)s)
UNION ALL
(SELECT change_id, 'user', id, (origin = %(laptop)s) IS TRUE,
        jsonb_build_object('id', id, 'name', name, 'role', role,
                           'password_hash', CASE WHEN deactivated_at IS NOT NULL
                                                   OR (role = 'admin' AND NOT %(trusted)s)
                                                 THEN %(withheld)s ELSE password_hash END,
                           'created_at', created_at, 'hlc', hlc, 'origin', origin,
                           'active', deactivated_at IS NULL)::text
 FROM app_user WHERE change_id > %(cursor)s ORDER BY change_id LIMIT %(limit)s)
UNION ALL
(SELECT v.change_id, 'lap_void', v.lap_id, (v.origin = %(laptop)s) IS TRUE,
        (jsonb_build_object('lap_id', v.lap_id, 'voided', v.voided, 'at', v.at, 'by', v.by,
                            'reason', v.reason, 'hlc', v.hlc, 'origin', v.origin)
        || CASE WHEN NOT v.central THEN '{}'::jsonb ELSE jsonb_build_object('decision',
               jsonb_build_object('action', CASE WHEN v.voided THEN 'void_lap'
                                                 ELSE 'restore_lap' END,
                                  'by_name', u.name, 'reason', v.reason, 'at', v.at)) END)::text
 FROM lap_void v LEFT JOIN app_user u ON u.id = v.by AND v.central
 WHERE v.change_id > %(cursor)s ORDER BY v.change_id LIMIT %(limit)s)
UNION ALL
(SELECT change_id, 'setting', key, false, jsonb_build_object('key', key, 'value', value)::text
 FROM setting WHERE change_id > %(cursor)s ORDER BY change_id LIMIT %(limit)s)
UNION ALL
(SELECT t.change_id, 'total', t.runner_id, false,
        jsonb_build_object('runner_id', t.runner_id, 'other_laps', t.laps - coalesce(d.laps, 0))::text
 FROM (SELECT g.first_id + u.k - 1 AS change_id, u.runner_id
       FROM total_change g CROSS JOIN LATERAL unnest(g.runner_ids) WITH ORDINALITY AS u(runner_id, k)
       WHERE g.last_id > %(cursor)s AND g.first_id + u.k - 1 > %(cursor)s
       ORDER BY 1) e
 CROSS JOIN LATERAL (SELECT * FROM runner_total t WHERE t.runner_id = e.runner_id
                     AND t.change_id = e.change_id LIMIT 1) t
 LEFT JOIN device_runner_laps d ON d.runner_id = t.runner_id AND d.laptop_id = %(laptop)s
 ORDER BY e.change_id LIMIT %(limit)s)
ORDER BY change_id
LIMIT %(limit)s
"""


def _whole(text: str | None, default: int) -> int | None:
    """Return a query argument of ASCII digits as int, default when absent, else None."""
    if text is None:
        return default
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def parse_paging(cursor: str | None, limit: str | None) -> tuple[int, int]:
    """Turn the cursor and limit query arguments into ints or raise a 400."""
    number = _whole(cursor, 0)
    if number is None:
        raise ProtocolError("invalid_cursor", "cursor must be a whole number >= 0.", 400)
    size = _whole(limit, MAX_PULL_LIMIT)
    if size is None or not 1 <= size <= MAX_PULL_LIMIT:
        raise ProtocolError("invalid_limit", f"limit must be 1 to {MAX_PULL_LIMIT}.", 400)
    return number, size


def last_change_id(conn: psycopg.Connection) -> int:
    """Return the highest change id ever handed out (0 for none)."""
    row = conn.execute("SELECT last_value, is_called FROM change_id_seq").fetchone()
    return row["last_value"] if row["is_called"] else 0


def touch_device(conn: psycopg.Connection, device_id: int, now: int) -> None:
    """Note a device's last contact without waiting for the WAL to reach the disk.

    Every pull writes this, and a synchronous commit would make each one wait for
    an fsync: on a busy disk that was most of a no-op sync's time (0.7 to 9 ms
    instead of 0.3, bench/bench_sync_cost.py). A crash can lose only the last
    fraction of a second of contact times, never data: pushes commit synchronously.
    SKIP LOCKED: a pull never waits for a push of the same device (which sets
    last_contact itself when it commits).
    """
    with conn.transaction():
        conn.execute("SET LOCAL synchronous_commit = off")
        conn.execute("UPDATE device SET last_contact = %s WHERE id = (SELECT id FROM device "
                     "WHERE id = %s FOR UPDATE SKIP LOCKED)", [now, device_id])


def named_ids(conn: psycopg.Connection) -> dict:
    """Return what every pull answer names: central's event and its database's identity."""
    rows = conn.execute("SELECT key, value FROM meta WHERE key IN (%s, %s)",
                        [EVENT_KEY, DATABASE_KEY]).fetchall()
    found = {row["key"]: row["value"] for row in rows}
    return {"event": found.get(EVENT_KEY, ""), DATABASE_FIELD: found.get(DATABASE_KEY)}


def pull_params(device: dict, cursor: int, limit: int) -> dict:
    """Return PULL_SQL's parameters for the device's page after cursor (one row more than limit)."""
    return {"cursor": cursor, "limit": limit + 1, "laptop": device["laptop_id"],
            "trusted": bool(device.get("manage_users")), "withheld": WITHHELD_HASH}


def pull(conn: psycopg.Connection, device: dict, cursor: int, limit: int,
         number_block: dict | None = None) -> dict:
    """Return one page of changes after cursor for a device (see docs/PROTOCOL.md).

    number_block is the device's current block if the caller read it already.
    """
    now = now_ms()
    # Read before the changes: a page of a restored database never goes out with the
    # identity of the one it replaced (the laptop would keep its cursor).
    named = named_ids(conn)
    if cursor > last_change_id(conn):
        raise ProtocolError("cursor_ahead", _("Cursor %(cursor)s is beyond anything central "
                                              "handed out (its database was replaced): pull "
                                              "again from 0.", cursor=cursor), 409, resume_from=0,
                            **{DATABASE_FIELD: named[DATABASE_FIELD]})
    rows = conn.execute(PULL_SQL, pull_params(device, cursor, limit)).fetchall()
    more, rows = len(rows) > limit, rows[:limit]
    touch_device(conn, device["id"], now)
    sent = [r for r in rows if not r["own"]]
    if sent:  # a pull that found nothing new is the normal idle tick: no line
        log.info("pull by device %r sent %d change(s), cursor %d..%d", device.get("name"), len(sent),
                 cursor, rows[-1]["change_id"])
    data = json.loads(f"[{','.join(r['data'] for r in sent)}]")
    return {"protocol": PROTOCOL_VERSION, "server_time": now, **named,
            "number_block": number_block or current_block(conn, device["id"]),
            "next_cursor": rows[-1]["change_id"] if rows else cursor, "more": more,
            "changes": [{"cursor": r["change_id"], "entity": r["entity"], "id": r["id"],
                         "data": d} for r, d in zip(sent, data)]}
