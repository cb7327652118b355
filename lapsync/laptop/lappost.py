"""POST /laps as laps.js sends it, answered without Flask's request machinery.

A helper's lap is the request that comes many times a second, and Flask's request
context, hooks, form parser and response object cost about as much CPU as the lap's
SQL. This WSGI layer answers one plain case itself: a urlencoded post asking for JSON
alone, whose session cookie, CSRF token, user and role pass the checks the Flask path
runs (the same functions: sessions, csrf, auth.session_user, laps.lap_work), and whose
lap is recorded or found recorded under its client key. Everything else goes to the
Flask app as it came: another body or Accept header, a check that does not pass, and
every refusal (too soon, an unknown number, a choice to make; its savepoint was rolled
back, nothing was written), which the Flask path then decides and words itself.
"""
from __future__ import annotations

import io
from functools import partial
from urllib.parse import parse_qsl

import sqlite_utils
from flask import Flask
from werkzeug.datastructures import EnvironHeaders
from werkzeug.http import HTTP_STATUS_CODES, parse_cookie, parse_options_header

from lapsync.web.guard import SECURITY_HEADERS

from . import logins, scheduler
from .auth import RECORDING_ROLES, session_user
from .csrf import checks_by_default, signed_token
from .laps import GROUP_COMMIT, lap_work

PATH = "/laps"
FORM = "application/x-www-form-urlencoded"
MAX_BODY = 4096  # a lap's form is ~150 bytes; a larger one goes to Flask and its limits
STATUS = {code: f"{code} {HTTP_STATUS_CODES[code].upper()}" for code in (200, 201)}


class LapPost:
    """The app's WSGI callable, answering plain lap posts itself (see the module's notes)."""

    def __init__(self, app: Flask, wsgi_app) -> None:
        """Wrap the Flask app's own wsgi_app, which answers everything else."""
        self.app, self.wsgi_app = app, wsgi_app
        # What Flask's answer carries: the security headers, and Vary for the session read.
        self.headers = [*SECURITY_HEADERS.items(), ("Vary", "Cookie")]

    def __call__(self, environ: dict, start_response):
        """Answer a plain lap post, or hand the request to Flask."""
        length = plain_length(environ)
        if not length or self.app.debug or self.app.json.compact is False:  # indented JSON
            return self.wsgi_app(environ, start_response)
        body = environ["wsgi.input"].read(length)
        answer = self.answer(environ, body)
        if answer is None:
            environ["wsgi.input"] = io.BytesIO(body)  # Flask reads the same body
            return self.wsgi_app(environ, start_response)
        status, payload = answer
        start_response(STATUS[status], [("Content-Type", self.app.json.mimetype),
                                        ("Content-Length", str(len(payload))), *self.headers])
        return [payload]

    def answer(self, environ: dict, body: bytes) -> tuple[int, bytes] | None:
        """Record the lap; return (status, JSON body), or None when Flask is to answer."""
        app = self.app
        try:
            form = first_values(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return None
        sessions = app.session_interface
        session = sessions.cookie_data(app, parse_cookie(environ).get(sessions.get_cookie_name(app)))
        if session is None or not session.get("sid"):
            return None
        if checks_by_default(app.config) and not app.extensions["csrf"].kept_pass(
                app, False, signed_token(app.config, form, EnvironHeaders(environ)), session):
            return None
        work = partial(record_for, session_id=session["sid"], form=form, config=app.config)
        try:
            result = app.extensions[GROUP_COMMIT].run(work)
        except Exception:  # noqa: BLE001 - nothing was written: Flask decides and answers
            return None
        if not result["duplicate"]:
            scheduler.nudge(app)  # push soon; never blocks the helper
        payload = app.json.dumps(result, separators=(",", ":")) + "\n"
        return (200 if result["duplicate"] else 201), payload.encode()


class NotHere(Exception):
    """The session's user may not record laps (or has gone): Flask answers 401 or 403."""


def record_for(db: sqlite_utils.Database, session_id: str, form, config) -> dict:
    """Check the session's user and role, then record the lap (the group commit's work).

    On the writer's connection, inside the lap's transaction: a pool connection read
    after each commit of the writer finds its page cache dropped (WAL) and reads the
    pages again, which cost more than the lap's own reads. The batch checked the clocks
    first, so the login read here is final; the lap keeps it alive (a write only every
    few minutes: logins.RENEW_MS), and a lap refused takes that write back with it.
    """
    user = session_user(db, session_id, locked=True)
    if user is None or user["role"] not in RECORDING_ROLES:
        raise NotHere()
    logins.renew(db, session_id, user, locked=True)
    return lap_work(db, form, user["id"], config)(db)


def first_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Return each field's first value, as werkzeug's MultiDict.get does (without its KeyError)."""
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def plain_length(environ: dict) -> int:
    """Return the body length of a plain lap post (JSON asked for, urlencoded, over HTTP), else 0."""
    if (environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("HTTP_ACCEPT") != "application/json"
            or environ.get("wsgi.url_scheme") != "http"):
        return 0
    mimetype, options = parse_options_header(environ.get("CONTENT_TYPE"))
    if mimetype != FORM or options.get("charset", "utf-8").lower() != "utf-8":
        return 0
    length = environ.get("CONTENT_LENGTH") or ""
    return int(length) if length.isdigit() and int(length) <= MAX_BODY else 0


def init_app(app: Flask) -> None:
    """Answer plain lap posts ahead of Flask's request machinery."""
    app.wsgi_app = LapPost(app, app.wsgi_app)
