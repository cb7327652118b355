"""The big screen: a second monitor facing the runners shows the latest laps in large type."""
from __future__ import annotations

import sqlite_utils
from flask import Blueprint, Flask, jsonify, render_template

from .auth import login_required
from .db import device_id, get_db
from .laps import lap_count

bp = Blueprint("big", __name__, url_prefix="/big")
BIG_LIMIT = 8
POLL_MS = 1500

# Each lap with how many of its runner's counting laps on this laptop came after it,
# so that its number is the count the runner had reached with that lap.
BIG_LAPS_SQL = """
SELECT lap.id, lap.time, lap.runner_id, runner.start_number, runner.name, runner.class,
       (SELECT count(*) FROM lap AS later WHERE later.runner_id = lap.runner_id
        AND later.voided_at IS NULL AND later.rowid > lap.rowid) AS later
FROM lap JOIN runner ON runner.id = lap.runner_id
WHERE lap.device_id = ? AND lap.voided_at IS NULL
ORDER BY lap.rowid DESC LIMIT ?
"""


def big_laps(db: sqlite_utils.Database, limit: int = BIG_LIMIT) -> list[dict]:
    """Return this laptop's latest counting laps, newest first, each with the runner's count then."""
    laps = []
    for row in db.query(BIG_LAPS_SQL, [device_id(db), limit]):
        count = lap_count(db, row.pop("runner_id")) - row.pop("later")
        laps.append({**row, "count": count})
    return laps


@bp.get("/")
@login_required
def index():
    """Show the big screen; big.js refreshes it from laps()."""
    return render_template("big.html", laps=big_laps(get_db()), poll_ms=POLL_MS)


@bp.get("/laps")
@login_required
def laps():
    """Answer the big screen's laps as JSON."""
    return jsonify({"laps": big_laps(get_db())})


def init_app(app: Flask) -> None:
    """Register the big screen's blueprint."""
    app.register_blueprint(bp)
