"""The /connect page: a laptop admin connects the laptop to central without a terminal.

It takes central's URL and a device token, or the one-line connect code from central's
devices page, checks that central answers to that token before it saves anything, then
stores both as `flask --app app connect` does (connecting.py) and syncs once.
"""
from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    request,
    url_for,
)
from flask_babel import gettext as _

from lapsync.errors import InputError
from lapsync.protocol.connect import parse_connect_code
from lapsync.web.guard import private_page

from ..auth import admin_required
from ..db import get_db
from .connecting import central_and_token, check_central, first_sync, store_central
from .status import status_for
from .transport import AUTH, TRANSIENT, SyncError, SyncResult

bp = Blueprint("connect", __name__)
SHOWN_TOKEN_CHARS = 4  # of the stored token, so an admin can tell which one it is


def read_form(form: dict) -> tuple[str, str]:
    """Return (url, token) from the connect code field, else from the URL and token fields."""
    code = form.get("code", "").strip()
    if code:
        return parse_connect_code(code)
    return central_and_token(form.get("url", ""), form.get("token", ""))


def input_message(exc: InputError) -> str:
    """Say in the page's language what is wrong with what was typed."""
    if exc.code == "invalid_code":
        return _("That is not a connect code. A connect code is one line like "
                 "lapsync:http://192.168.1.20:8000#token: copy it whole from central's "
                 "devices page.")
    if exc.code == "invalid_url":
        return _("That is not an address of central. Type it like http://192.168.1.20:8000 "
                 "or https://central.example.org (no spaces, nothing after ? or #).")
    return _("The device token is missing or not whole: copy it from central's devices page, "
             "without spaces.")


def check_message(exc: SyncError, url: str) -> str:
    """Say in the page's language why central did not take the connection."""
    if exc.kind == AUTH:
        return _("Central at %(url)s refused this device token: it is wrong or was revoked. "
                 "Register the laptop again on central's devices page and use its new token.",
                 url=url)
    if exc.kind == TRANSIENT and exc.status is None:
        return _("Central does not answer at %(url)s. Check the address, that this laptop is "
                 "on the same network as central, and that central is running.", url=url)
    if exc.kind == TRANSIENT and (exc.status >= 500 or exc.status in (408, 429)):
        return _("Central at %(url)s answered with an error: it may be busy or starting. Try "
                 "again in a minute.", url=url)
    return _("Something answers at %(url)s, but not as lapsync central. Check the address.",
             url=url)


def sync_flash(url: str, result: SyncResult) -> tuple[str, str]:
    """Say how the first sync after connecting went: (message, flash category)."""
    if result.error:
        return _("Connected to central at %(url)s, but the first sync failed (%(error)s). The "
                 "laptop keeps trying by itself.", url=url, error=result.error.message), "error"
    return _("Connected to central at %(url)s. First sync: %(pushed)s changes sent, %(pulled)s "
             "received.", url=url, pushed=result.pushed, pulled=result.pulled_total), "message"


def render_page(status: int = 200, **context):
    """Render the page with the current connection (never cached: it shows part of a token)."""
    token = current_app.config.get("CENTRAL_TOKEN") or ""
    return private_page("connect.html", status, central_url=current_app.config.get("CENTRAL_URL"),
                        token_start=token[:SHOWN_TOKEN_CHARS],
                        sync=status_for(current_app, get_db()), **context)


@bp.get("/connect")
@admin_required
def index():
    """Show the current connection to central and the form to make or change it."""
    return render_page()


@bp.post("/connect")
@admin_required
def save():
    """Check central's URL and token (or connect code), then store them and sync once."""
    typed = {"code": request.form.get("code", ""), "url": request.form.get("url", "")}
    try:
        url, token = read_form(request.form)
    except InputError as exc:
        return render_page(400, error=input_message(exc), typed=typed)
    try:
        check_central(url, token, current_app.config)
    except SyncError as exc:
        return render_page(422, error=check_message(exc, url), detail=exc.message, typed=typed)
    try:
        store_central(current_app, url, token)
    except OSError as exc:
        return render_page(503, error=_("The connection could not be saved on this laptop: "
                                        "%(error)s", error=exc), typed=typed)
    flash(*sync_flash(url, first_sync(current_app)))
    return redirect(url_for("connect.index"))
