"""Letters to sponsors and lists for class teachers: what they say, in the reader's language.

A letter's kind: "letter" (the amount a per-lap or per-km pledge raised, with what is
still to pay), "thanks" (a fixed pledge, or any pledge paid in full), or "reminder"
(asked for: a pledge with money outstanding). Figures come from the freeze while one
is in force (sync/freeze.py). A letter with money outstanding carries the organiser's
bank details, the pledge's RF reference and a GiroCode for that amount (EUR only: the
EPC standard knows no other currency). The same paragraphs make the printed letter and
the e-mail, so both say the same. A reminder is held back while a bank transfer naming
its pledge's reference waits on the statement page: that may well be the money it asks for.
"""
from __future__ import annotations

from typing import NamedTuple

import psycopg
from flask_babel import format_decimal, ngettext
from flask_babel import gettext as _
from stdnum import iban as stdnum_iban

from ..bank_settings import BANK, bank_mail_settings
from ..money_settings import money_settings
from ..results import event_info, ran
from .amounts import money
from .freeze import letter_rows
from .girocode import girocode
from .pledges import format_reference
from .statement import find_references

KINDS = ("letter", "thanks", "reminder")
WAITING_SQL = """
SELECT id, booked_on, amount_cents, purpose, counterparty FROM statement_line
WHERE payment_id IS NULL AND ignored_ms IS NULL ORDER BY booked_on, id
"""


def letter_kind(row: dict) -> str:
    """Return the kind of letter a pledge gets unless a reminder is asked for."""
    paid_in_full = row["amount_cents"] > 0 and row["outstanding_cents"] <= 0
    return "thanks" if paid_in_full or row["kind"] == "fixed" else "letter"


def letter_context(conn: psycopg.Connection) -> dict:
    """Return what every letter shares: the event, the bank account, the currency."""
    bank = {key: value for key, value in bank_mail_settings(conn).items() if key in BANK}
    return {"event": event_info(conn), "bank": bank,
            "iban_text": stdnum_iban.format(bank["iban"]) if bank.get("iban") else "",
            "currency": money_settings(conn)["currency"]}


def km_text(metres: float | int | None) -> str:
    """Return a distance in km with up to two decimals in the reader's language."""
    return format_decimal(round(metres / 1000, 2), format="#,##0.##") if metres else "0"


def pledge_text(row: dict, currency: str) -> str:
    """Say what the sponsor promised: 0,50 € per lap (at most 20,00 €)."""
    rate = money(row["rate_cents"], currency=currency)
    if row["kind"] == "per_lap":
        text = _("%(rate)s per lap", rate=rate)
    elif row["kind"] == "per_km":
        text = _("%(rate)s per kilometre", rate=rate)
    else:
        text = _("a fixed amount of %(rate)s", rate=rate)
    if row["cap_cents"]:
        text = _("%(pledge)s, at most %(cap)s", pledge=text,
                 cap=money(row["cap_cents"], currency=currency))
    return text


def run_text(row: dict, event: dict) -> str:
    """Say what the runner did: the laps, the distance, the event."""
    laps = ngettext("%(num)s lap", "%(num)s laps", row["laps"])
    distance = _(" (%(km)s km)", km=km_text(row["distance_m"])) if row["distance_m"] else ""
    where = _(" at %(event)s", event=event["name"]) if event["name"] else ""
    return _("%(runner)s (class %(class_name)s, start number %(number)s) ran %(laps)s"
             "%(distance)s%(where)s.", runner=row["name"], class_name=row["class"],
             number=row["start_number"], laps=laps, distance=distance, where=where)


def subject(row: dict, kind: str, event: dict) -> str:
    """Return the letter's subject line."""
    name = event["name"] or _("Sponsored run")
    if kind == "reminder":
        return _("Reminder – %(event)s: your pledge for %(runner)s", event=name, runner=row["name"])
    if kind == "thanks":
        return _("%(event)s: thank you for sponsoring %(runner)s", event=name, runner=row["name"])
    return _("%(event)s: your pledge for %(runner)s", event=name, runner=row["name"])


def paragraphs(row: dict, kind: str, ctx: dict) -> list[str]:
    """Return the letter's body paragraphs (after the salutation, before the payment box)."""
    cur, event = ctx["currency"], ctx["event"]
    amount, paid = money(row["amount_cents"], currency=cur), money(row["paid_cents"], currency=cur)
    due = money(max(row["outstanding_cents"], 0), currency=cur)
    # A fixed pledge of a runner who did not run still owes its amount: never say "0 laps".
    says_laps = ran(row) and (row["kind"] != "fixed" or kind != "thanks")
    found = [run_text(row, event) if says_laps else
             _("Thank you for supporting %(runner)s (class %(class_name)s) with %(amount)s.",
               runner=row["name"], class_name=row["class"], amount=amount)]
    if row["kind"] != "fixed":
        found.append(_("You pledged %(pledge)s. That makes %(amount)s.",
                       pledge=pledge_text(row, cur), amount=amount))
    if kind == "reminder":
        found.append(_("According to our records %(due)s of it is still open (paid so far: "
                       "%(paid)s). If you have paid in the meantime, please ignore this "
                       "reminder.", due=due, paid=paid))
    elif row["outstanding_cents"] <= 0 and row["amount_cents"] > 0:
        found.append(_("We have received %(paid)s. Thank you very much!", paid=paid))
    elif row["paid_cents"]:
        found.append(_("Paid so far: %(paid)s. Still to pay: %(due)s.", paid=paid, due=due))
    if row["outstanding_cents"] > 0:
        # The GiroCode, where one is printed, carries its own caption: the text promises
        # none (an e-mail has none, nor has a letter in another currency than EUR).
        found.append(_("Please transfer %(due)s to the account below with the payment "
                       "reference %(reference)s, so that we can match your payment.", due=due,
                       reference=format_reference(row["reference"])))
    found.append(_("Thank you for your support!") if kind != "thanks" else
                 _("The money goes entirely to the cause of the run."))
    return found


