"""Event settings decided at central (minimum lap time, metres per lap, ...).

Each saved value gets a new change id, so every laptop pulls it (sync/pull.py).
The settings page shows them to every user; an admin edits them there. The same page
and set-setting handle the bank and mail settings (sync/bank_settings.py),
which no laptop ever pulls.
"""
from __future__ import annotations

import json
import re
import sys
from typing import Any

import click
import psycopg
from flask import (
    Blueprint,
    Flask,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.cli import with_appcontext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from psycopg.types.json import Jsonb

from lapsync.errors import InputError, wants_json
from lapsync.protocol import SETTINGS, validate_setting

from .auth import admin_required, login_required
from .bank_settings import (
    BANK_MAIL_SETTINGS,
    SECRETS,
    bank_mail_settings,
    parse_bank_mail_form,
    save_bank_mail,
    shown_settings,
)
from .db import connection, get_db, write_transaction
from .decisions import log_decision
from .setting_labels import SETTING_LABELS
from .derived import rebuild
from .money_settings import MONEY_SETTINGS, money_settings, save_money_settings

bp = Blueprint("settings", __name__, url_prefix="/settings")
# What the form says when a field is refused (validate_setting's text names the key).
FIELD_ERRORS = {
    "event_name": _l("The event name must be 1 to 100 characters on one line."),
    "event_date": _l("The date must be a real date, written like 2025-06-27."),
    "min_lap_seconds": _l("The minimum lap time must be a whole number of seconds "
                          "from 0 to 3600."),
    "metres_per_lap": _l("Metres per lap must be a number above 0 and at most 100000."),
}
DECIMAL = re.compile(r"\d{1,6}([.,]\d{1,3})?")


def set_setting(conn: psycopg.Connection, key: str, value: Any) -> Any:
    """Validate and store one setting with a new change id; return the stored value."""
    value = validate_setting(key, value)
    with write_transaction(conn):
        conn.execute("INSERT INTO setting (key, value, change_id) "
                     "VALUES (%s, %s, nextval('change_id_seq')) ON CONFLICT (key) "
                     "DO UPDATE SET value = excluded.value, change_id = excluded.change_id",
                     [key, Jsonb(value)])
        if key == "min_lap_seconds":
            rebuild(conn, only_pairs=True)  # the review queue's pairs depend on it
    return value


def save_settings(conn: psycopg.Connection, values: dict, user_id: str | None = None) -> dict:
    """Validate all values, then store the changed ones in one transaction; return them.

    Unchanged values keep their change id (laptops have them already). With a
    user id the change is logged as a decision (sync/decisions.py).
    """
    cleaned = {key: validate_setting(key, value) for key, value in values.items()}
    with write_transaction(conn):
        stored = get_settings(conn)
        changed = {key: value for key, value in cleaned.items()
                   if key not in stored or stored[key] != value
                   or type(stored[key]) is not type(value)}
        for key, value in changed.items():
            conn.execute("INSERT INTO setting (key, value, change_id) "
                         "VALUES (%s, %s, nextval('change_id_seq')) ON CONFLICT (key) "
                         "DO UPDATE SET value = excluded.value, change_id = excluded.change_id",
                         [key, Jsonb(value)])
        if "min_lap_seconds" in changed:
            rebuild(conn, only_pairs=True)  # the review queue's pairs depend on it
        if changed and user_id is not None:
            log_decision(conn, user_id, "settings", sorted(changed),
                         {key: {"from": stored.get(key), "to": value}
                          for key, value in changed.items()})
    return changed


def get_settings(conn: psycopg.Connection) -> dict:
    """Return every stored setting as {key: value}."""
    return {row["key"]: row["value"] for row in conn.execute("SELECT key, value FROM setting")}


def parse_value(key: str, text: str) -> Any:
    """Read a command-line value: numbers as JSON (60, 400.5), names and dates as text."""
    if key in ("event_name", "event_date"):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


@click.command("set-setting")
@with_appcontext
@click.argument("key", type=click.Choice(SETTINGS + BANK_MAIL_SETTINGS + MONEY_SETTINGS))
@click.argument("value")
def set_setting_command(key: str, value: str) -> None:
    """Set a setting (KEY VALUE); laptops receive event settings at their next pull.

    Bank and mail settings (iban, bic, account_holder, smtp_*) and the money settings
    (currency, certificate_raised: true or false) stay at central. For
    smtp_password give - as VALUE to read it from standard input (not the shell history).
    """
    with connection() as conn:
        try:
            if key in BANK_MAIL_SETTINGS:
                if key in SECRETS and value == "-":
                    value = sys.stdin.readline().rstrip("\r\n")
                save_bank_mail(conn, {key: value})
                stored = "(set)" if key in SECRETS else bank_mail_settings(conn)[key]
            elif key in MONEY_SETTINGS:
                save_money_settings(conn, {key: value})
                stored = money_settings(conn, cached=False)[key]
            else:
                stored = set_setting(conn, key, parse_value(key, value))
        except InputError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"{key} = {json.dumps(stored)}" if key not in SECRETS else f"{key} {stored}")


