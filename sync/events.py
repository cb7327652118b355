"""The event central counts for, and starting the next one (the school's run next year).

Central holds one event at a time, named by an id in meta (event_id). Starting the next
event archives the whole database first (a pg_dump under instance/central/archives/,
owner-only), then empties everything that belongs to the event: runners, laps, voids,
totals, review and clash state, the money side (pledges, payments, letters, freezes), the
sync logs and number blocks; users, devices, their tokens and the settings stay. Both
happen under the write lock, so no push lands between the archive and the wipe.

Laptops learn the new id from their next pull (every page carries it) and start the
event too (lapsync/laptop/new_event.py); a push that names the old event in its
Lapsync-Event header is refused (409 event_changed), so nothing of last year reaches
this year's counts.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path

import click
import psycopg
from flask import Blueprint, current_app, flash, g, redirect, request, url_for
from flask.cli import with_appcontext
from flask_babel import gettext as _
from psycopg.types.json import Jsonb

from lapsync.errors import InputError
from lapsync.ids import new_id
from lapsync.protocol import ProtocolError, validate_setting

from . import backup
from .auth import admin_required
from .db import connection, database_url, get_db, get_meta, set_meta, tables_transaction
from .decisions import USER_ACTIONS, log_decision
from .settings import render_page

bp = Blueprint("events", __name__, url_prefix="/settings")
log = logging.getLogger(__name__)

EVENT_KEY = "event_id"
# Everything of one event, children first (foreign keys), emptied in one statement.
EVENT_TABLES = ("kept_lap_pair", "frozen_amount", "event_freeze", "statement_line", "mail_out",
                "money_log", "payment", "pledge", "class_teacher", "close_lap_pair",
                "runner_last_lap", "lap_bucket", "total_change", "runner_total",
                "device_runner_laps", "clash", "lap_void", "lap", "rejected_change",
                "sync_failure", "clock_jump", "number_block", "runner")
# The decision log keeps what is not the event's: users, devices, settings.
KEPT_DECISIONS = (*USER_ACTIONS, "register_device", "revoke_device", "device_manage_users",
                  "device_manage_roster", "settings", "new_event")


def current_event(conn: psycopg.Connection) -> str:
    """Return the id of the event central counts for (made by migration 0010)."""
    return get_meta(conn, EVENT_KEY) or ""


def check_event(conn: psycopg.Connection, named: str | None) -> None:
    """Refuse a push that names another event than central's (409): the laptop has not
    started this event yet, and its changes belong to the last one."""
    if named is None:  # a laptop that never pulled: its changes are this event's
        return
    current = current_event(conn)
    if named != current:
        raise ProtocolError("event_changed", _(
            "Central has started a new event: this laptop's changes belong to the last one. It "
            "starts the new event at its next pull and sends only what is typed after that."),
            409, event=current)


def archive_folder(app) -> Path:
    """Return the folder of the events' archives (ARCHIVE_DIR, else instance/central/archives)."""
    folder = Path(app.config.get("ARCHIVE_DIR") or Path(app.instance_path) / "archives")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def archive_path(conn: psycopg.Connection, folder: Path) -> Path:
    """Return the archive file of the event central counts for now, named after it:
    event-<its name>-<time>-<its id>.dump (an existing file is never replaced)."""
    row = conn.execute("SELECT value #>> '{}' AS name FROM setting WHERE key = 'event_name'").fetchone()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", row["name"] if row else "event").strip("-")[:60] or "event"
    path = folder / f"event-{slug}-{datetime.now():%Y%m%d-%H%M%S}-{current_event(conn)[:8]}.dump"
    if path.exists():
        raise InputError("archive_exists", _("An archive of this event exists already: %(file)s. "
                                             "Nothing was changed.", file=path.name), 409)
    return path