def build_letter(row: dict, kind: str, ctx: dict) -> dict:
    """Return one letter: subject, salutation, paragraphs, payment details and GiroCode."""
    outstanding = max(row["outstanding_cents"], 0)
    code = None
    if outstanding and ctx["currency"] == "EUR":
        code = girocode(ctx["bank"], outstanding, row["reference"])
    return {"row": row, "kind": kind, "subject": subject(row, kind, ctx["event"]),
            "salutation": _("Dear %(sponsor)s,", sponsor=row["sponsor_name"]),
            "paragraphs": paragraphs(row, kind, ctx), "outstanding": outstanding,
            "due_text": money(outstanding, currency=ctx["currency"]),
            "reference_text": format_reference(row["reference"]), "girocode": code}


def gets_letter(row: dict) -> bool:
    """Return whether a pledge gets a letter: per lap or km only if its runner ran."""
    # Such a pledge of a runner with no lap that counts owes nothing; a fixed one still owes.
    return row["kind"] == "fixed" or ran(row)


def of_kind(row: dict, kind: str | None) -> bool:
    """Return whether a pledge belongs to the letters of kind asked for (None: all)."""
    if kind == "reminder":
        return row["outstanding_cents"] > 0
    return kind is None or letter_kind(row) == kind


class LetterBatch(NamedTuple):
    """The letters of a page, the pledges left out because their runner did not run, and the
    reminders held back because a bank transfer naming their pledge waits for an admin."""

    letters: list[dict]
    left_out: list[dict]
    waiting: list[dict]


def letters(conn: psycopg.Connection, **filters) -> list[dict]:
    """Return the letters of a class (or of given pledges), of one kind or each its own."""
    return letter_batch(conn, **filters).letters


def letter_batch(conn: psycopg.Connection, *, class_name: str | None = None,
                 pledge_ids: list[str] | None = None, kind: str | None = None) -> LetterBatch:
    """Return letters(), the pledge rows left out because their runner did not run and, for
    reminders, those held back by a waiting transfer ({row, lines})."""
    ctx = letter_context(conn)
    found, left_out = [], []
    for row in letter_rows(conn, class_name=class_name, pledge_ids=pledge_ids):
        # A sponsor who paid for a runner who did not run is named on every kind of page:
        # the money is to be settled by hand, whichever letters are printed.
        if not of_kind(row, kind) and (gets_letter(row) or not row["paid_cents"]):
            continue
        if gets_letter(row):
            found.append(row)
        else:
            left_out.append(row)
    # A reminder to a sponsor whose transfer only waits to be assigned asks for money paid.
    credits = waiting_credits(conn, found) if kind == "reminder" else {}
    waiting = [{"row": row, "lines": credits[row["id"]]} for row in found if row["id"] in credits]
    return LetterBatch([build_letter(row, kind if kind == "reminder" else letter_kind(row), ctx)
                        for row in found if row["id"] not in credits], left_out, waiting)


def waiting_credits(conn: psycopg.Connection, rows: list[dict]) -> dict[str, list[dict]]:
    """Return, by pledge id, the bank statement credits waiting for an admin (neither booked
    nor ignored) whose purpose names the pledge's reference: one query for all the rows."""
    by_reference = {row["reference"]: row["id"] for row in rows}
    found: dict[str, list[dict]] = {}
    if not by_reference:
        return found
    for line in conn.execute(WAITING_SQL):
        for reference in find_references(line["purpose"], by_reference)[0]:
            found.setdefault(by_reference[reference], []).append(line)
    return found


def letter_text(letter: dict, ctx: dict) -> str:
    """Return a letter as the plain text of an e-mail (payment details written out)."""
    parts = [letter["salutation"], *letter["paragraphs"]]
    if letter["outstanding"]:
        bank = ctx["bank"]
        parts.append("\n".join(line for line in (
            _("Account holder: %(name)s", name=bank.get("account_holder", "")),
            _("IBAN: %(iban)s", iban=ctx["iban_text"]),
            _("BIC: %(bic)s", bic=bank["bic"]) if bank.get("bic") else "",
            _("Payment reference: %(reference)s", reference=letter["reference_text"]),
            _("Amount: %(amount)s", amount=letter["due_text"])) if line))
    parts.append(_("Kind regards") + "\n" + (bank_name(ctx) or ""))
    return "\n\n".join(parts) + "\n"


def bank_name(ctx: dict) -> str:
    """Return who signs the letters: the account holder, else the event."""
    return ctx["bank"].get("account_holder") or ctx["event"]["name"]
