"""lapsync track-side app: the lap counter that runs on every laptop."""
from __future__ import annotations

import os

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from lapsync import errors, i18n, web
from lapsync.web import load_secret_key

from . import auth, client, db, laps, runners, scheduler, sessions

csrf = CSRFProtect()


def create_app(test_config: dict | None = None) -> Flask:
    """Create the laptop app: defaults, instance config, environment, test dict."""
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(
        DATABASE=os.path.join(app.instance_path, "lapsync.sqlite"),
        MIN_LAP_SECONDS=60,
        # Above this a request is refused with 413 before it is read: the 4 MB of a
        # roster CSV (roster_csv.MAX_BYTES) plus room for the rest of the form.
        MAX_CONTENT_LENGTH=5 * 1024 * 1024,
        # Login rate limit (auth.py, table login_failure): at most this many failed
        # logins per name, and per client address, within the window; then 429.
        LOGIN_WINDOW_SECONDS=15 * 60,
        LOGIN_MAX_FAILURES_PER_ACCOUNT=5,
        LOGIN_MAX_FAILURES_PER_ADDRESS=20,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # the session's own 8 h expiry limits the token
        CENTRAL_URL=None,          # set by `flask --app app connect URL TOKEN`
        CENTRAL_TOKEN=None,
        SYNC_ENABLED=True,         # background sync (never under tests)
        SYNC_INTERVAL=5,           # seconds between background syncs
    )
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env()
        app.config.from_prefixed_env("LAPSYNC")
    else:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_secret_key(app.instance_path)
    csrf.init_app(app)

    sessions.init_app(app)
    i18n.init_app(app)
    web.init_app(app)
    db.init_app(app)
    database = db.connect(app.config["DATABASE"])
    db.init_schema(database)
    database.close()
    errors.init_app(app)
    auth.init_app(app)
    laps.init_app(app)
    runners.init_app(app)
    client.init_app(app)
    scheduler.init_app(app)
    return app
