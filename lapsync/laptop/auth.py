"""Login, sessions and roles on the laptop; users are synced like runners."""
from __future__ import annotations

import contextlib
import logging

import click
import sqlite_utils
from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.cli import with_appcontext
from flask_babel import gettext as _

from lapsync.authcore import (
    NEW_PASSWORD,
    ROLES,
    LoginLimits,
    SqlFailures,
    add_session_views,
    check_password,
    check_unknown_user,
    claim_attempt,
    forget_failures,
    hash_password,
    limited_login,
    name_taken,
    role_label,
    role_required,
    taken_hint,
    unlock_logins_command,
    validate_password,
    validate_user,
)
from lapsync.errors import InputError, wants_json
from lapsync.ids import new_id

from . import clock, logins
from .db import connect, device_id, get_db, now_ms, record_change, rows, transaction

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)


def create_user(db: sqlite_utils.Database, name: str, role: str, password: str) -> str:
    """Create a user and its outbox change in one transaction; return the id."""
    name, role, password = validate_user(name, role, password)
    password_hash = hash_password(password)  # slow: outside the write lock
    with transaction(db):
        if db.execute("SELECT 1 FROM user WHERE name = ?", [name]).fetchone():
            raise name_taken(name)
        user = {"id": new_id(), "name": name, "password_hash": password_hash, "role": role,
                "created_at": now_ms(), "hlc": clock.tick(db)}
        db.table("user").insert(user)
        record_change(db, "user", user["id"], {**user, "origin": device_id(db)})
    return user["id"]


def set_password(db: sqlite_utils.Database, name: str, password: str) -> str:
    """Give the user NAME a new password (synced like any user change), end their sessions."""
    password_hash = hash_password(validate_password(password))  # slow: outside the write lock
    with transaction(db):
        found = rows(db, "SELECT id, name, role, created_at FROM user WHERE name = ?", [name])
        if not found:
            raise InputError("unknown_user", _("There is no user called %(name)s.",
                                               name=repr(name)), 404)
        user = {**found[0], "password_hash": password_hash, "hlc": clock.tick(db)}
        db.execute("UPDATE user SET password_hash = ?, hlc = ? WHERE id = ?",
                   [password_hash, user["hlc"], user["id"]])
        record_change(db, "user", user["id"], {**user, "origin": device_id(db)})
        # Whoever knew the old password may be logged in with it in a browser here.
        db.execute("DELETE FROM user_session WHERE user_id = ?", [user["id"]])
    return user["id"]


def start_session(db: sqlite_utils.Database, name: str, password: str) -> str | None:
    """Check a login; on success store a session (logins.py: 8 h after the last action) and
    return its id."""
    # A user central deactivated is answered like an unknown name, as slowly.
    row = db.execute("SELECT id, password_hash FROM user WHERE name = ? "
                     "AND id NOT IN (SELECT user_id FROM inactive_user)", [name]).fetchone()
    if row is None:
        return check_unknown_user(password) or None
    if not check_password(row[1], password):
        return None
    with transaction(db):
        return logins.start(db, row[0])


# ---- login rate limit (the decisions are lapsync.authcore's) -----------------

def failures(db: sqlite_utils.Database) -> SqlFailures:
    """Return the laptop's failed logins as authcore's store (in the caller's transaction)."""
    return SqlFailures(lambda statement, params: db.execute(statement, params).fetchall())


def claim_login_attempt(db: sqlite_utils.Database, name: str, address: str,
                        limits: LoginLimits, now: int | None = None) -> tuple[int | None, int]:
    """Record a login attempt as failed until its password proves right, or refuse it."""
    # One write transaction: guesses sent in parallel cannot all slip through
    # before the first one fails.
    with transaction(db):
        now = now_ms() if now is None else now  # read under the lock: stamps stay in order
        return claim_attempt(failures(db), name, address, limits, now)


def forget_login_failures(db: sqlite_utils.Database, name: str | None = None,
                          address: str | None = None) -> int:
    """Delete the failed logins of one name (from one address if given), or all; say how many."""
    with transaction(db):
        return forget_failures(failures(db), name, address)


