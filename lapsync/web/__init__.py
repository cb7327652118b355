"""The web parts both apps share: secret key, size limit message, templates and CSS."""
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


def init_app(app: Flask) -> None:
    """Register the shared templates and CSS (served under /web-static/)."""
    app.register_blueprint(bp)


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
