"""Login, sessions and roles on the laptop; users are synced like runners."""
from __future__ import annotations

import functools
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import click
import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.cli import with_appcontext
from flask_babel import gettext as _

from lapsync.errors import InputError, error_response, wants_json
from lapsync.ids import new_id
from lapsync.protocol import CONTROL_CHARS, MAX_USER_NAME
from lapsync.text import age  # a wait written the way the sync status writes durations

from . import clock
from .db import connect, device_id, get_db, now_ms, record_change, transaction

bp = Blueprint("auth", __name__)
ROLES = ("admin", "teacher", "viewer")
SESSION_MS = 8 * 3600 * 1000
CLOCK_SLACK_MS = 60_000  # failures stamped further ahead than this: the clock went back
MAX_ACCOUNT_KEY = 100  # longer names cannot be users (MAX_USER_NAME); keeps the table small
_hasher = PasswordHasher()
_dummy_hash: list[str] = []  # made on first use: hashing is slow on purpose


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
                "created_at": now_ms(), "hlc": clock.tick(db)}
        db.table("user").insert(user)
        record_change(db, "user", user["id"], {**user, "origin": device_id(db)})
    return user["id"]


def check_unknown_user(password: str) -> bool:
    """Spend the time of a password check for a name that is no user; return False.

    Answering an unknown name faster than a wrong password would tell a guesser
    which names exist.
    """
    if not _dummy_hash:
        _dummy_hash.append(hash_password(secrets.token_hex(16)))
    check_password(_dummy_hash[0], password)
    return False


def start_session(db: sqlite_utils.Database, name: str, password: str) -> str | None:
    """Check a login; on success store a session valid for 8 h and return its id."""
    row = db.execute("SELECT id, password_hash FROM user WHERE name = ?", [name]).fetchone()
    if row is None:
        return check_unknown_user(password) or None
    if not check_password(row[1], password):
        return None
    session_id = secrets.token_urlsafe(32)
    with transaction(db):
        db.execute("DELETE FROM user_session WHERE valid_until < ?", [now_ms()])
        db.execute("INSERT INTO user_session (id, user_id, valid_until) VALUES (?, ?, ?)",
                   [session_id, row[0], now_ms() + SESSION_MS])
    return session_id


# ---- login rate limit --------------------------------------------------------

@dataclass(frozen=True)
class LoginLimits:
    """Failed logins allowed per account and per address within a window (0: no limit)."""

    window_ms: int
    per_account: int
    per_address: int

    @classmethod
    def from_config(cls, config: dict) -> "LoginLimits":
        """Read LOGIN_WINDOW_SECONDS and LOGIN_MAX_FAILURES_PER_ACCOUNT / _PER_ADDRESS."""
        return cls(int(config["LOGIN_WINDOW_SECONDS"]) * 1000,
                   int(config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]),
                   int(config["LOGIN_MAX_FAILURES_PER_ADDRESS"]))


def account_key(name: str) -> str:
    """Return the name a login counts against (no user name is longer)."""
    return name[:MAX_ACCOUNT_KEY]


def wait_ms(newest_first: list[int], limit: int, window_ms: int, now: int) -> int:
    """Return how long until fewer than `limit` of these failures lie in the window.

    newest_first: the times of the failures younger than the window, newest first
    (only the first `limit` matter). 0 means a login may be tried now.
    """
    if limit <= 0 or len(newest_first) < limit:
        return 0
    return max(1, newest_first[limit - 1] + window_ms - now)


def claim_login_attempt(db: sqlite_utils.Database, name: str, address: str,
                        limits: LoginLimits, now: int | None = None) -> tuple[int | None, int]:
    """Record a login attempt as failed until its password proves right, or refuse it.

    Returns (attempt id, 0), or (None, ms to wait) while the name or the address
    has used up its failures. Check and record share one write transaction, so
    guesses sent in parallel cannot all slip through before the first one fails.
    """
    with transaction(db):
        now = now_ms() if now is None else now  # read under the lock: stamps stay in order
        since = now - limits.window_ms
        # Expired, or stamped well ahead of a clock that was set back since (they
        # would lock the name for the window plus the jump).
        db.execute("DELETE FROM login_failure WHERE at <= ? OR at > ?",
                   [since, now + CLOCK_SLACK_MS])
        by_account = [r[0] for r in db.execute(
            "SELECT at FROM login_failure WHERE account = ? AND at > ? ORDER BY at DESC LIMIT ?",
            [account_key(name), since, max(limits.per_account, 1)])]
        by_address = [r[0] for r in db.execute(
            "SELECT at FROM login_failure WHERE address = ? AND at > ? ORDER BY at DESC LIMIT ?",
            [address, since, max(limits.per_address, 1)])]
        wait = max(wait_ms(by_account, limits.per_account, limits.window_ms, now),
                   wait_ms(by_address, limits.per_address, limits.window_ms, now))
        if wait:
            return None, wait
        cursor = db.execute("INSERT INTO login_failure (account, address, at) VALUES (?, ?, ?)",
                            [account_key(name), address, now])
        return cursor.lastrowid, 0


