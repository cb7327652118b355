"""Payments: money received for a pledge (amount, date, method, reference), and what is outstanding.

Only admins record or delete a payment; each change is logged (sync/money_log.py).
A payment is kept apart from the pledge: the pledge's paid and outstanding amounts
are sums (sync/amounts.py), never stored.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
from flask import Blueprint, Flask, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from markupsafe import Markup

from lapsync.errors import InputError, wants_json
from lapsync.ids import new_id
from lapsync.names import clean_name
from lapsync.protocol import MAX_CLASS

from ..auth import admin_required, login_required
from ..db import get_db, now_ms
from ..roster import list_classes
from .amounts import money, sum_rows
from .freeze import letter_rows
from .mail import withdrawn
from .money_log import log_money
from .pledges import live_pledge, parse_cents, runner_text

bp = Blueprint("payments", __name__, url_prefix="/sponsors")
METHODS = ("transfer", "cash", "other")
MAX_TEXT = 200


def clean_text(value: Any) -> str:
    """Return one line of at most 200 characters (may be empty), or raise ValueError."""
    text = " ".join(clean_name(value).split())
    if len(text) > MAX_TEXT:
        raise ValueError
    return text


def clean_day(value: Any) -> date:
    """Return a date written like 2025-06-27 (or 27.06.2025), or raise ValueError."""
    text = str(value or "").strip()
    if len(text) == 10 and text[2] == "." and text[5] == ".":
        text = f"{text[6:]}-{text[3:5]}-{text[:2]}"
    return date.fromisoformat(text) if len(text) == 10 else date.fromisoformat("x")


def check_payment(values: dict) -> tuple[dict, dict[str, str]]:
    """Check a payment as typed: (cleaned fields, errors by field)."""
    cleaners = {"amount_cents": parse_cents, "paid_on": clean_day,
                "method": lambda v: METHODS[METHODS.index(str(v or "").strip())],
                "reference": clean_text, "note": clean_text}
    messages = {
        "amount_cents": _("The amount must be above 0 with at most two decimals, like 12,50."),
        "paid_on": _("The date must be a real date, written like 2025-06-27."),
        "method": _("The method must be transfer, cash or other."),
        "reference": _("The reference must be one line of at most %(max)s characters.",
                       max=MAX_TEXT),
        "note": _("The note must be one line of at most %(max)s characters.", max=MAX_TEXT)}
    fields, errors = {}, {}
    for key, clean in cleaners.items():
        try:
            fields[key] = clean(values.get(key))
        except ValueError:
            errors[key] = messages[key]
    return fields, errors


def add_payment(conn: psycopg.Connection, user_id: str | None, pledge_id: str,
                values: dict) -> str:
    """Check and record a payment for a live pledge (logged); return its id."""
    fields, errors = check_payment(values)
    if errors:
        key = next(iter(errors))
        raise InputError("invalid_payment", errors[key], 422, field=key, errors=errors)
    payment_id = new_id()
    with conn.transaction():
        pledge = live_pledge(conn, pledge_id)
        conn.execute("INSERT INTO payment (id, pledge_id, amount_cents, paid_on, method, "
                     "reference, note, created_ms, created_by) VALUES (%(id)s, %(pledge)s, "
                     "%(amount_cents)s, %(paid_on)s, %(method)s, %(reference)s, %(note)s, "
                     "%(now)s, %(user)s)", {**fields, "id": payment_id, "pledge": pledge_id,
                                            "now": now_ms(), "user": user_id})
        log_money(conn, user_id, "payment_add", {
            "sponsor": pledge["sponsor_name"], "runner": runner_text(pledge),
            **fields, "paid_on": fields["paid_on"].isoformat(),
            **withdrawn(conn, pledge_id)}, pledge_id=pledge_id, payment_id=payment_id)
    return payment_id


def delete_payment(conn: psycopg.Connection, user_id: str | None, payment_id: str) -> dict:
    """Delete a payment recorded by mistake (logged with what it was); return it.

    A payment booked from a bank statement line takes the line's other payments with it
    (one transfer split over pledges is undone whole; `parts` says how many went): the
    line waits on the statement page again.
    """
    with conn.transaction():
        payment = conn.execute("SELECT * FROM payment WHERE id = %s FOR UPDATE",
                               [payment_id]).fetchone()
        if payment is None:
            raise InputError("unknown_payment", _("There is no such payment."), 404)
        line_id = payment["statement_line_id"]
        gone = [payment] if line_id is None else conn.execute(
            "SELECT * FROM payment WHERE statement_line_id = %s ORDER BY id = %s DESC, id "
            "FOR UPDATE", [line_id, payment_id]).fetchall()
        for each in gone:
            remove_payment(conn, user_id, each)
        if line_id is not None:
            conn.execute("UPDATE statement_line SET pledge_id = NULL, payment_id = NULL, "
                         "matched_by = NULL WHERE id = %s", [line_id])
    return {**payment, "parts": len(gone)}


def remove_payment(conn: psycopg.Connection, user_id: str | None, payment: dict) -> None:
    """Delete one payment row and log what it was (caller's transaction)."""
    conn.execute("DELETE FROM payment WHERE id = %s", [payment["id"]])
    sponsor = conn.execute("SELECT sponsor_name FROM pledge WHERE id = %s",
                           [payment["pledge_id"]]).fetchone()
    log_money(conn, user_id, "payment_delete", {
        "sponsor": sponsor and sponsor["sponsor_name"],
        "amount_cents": payment["amount_cents"], "paid_on": payment["paid_on"].isoformat(),
        "method": payment["method"], "reference": payment["reference"],
        **withdrawn(conn, payment["pledge_id"])},
        pledge_id=payment["pledge_id"], payment_id=payment["id"])


def withdrawn_by(conn: psycopg.Connection, payment_id: str) -> int:
    """Return how many queued mails recording this payment withdrew (its money log entry)."""
    row = conn.execute("SELECT details FROM money_log WHERE payment_id = %s "
                       "AND action = 'payment_add'", [payment_id]).fetchone()
    return (row["details"] or {}).get("withdrawn_mail", 0) if row else 0


TRANSFER_PARTS_SQL = """
SELECT y.statement_line_id, y.amount_cents, p.sponsor_name, r.start_number, r.name
FROM payment y JOIN pledge p ON p.id = y.pledge_id JOIN runner o ON o.id = p.runner_id
JOIN runner r ON r.id = coalesce(o.merged_into, o.id)
WHERE y.statement_line_id = ANY(%s) ORDER BY r.start_number, p.sponsor_name, y.id
"""


def payments_of(conn: psycopg.Connection, pledge_id: str) -> list[dict]:
    """Return a pledge's payments, oldest first, with who recorded them; a part of a bank
    transfer split over pledges also lists every part (`transfer`: amount, sponsor, runner),
    as deleting it deletes them all."""
    rows = conn.execute("SELECT p.*, u.name AS by_name, (SELECT count(*) FROM payment s "
                        "WHERE s.statement_line_id = p.statement_line_id) AS parts "
                        "FROM payment p "
                        "LEFT JOIN app_user u ON u.id = p.created_by WHERE p.pledge_id = %s "
                        "ORDER BY p.paid_on, p.created_ms, p.id", [pledge_id]).fetchall()
    split = sorted({row["statement_line_id"] for row in rows if row["parts"] > 1})
    parts: dict[int, list[dict]] = {}
    for part in conn.execute(TRANSFER_PARTS_SQL, [split]) if split else []:
        parts.setdefault(part["statement_line_id"], []).append(part)
    return [{**row, "transfer": parts.get(row["statement_line_id"], [])} for row in rows]


def method_label(method: str) -> str:
    """Name a payment method in the reader's language."""
    return {"transfer": _("bank transfer"), "cash": _("cash"), "other": _("other")}.get(
        method, method)


@bp.route("/<pledge_id>/pay", methods=["GET", "POST"])
@admin_required
def pay(pledge_id: str):
    """Record a payment for a pledge (admin): amount, date, method, reference."""
    conn = get_db()
    pledge = letter_rows(conn, pledge_ids=[live_pledge(conn, pledge_id)["id"]])[0]
    typed = {"paid_on": date.today().isoformat(), "method": "transfer",
             "amount_cents": "", "reference": pledge["reference"], "note": ""}
    if request.method == "POST":
        typed = {key: request.form.get(key, "") for key in typed}
        try:
            payment_id = add_payment(conn, g.user["id"], pledge_id, typed)
        except InputError as exc:
            if wants_json():
                raise
            return render_template("payment_form.html", pledge=pledge, typed=typed,
                                   errors=exc.extra.get("errors", {}), methods=METHODS), 422
        flash(_("Recorded %(amount)s from %(sponsor)s.", sponsor=pledge["sponsor_name"],
                amount=money(parse_cents(typed["amount_cents"]), conn)))
        if withdrawn_by(conn, payment_id):
            flash(_("The e-mail queued for this sponsor was withdrawn: it stated the figures "
                    "before this payment. Queue the letters again if one is still due."))
        return redirect(url_for("sponsors.pledge", pledge_id=pledge_id))
    return render_template("payment_form.html", pledge=pledge, typed=typed, errors={},
                           methods=METHODS)


def flash_with_statement_link(text: str) -> None:
    """Flash text followed by a link to the bank statement page, where a transfer waits again."""
    flash(Markup('{} <a href="{}">{}</a>').format(text, url_for("statement.index"),
                                                  _("Open the bank statement page")))


@bp.post("/payments/<payment_id>/delete")
@admin_required
def delete(payment_id: str):
    """Delete a payment recorded by mistake (admin, logged, once the box is ticked)."""
    if request.form.get("confirm") != "1":
        raise InputError("not_confirmed", _("Tick the box to confirm that the payment is to be "
                                            "deleted. Nothing was deleted."), 400)
    payment = delete_payment(get_db(), g.user["id"], payment_id)
    if payment["parts"] > 1:
        flash_with_statement_link(_(
            "Deleted the payment of %(amount)s and the other parts of the same bank "
            "transfer (%(num)s payments in all); the transfer waits on the bank statement "
            "page again.", amount=money(payment["amount_cents"], get_db()),
            num=payment["parts"]))
    elif payment["statement_line_id"] is not None:
        flash_with_statement_link(_(
            "Deleted the payment of %(amount)s; its bank transfer waits on the bank statement "
            "page again.", amount=money(payment["amount_cents"], get_db())))
    else:
        flash(_("Deleted the payment of %(amount)s.",
                amount=money(payment["amount_cents"], get_db())))
    return redirect(url_for("sponsors.pledge", pledge_id=payment["pledge_id"]))


@bp.get("/outstanding")
@login_required
def outstanding():
    """List the pledges with money still due (of one class, or all), by class and runner."""
    conn = get_db()
    class_name = request.args.get("class", "").strip()[:MAX_CLASS + 1] or None
    rows = [r for r in letter_rows(conn, class_name=class_name) if r["outstanding_cents"] > 0]
    return render_template("outstanding.html", rows=rows, total=sum_rows(rows),
                           classes=list_classes(conn), class_name=class_name)


def init_app(app: Flask) -> None:
    """Register the payment pages."""
    app.register_blueprint(bp)
    app.add_template_global(method_label)
