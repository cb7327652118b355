"""The bank statement page and import-statement: upload, what matched, what waits for an admin."""
from __future__ import annotations

from pathlib import Path

import click
from flask import Blueprint, Flask, flash, g, redirect, render_template, request, url_for
from flask.cli import with_appcontext
from flask_babel import format_date
from flask_babel import gettext as _

from lapsync.errors import InputError, wants_json
from lapsync.roster_csv import MAX_BYTES

from ..auth import admin_required, login_required
from ..db import connection, get_db
from .sponsor_views import search
from .statement import StatementError, assign_line, ignore_line, import_statement, open_lines

bp = Blueprint("statement", __name__, url_prefix="/sponsors/statement")
MAX_QUERY = 100


def report_text(report: dict, filename: str) -> str:
    """Say in one sentence what an import did."""
    # Counts after a colon each: no plural to agree with (1 or many, in both languages).
    return _("%(file)s – bookings read: %(lines)s; payments recorded by their reference: "
             "%(matched)s; new credits left to assign: %(unmatched)s; imported before: "
             "%(known)s; debits skipped: %(debits)s.", file=filename, **report)


def render_page(status: int = 200, **context):
    """Render the statement page: the upload form and the credits waiting for an admin."""
    line_id = request.args.get("line", "")
    query = request.args.get("q", "").strip()[:MAX_QUERY]
    candidates = search(get_db(), query, None)[:20] if query and line_id else []
    return render_template("statement.html", lines=open_lines(get_db()), query=query,
                           line_id=line_id, candidates=candidates,
                           is_admin=g.user["role"] == "admin", **context), status


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
    return redirect(url_for("statement.index"))


@bp.post("/lines/<int:line_id>/assign")
@admin_required
def assign(line_id: int):
    """Record an unmatched credit as a payment of the pledge the admin picked."""
    assign_line(get_db(), g.user["id"], line_id, request.form.get("pledge_id", ""))
    flash(_("The payment is recorded."))
    return redirect(url_for("statement.index"))


@bp.post("/lines/<int:line_id>/ignore")
@admin_required
def ignore(line_id: int):
    """Take a credit that is no sponsor's payment off the list."""
    ignore_line(get_db(), g.user["id"], line_id)
    flash(_("The line is ignored."))
    return redirect(url_for("statement.index"))


@click.command("import-statement")
@with_appcontext
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_statement_command(file: Path) -> None:
    """Import a bank statement CSV: credits whose purpose holds a pledge's RF reference become
    payments; the rest wait on the statement page. Importing a file again records nothing twice."""
    data = file.read_bytes()
    with connection() as conn:
        try:
            report = import_statement(conn, None, data, file.name)
        except StatementError as exc:
            lines = [exc.message] + [_("line %(line)s: %(message)s", line=n, message=m)
                                     for n, m in exc.problems]
            raise click.ClickException("\n".join(lines)) from None
    click.echo(report_text(report, file.name))


def init_app(app: Flask) -> None:
    """Register the statement page and the import-statement command."""
    app.register_blueprint(bp)
    app.cli.add_command(import_statement_command)
    app.add_template_filter(lambda day: format_date(day, "medium"), "day")
