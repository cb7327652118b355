"""The list per class for the class teacher: each pupil's sponsors, amounts, paid and open.

The teacher's e-mail address per class (table class_teacher, central only) is set by an
admin on the list's page; with it, the list can be queued as an e-mail (sync/mail.py),
which is written anew with the figures of the moment it is sent.
"""
from __future__ import annotations

from contextlib import nullcontext

import psycopg
from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import force_locale, get_locale, ngettext
from flask_babel import gettext as _

from lapsync.errors import InputError

from ..auth import admin_required, login_required
from ..db import get_db, now_ms
from ..money_settings import money_settings
from ..results import event_info, ran
from ..roster import list_classes
from .amounts import money, sum_rows
from .freeze import current_freeze, letter_rows
from .letters import gets_letter, km_text, pledge_text
from .mail import due_mail, queue_mail
from .money_log import log_money
from .pledges import clean_email

bp = Blueprint("class_lists", __name__, url_prefix="/sponsors/classes")


def teacher_email(conn: psycopg.Connection, class_name: str) -> str | None:
    """Return the class teacher's e-mail address, or None."""
    row = conn.execute("SELECT email FROM class_teacher WHERE class_name = %s",
                       [class_name]).fetchone()
    return row["email"] if row else None


def set_teacher_email(conn: psycopg.Connection, user_id: str | None, class_name: str,
                      text: str) -> str | None:
    """Store (or, empty, remove) a class teacher's e-mail address, logged; return it."""
    try:
        email = clean_email(text)
    except ValueError:
        raise InputError("invalid_email", _("This is not an e-mail address (like "
                                            "name@example.org)."), 422, field="email") from None
    with conn.transaction():
        old = teacher_email(conn, class_name)
        if email is None:
            conn.execute("DELETE FROM class_teacher WHERE class_name = %s", [class_name])
        else:
            conn.execute("INSERT INTO class_teacher (class_name, email, updated_ms) "
                         "VALUES (%s, %s, %s) ON CONFLICT (class_name) DO UPDATE SET "
                         "email = excluded.email, updated_ms = excluded.updated_ms",
                         [class_name, email, now_ms()])
        if old != email:
            log_money(conn, user_id, "class_teacher", {"class": class_name, "from": old,
                                                       "to": email})
    return email


def pupils(rows: list[dict]) -> list[dict]:
    """Group a class's pledge rows by pupil, in the rows' order, with each pupil's totals."""
    found: dict[str, dict] = {}
    for row in rows:
        pupil = found.setdefault(row["counted_runner_id"], {
            "start_number": row["start_number"], "name": row["name"], "laps": row["laps"],
            "distance_m": row["distance_m"], "pledges": []})
        pupil["pledges"].append(row)
    for pupil in found.values():
        pupil["total"] = sum_rows(pupil["pledges"])
    return list(found.values())


def pupil_line(pupil: dict, currency: str) -> str:
    """Return a pupil's line of the teacher's e-mail: laps (or did not run) and money."""
    amount = money(pupil["total"]["amount_cents"], currency=currency)
    still_open = money(pupil["total"]["outstanding_cents"], currency=currency)
    if not ran(pupil):   # no lap that counts: never "0 laps, 0 km", nor "raised"
        # Only fixed pledges owe anything then: promised, not run for.
        return _("%(number)s %(name)s: did not run (no lap that counts) – fixed pledges "
                 "%(amount)s, open %(open)s", number=pupil["start_number"], name=pupil["name"],
                 amount=amount, open=still_open)
    return _("%(number)s %(name)s: %(laps)s, %(km)s km – raised %(amount)s, open %(open)s",
             number=pupil["start_number"], name=pupil["name"],
             laps=ngettext("%(num)s lap", "%(num)s laps", pupil["laps"]),
             km=km_text(pupil["distance_m"]), amount=amount, open=still_open)


