"""Login to central's admin pages: argon2 passwords, 8 h sessions, roles, a rate limit."""
from __future__ import annotations

import secrets

import psycopg
from flask import Blueprint, Flask, g, request, session
from psycopg.rows import tuple_row

from lapsync.authcore import (
    SESSION_MS,
    LoginLimits,
    SqlFailures,
    add_session_views,
    check_password,
    check_unknown_user,
    claim_attempt,
    forget_failures,
    limited_login,
    role_label,
    role_required,
    unlock_logins_command,
)

from .db import WRITE_LOCK, connection, get_db, init_schema, now_ms

bp = Blueprint("auth", __name__)
# Advisory lock around the check and the record of one login attempt: short, and
# apart from the write lock, so logins never wait for a push.
LOGIN_LOCK = WRITE_LOCK + 2


def start_session(conn: psycopg.Connection, name: str, password: str) -> str | None:
    """Check a login; on success store a session valid for 8 h and return its id."""
    # A deactivated user is answered like an unknown name, as slowly.
    row = conn.execute("SELECT id, password_hash FROM app_user WHERE name = %s "
                       "AND deactivated_at IS NULL", [name]).fetchone()
    if row is None:
        return check_unknown_user(password) or None
    if not check_password(row["password_hash"], password):
        return None
    session_id = secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute("DELETE FROM user_session WHERE valid_until < %s", [now_ms()])
        conn.execute("INSERT INTO user_session (id, user_id, valid_until) VALUES (%s, %s, %s)",
                     [session_id, row["id"], now_ms() + SESSION_MS])
        conn.execute("UPDATE app_user SET last_login_at = %s WHERE id = %s", [now_ms(), row["id"]])
    return session_id


def failures(conn: psycopg.Connection) -> SqlFailures:
    """Return central's failed logins as authcore's store (in the caller's transaction)."""
    def run(statement: str, params: list) -> list[tuple]:
        """Run one statement; return its rows as tuples."""
        cursor = conn.cursor(row_factory=tuple_row).execute(statement, params)
        return cursor.fetchall() if cursor.description else []
    return SqlFailures(run, "%s")


def _claim(conn: psycopg.Connection, name: str, address: str, limits: LoginLimits,
           now: int | None) -> tuple[int | None, int]:
    """Check the limits and record the attempt in one transaction (see claim_login_attempt)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOGIN_LOCK])
        now = now_ms() if now is None else now  # read under the lock: stamps stay in order
        return claim_attempt(failures(conn), name, address, limits, now)


def claim_login_attempt(conn: psycopg.Connection, name: str, address: str, limits: LoginLimits,
                        now: int | None = None) -> tuple[int | None, int]:
    """Record a login attempt as failed until its password proves right, or refuse it."""
    # In PostgreSQL, so all workers count alike. A database made before the table
    # existed gets it here (init-db is idempotent).
    try:
        return _claim(conn, name, address, limits, now)
    except psycopg.errors.UndefinedTable:
        init_schema(conn)
        return _claim(conn, name, address, limits, now)


def forget_login_failures(conn: psycopg.Connection, name: str | None = None,
                          address: str | None = None) -> int:
    """Delete the failed logins of one name (from one address if given), or all; say how many."""
    with conn.transaction():
        return forget_failures(failures(conn), name, address)


def rate_limited_login(conn: psycopg.Connection, name: str, password: str, address: str,
                       limits: LoginLimits) -> tuple[str | None, int]:
    """Log in under the rate limit: (session id, 0), (None, 0) if wrong, (None, wait ms) if refused."""
    return limited_login(lambda: claim_login_attempt(conn, name, address, limits),
                         lambda: start_session(conn, name, password),
                         lambda: forget_login_failures(conn, name, address))


def session_user(conn: psycopg.Connection, session_id: str | None) -> dict | None:
    """Return the active user of a valid, unexpired session, or None."""
    if not session_id:
        return None
    return conn.execute(
        "SELECT u.id, u.name, u.role FROM user_session s JOIN app_user u ON u.id = s.user_id "
        "WHERE s.id = %s AND s.valid_until > %s AND u.deactivated_at IS NULL",
        [session_id, now_ms()]).fetchone()


def end_session(conn: psycopg.Connection, session_id: str) -> None:
    """Delete a session (sessions are never synced)."""
    conn.execute("DELETE FROM user_session WHERE id = %s", [session_id])


@bp.before_app_request
def load_logged_in_user() -> None:
    """Put the session's user (or None) on g; the sync API authenticates devices instead."""
    g.user = None
    if "sid" in session and not request.path.startswith("/api/"):
        g.user = session_user(get_db(), session["sid"])


# The core's decorator serves both apps: each has g.user and auth.login.
login_required = role_required()
admin_required = role_required("admin")


add_session_views(bp, lambda *attempt: rate_limited_login(get_db(), *attempt),
                  lambda session_id: end_session(get_db(), session_id), "standings.index")


def _forget_failures_command(name: str | None) -> int:
    """Forget failed logins on a pooled connection of the command's own."""
    with connection() as conn:
        return forget_login_failures(conn, name)


def init_app(app: Flask) -> None:
    """Register the login blueprint and the unlock-logins command."""
    app.register_blueprint(bp)
    app.add_template_global(role_label)
    app.cli.add_command(unlock_logins_command(_forget_failures_command))
