"""Standings: merged lap totals per runner, class and grade."""
from __future__ import annotations

from flask import Blueprint, Flask, render_template

from .auth import login_required
from .db import get_db

bp = Blueprint("standings", __name__, url_prefix="/standings")


@bp.get("/")
@login_required
def index():
    """Show every runner with the laps that count, most laps first."""
    rows = get_db().execute(
        "SELECT r.id, r.start_number, r.name, r.class, r.grade, coalesce(t.laps, 0) AS laps "
        "FROM runner r LEFT JOIN runner_total t ON t.runner_id = r.id "
        "ORDER BY laps DESC, r.name").fetchall()
    return render_template("standings.html", runners=rows)


def init_app(app: Flask) -> None:
    """Register the standings blueprint."""
    app.register_blueprint(bp)
