"""lapsync central: the sync server every laptop pushes to and pulls from (PostgreSQL).

Development:  flask --app sync init-db && flask --app sync run
Production:   gunicorn -w 4 -b 0.0.0.0:8000 'sync:create_app()'
(each gunicorn worker opens its own connection pool on first use; see sync/db.py
and docs/CENTRAL.md).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import psycopg
from flask import Flask, Response, g, has_request_context, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFProtect
from psycopg_pool import PoolTimeout
from werkzeug.middleware.proxy_fix import ProxyFix

from lapsync import errors, hlc, i18n, web
from lapsync.web import load_config

from . import (
    api,
    auth,
    backup,
    charts,
    class_names,
    class_rename,
    clock,
    clock_jumps,
    connect_code,
    db,
    device_commands,
    devices,
    events,
    health,
    live,
    result_sheets,
    results,
    review,
    roster,
    settings,
    sponsors,
    standings,
    user_views,
    users,
)

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)
csrf = CSRFProtect()
# The admin menu, in order; entries whose endpoint does not exist yet are left out.
NAV = [("standings.index", _l("Standings")), ("live.index", _l("Live")),
       ("review.index", _l("Review")), ("roster.index", _l("Runners")),
       ("results.index", _l("Results")), ("sponsors.index", _l("Sponsors")),
       ("charts.index", _l("Charts")),
       ("devices.index", _l("Devices")), ("users.index", _l("Users")),
       ("logs.index", _l("Logs")), ("settings.index", _l("Settings"))]
ADMIN_NAV = {"users.index", "logs.index"}  # shown to admins only (the pages answer 403 to others)
FAILED = "Central failed unexpectedly; retry later."


def nul_refused() -> Response:
    """Answer 400: text with a NUL character, which PostgreSQL text cannot hold."""
    return errors.handled_error("invalid_text", _("The request contains a NUL character, "
                                                  "which no text here may hold."), 400)


def register_errors(app: Flask) -> None:
    """Answer every error alike: bad input 4xx, database trouble 503, never a bare 500 page."""
    # The shared handlers; the API and /healthz answer JSON whatever the client accepts,
    # a 401 there names the Bearer scheme, and stock HTTP errors keep werkzeug's text.
    errors.init_app(app, json_paths=("/api/", "/healthz"), challenge='Bearer realm="lapsync"',
                    translate_stock=False)

    @app.errorhandler(psycopg.DataError)
    def data_error(exc: psycopg.DataError) -> Response:
        """Text with NUL bound to a query: 400 (was a 500); any other data error is a bug.

        PostgreSQL text cannot hold NUL, and psycopg refuses it before sending the
        statement, so nothing was written (a transaction around it rolls back). One
        handler covers every search, filter, id in a URL and login name.
        """
        if "NUL" in str(exc):
            return nul_refused()
        log.exception("unexpected data error")
        return errors.handled_error("internal_error", FAILED, 500)

    @app.errorhandler(psycopg.OperationalError)
    @app.errorhandler(PoolTimeout)
    @app.errorhandler(db.DatabaseUnreachable)
    def database_unavailable(exc: Exception) -> Response:
        """The database is down or busy: 503, so laptops retry."""
        log.warning("database unavailable: %s", exc)
        response = errors.handled_error("unavailable", "Central's database is busy or "
                                        "unreachable; retry shortly.", 503)
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        """A bug: logged, answered as JSON."""
        log.exception("unexpected error")
        return errors.handled_error("internal_error", FAILED, 500)


def create_app(test_config: dict | None = None) -> Flask:
    """Create central: defaults, instance/central/config.py, FLASK_* environment, test dict."""
    app = Flask(__name__, instance_path=str(ROOT / "instance" / "central"),
                instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    load_config(app, dict(
        DATABASE_URL=os.environ.get("DATABASE_URL") or None,
        PGDATA=os.path.join(app.instance_path, "pgdata"),
        DB_POOL_SIZE=10,
        DB_POOL_TIMEOUT=10.0,
        # Body limits: lapsync.web's SHARED_DEFAULTS (1 MiB; uploads 5 MiB; a push its own).
        # Behind a TLS proxy (nginx, caddy) set this to the number of proxies in front,
        # so the rate limit counts the client's address (X-Forwarded-For), not the
        # proxy's, and the public scheme and host (X-Forwarded-Proto, -Host) are seen.
        # 0: the connection's address is used and forwarding headers ignored.
        TRUSTED_PROXIES=0,
        # Start-number blocks for laptops' late registrations (sync/blocks.py): each device
        # gets NUMBER_BLOCK_SIZE numbers, the first block from NUMBER_BLOCK_BASE on.
        NUMBER_BLOCK_BASE=9000,
        NUMBER_BLOCK_SIZE=100,
        # A pushed stamp further ahead of central's clock is refused (sync/clock.py).
        MAX_CLOCK_AHEAD_S=hlc.MAX_AHEAD_S,
        # Central's address as laptops reach it, put in the devices page's connect codes
        # (sync/connect_code.py); unset: the address the admin's browser uses.
        PUBLIC_URL=None,
        # Where starting the next event leaves the archive of the last (sync/events.py);
        # unset: instance/central/archives.
        ARCHIVE_DIR=None,
    ), test_config)
    csrf.init_app(app)
    i18n.init_app(app)
    web.init_app(app)
    if int(app.config["TRUSTED_PROXIES"]):
        proxies = int(app.config["TRUSTED_PROXIES"])
        # x_host: nginx passes `Host: 127.0.0.1:8000` unless told otherwise; the CSRF check
        # compares the https Referer with the host, so the public one must come through.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)

    db.init_app(app)
    backup.init_app(app)
    clock.init_app(app)
    auth.init_app(app)
    standings.init_app(app)
    live.init_app(app)
    charts.init_app(app)
    devices.init_app(app)
    connect_code.init_app(app)
    device_commands.init_app(app)
    users.init_app(app)
    user_views.init_app(app)
    settings.init_app(app)
    events.init_app(app)
    api.init_app(app)
    review.init_app(app)
    clock_jumps.init_app(app)
    roster.init_app(app)
    class_rename.init_app(app)
    class_names.init_app(app)
    results.init_app(app)
    result_sheets.init_app(app)
    sponsors.init_app(app)
    health.init_app(app)
    csrf.exempt(api.bp)  # laptops authenticate with Bearer tokens, not cookies
    register_errors(app)

    @app.context_processor
    def navigation() -> dict:
        """The admin menu: only the rooms this build has (each blueprint adds its own)."""
        admin = g.get("user") is not None and g.user["role"] == "admin"
        room = request.blueprint if has_request_context() else None
        room = "sponsors" if room in sponsors.BLUEPRINTS else room
        return {"nav": [(endpoint, label) for endpoint, label in NAV if endpoint in app.view_functions
                        and (admin or endpoint not in ADMIN_NAV)], "nav_room": room}

    @app.get("/")
    def index() -> Response:
        """Send the organiser to the standings."""
        return redirect(url_for("standings.index"))
    return app