def start_next_event(conn: psycopg.Connection, url: str, folder: Path, user_id: str | None,
                     name: str, date: str | None, expected: str | None = None) -> tuple[dict, Path]:
    """Archive the database into FOLDER, empty the event's tables and start a new event.

    EXPECTED: the event the organiser's form was made for; another one (a second tab, a
    double submit) is refused. Return how many runners, laps and pledges the last event
    had, and its archive. Nothing is emptied unless the archive was written whole.
    """
    settings = {"event_name": validate_setting("event_name", name),
                "event_date": validate_setting("event_date", date) if date else None}
    with tables_transaction(conn):
        if expected is not None and expected != current_event(conn):
            raise InputError("event_started_already", _(
                "Another event was started meanwhile (in another window?): reload the page to "
                "see it. Nothing was changed."), 409)
        archive = archive_path(conn, folder)
        backup.dump(url, archive)  # the lock held: every writer waits, the dump is complete
        counts = {table: conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]
                  for table in ("runner", "lap", "pledge")}
        conn.execute(f"TRUNCATE {', '.join(EVENT_TABLES)}")
        conn.execute("DELETE FROM decision WHERE NOT action = ANY(%s)", [list(KEPT_DECISIONS)])
        conn.execute("UPDATE device SET laps_pushed = 0")
        previous = current_event(conn)
        set_meta(conn, EVENT_KEY, new_id())
        for key, value in settings.items():  # a new change id: laptops pull it (no date: none)
            conn.execute("DELETE FROM setting WHERE key = %s", [key])
            if value is not None:
                conn.execute("INSERT INTO setting (key, value, change_id) "
                             "VALUES (%s, %s, nextval('change_id_seq'))", [key, Jsonb(value)])
        if user_id is not None:
            log_decision(conn, user_id, "new_event", [previous],
                         {"name": name, "archive": archive.name, **counts})
    log.warning("started event %r: the last event (%s runners, %s laps, %s pledges) is archived "
                "in %s", name, counts["runner"], counts["lap"], counts["pledge"], archive)
    return counts, archive


def next_event_errors(form) -> dict[str, str]:
    """Return what is wrong with the next-event form, by field (nothing: it may go)."""
    errors = {}
    for key in ("event_name", "event_date"):
        value = form.get(key, "").strip()
        if key == "event_name" and not value:
            errors[key] = _("Name the next event.")
        elif value:
            try:
                validate_setting(key, value)
            except InputError:
                errors[key] = _("Type a date like 2027-06-25.") if key == "event_date" \
                    else _("The name may have at most 100 characters.")
    if form.get("confirm") != "1":
        errors["confirm"] = _("Tick the box to confirm that this event's data may leave central.")
    return errors


@bp.post("/next-event")
@admin_required
def next_event():
    """Archive this event and start the next one; a refused form changes nothing."""
    errors = next_event_errors(request.form)
    if errors:
        return render_page(400, event_errors=errors, event_typed=dict(request.form))
    name, date = request.form["event_name"].strip(), request.form.get("event_date", "").strip()
    try:
        counts, archive = start_next_event(get_db(), database_url(current_app),
                                           archive_folder(current_app), g.user["id"], name,
                                           date or None, request.form.get("event", ""))
    except click.ClickException as exc:  # pg_dump failed: nothing was emptied
        raise InputError("archive_failed", _("The archive could not be written, so nothing "
                                             "was changed: %(reason)s", reason=exc.message),
                         503) from exc
    flash(_("Started %(name)s. The last event (%(runners)s runners, %(laps)s laps, %(pledges)s "
            "pledges) is archived on the server as %(file)s. Laptops start the new event at "
            "their next sync.", name=name, runners=counts["runner"], laps=counts["lap"],
            pledges=counts["pledge"], file=archive.name))
    return redirect(url_for("settings.index"))


def init_app(app) -> None:
    """Register the next-event form's view and the new-event command."""
    app.register_blueprint(bp)
    app.jinja_env.globals["current_event_id"] = lambda: current_event(get_db())
    app.cli.add_command(new_event_command)


@click.command("new-event")
@click.option("--name", required=True, help="The new event's name, e.g. 'Sponsorenlauf 2027'.")
@click.option("--date", default=None, help="Its day, YYYY-MM-DD (optional).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def new_event_command(name: str, date: str | None, yes: bool) -> None:
    """Archive central's database and start the next event: runners, laps and money start empty."""
    if not yes:
        click.confirm("Archive this event and empty its runners, laps, pledges and letters at "
                      "central (users, devices and settings stay)?", abort=True)
    try:
        with connection() as conn:
            counts, archive = start_next_event(conn, database_url(current_app),
                                               archive_folder(current_app), None, name, date)
    except InputError as exc:
        raise click.ClickException(f"{exc.message} Nothing was changed.") from exc
    click.echo(f"Archived the last event to {archive} ({counts['runner']} runners, "
               f"{counts['lap']} laps, {counts['pledge']} pledges). Started {name!r}: laptops "
               "start it at their next sync.")