def parse_form(form: dict, stored: dict) -> tuple[dict, dict]:
    """Read the settings form: (values to save, errors by field); empty new fields are skipped."""
    values, errors = {}, {}
    for key in SETTINGS:
        text = str(form.get(key, "")).strip()
        if not text and key not in stored:
            continue
        value: Any = text
        if key == "min_lap_seconds":
            value = int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else text
        elif key == "metres_per_lap" and text.isascii() and DECIMAL.fullmatch(text):
            number = float(text.replace(",", "."))
            value = int(number) if number.is_integer() else number
        try:
            values[key] = validate_setting(key, value)
        except InputError:
            errors[key] = str(FIELD_ERRORS[key])
    return values, errors


def render_page(status: int = 200, **context):
    """Render the settings page with the stored values (or what was typed)."""
    conn = get_db()
    stored, central = get_settings(conn), shown_settings(conn)
    return render_template("settings.html", stored=stored, central=central,
                           typed=context.pop("typed", stored),
                           central_typed=context.pop("central_typed", central),
                           **context), status


@bp.get("/")
@login_required
def index():
    """Show the event settings (a form for admins)."""
    return render_page()


@bp.post("/")
@admin_required
def save():
    """Save the event settings: all of them or, with a bad field, none."""
    conn = get_db()
    values, errors = parse_form(request.form, get_settings(conn))
    if errors:
        if wants_json():
            key = next(iter(errors))
            raise InputError("invalid_setting", errors[key], 400, field=key)
        return render_page(400, errors=errors, typed=dict(request.form))
    changed = save_settings(conn, values, g.user["id"])
    flash(_("Settings saved. Laptops receive them at their next sync.") if changed
          else _("Nothing changed: the settings were saved already."))
    return redirect(url_for("settings.index"))


@bp.post("/central")
@admin_required
def save_central():
    """Save the bank and mail settings: all of them or, with a bad field, none."""
    values, remove, errors = parse_bank_mail_form(request.form)
    if errors:
        if wants_json():
            key = next(iter(errors))
            raise InputError("invalid_setting", errors[key], 400, field=key)
        typed = {k: v for k, v in request.form.items() if k not in SECRETS}
        return render_page(400, central_errors=errors, central_typed=typed)
    changed = save_bank_mail(get_db(), values, g.user["id"], remove)
    flash(_("Bank and mail settings saved. They stay at central.") if changed
          else _("Nothing changed: the settings were saved already."))
    return redirect(url_for("settings.index") + "#central")


def init_app(app: Flask) -> None:
    """Register the settings page and CLI command."""
    app.register_blueprint(bp)
    app.jinja_env.globals["setting_labels"] = SETTING_LABELS
    app.cli.add_command(set_setting_command)