def forget_login_failures(db: sqlite_utils.Database, name: str | None = None) -> int:
    """Delete the failed logins of one name (a success resets its count), or all; return how many."""
    with transaction(db):
        if name is None:
            return db.execute("DELETE FROM login_failure").rowcount
        return db.execute("DELETE FROM login_failure WHERE account = ?",
                          [account_key(name)]).rowcount


def rate_limited_login(db: sqlite_utils.Database, name: str, password: str, address: str,
                       limits: LoginLimits) -> tuple[str | None, int]:
    """Log in under the rate limit: (session id, 0), (None, 0) if wrong, (None, wait ms) if refused."""
    attempt, wait = claim_login_attempt(db, name, address, limits)
    if attempt is None:
        return None, wait
    session_id = start_session(db, name, password)
    if session_id:
        forget_login_failures(db, name)
    return session_id, 0


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


def login_fields() -> tuple[str, str]:
    """Return the name and password of a login form or JSON body ("" when missing)."""
    data = request.get_json(silent=True) if request.is_json else request.form
    data = data if isinstance(data, dict) else {}
    name, password = data.get("name"), data.get("password")
    return (name.strip() if isinstance(name, str) else "",
            password if isinstance(password, str) else "")


def client_address() -> str:
    """Return the client's IP address, as the rate limit counts it."""
    # A forwarded address (central behind a trusted proxy) is text from a header.
    return (request.remote_addr or "unknown")[:100].replace("\x00", "")


def login_failed(code: str, message: str, status: int, wait: int = 0) -> Response:
    """Answer a refused login: the form again with the message, or JSON for JSON."""
    if wants_json():
        extra = {"retry_after": math.ceil(wait / 1000)} if wait else {}
        response = jsonify(error=code, message=str(message), **extra)
    else:
        response = current_app.make_response(render_template("login.html", error=message))
    response.status_code = status
    if wait:
        response.headers["Retry-After"] = str(math.ceil(wait / 1000))
    return response


def too_many_logins(wait: int) -> Response:
    """Answer 429: this name or address failed too often; say when to try again."""
    minutes = math.ceil(wait / 60_000) * 60_000
    return login_failed("too_many_attempts", _(
        "Too many failed logins for this name or from this address. Try again in %(wait)s.",
        wait=age(minutes)), 429, wait)


def login_view(attempt: Callable[[str, str, str], tuple[str | None, int]], after_login: str):
    """Show the login form (GET) or log in with attempt(name, password, address) (POST).

    attempt is the app's rate_limited_login on its own database (laptop or central).
    """
    if request.method != "POST":
        return render_template("login.html")
    name, password = login_fields()
    session_id, wait = attempt(name, password, client_address())
    if wait:
        return too_many_logins(wait)
    if not session_id:
        return login_failed("wrong_login", _("Wrong name or password."), 401)
    session.clear()
    session["sid"] = session_id
    if wants_json():
        return jsonify(name=name)
    return redirect(safe_next(request.args.get("next"), after_login))


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form and start a session (rate-limited per name and address)."""
    limits = LoginLimits.from_config(current_app.config)
    return login_view(lambda name, password, address: rate_limited_login(
        get_db(), name, password, address, limits), "laps.index")


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


@click.command("unlock-logins")
@click.argument("name", required=False)
@with_appcontext
def unlock_logins_command(name: str | None) -> None:
    """Forget failed logins: of NAME, or of every name and address without NAME."""
    db = connect(current_app.config["DATABASE"])
    try:
        count = forget_login_failures(db, name)
    finally:
        db.close()
    click.echo(f"Forgot {count} failed login(s){f' of {name!r}' if name else ''}.")


def init_app(app) -> None:
    """Register the blueprint and CLI commands."""
    app.register_blueprint(bp)
    app.add_template_global(role_label)
    app.cli.add_command(create_user_command)
    app.cli.add_command(unlock_logins_command)
