"""The auth core both apps share: roles, passwords, sessions, the login rate limit, login views.

Each app keeps its own database access: the rate limit's failures sit behind
FailureStore, implemented on SQLite by the laptop and on PostgreSQL by central.
"""
from __future__ import annotations

import functools
import logging
import math
import re
import secrets
import shlex
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import click
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import (
    Blueprint,
    Response,
    current_app,
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
from lapsync.names import clean_name
from lapsync.protocol import CONTROL_CHARS, MAX_USER_NAME
from lapsync.text import age

ROLES = ("admin", "teacher", "viewer")
SESSION_MS = 8 * 3600 * 1000
CLOCK_SLACK_MS = 60_000  # failures stamped further ahead than this: the clock went back
MAX_ACCOUNT_KEY = 100  # longer names cannot be users (MAX_USER_NAME); keeps the table small
MAX_DOUBLINGS = 20  # a login delay doubles at most this often (60 s * 2**20 exceeds any window)
_hasher = PasswordHasher()  # argon2-cffi's defaults: RFC 9106's low-memory choice
_dummy_hash: list[str] = []  # made on first use: hashing is slow on purpose
log = logging.getLogger(__name__)


# The set-password command's option in both apps: asked twice when left out, never echoed.
NEW_PASSWORD = click.option(
    "--password", prompt="New password", hide_input=True, confirmation_prompt=True,
    help="At least 8 characters (asked for twice when left out, or taken from "
         "FLASK_SET_PASSWORD_PASSWORD).")


def role_label(role: str) -> str:
    """Name a role in the page's language (the stored role stays admin/teacher/viewer)."""
    labels = {"admin": _("admin"), "teacher": _("teacher"), "viewer": _("viewer")}
    return labels.get(role, role)


def use_hash_parameters(time_cost: int, memory_cost: int, parallelism: int) -> None:
    """Hash new passwords with these argon2 parameters (a hash keeps its own for checks)."""
    global _hasher
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    _dummy_hash.clear()


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


def hash_parameters() -> str:
    """Name the argon2 parameters this app hashes with, as a hash spells them."""
    return (f"argon2id, m={_hasher.memory_cost}, t={_hasher.time_cost}, "
            f"p={_hasher.parallelism}")


def has_own_parameters(password_hash: str) -> bool:
    """Tell whether a hash is argon2id with exactly the parameters this app hashes with."""
    # A hash carries its own cost: one asking for 4 GiB and 16 passes would make every
    # login of that name (and every guess) that slow. Only the app's own cost is taken.
    h = _hasher
    pattern = (rf"\$argon2id\$v=19\$m={h.memory_cost},t={h.time_cost},p={h.parallelism}"
               rf"\$[A-Za-z0-9+/]{{{math.ceil(h.salt_len * 4 / 3)}}}"
               rf"\$[A-Za-z0-9+/]{{{math.ceil(h.hash_len * 4 / 3)}}}")
    return isinstance(password_hash, str) and re.fullmatch(pattern, password_hash) is not None


def check_password(password_hash: str, password: str) -> bool:
    """Tell whether the password matches the stored hash."""
    try:
        return _hasher.verify(password_hash, password)
    except VerificationError:
        return False
    except InvalidHashError:  # no hash (an admin's, withheld): as slow as a wrong password
        return check_unknown_user(password)


def check_unknown_user(password: str) -> bool:
    """Spend the time of a password check for a name that is no user; return False."""
    # Answering an unknown name faster than a wrong password tells a guesser which names exist.
    if not _dummy_hash:
        _dummy_hash.append(hash_password(secrets.token_hex(16)))
    check_password(_dummy_hash[0], password)
    return False


def validate_user(name: str, role: str, password: str) -> tuple[str, str, str]:
    """Check a new user's fields; return them cleaned or raise InputError."""
    name = unicodedata.normalize("NFC", (name or "").strip())
    if not 1 <= len(name) <= MAX_USER_NAME or CONTROL_CHARS.search(name):
        raise InputError("invalid_name", _("The user name must be 1 to %(max)s characters, "
                                           "without line breaks or tabs.", max=MAX_USER_NAME))
    try:
        name = clean_name(name)
    except ValueError as exc:
        raise InputError("invalid_name", _("The user name must not contain invisible "
                                           "characters such as %(char)s.", char=exc)) from None
    if role not in ROLES:
        raise InputError("invalid_role", _("The role must be one of: %(roles)s.",
                                           roles=", ".join(ROLES)))
    return name, role, validate_password(password)


def name_taken(name: str) -> InputError:
    """Return the refusal of a new user whose name another user has already (409)."""
    return InputError("duplicate_name", _("A user called %(name)s exists already.",
                                          name=repr(name)), 409)


def taken_hint(exc: InputError, app: str, name: str) -> str:
    """Return the hint after a refused create-user whose name exists: set-password is the way."""
    if exc.code != "duplicate_name":
        return ""
    return f" To give it a new password: flask --app {app} set-password {shlex.quote(name.strip())}"


def validate_password(password: str) -> str:
    """Return a new password as given if it is 8 to 200 characters, else raise InputError."""
    if not 8 <= len(password or "") <= 200:
        raise InputError("invalid_password", _("The password must be 8 to 200 characters."))
    return password


# ---- login rate limit --------------------------------------------------------

@dataclass(frozen=True)
class LoginLimits:
    """When failed logins make the next attempt wait (0: no limit).

    per_account: failures of one name from one address before that pair must wait,
    first_delay_ms and then twice as long after each further failure (at most the
    window); per_address: failures from one address, any names, before it waits
    until the oldest leaves the window. No limit counts a name over all addresses:
    guesses from elsewhere never lock a user out.
    """

    window_ms: int
    per_account: int
    per_address: int
    first_delay_ms: int = 60_000

    @classmethod
    def from_config(cls, config: dict) -> "LoginLimits":
        """Read the LOGIN_* settings (window, failures per account and address, first delay)."""
        return cls(int(config["LOGIN_WINDOW_SECONDS"]) * 1000,
                   int(config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]),
                   int(config["LOGIN_MAX_FAILURES_PER_ADDRESS"]),
                   int(config.get("LOGIN_FIRST_DELAY_SECONDS", 60)) * 1000)


