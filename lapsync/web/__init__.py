"""The web parts both apps share: config loading, secret key, size limit message, templates
and CSS."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Blueprint, Flask
from flask_babel import gettext as _

# Shared templates live under web/ (web/layout.html, web/login.html, ...) so that they
# never shadow an app's own; each app's base.html extends web/layout.html.
bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/web-static")
# Defaults both apps share. Login rate limit (the app's auth.py, table login_failure):
# at most this many failed logins per name, and per client address, within the
# window; then 429 until the oldest of them leaves the window.
SHARED_DEFAULTS = {
    "LOGIN_WINDOW_SECONDS": 15 * 60,
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": 5,
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "WTF_CSRF_TIME_LIMIT": None,  # the session's own 8 h expiry limits the token
}


def init_app(app: Flask) -> None:
    """Register the shared templates and CSS (served under /web-static/)."""
    app.register_blueprint(bp)


def load_config(app: Flask, defaults: dict, test_config: dict | None,
                env_prefixes: tuple[str, ...] = ("FLASK",)) -> None:
    """Layer the config: shared and app defaults, instance config.py, environment, test dict."""
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


def load_secret_key(instance_path: str) -> str:
    """Return the app's persistent secret key, creating it on first start.

    Written to a temporary file and linked into place, so that processes starting
    together (gunicorn workers) all end up with the one key that won.
    """
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        tmp = path.with_name(f"secret_key.{os.getpid()}.tmp")
        tmp.write_text(secrets.token_hex(32), encoding="utf-8")
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text(encoding="utf-8").strip()


def too_large_message(limit: int) -> str:
    """Say that a request was larger than the limit (bytes), in the page's language."""
    return _("The request is too large: this server accepts at most %(size)s MB.",
             size=max(1, limit // 1_000_000))
