"""Live view: the newest laps from every laptop, refreshed by polling a JSON feed.

Why polling a cursor and not in-process pub/sub: central runs as several gunicorn
workers, and a push handled by one worker must show up on a page served by
another. The database is the only thing they share, so the page asks it.

Why the cursor is lap.feed_id and not received_at: a push takes received_at
before it waits for the central write lock, so push A (received_at 100) can
commit after push B (received_at 105). A cursor "received_at > 105" would skip
A's laps forever, and an overlap window only helps if it is longer than any lock
wait (up to 30 s). feed_id comes from a sequence taken while the write lock is
held (sync/schema.sql), so it is in commit order: every lap below a visible feed
id is visible already. Void changes follow the same rule with lap_void.change_id.
Both cursors are read from rows the poll returned, never from the sequences (a
sequence may already hold an id of a transaction that has not committed).
"""
from __future__ import annotations

import psycopg
from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from flask_babel import gettext as _

from lapsync.errors import InputError

from .auth import login_required
from .db import get_db
from .standings import local_time

bp = Blueprint("live", __name__, url_prefix="/live")

PAGE_LAPS = 50       # laps the page shows (and the page without JavaScript)
FEED_LIMIT = 200     # laps per poll; the client asks again at once when there are more
VOID_LIMIT = 500
POLL_MS = 2000       # how often live.js asks (config LIVE_POLL_MS)

LAP_SELECT = """
SELECT l.feed_id, l.id, l.runner_id, r.start_number, r.name, r.class,
       d.name AS device_name, l.device_id, l.received_at,
       coalesce(v.voided, false) AS voided, coalesce(t.laps, 0) AS runner_laps
FROM lap l
LEFT JOIN runner r ON r.id = l.runner_id
LEFT JOIN device d ON d.id = l.pushed_by
LEFT JOIN lap_void v ON v.lap_id = l.id
LEFT JOIN runner_total t ON t.runner_id = l.runner_id
"""


def latest_laps(conn: psycopg.Connection, limit: int = PAGE_LAPS) -> list[dict]:
    """Return the newest laps, newest first."""
    return conn.execute(LAP_SELECT + "ORDER BY l.feed_id DESC LIMIT %s", [limit]).fetchall()


def laps_after(conn: psycopg.Connection, after: int, limit: int = FEED_LIMIT) -> list[dict]:
    """Return up to limit + 1 laps committed after feed id `after`, oldest first."""
    return conn.execute(LAP_SELECT + "WHERE l.feed_id > %s ORDER BY l.feed_id LIMIT %s",
                        [after, limit + 1]).fetchall()


def voids_after(conn: psycopg.Connection, after: int, limit: int = VOID_LIMIT) -> list[dict]:
    """Return up to limit + 1 void or restore changes after change id `after`, in order."""
    return conn.execute("SELECT change_id, lap_id, voided FROM lap_void WHERE change_id > %s "
                        "ORDER BY change_id LIMIT %s", [after, limit + 1]).fetchall()


def void_cursor(conn: psycopg.Connection) -> int:
    """Return the change id of the newest visible void change (0 for none)."""
    return conn.execute("SELECT coalesce(max(change_id), 0) AS c FROM lap_void").fetchone()["c"]


def feed_handed_out(conn: psycopg.Connection) -> int:
    """Return the highest feed id ever handed out (0 for none)."""
    row = conn.execute("SELECT last_value, is_called FROM lap_feed_seq").fetchone()
    return row["last_value"] if row["is_called"] else 0


def public_lap(lap: dict) -> dict:
    """Return a lap as the feed sends it (times also formatted as central's local time)."""
    return {"id": lap["id"], "runner_id": lap["runner_id"], "start_number": lap["start_number"],
            "name": lap["name"], "class": lap["class"], "device": lap["device_name"],
            "device_id": lap["device_id"], "received_at": lap["received_at"],
            "received": local_time(lap["received_at"]), "voided": lap["voided"],
            "runner_laps": lap["runner_laps"]}


def first_page(conn: psycopg.Connection) -> dict:
    """Return the newest laps and both cursors: what a freshly opened page shows."""
    voids = void_cursor(conn)  # read before the laps: a void in between is sent again, not lost
    laps = latest_laps(conn)
    return {"laps": laps, "cursor": laps[0]["feed_id"] if laps else 0, "void_cursor": voids}


def feed(conn: psycopg.Connection, after: int | None, voids: int | None) -> dict:
    """Return laps and void changes after the cursors, with the cursors to ask with next."""
    if after is None or after > feed_handed_out(conn):
        page = first_page(conn)  # a new client, or central's database was replaced
        return {"reset": True, "laps": [public_lap(lap) for lap in reversed(page["laps"])],
                "voids": [], "cursor": page["cursor"], "void_cursor": page["void_cursor"],
                "more": False}
    changes = voids_after(conn, voids) if voids is not None else []
    void_next = voids if voids is not None else void_cursor(conn)
    laps = laps_after(conn, after)
    more = len(laps) > FEED_LIMIT or len(changes) > VOID_LIMIT
    laps, changes = laps[:FEED_LIMIT], changes[:VOID_LIMIT]
    return {"reset": False, "laps": [public_lap(lap) for lap in laps],
            "voids": [{"lap_id": v["lap_id"], "voided": v["voided"]} for v in changes],
            "cursor": laps[-1]["feed_id"] if laps else after,
            "void_cursor": changes[-1]["change_id"] if changes else void_next, "more": more}


def parse_cursor(name: str, text: str | None) -> int | None:
    """Turn a cursor query argument into an int (None when absent) or raise a 400."""
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise InputError("invalid_cursor", _("%(name)s must be a whole number of at least 0.",
                                             name=name), 400)
    return int(text)


@bp.get("/")
@login_required
def index():
    """Show the newest laps; live.js keeps them current, a meta refresh does without it."""
    page = first_page(get_db())
    return render_template("live.html", laps=page["laps"], cursor=page["cursor"],
                           void_cursor=page["void_cursor"], page_laps=PAGE_LAPS,
                           poll_ms=current_app.config.get("LIVE_POLL_MS", POLL_MS))


@bp.get("/feed")
@login_required
def feed_view():
    """Answer laps (and void changes) after the client's cursors as JSON."""
    try:
        after = parse_cursor("after", request.args.get("after"))
        voids = parse_cursor("voids", request.args.get("voids"))
    except InputError as exc:  # a JSON endpoint: JSON errors whatever the Accept header says
        return jsonify(error=exc.code, message=exc.message), exc.status
    response = jsonify(feed(get_db(), after, voids))
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Register the live view."""
    app.register_blueprint(bp)
