"""The laptop's sync client: push and pull over HTTP (the wire format is lapsync.protocol).

Domain functions take the database; only `state.sync_app` (the scheduler's job) and
the CLI open a connection. HTTP calls never run inside a database transaction, and
every write transaction is short, so sync never blocks lap entry.
"""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify

from .. import clockwatch
from ..db import get_db
from . import connect_page
from .cli import connect_command, sync_command, sync_status_command
from .status import status_for

bp = Blueprint("sync", __name__, url_prefix="/sync")


@bp.get("/status")
def status():
    """Answer the sync state shown in the top bar (polled by sync_status.js) and clock jumps."""
    db = get_db()
    info = status_for(current_app, db)
    return jsonify({**{key: info[key] for key in ("state", "text", "level", "pending")},
                    "clock_jumps": clockwatch.notices(db)})


def init_app(app: Flask) -> None:
    """Register the status endpoint, the /connect page, the template helper and the CLI commands."""
    app.register_blueprint(bp)
    app.register_blueprint(connect_page.bp)
    app.context_processor(lambda: {"sync_status": lambda: status_for(current_app, get_db())})
    for command in (connect_command, sync_command, sync_status_command):
        app.cli.add_command(command)