class FailureStore(Protocol):
    """Where an app keeps its failed logins (table login_failure), inside its own transaction."""

    def drop_failures(self, since: int, until: int) -> None:
        """Delete the failures stamped at or before since, or after until."""

    def recent_failures(self, address: str, account: str | None, since: int,
                        limit: int) -> list[int]:
        """Return the times of up to limit failures after since from address (of account
        if given), newest first."""

    def record_failure(self, account: str, address: str, at: int) -> int:
        """Store a failure; return its id."""

    def forget(self, account: str | None, address: str | None = None) -> int:
        """Delete the failures of one account (from one address if given), or all; say how many."""


class SqlFailures:
    """A FailureStore on table login_failure of either app's database.

    run(sql, params) executes one statement in the caller's transaction and returns its
    rows as tuples (none for a statement without rows); mark is the driver's placeholder.
    """

    def __init__(self, run: Callable[[str, list], list[tuple]], mark: str = "?") -> None:
        """Work through run, writing each placeholder as mark."""
        self.run, self.mark = run, mark

    def _run(self, statement: str, params: list) -> list[tuple]:
        """Run a statement written with ? placeholders."""
        return self.run(statement.replace("?", self.mark), params)

    def drop_failures(self, since: int, until: int) -> None:
        """Delete the failures stamped at or before since, or after until."""
        self._run("DELETE FROM login_failure WHERE at <= ? OR at > ?", [since, until])

    def recent_failures(self, address: str, account: str | None, since: int,
                        limit: int) -> list[int]:
        """Return the times of up to limit failures after since from address (of account
        if given), newest first."""
        of_account, params = ("", []) if account is None else (" AND account = ?", [account])
        rows = self._run(f"SELECT at FROM login_failure WHERE address = ?{of_account} AND at > ? "
                         "ORDER BY at DESC LIMIT ?", [address, *params, since, limit])
        return [row[0] for row in rows]

    def record_failure(self, account: str, address: str, at: int) -> int:
        """Store a failure; return its id."""
        return self._run("INSERT INTO login_failure (account, address, at) VALUES (?, ?, ?) "
                         "RETURNING id", [account, address, at])[0][0]

    def forget(self, account: str | None, address: str | None = None) -> int:
        """Delete the failures of one account (from one address if given), or all; say how many."""
        where, params = "", []
        if account is not None:
            where, params = " WHERE account = ?", [account]
            if address is not None:
                where, params = where + " AND address = ?", [account, address]
        return len(self._run(f"DELETE FROM login_failure{where} RETURNING id", params))


def account_key(name: str) -> str:
    """Return the name a login counts against (no user name is longer)."""
    return name[:MAX_ACCOUNT_KEY]


def wait_ms(newest_first: list[int], limit: int, window_ms: int, now: int) -> int:
    """Return how long until fewer than `limit` of these failures lie in the window (0: now)."""
    # newest_first: the failures younger than the window; only the first `limit` matter.
    if limit <= 0 or len(newest_first) < limit:
        return 0
    return max(1, newest_first[limit - 1] + window_ms - now)


def delay_ms(failures: int, limits: LoginLimits) -> int:
    """Return the pause one name and address owe after this many failures (doubling, capped)."""
    if limits.per_account <= 0 or failures < limits.per_account:
        return 0
    doublings = min(failures - limits.per_account, MAX_DOUBLINGS)
    return min(limits.first_delay_ms * 2 ** doublings, limits.window_ms)


def pair_wait_ms(newest_first: list[int], limits: LoginLimits, now: int) -> int:
    """Return how long one name from one address must still wait after its failures (0: now)."""
    delay = delay_ms(len(newest_first), limits)
    return max(0, newest_first[0] + delay - now) if delay else 0


