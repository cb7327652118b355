"""lapsync track-side app: the lap counter that runs on every laptop."""
from __future__ import annotations

import os

from flask import Flask

from lapsync import errors, hlc, i18n, logs, web
from lapsync.web import load_config

from . import (
    auth,
    backup,
    bigscreen,
    client,
    clock,
    db,
    lappost,
    laps,
    restore,
    runners,
    scheduler,
    serve,
    sessions,
)
from .csrf import KeptCSRFProtect

csrf = KeptCSRFProtect()


def create_app(test_config: dict | None = None) -> Flask:
    """Create the laptop app: defaults, instance config, environment, test dict."""
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    load_config(app, dict(
        DATABASE=os.path.join(app.instance_path, "lapsync.sqlite"),
        MIN_LAP_SECONDS=60,
        # Body limits: lapsync.web's SHARED_DEFAULTS (1 MiB; a roster upload 5 MiB).
        CENTRAL_URL=None,          # set by `flask --app app connect URL TOKEN`
        CENTRAL_TOKEN=None,
        SYNC_ENABLED=True,         # background sync (never under tests)
        SYNC_INTERVAL=5,           # seconds between background syncs
        # A pulled stamp further ahead of this laptop's and central's clocks is set aside.
        MAX_CLOCK_AHEAD_S=hlc.MAX_AHEAD_S,
    ), test_config, ("FLASK", "LAPSYNC"))
    logs.init_app(app, "laptop")
    csrf.init_app(app)

    sessions.init_app(app)
    i18n.init_app(app)
    web.init_app(app)
    db.init_app(app)
    database = db.connect(app.config["DATABASE"])
    db.init_schema(database)
    clock.recover_unusable(database, round(float(app.config["MAX_CLOCK_AHEAD_S"]) * 1000))
    database.close()
    errors.init_app(app)
    auth.init_app(app)
    laps.init_app(app)
    bigscreen.init_app(app)
    runners.init_app(app)
    client.init_app(app)
    scheduler.init_app(app)
    backup.init_app(app)
    restore.init_app(app)
    serve.init_app(app)
    lappost.init_app(app)
    return app