def rate_limited_login(db: sqlite_utils.Database, name: str, password: str, address: str,
                       limits: LoginLimits) -> tuple[str | None, int]:
    """Log in under the rate limit: (session id, 0), (None, 0) if wrong, (None, wait ms) if refused."""
    return limited_login(lambda: claim_login_attempt(db, name, address, limits),
                         lambda: start_session(db, name, password),
                         lambda: forget_login_failures(db, name, address))


def session_user(db: sqlite_utils.Database, session_id: str | None,
                 locked: bool = False) -> dict | None:
    """Return the active user of a live session (logins.live_user), or None."""
    return logins.live_user(db, session_id, locked)


def end_session(db: sqlite_utils.Database, session_id: str) -> None:
    """Delete a session (sessions are local and never synced)."""
    with transaction(db):
        db.execute("DELETE FROM user_session WHERE id = ?", [session_id])


@bp.before_app_request
def load_logged_in_user() -> None:
    """Put the session's user (or None) on g; the helper's action keeps the login alive."""
    g.user = session_user(get_db(), session.get("sid")) if "sid" in session else None
    if g.user is not None and is_action():
        logins.renew(get_db(), session["sid"], g.user)


def is_action() -> bool:
    """Tell whether this request is the helper's doing (a post, a page opened), not a poll."""
    # A page's poll asks for JSON: a page left open on an unattended laptop must still end.
    if request.endpoint is None or request.endpoint.endswith("static"):
        return False
    return request.method not in ("GET", "HEAD") or not wants_json()


RECORDING_ROLES = ("admin", "teacher")  # who may count and void laps
login_required = role_required()
can_record = role_required(*RECORDING_ROLES)
admin_required = role_required("admin")


add_session_views(bp, lambda *attempt: rate_limited_login(get_db(), *attempt),
                  lambda session_id: end_session(get_db(), session_id), "laps.index")


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
            flash(_("User %(name)s created, as %(role)s.", name=request.form["name"].strip(),
                    role=role_label(request.form.get("role", ""))))
            return redirect(url_for("auth.users"))
        except InputError as exc:
            flash(exc.message, "error")
            status = exc.status
    rows = list(db.query("SELECT name, role, created_at, id IN (SELECT user_id FROM "
                         "inactive_user) AS inactive FROM user ORDER BY name"))
    return render_template("users.html", users=rows, roles=ROLES), status


@click.command("create-user")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="admin, teacher or viewer")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 8 characters (asked for twice when left out, or taken from "
                   "FLASK_CREATE_USER_PASSWORD).")
@with_appcontext
def create_user_command(name: str, role: str, password: str) -> None:
    """Create a user who can log in on this laptop."""
    db = connect(current_app.config["DATABASE"])
    try:
        create_user(db, name, role, password)
    except InputError as exc:
        raise click.ClickException(exc.message + taken_hint(exc, "app", name)) from None
    finally:
        db.close()
    click.echo(f"Created {role} {name!r}.")


@click.command("set-password")
@click.argument("name")
@NEW_PASSWORD
@with_appcontext
def set_password_command(name: str, password: str) -> None:
    """Give the user NAME a new password on this laptop and end their sessions here."""
    with contextlib.closing(connect(current_app.config["DATABASE"])) as db:
        try:
            set_password(db, name, password)
        except InputError as exc:
            raise click.ClickException(exc.message) from None
    log.info("command line: set_password of user %r (their sessions ended)", name)
    click.echo(f"New password set for {name!r}; their sessions on this laptop ended.")


def _forget_failures_command(name: str | None) -> int:
    """Forget failed logins on a connection of the command's own."""
    with contextlib.closing(connect(current_app.config["DATABASE"])) as db:
        return forget_login_failures(db, name)


def init_app(app) -> None:
    """Register the blueprint and CLI commands."""
    app.register_blueprint(bp)
    app.add_template_global(role_label)
    app.cli.add_command(create_user_command)
    app.cli.add_command(set_password_command)
    app.cli.add_command(unlock_logins_command(_forget_failures_command))
