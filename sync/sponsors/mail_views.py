"""The mail page and send-mail: a dry-run list of what would go out, then an admin's Send."""
from __future__ import annotations

import click
from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from flask.cli import with_appcontext
from flask_babel import gettext as _

from lapsync.errors import InputError

from ..auth import admin_required, login_required
from ..bank_settings import bank_mail_settings
from ..db import connection, get_db, write_transaction
from .class_lists import refresh_class_lists
from .mail import due_mail, mail_counts, mail_list, send_due, waiting_retry
from .money_log import log_money

bp = Blueprint("mail", __name__, url_prefix="/sponsors/mail")


def send_and_log(conn, user_id: str | None, ids: list[int] | None = None) -> dict:
    """Send the due mails (of ids) and log who sent how many; return the counts."""
    refresh_class_lists(conn, ids)
    report = send_due(conn, ids=ids)
    if any(report.values()):
        with write_transaction(conn):
            log_money(conn, user_id, "mail_send", report)
    return report


def parse_ids(values: list[str]) -> list[int]:
    """Return the mail ids a form lists, or abort 400."""
    if not values or not all(v.isascii() and v.isdigit() and len(v) < 18 for v in values):
        abort(400, description=_("Nothing to send: the list of e-mails is missing. "
                                 "Open the mail page again."))
    return [int(v) for v in values]


@bp.get("/")
@login_required
def index():
    """List what a send would deliver now (the dry run) and every mail's state."""
    conn = get_db()
    settings = bank_mail_settings(conn)
    return render_template("mail.html", due=due_mail(conn), mails=mail_list(conn),
                           counts=mail_counts(conn), waiting=waiting_retry(conn),
                           configured="smtp_host" in settings and "smtp_from" in settings)


@bp.post("/send")
@admin_required
def send():
    """Send the e-mails the dry run listed (those still due), then show what happened."""
    conn = get_db()
    ids = parse_ids(request.form.getlist("mail"))
    try:
        report = send_and_log(conn, g.user["id"], ids)
    except InputError as exc:
        flash(exc.message)
        return redirect(url_for("mail.index"))
    flash(_("Sent %(sent)s e-mails; %(queued)s wait for another try; %(failed)s failed.",
            **report))
    return redirect(url_for("mail.index"))


@bp.post("/<int:mail_id>/<any(cancel, retry):action>")
@admin_required
def change(mail_id: int, action: str):
    """Take a queued mail out of the queue, or queue a failed one again."""
    conn = get_db()
    before, after = ("queued", "cancelled") if action == "cancel" else ("failed", "queued")
    with write_transaction(conn):
        row = conn.execute("UPDATE mail_out SET status = %s, next_try_ms = 0 "
                           "WHERE id = %s AND status = %s RETURNING to_addr, subject",
                           [after, mail_id, before]).fetchone()
        if row is None:
            abort(409, description=_("This e-mail is no longer %(state)s.", state=before))
        log_money(conn, g.user["id"], f"mail_{action}", {"to": row["to_addr"],
                                                          "subject": row["subject"]})
    return redirect(url_for("mail.index"))


@click.command("send-mail")
@with_appcontext
@click.option("--dry-run", is_flag=True, help="Only list what would go out; send nothing.")
def send_mail_command(dry_run: bool) -> None:
    """Send the queued e-mails that are due (letters, class lists) with the SMTP settings."""
    with connection() as conn:
        due = due_mail(conn)
        for mail in due:
            click.echo(f"{mail['id']}\t{mail['kind']}\t{mail['to_addr']}\t{mail['subject']}")
        if dry_run:
            click.echo(f"{len(due)} e-mails would go out; nothing was sent (dry run).")
            return
        try:
            report = send_and_log(conn, None, [mail["id"] for mail in due])
        except InputError as exc:
            raise click.ClickException(exc.message) from None
    click.echo("Sent {sent} e-mails; {queued} wait for another try; {failed} failed.".format(
        **report))


def init_app(app: Flask) -> None:
    """Register the mail page and the send-mail command."""
    app.register_blueprint(bp)
    app.cli.add_command(send_mail_command)
