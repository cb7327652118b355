"""GET /healthz: for load balancers and monitoring; answers 200 only when the database does."""
from __future__ import annotations

import time

import psycopg
from flask import Blueprint, Flask, Response, jsonify

from .db import connection

bp = Blueprint("health", __name__)


def database_ok(conn: psycopg.Connection) -> bool:
    """Tell whether the database answers a trivial query."""
    return conn.execute("SELECT 1 AS one").fetchone()["one"] == 1


@bp.get("/healthz")
def healthz() -> Response:
    """200 with the database's round trip when central can serve; 503 (JSON) when it cannot."""
    started = time.perf_counter()
    with connection() as conn:
        database_ok(conn)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    response = jsonify(status="ok", database="ok", database_ms=elapsed_ms)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Register the health check (no login, no CSRF: it only reads)."""
    app.register_blueprint(bp)
