"""Login, sessions and roles on the laptop; users are synced like runners."""
from __future__ import annotations

import functools
import secrets

import click
import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask.cli import with_appcontext
from flask import (Blueprint, current_app, flash, g, redirect, render_template, request,
                   session, url_for)
from flask_babel import gettext as _

from . import hlc
from .db import connect, device_id, get_db, new_id, now_ms, record_change, transaction
from .errors import InputError, error_response
from .protocol import CONTROL_CHARS, MAX_USER_NAME

bp = Blueprint("auth", __name__)
ROLES = ("admin", "teacher", "viewer")
SESSION_MS = 8 * 3600 * 1000
_hasher = PasswordHasher()


def role_label(role: str) -> str:
    """Name a role in the page's language (the stored role stays admin/teacher/viewer)."""
    labels = {"admin": _("admin"), "teacher": _("teacher"), "viewer": _("viewer")}
    return labels.get(role, role)


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


def check_password(password_hash: str, password: str) -> bool:
    """Tell whether the password matches the stored hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def validate_user(name: str, role: str, password: str) -> tuple[str, str, str]:
    """Check a new user's fields; return them cleaned or raise InputError."""
    name = (name or "").strip()
    if not 1 <= len(name) <= MAX_USER_NAME or CONTROL_CHARS.search(name):
        raise InputError("invalid_name", _("The user name must be 1 to %(max)s characters, "
                                           "without line breaks or tabs.", max=MAX_USER_NAME))
    if role not in ROLES:
        raise InputError("invalid_role", _("The role must be one of: %(roles)s.",
                                           roles=", ".join(ROLES)))
    if not 8 <= len(password or "") <= 200:
        raise InputError("invalid_password", _("The password must be 8 to 200 characters."))
    return name, role, password


def create_user(db: sqlite_utils.Database, name: str, role: str, password: str) -> str:
    """Create a user and its outbox change in one transaction; return the id."""
    name, role, password = validate_user(name, role, password)
    password_hash = hash_password(password)  # slow: outside the write lock
    with transaction(db):
        if db.execute("SELECT 1 FROM user WHERE name = ?", [name]).fetchone():
            raise InputError("duplicate_name", _("A user called %(name)s exists already.",
                                                 name=repr(name)), 409)
        user = {"id": new_id(), "name": name, "password_hash": password_hash, "role": role,
                "created_at": now_ms(), "hlc": hlc.tick(db)}
        db.table("user").insert(user)
        record_change(db, "user", user["id"], {**user, "origin": device_id(db)})
    return user["id"]


def start_session(db: sqlite_utils.Database, name: str, password: str) -> str | None:
    """Check a login; on success store a session valid for 8 h and return its id."""
    row = db.execute("SELECT id, password_hash FROM user WHERE name = ?", [name]).fetchone()
    if row is None or not check_password(row[1], password):
        return None
    session_id = secrets.token_urlsafe(32)
    with transaction(db):
        db.execute("DELETE FROM user_session WHERE valid_until < ?", [now_ms()])
        db.execute("INSERT INTO user_session (id, user_id, valid_until) VALUES (?, ?, ?)",
                   [session_id, row[0], now_ms() + SESSION_MS])
    return session_id


def session_user(db: sqlite_utils.Database, session_id: str | None) -> dict | None:
    """Return the user of a valid, unexpired session, or None."""
    if not session_id:
        return None
    rows = list(db.query(
        "SELECT user.id, user.name, user.role FROM user_session "
        "JOIN user ON user.id = user_session.user_id "
        "WHERE user_session.id = ? AND user_session.valid_until > ?",
        [session_id, now_ms()]))
    return rows[0] if rows else None


def end_session(db: sqlite_utils.Database, session_id: str) -> None:
    """Delete a session (sessions are local and never synced)."""
    with transaction(db):
        db.execute("DELETE FROM user_session WHERE id = ?", [session_id])


@bp.before_app_request
def load_logged_in_user() -> None:
    """Put the session's user (or None) on g."""
    g.user = session_user(get_db(), session.get("sid")) if "sid" in session else None


def role_required(*roles: str):
    """Send anonymous users to login; answer 403 to users without one of the roles."""
    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if g.user is None:
                if request.method == "GET" and not request.is_json:
                    return redirect(url_for("auth.login", next=request.full_path))
                return error_response("login_required", _("Please log in first."), 401)
            if roles and g.user["role"] not in roles:
                return error_response("forbidden", _("Your role may not do this."), 403)
            return view(*args, **kwargs)
        return wrapped
    return decorator


login_required = role_required()
can_record = role_required("admin", "teacher")
admin_required = role_required("admin")


def safe_next(target: str | None, fallback: str = "laps.index") -> str:
    """Return a local redirect target, never another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for(fallback)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form and start a session."""
    if request.method == "POST":
        session_id = start_session(get_db(), request.form.get("name", "").strip(),
                                   request.form.get("password", ""))
        if session_id:
            session.clear()
            session["sid"] = session_id
            return redirect(safe_next(request.args.get("next")))
        return render_template("login.html", error=_("Wrong name or password.")), 401
    return render_template("login.html")


@bp.post("/logout")
def logout():
    """End the session."""
    if "sid" in session:
        end_session(get_db(), session["sid"])
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/users", methods=["GET", "POST"])
@admin_required
def users():
    """List users; admins create new ones."""
    db = get_db()
    status = 200
    if request.method == "POST":
        try:
            create_user(db, request.form.get("name", ""), request.form.get("role", ""),
                        request.form.get("password", ""))
            flash(_("User %(name)s created.", name=request.form["name"].strip()))
            return redirect(url_for("auth.users"))
        except InputError as exc:
            flash(exc.message, "error")
            status = exc.status
    rows = list(db.query("SELECT name, role, created_at FROM user ORDER BY name"))
    return render_template("users.html", users=rows, roles=ROLES), status


@click.command("create-user")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="admin, teacher or viewer")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 8 characters (asked for when left out).")
@with_appcontext
def create_user_command(name: str, role: str, password: str) -> None:
    """Create a user who can log in on this laptop."""
    db = connect(current_app.config["DATABASE"])
    try:
        create_user(db, name, role, password)
    except InputError as exc:
        raise click.ClickException(exc.message)
    finally:
        db.close()
    click.echo(f"Created {role} {name!r}.")


def init_app(app) -> None:
    """Register the blueprint and CLI commands."""
    app.register_blueprint(bp)
    app.add_template_global(role_label)
    app.cli.add_command(create_user_command)
