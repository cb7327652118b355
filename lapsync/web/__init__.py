"""The web parts both apps share: config loading, secret key, templates and CSS, request
hardening (guard.py: security headers, body limits)."""
from __future__ import annotations

import contextlib
import os
import stat
import secrets
from pathlib import Path

from flask import Blueprint, Flask

from . import guard

# Shared templates live under web/ (web/layout.html, web/login.html, ...) so that they
# never shadow an app's own; each app's base.html extends web/layout.html.
bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/web-static")
# Defaults both apps share. Login rate limit (authcore.LoginLimits, table login_failure):
# after this many failures of one name from one client address within the window, that
# name from that address waits the first delay, then twice as long after each further
# failure (at most the window); after this many failures from one address, of any
# names, the address waits until the oldest leaves the window (429 meanwhile).
SHARED_DEFAULTS = {
    "LOGIN_WINDOW_SECONDS": 15 * 60,
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": 5,
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
    "LOGIN_FIRST_DELAY_SECONDS": 60,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "WTF_CSRF_TIME_LIMIT": None,  # the session's own 8 h expiry limits the token
    # Body limits (guard.body_limit), refused with 413 before the body is read: every
    # request but uploads and pushes; a text field of a multipart form; a file upload
    # (multipart/form-data: a 4 MB roster CSV, roster_csv.MAX_BYTES, and the form around
    # it). A push has the protocol's own limit (MAX_BATCH_BYTES).
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "MAX_FORM_MEMORY_SIZE": 200_000,
    "MAX_UPLOAD_BYTES": 5 * 1024 * 1024,
}
OWNER_ONLY_FOLDER = 0o700  # instance folders: keys, tokens, databases


def init_app(app: Flask) -> None:
    """Register the shared templates, CSS and JS (under /web-static/), headers and body limits."""
    app.register_blueprint(bp)
    guard.init_app(app)


def load_config(app: Flask, defaults: dict, test_config: dict | None,
                env_prefixes: tuple[str, ...] = ("FLASK",)) -> None:
    """Layer the config: shared and app defaults, instance config.py, environment, test dict."""
    make_private_folder(app.instance_path)
    app.config.from_mapping(SHARED_DEFAULTS)
    app.config.from_mapping(defaults)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        for prefix in env_prefixes:
            app.config.from_prefixed_env(prefix)
    else:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        # One file shared by all workers (gunicorn), so every worker reads the same cookies.
        app.config["SECRET_KEY"] = load_secret_key(app.instance_path)


def make_private_folder(path: str | Path) -> None:
    """Create a folder readable by its owner only, or make an existing one so.

    Others keep the search bit an existing folder has (they still cannot list it): run
    as root, the embedded PostgreSQL runs as a system user of its own that reaches its
    data folder inside through it, and stops at its next checkpoint without it.
    """
    os.makedirs(path, mode=OWNER_ONLY_FOLDER, exist_ok=True)
    # makedirs leaves an existing folder's mode alone. One the app does not own (set
    # up by an operator for a service account) keeps the mode the operator chose.
    with contextlib.suppress(PermissionError):
        searchable = stat.S_IMODE(os.stat(path).st_mode) & (stat.S_IXGRP | stat.S_IXOTH)
        os.chmod(path, OWNER_ONLY_FOLDER | searchable)


def write_private_file(path: Path, text: str) -> None:
    """Write a new file that only its owner can read, from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def load_secret_key(instance_path: str) -> str:
    """Return the app's persistent secret key, creating it on first start.

    Written to a temporary file and linked into place, so that processes starting
    together (gunicorn workers) all end up with the one key that won.
    """
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        tmp = path.with_name(f"secret_key.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)  # a leftover of a crashed start
        write_private_file(tmp, secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text(encoding="utf-8").strip()

