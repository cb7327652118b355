"""The bank statement page and import-statement: upload, what matched, what waits for an admin."""
from __future__ import annotations

from pathlib import Path

import click
import psycopg
from babel.numbers import get_decimal_symbol
from flask import Blueprint, Flask, flash, g, redirect, render_template, request, url_for
from flask.cli import with_appcontext
from flask_babel import format_date, get_locale, ngettext
from flask_babel import gettext as _

from lapsync.errors import InputError, wants_json
from lapsync.roster_csv import MAX_BYTES

from ..auth import admin_required, login_required
from ..db import connection, get_db
from .amounts import money
from .freeze import letter_rows
from .sponsor_views import search
from .statement import (
    assign_line,
    ignore_line,
    ignored_lines,
    import_statement,
    named_pledges,
    open_lines,
    restore_line,
    split_line,
)
from .statement_csv import StatementError

bp = Blueprint("statement", __name__, url_prefix="/sponsors/statement")
MAX_QUERY = 100


def report_text(report: dict, filename: str) -> str:
    """Say in one sentence what an import did."""
    # Counts after a colon each: no plural to agree with (1 or many, in both languages).
    return _("%(file)s – bookings read: %(lines)s; payments recorded by their reference: "
             "%(matched)s; new credits left to assign: %(unmatched)s; imported before: "
             "%(known)s; debits skipped: %(debits)s.", file=filename, lines=report["lines"],
             matched=report["matched"], unmatched=report["unmatched"], known=report["known"],
             debits=report["debits"])


def overpaid_texts(conn: psycopg.Connection, report: dict) -> list[str]:
    """Name each credit the import booked to a pledge that is now paid more than it owes."""
    return [_("%(amount)s from %(who)s booked to %(sponsor)s for %(runner)s: paid more than "
              "it owes (overpaid by %(over)s).", amount=money(each["amount_cents"], conn),
              who=each["counterparty"] or "–", sponsor=each["sponsor"], runner=each["runner"],
              over=money(each["overpaid_cents"], conn))
            for each in report["overpaid"]]


def render_page(status: int = 200, line_id: str | None = None, query: str | None = None,
                typed: dict[str, str] | None = None, **context):
    """Render the statement page: the upload form, the credits waiting for an admin, and per
    credit the pledges to split it over (typed: what a refused split form of line_id said)."""
    conn, is_admin = get_db(), g.user["role"] == "admin"
    line_id = request.args.get("line", "") if line_id is None else line_id
    query = request.args.get("q", "").strip()[:MAX_QUERY] if query is None else query
    candidates = search(conn, query, None)[:20] if query and line_id else []
    lines = open_lines(conn)
    named = named_pledges(conn, lines) if is_admin else {}
    splits = {}
    for line in lines:
        chosen = str(line["id"]) == line_id
        rows = split_rows(conn, named.get(line["id"], []), candidates if chosen else [],
                          typed if chosen else None)
        if rows:
            splits[line["id"]] = rows
    return render_template("statement.html", lines=lines, ignored=ignored_lines(conn),
                           query=query, line_id=line_id,
                           candidates=candidates, splits=splits if is_admin else {},
                           is_admin=is_admin, **context), status


def split_rows(conn: psycopg.Connection, named: list[dict], candidates: list[dict],
               typed: dict[str, str] | None) -> list[dict]:
    """Return a credit's split form rows, {pledge, value}: the pledges its purpose names with
    their open amounts, then the pledges searched for, empty; or as a refused form had them."""
    if typed is not None:
        found = {row["id"]: row for row in letter_rows(conn, pledge_ids=list(typed))}
        return [{"pledge": found[pid], "value": text} for pid, text in typed.items()
                if pid in found]
    rows = [{"pledge": row, "value": amount_text(max(row["outstanding_cents"], 0))}
            for row in named]
    shown = {row["id"] for row in named}
    return rows + [{"pledge": row, "value": ""} for row in candidates if row["id"] not in shown]


def amount_text(cents: int) -> str:
    """Write cents as a person types them in the reader's language: 1,67 or 1.67 (0: empty)."""
    if cents <= 0:
        return ""
    return f"{cents // 100}{get_decimal_symbol(get_locale())}{cents % 100:02d}"


def typed_parts(form) -> dict[str, str] | None:
    """Return a split form's amounts by pledge id (fields part-<id>), None for a whole assign."""
    parts = {key.removeprefix("part-"): value for key, value in form.items()
             if key.startswith("part-")}
    return parts or None


