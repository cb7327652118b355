"""Login to central's admin pages: argon2 passwords, 8 h sessions, roles."""
from __future__ import annotations

import secrets

import psycopg
from flask_babel import gettext as _
from flask import Blueprint, Flask, g, redirect, render_template, request, session, url_for

from lapsync.auth import SESSION_MS, check_password, role_label, role_required, safe_next

from .db import get_db, now_ms

bp = Blueprint("auth", __name__)


def start_session(conn: psycopg.Connection, name: str, password: str) -> str | None:
    """Check a login; on success store a session valid for 8 h and return its id."""
    row = conn.execute("SELECT id, password_hash FROM app_user WHERE name = %s", [name]).fetchone()
    if row is None or not check_password(row["password_hash"], password):
        return None
    session_id = secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute("DELETE FROM user_session WHERE valid_until < %s", [now_ms()])
        conn.execute("INSERT INTO user_session (id, user_id, valid_until) VALUES (%s, %s, %s)",
                     [session_id, row["id"], now_ms() + SESSION_MS])
    return session_id


def session_user(conn: psycopg.Connection, session_id: str | None) -> dict | None:
    """Return the user of a valid, unexpired session, or None."""
    if not session_id:
        return None
    return conn.execute(
        "SELECT u.id, u.name, u.role FROM user_session s JOIN app_user u ON u.id = s.user_id "
        "WHERE s.id = %s AND s.valid_until > %s", [session_id, now_ms()]).fetchone()


def end_session(conn: psycopg.Connection, session_id: str) -> None:
    """Delete a session (sessions are never synced)."""
    conn.execute("DELETE FROM user_session WHERE id = %s", [session_id])


@bp.before_app_request
def load_logged_in_user() -> None:
    """Put the session's user (or None) on g; the sync API authenticates devices instead."""
    g.user = None
    if "sid" in session and not request.path.startswith("/api/"):
        g.user = session_user(get_db(), session["sid"])


# The laptop's decorator serves central too: both apps have g.user and auth.login.
login_required = role_required()
admin_required = role_required("admin")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form and start a session."""
    if request.method == "POST":
        session_id = start_session(get_db(), request.form.get("name", "").strip(),
                                   request.form.get("password", ""))
        if session_id:
            session.clear()
            session["sid"] = session_id
            return redirect(safe_next(request.args.get("next"), "standings.index"))
        return render_template("login.html", error=_("Wrong name or password.")), 401
    return render_template("login.html")


@bp.post("/logout")
def logout():
    """End the session."""
    if "sid" in session:
        end_session(get_db(), session["sid"])
    session.clear()
    return redirect(url_for("auth.login"))


def init_app(app: Flask) -> None:
    """Register the login blueprint."""
    app.register_blueprint(bp)
    app.add_template_global(role_label)
