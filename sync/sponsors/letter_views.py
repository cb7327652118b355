"""Letter pages: a class's letters in one print, reminders, thank-you letters, and their e-mails."""
from __future__ import annotations

import datetime

import psycopg
from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import format_date, ngettext
from flask_babel import gettext as _
from markupsafe import Markup

from lapsync.protocol import MAX_CLASS

from ..auth import admin_required, login_required
from ..db import get_db
from ..roster import list_classes
from .freeze import current_freeze, letter_rows
from .letters import KINDS, gets_letter, letter_batch, letter_context, letter_text
from .mail import queue_mail
from .money_log import log_money

bp = Blueprint("letters", __name__, url_prefix="/sponsors")


def chosen_kind() -> str | None:
    """Return the kind of letters asked for (?kind=), None for each its own, or abort 400."""
    kind = request.values.get("kind") or None
    if kind is not None and kind not in KINDS:
        abort(400, description=_("Letters are of kind letter, thanks or reminder."))
    return kind


def chosen_class(conn: psycopg.Connection) -> str | None:
    """Return the class asked for (?class=), None when none is, or abort 404 for an unknown one."""
    name = (request.values.get("class") or "").strip()[:MAX_CLASS + 1]
    if not name:
        return None
    if name not in list_classes(conn):
        abort(404, description=_("There is no class %(name)s.", name=name))
    return name


def class_summary(conn: psycopg.Connection) -> list[dict]:
    """Return each class with its number of pledges, letters due, e-mails that would go out
    and pledges that get no letter (their runner did not run)."""
    def blank(name: str) -> dict:
        """Return a class's counts before its pledges are counted."""
        return {"class": name, "pledges": 0, "open": 0, "email": 0, "did_not_run": 0}
    counts: dict[str, dict] = {name: blank(name) for name in list_classes(conn)}
    for row in letter_rows(conn):
        entry = counts.setdefault(row["class"], blank(row["class"]))
        entry["pledges"] += 1
        entry["did_not_run"] += not gets_letter(row)
        entry["open"] += row["outstanding_cents"] > 0
        # Only letters that go out become e-mails: a left-out pledge's address sends nothing.
        entry["email"] += bool(row["email"]) and gets_letter(row)
    return list(counts.values())


@bp.get("/letters")
@login_required
def index():
    """Show a class's letters ready to print (?class=5a, ?kind=, ?pledge=), or the classes."""
    conn = get_db()
    class_name, kind = chosen_class(conn), chosen_kind()
    pledge = request.args.get("pledge") or None
    if class_name is None and pledge is None:
        return render_template("letters_index.html", classes=class_summary(conn),
                               frozen=current_freeze(conn) is not None)
    found, left_out, waiting = letter_batch(conn, class_name=class_name, kind=kind,
                                            pledge_ids=[pledge] if pledge else None)
    ctx = letter_context(conn)
    title = _("class %(name)s", name=class_name) if class_name else _("one pledge")
    return render_template(
        "letters.html", letters=found, left_out=left_out, waiting=waiting, ctx=ctx, title=title,
        class_name=class_name, kind=kind,
        frozen=current_freeze(conn) is not None, is_admin=g.user["role"] == "admin",
        bank_ready=bool(ctx["bank"].get("iban") and ctx["bank"].get("account_holder")),
        mailable=sum(bool(letter["row"]["email"]) for letter in found),
        today=format_date(datetime.date.today(), "long"))


@bp.post("/letters/queue")
@admin_required
def queue():
    """Queue a class's letters (of one kind) as e-mails to the sponsors who gave an address."""
    conn = get_db()
    class_name, kind = chosen_class(conn), chosen_kind()
    if class_name is None:
        abort(400, description=_("Choose a class."))
    ctx = letter_context(conn)
    batch = letter_batch(conn, class_name=class_name, kind=kind)
    found = [letter for letter in batch.letters if letter["row"]["email"]]
    with conn.transaction():
        for letter in found:
            queue_mail(conn, to=letter["row"]["email"], subject=letter["subject"],
                       body=letter_text(letter, ctx), kind=letter["kind"],
                       pledge_id=letter["row"]["id"])
        log_money(conn, g.user["id"], "letters_queued", {"class": class_name, "kind": kind,
                                                         "count": len(found)})
    flash(ngettext("%(num)s e-mail queued. Check the list, then send it.",
                   "%(num)s e-mails queued. Check the list, then send them.", len(found)))
    held = [each for each in batch.waiting if each["row"]["email"]]
    if held:
        flash(Markup('{} <a href="{}">{}</a>').format(ngettext(
            "%(num)s reminder was not queued: a bank transfer naming its pledge waits on the "
            "bank statement page.", "%(num)s reminders were not queued: bank transfers naming "
            "their pledges wait on the bank statement page.", len(held)),
            url_for("statement.index"), _("Open the bank statement page")))
    return redirect(url_for("mail.index"))


def init_app(app: Flask) -> None:
    """Register the letter pages."""
    app.register_blueprint(bp)