@bp.get("/")
@login_required
def index():
    """Show the credits that matched no pledge; admins also upload and assign here."""
    return render_page()


@bp.post("/")
@admin_required
def upload():
    """Import an uploaded bank statement CSV: matched lines become payments."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InputError("missing_file", _("Choose the bank statement's CSV file."), 400)
    data = upload.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise InputError("too_large", _("The file is larger than %(max)s MB.",
                                        max=MAX_BYTES // 1_000_000), 413)
    try:
        report = import_statement(get_db(), g.user["id"], data, upload.filename)
    except StatementError as exc:
        if wants_json():
            raise
        return render_page(exc.status, problem=exc, filename=upload.filename)
    flash(report_text(report, upload.filename))
    for text in overpaid_texts(get_db(), report):
        flash(text, "warning")
    return redirect(url_for("statement.index"))


@bp.post("/lines/<int:line_id>/assign")
@admin_required
def assign(line_id: int):
    """Record an unmatched credit as a payment of the pledge the admin picked, or split it
    over the pledges the admin typed amounts for (all or nothing)."""
    typed = typed_parts(request.form)
    if typed is None:
        _payment, overpaid = assign_line(get_db(), g.user["id"], line_id,
                                         request.form.get("pledge_id", ""))
        flash(_("The payment is recorded."))
        flash_overpaid(overpaid)
        return redirect(url_for("statement.index"))
    try:
        ids, overpaid = split_line(get_db(), g.user["id"], line_id, typed)
    except InputError as exc:
        if wants_json() or exc.status != 422:
            raise
        return render_page(422, line_id=str(line_id), query="", typed=typed,
                           split_error=exc.message, split_errors=exc.extra.get("errors", {}))
    flash(ngettext("The credit is recorded as %(num)s payment.",
                   "The credit is recorded as %(num)s payments, one per pledge.", len(ids)))
    flash_overpaid(overpaid)
    return redirect(url_for("statement.index"))


def flash_overpaid(overpaid: list[dict]) -> None:
    """Warn of each pledge a credit just booked by hand has paid more than it owes."""
    for text in overpaid_texts(get_db(), {"overpaid": overpaid}):
        flash(text, "warning")


@bp.post("/lines/<int:line_id>/ignore")
@admin_required
def ignore(line_id: int):
    """Take a credit that is no sponsor's payment off the list (once the box is ticked)."""
    if request.form.get("confirm") != "1":
        raise InputError("not_confirmed", _("Tick the box to confirm that the credit is no "
                                            "sponsor's payment. Nothing was changed."), 400)
    line = ignore_line(get_db(), g.user["id"], line_id)
    flash(_("The credit of %(amount)s from %(who)s is ignored; it is listed under \"Ignored "
            "credits\", where it can be put back.", amount=money(line["amount_cents"], get_db()),
            who=line["counterparty"] or "–"))
    return redirect(url_for("statement.index"))


@bp.post("/lines/<int:line_id>/restore")
@admin_required
def restore(line_id: int):
    """Put an ignored credit back on the list of credits to assign."""
    line = restore_line(get_db(), g.user["id"], line_id)
    flash(_("The credit of %(amount)s from %(who)s waits on the list again.",
            amount=money(line["amount_cents"], get_db()), who=line["counterparty"] or "–"))
    return redirect(url_for("statement.index"))


@click.command("import-statement")
@with_appcontext
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_statement_command(file: Path) -> None:
    """Import a bank statement CSV: credits whose purpose holds a pledge's RF reference become
    payments (one naming several pledges: each its open amount, when they add up to it); the
    rest wait on the statement page. Importing a file again records nothing twice."""
    data = file.read_bytes()
    with connection() as conn:
        try:
            report = import_statement(conn, None, data, file.name)
        except StatementError as exc:
            lines = [exc.message] + [_("line %(line)s: %(message)s", line=n, message=m)
                                     for n, m in exc.problems]
            raise click.ClickException("\n".join(lines)) from None
        click.echo("\n".join([report_text(report, file.name), *overpaid_texts(conn, report)]))


def init_app(app: Flask) -> None:
    """Register the statement page and the import-statement command."""
    app.register_blueprint(bp)
    app.cli.add_command(import_statement_command)
    app.add_template_filter(lambda day: format_date(day, "medium"), "day")