def claim_attempt(store: FailureStore, name: str, address: str, limits: LoginLimits,
                  now: int) -> tuple[int | None, int]:
    """Record an attempt as failed, or refuse it: (attempt id, 0) or (None, ms to wait)."""
    since = now - limits.window_ms
    # Expired, or stamped well ahead of a clock that was set back since (they would
    # lock the name for the window plus the jump).
    store.drop_failures(since, now + CLOCK_SLACK_MS)
    account = account_key(name)
    pair = store.recent_failures(address, account, since,
                                 max(limits.per_account, 0) + MAX_DOUBLINGS + 1)
    by_address = store.recent_failures(address, None, since, max(limits.per_address, 1))
    wait = max(pair_wait_ms(pair, limits, now),
               wait_ms(by_address, limits.per_address, limits.window_ms, now))
    if wait:
        return None, wait
    return store.record_failure(account, address, now), 0


def forget_failures(store: FailureStore, name: str | None, address: str | None = None) -> int:
    """Delete the failed logins of one name (from one address if given), or all; say how many."""
    return store.forget(None if name is None else account_key(name), address)


def limited_login(claim: Callable[[], tuple[int | None, int]], start: Callable[[], str | None],
                  forget: Callable[[], int]) -> tuple[str | None, int]:
    """Log in under the rate limit: (session id, 0), (None, 0) if wrong, (None, wait ms) if refused."""
    attempt, wait = claim()
    if attempt is None:
        return None, wait
    session_id = start()
    if session_id:
        forget()  # a success resets the count of this name from this address
    return session_id, 0


# ---- views both apps share (each has g.user and an auth.login endpoint) -----

def role_required(*roles: str):
    """Send anonymous users to login; answer 403 to users without one of the roles."""
    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if g.user is None:
                if request.method == "GET" and not wants_json():  # a page's poll gets a 401
                    return redirect(url_for("auth.login", next=request.full_path))
                return error_response("login_required", _("Please log in first."), 401)
            if roles and g.user["role"] not in roles:
                return error_response("forbidden", _("Your role may not do this."), 403)
            return view(*args, **kwargs)
        return wrapped
    return decorator


def is_local_path(target: str | None) -> bool:
    """Tell whether target is a path on this site that no browser reads as another site."""
    # Browsers drop tabs and line breaks anywhere in a URL and treat "\\" as "/":
    # "/\t/evil.example" becomes "//evil.example". Refusing any whitespace, control
    # character or backslash leaves nothing to drop, so the check sees what browsers see.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def safe_next(target: str | None, fallback: str = "laps.index") -> str:
    """Return a local redirect target, never another site (else the fallback endpoint)."""
    return target if is_local_path(target) else url_for(fallback)


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
    """Show the login form (GET) or log in with attempt(name, password, address) (POST)."""
    # attempt is the app's rate_limited_login on its own database (laptop or central).
    if request.method != "POST":
        return render_template("login.html")
    name, password = login_fields()
    session_id, wait = attempt(name, password, client_address())
    if wait:
        log.warning("login as %r from %s refused: too many failed logins", name[:MAX_USER_NAME],
                    client_address())
        return too_many_logins(wait)
    if not session_id:
        log.warning("failed login as %r from %s", name[:MAX_USER_NAME], client_address())
        return login_failed("wrong_login", _("Wrong name or password."), 401)
    session.clear()
    session["sid"] = session_id
    if wants_json():
        return jsonify(name=name)
    return redirect(safe_next(request.args.get("next"), after_login))


def add_session_views(bp: Blueprint, attempt: Callable[[str, str, str, LoginLimits],
                                                       tuple[str | None, int]],
                      end: Callable[[str], None], after_login: str) -> None:
    """Add /login and /logout to an app's auth blueprint.

    attempt(name, password, address, limits) is the app's rate-limited login on its own
    database; end(session id) deletes a session there.
    """
    def login():
        """Show the login form and start a session (rate-limited per name and address)."""
        limits = LoginLimits.from_config(current_app.config)
        return login_view(lambda name, password, address: attempt(name, password, address,
                                                                  limits), after_login)

    def logout():
        """End the session."""
        if "sid" in session:
            end(session["sid"])
        session.clear()
        return redirect(url_for("auth.login"))

    bp.add_url_rule("/login", view_func=login, methods=["GET", "POST"])
    bp.add_url_rule("/logout", view_func=logout, methods=["POST"])


def unlock_logins_command(forget: Callable[[str | None], int]) -> click.Command:
    """Return the unlock-logins command; forget(name or None) deletes failures, returns how many."""
    @click.command("unlock-logins")
    @click.argument("name", required=False)
    @with_appcontext
    def command(name: str | None) -> None:
        """Forget failed logins: of NAME, or of every name and address without NAME."""
        count = forget(name)
        click.echo(f"Forgot {count} failed login(s){f' of {name!r}' if name else ''}.")
    return command
