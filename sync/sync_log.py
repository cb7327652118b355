"""The sync log: pushes and pulls central refused, per device, and the Logs page for admins.

A refused request (a seq gap, a malformed batch, a revoked token, ...) answers the laptop
with a 4xx and is kept here, the latest KEEP per device, beside the changes refused item
by item (rejected_change). Both are logged too (instance/central/logs/central.log).
"""
from __future__ import annotations

import logging

import psycopg
from flask import Blueprint, Flask, render_template, request

from lapsync import logs
from lapsync.errors import InputError

from . import logfile
from .auth import admin_required
from .db import get_db, now_ms

bp = Blueprint("logs", __name__, url_prefix="/logs")
log = logging.getLogger(__name__)
KEEP = 50            # failures kept per device
SHOWN = 5            # failures and refused changes shown per device
MAX_MESSAGE = 500


def record_failure(conn: psycopg.Connection, device: dict, path: str, exc: InputError) -> None:
    """Keep and log a refused push or pull of a device; never raise (the 4xx goes out anyway)."""
    log.warning("%s from device %r refused (%s %s): %s", path, device["name"], exc.status,
                exc.code, exc.message)
    try:
        with conn.transaction():
            conn.execute("INSERT INTO sync_failure (device_id, at, path, status, error, message) "
                         "VALUES (%s, %s, %s, %s, %s, %s)",
                         [device["id"], now_ms(), path, exc.status, exc.code,
                          exc.message[:MAX_MESSAGE]])
            conn.execute("DELETE FROM sync_failure WHERE device_id = %s AND id <= "
                         "(SELECT id FROM sync_failure WHERE device_id = %s ORDER BY id DESC "
                         "OFFSET %s LIMIT 1)", [device["id"], device["id"], KEEP])
    except psycopg.Error:
        log.exception("could not record the refused %s of device %r", path, device["name"])


def log_unknown_token(path: str, exc: InputError) -> None:
    """Log a push or pull refused for a missing or unknown token, with the caller's address."""
    log.warning("%s refused (%s %s) from %s", path, exc.status, exc.code,
                request.remote_addr or "an unknown address")


def log_rejected(device: dict, rejected: list[dict]) -> None:
    """Log the changes of one push that central refused item by item."""
    if rejected:
        log.warning("push from device %r: %d change(s) refused: %s", device["name"], len(rejected),
                    ", ".join(f"seq {r['seq']} {r['error']}" for r in rejected[:10]))


def device_log(conn: psycopg.Connection, shown: int = SHOWN) -> list[dict]:
    """Return every device with its latest failures and refused changes, troubled ones first."""
    devices = conn.execute("SELECT id, name, laptop_id, revoked_at, last_contact FROM device "
                           "ORDER BY name, id").fetchall()
    for device in devices:
        device["failures"] = conn.execute(
            "SELECT at, path, status, error, message FROM sync_failure WHERE device_id = %s "
            "ORDER BY id DESC LIMIT %s", [device["id"], shown]).fetchall()
        device["refused"] = conn.execute(
            "SELECT at, seq, entity, entity_id, error, message FROM rejected_change "
            "WHERE laptop_id = %s ORDER BY id DESC LIMIT %s",
            [device["laptop_id"], shown]).fetchall() if device["laptop_id"] else []
        times = [row["at"] for row in device["failures"] + device["refused"]]
        device["latest"] = max(times, default=None)
    return sorted(devices, key=lambda d: -(d["latest"] or 0))


@bp.get("/")
@admin_required
def index():
    """Show the latest sync errors and refused changes of each device."""
    return render_template("sync_log.html", devices=device_log(get_db()))


def init_app(app: Flask) -> None:
    """Log to the console and instance/central/logs/central.log; register the Logs page."""
    logs.init_app(app, "central", logfile.HANDLER, logfile.SIZE)
    app.register_blueprint(bp)
