"""Central's hybrid logical clock and node id: central edits order like laptop edits.

Central takes no stamp that lies more than MAX_CLOCK_AHEAD_S ahead of its own clock
(sync/push.py refuses such a change, item by item), so its clock stays within that
of its wall clock. `flask --app sync repair-clock` brings back a database whose
clock or rows took such stamps before the bound existed.
"""
from __future__ import annotations

import json

import click
import psycopg
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_babel import gettext as _

from lapsync import hlc
from lapsync.hlc import ClockError, observe_meta, tick_meta

from .db import connection, get_meta, now_ms, set_meta, write_transaction

STAMPED = ("runner", "user", "lap_void")  # the pushed entities that carry an hlc
# The last-writer-wins registers, stamped by (hlc, origin): table and key column.
REGISTERS = (("runner", "id"), ("app_user", "id"), ("lap_void", "lap_id"))
WELL_FORMED = "hlc ~ '^[0-9]{13}[.][0-9]{4}$'"


def node_id(conn: psycopg.Connection) -> str:
    """Return central's node id, the origin of edits made at central."""
    value = get_meta(conn, "node_id")
    if value is None:
        raise RuntimeError("database not initialised: run `flask --app sync init-db`")
    return value


def tick(conn: psycopg.Connection) -> str:
    """Return a new central timestamp, later than any seen (inside write_transaction)."""
    try:
        return tick_meta(conn, get_meta, set_meta, now_ms())
    except ClockError as exc:
        raise ClockError(f"{exc}; run `flask --app sync repair-clock`") from None


def observe(conn: psycopg.Connection, remote: str) -> None:
    """Move central's clock past a timestamp received from a laptop."""
    observe_meta(conn, get_meta, set_meta, remote)


def bound_ms() -> int:
    """Return the app's MAX_CLOCK_AHEAD_S in milliseconds."""
    return round(float(current_app.config.get("MAX_CLOCK_AHEAD_S", hlc.MAX_AHEAD_S)) * 1000)


def refusal(stamp: str, limit_ms: int) -> str | None:
    """Say why central refuses a pushed stamp (too far ahead of its clock); None: it takes it.

    The bound is to central's own clock, the one its stamps come from, not to the
    device's clock as its push reports it: a device may report any time.
    """
    now = now_ms()
    if not hlc.too_far_ahead(stamp, now, limit_ms):
        return None
    return _("Refused: the stamp %(stamp)s lies %(ahead)s ahead of central's clock (at most "
             "%(bound)s are taken). This device's clock is probably wrong: correct its date and "
             "time, then make the change again.", stamp=stamp,
             ahead=hlc.span(hlc.ahead_ms(stamp, now)), bound=hlc.span(limit_ms))


def refuse_ahead(conn: psycopg.Connection, laptop_id: str, changes: list[dict], now: int,
                 limit_ms: int) -> tuple[list[dict], list[dict]]:
    """Split off changes stamped beyond LIMIT_MS ahead of central's clock; keep each refusal.

    Returns (the changes to apply, the refusals for the push answer). A refused
    change applies nothing and moves no clock; the rest of the batch applies.
    """
    kept, refused = [], []
    for change in changes:
        stamp = change["data"].get("hlc") if change["entity"] in STAMPED else None
        message = refusal(stamp, limit_ms) if stamp is not None else None
        if message is None:
            kept.append(change)
            continue
        conn.execute("INSERT INTO rejected_change (laptop_id, seq, entity, entity_id, error, "
                     "message, payload, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                     "ON CONFLICT (laptop_id, seq) DO NOTHING",
                     [laptop_id, change["seq"], change["entity"], change["id"], hlc.CLOCK_AHEAD,
                      message, json.dumps(change["data"]), now])
        refused.append({"seq": change["seq"], "error": hlc.CLOCK_AHEAD, "message": message})
    return kept, refused


def latest_within(conn: psycopg.Connection, ceiling: str) -> str:
    """Return the latest well-formed stamp of the registers up to CEILING (ZERO if none)."""
    parts = " UNION ALL ".join(f"SELECT max(hlc) AS hlc FROM {table} "
                               f"WHERE {WELL_FORMED} AND hlc <= %(ceiling)s"
                               for table, _ in REGISTERS)
    row = conn.execute(f"SELECT max(hlc) AS hlc FROM ({parts}) AS s", {"ceiling": ceiling})
    return row.fetchone()["hlc"] or hlc.ZERO


def repair(conn: psycopg.Connection, limit_ms: int) -> list[str]:
    """Bring back the clock and re-stamp rows beyond LIMIT_MS ahead of central's; say what changed.

    The clock goes back to the latest stamp of the registers within the bound, so
    that its next stamps follow every stamp it took rightly; each row stamped
    beyond the bound gets a fresh stamp of central (central's origin, a new change
    id: every laptop pulls it), so that any later edit wins over it again.
    """
    changed = []
    with write_transaction(conn):
        now = now_ms()
        ceiling, stored = hlc.ceiling(now, limit_ms), get_meta(conn, "hlc", hlc.ZERO)
        if hlc.too_far_ahead(stored, now, limit_ms):
            reset = latest_within(conn, ceiling)
            set_meta(conn, "hlc", reset)
            changed.append(f"clock: {stored} -> {reset}")
        for table, key in REGISTERS:
            changed += restamp_beyond(conn, table, key, ceiling)
    return changed


def restamp_beyond(conn: psycopg.Connection, table: str, key: str, ceiling: str) -> list[str]:
    """Give each row of TABLE stamped beyond CEILING a fresh stamp of central; say which."""
    origin, changed = node_id(conn), []
    rows = conn.execute(f"SELECT {key} AS id, hlc FROM {table} WHERE NOT ({WELL_FORMED}) "
                        f"OR hlc > %(ceiling)s ORDER BY hlc, {key}", {"ceiling": ceiling})
    for row in rows.fetchall():
        stamp = tick(conn)
        conn.execute(f"UPDATE {table} SET hlc = %s, origin = %s, "
                     f"change_id = nextval('change_id_seq') WHERE {key} = %s",
                     [stamp, origin, row["id"]])
        changed.append(f"{table} {row['id']}: {row['hlc']} -> {stamp}")
    return changed


@click.command("repair-clock")
@with_appcontext
def repair_clock_command() -> None:
    """Re-stamp rows stamped beyond MAX_CLOCK_AHEAD_S ahead of central's clock; reset the clock.

    For a database that took stamps from a device's wrong clock before central
    bounded them: such a row would win over every later edit, and a clock at the
    end of its range makes no more stamps. Each such row gets a fresh stamp of
    central (laptops pull it), the clock goes back to the latest stamp within the
    bound. Prints what it changed; running it again changes nothing.
    """
    with connection() as conn:
        changed = repair(conn, bound_ms())
    for line in changed:
        click.echo(line)
    rows = sum(not line.startswith("clock:") for line in changed)
    click.echo(f"Repaired: {rows} rows re-stamped." if changed else
               "Nothing to repair: central's clock and every stamp are within "
               f"{hlc.span(bound_ms())} of its wall clock.")


def init_app(app: Flask) -> None:
    """Register the repair-clock command."""
    app.cli.add_command(repair_clock_command)