def class_list_text(class_name: str, groups: list[dict], total: dict, currency: str,
                    event: dict) -> str:
    """Return a class list as the plain text of an e-mail to the teacher."""
    lines = [_("Sponsors of class %(name)s", name=class_name) + (f" – {event['name']}"
                                                                  if event["name"] else ""), ""]
    for pupil in groups:
        lines.append(pupil_line(pupil, currency))
        for p in pupil["pledges"]:
            no_letter = "" if gets_letter(p) else \
                " (" + _("no letter: the runner did not run") + ")"
            lines.append(f"  – {p['sponsor_name']}: {pledge_text(p, currency)} = "
                         f"{money(p['amount_cents'], currency=currency)}, "
                         + _("paid %(paid)s", paid=money(p["paid_cents"], currency=currency))
                         + no_letter)
    lines += ["", _("Class total: %(amount)s raised, %(paid)s paid, %(open)s open.",
                    amount=money(total["amount_cents"], currency=currency),
                    paid=money(total["paid_cents"], currency=currency),
                    open=money(total["outstanding_cents"], currency=currency))]
    return "\n".join(lines) + "\n"


def class_list_body(conn: psycopg.Connection, class_name: str) -> str:
    """Return a class's list as the teacher's e-mail text, with the figures of now."""
    rows = letter_rows(conn, class_name=class_name)
    return class_list_text(class_name, pupils(rows), sum_rows(rows),
                           money_settings(conn)["currency"], event_info(conn))


def refresh_class_lists(conn: psycopg.Connection, ids: list[int] | None = None) -> int:
    """Write the due class lists (of ids) anew just before a send; return how many.

    A list states every figure of its class, and any payment, pledge, freeze, void or lap
    may change one after it was queued: writing it anew when it goes out is simpler and
    surer than withdrawing it at each of those. Each is written in the language it was
    queued in; one whose class is gone (renamed) is withdrawn instead.
    """
    lists = [mail for mail in due_mail(conn, ids=ids) if mail["kind"] == "class_list"]
    known, written = set(list_classes(conn)) if lists else set(), 0
    with conn.transaction():
        for mail in lists:
            if mail["class_name"] not in known:
                conn.execute("UPDATE mail_out SET status = 'withdrawn' WHERE id = %s "
                             "AND status = 'queued'", [mail["id"]])
                continue
            with force_locale(mail["locale"]) if mail["locale"] else nullcontext():
                body = class_list_body(conn, mail["class_name"])
            written += conn.execute("UPDATE mail_out SET body_text = %s WHERE id = %s "
                                    "AND status = 'queued'", [body, mail["id"]]).rowcount
    return written


def known_class(conn: psycopg.Connection, class_name: str) -> str:
    """Return the class name if the roster has it, else abort 404."""
    if class_name not in list_classes(conn):
        abort(404, description=_("There is no class %(name)s.", name=class_name))
    return class_name


@bp.get("/<class_name>/list")
@login_required
def class_list(class_name: str):
    """Show (and print) the class teacher's list of pupils, sponsors and amounts."""
    conn = get_db()
    rows = letter_rows(conn, class_name=known_class(conn, class_name))
    return render_template("class_list.html", class_name=class_name, pupils=pupils(rows),
                           total=sum_rows(rows), teacher=teacher_email(conn, class_name),
                           frozen=current_freeze(conn) is not None, event=event_info(conn),
                           currency=money_settings(conn)["currency"],
                           is_admin=g.user["role"] == "admin")


@bp.post("/<class_name>/teacher")
@admin_required
def set_teacher(class_name: str):
    """Set the class teacher's e-mail address (empty removes it)."""
    conn = get_db()
    set_teacher_email(conn, g.user["id"], known_class(conn, class_name),
                      request.form.get("email", ""))
    flash(_("The class teacher's address is saved."))
    return redirect(url_for("class_lists.class_list", class_name=class_name))


@bp.post("/<class_name>/queue")
@admin_required
def queue(class_name: str):
    """Queue the class list as an e-mail to the class teacher."""
    conn = get_db()
    email = teacher_email(conn, known_class(conn, class_name))
    if email is None:
        raise InputError("no_teacher", _("Set the class teacher's e-mail address first."), 409)
    body = class_list_body(conn, class_name)
    with conn.transaction():
        queue_mail(conn, to=email, subject=_("Sponsors of class %(name)s", name=class_name),
                   body=body, kind="class_list", class_name=class_name,
                   locale=str(get_locale()))
        log_money(conn, g.user["id"], "class_list_queued", {"class": class_name, "to": email})
    flash(_("The class list is queued for %(email)s. Check the list, then send it.", email=email))
    return redirect(url_for("mail.index"))


def init_app(app: Flask) -> None:
    """Register the class lists."""
    app.register_blueprint(bp)
