"""Bank statement import: credit lines matched to pledges by their RF payment reference.

The file is read by sync/sponsors/statement_csv.py. Only credits (amount > 0) count. Each is keyed by a hash of its fields and its
occurrence among identical lines of the file, so importing the same file, or a later
export that repeats its lines, records nothing twice. A credit whose purpose holds the
reference of exactly one live pledge (spaces and case ignored) becomes a payment of
that pledge. One transfer for several pledges (a sponsor with two letters) whose
purpose names their references, and nothing else that looks like one, is booked when
the pledges' open amounts add up to it exactly: each pledge its open amount, one payment
each, all tied to the line. The others wait on the statement page until an admin
assigns them (whole, or split over pledges) or ignores them. A file with a line that
cannot be read changes nothing.
"""
from __future__ import annotations

import re
from collections.abc import Container

import psycopg
from flask_babel import gettext as _

from lapsync.errors import InputError
from lapsync.ids import new_id

from ..db import now_ms
from .amounts import money
from .freeze import letter_rows
from .mail import withdrawn
from .money_log import log_money
from .pledges import live_pledge, parse_cents, runner_text
from .statement_csv import line_keys, parse_statement

MAX_PARTS = 50              # pledges one credit may be split over on the form
ZERO = re.compile(r"0+(?:[.,]0{1,2})?")
REFERENCE_START = re.compile(r"RF\d\d")


def compact(purpose: str) -> tuple[str, list[bool]]:
    """Return the purpose upper case without spaces and, per character, whether a word starts there."""
    chars, starts, previous = [], [], " "
    for char in purpose:
        if not char.isspace():
            chars.append(char.upper())
            starts.append(not previous.isalnum())
        previous = char
    return "".join(chars), starts


def known_at(text: str, start: int, references: Container[str]) -> str | None:
    """Return the longest known reference that starts at text[start], or None."""
    for end in range(min(len(text), start + 25), start + 4, -1):
        if text[start:end] in references:
            return text[start:end]
    return None


def find_references(purpose: str, references: Container[str]) -> tuple[list[str], bool]:
    """Return the known references a purpose names (spaces and case ignored, in order, each
    once) and whether it also names an RF reference that is no live pledge's."""
    text, starts = compact(purpose)
    found: list[str] = []
    unknown, covered = False, 0
    for match in REFERENCE_START.finditer(text):
        if match.start() < covered:         # "RF23" inside a reference's own letters
            continue
        reference = known_at(text, match.start(), references)
        if reference is not None:
            covered = match.start() + len(reference)
            found += [] if reference in found else [reference]
        elif starts[match.start()]:         # a word "RF12 ...", not "Surf 12"
            unknown = True
    return found, unknown


def find_reference(purpose: str, references: Container[str]) -> str | None:
    """Return the one known reference the purpose holds, or None (none, several, or one
    beside an unknown RF reference: a transfer meant for more than that pledge)."""
    found, unknown = find_references(purpose, references)
    return found[0] if len(found) == 1 and not unknown else None


def record_payment(conn: psycopg.Connection, user_id: str | None, line: dict, pledge: dict,
                   amount_cents: int | None = None, line_id: int | None = None) -> str:
    """Record a statement line (or a part of it) as a transfer paid to a pledge (logged);
    return the payment id."""
    payment_id = new_id()
    cents = line["amount_cents"] if amount_cents is None else amount_cents
    if cents == line["amount_cents"]:
        note = _("Bank statement: %(purpose)s", purpose=line["purpose"])[:200]
    else:
        note = _("Bank statement, part of %(amount)s: %(purpose)s", purpose=line["purpose"],
                 amount=money(line["amount_cents"], conn))[:200]
    conn.execute("INSERT INTO payment (id, pledge_id, amount_cents, paid_on, method, reference, "
                 "note, created_ms, created_by, statement_line_id) "
                 "VALUES (%s, %s, %s, %s, 'transfer', %s, %s, %s, %s, %s)",
                 [payment_id, pledge["id"], cents, line["booked_on"], pledge["reference"], note,
                  now_ms(), user_id, line_id])
    log_money(conn, user_id, "payment_add", {
        "sponsor": pledge["sponsor_name"], "runner": runner_text(pledge),
        "amount_cents": cents, "paid_on": line["booked_on"].isoformat(),
        "method": "transfer", "reference": pledge["reference"], "note": note,
        **withdrawn(conn, pledge["id"])}, pledge_id=pledge["id"], payment_id=payment_id)
    return payment_id


def open_amounts(conn: psycopg.Connection, pledge_ids: list[str]) -> dict[str, dict]:
    """Lock live pledges against payments and return them by id with what each still owes
    (outstanding_cents as its letter states it)."""
    # FOR UPDATE waits for, and then sees, a payment being recorded for one of them (the
    # payment's foreign key holds a lock on its pledge until it commits).
    conn.execute("SELECT id FROM pledge WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                 [sorted(pledge_ids)])
    return {row["id"]: row for row in letter_rows(conn, pledge_ids=list(pledge_ids))}


def exact_parts(conn: psycopg.Connection, pledge_ids: list[str],
                amount_cents: int) -> list[tuple[dict, int]] | None:
    """Return (pledge, its open amount) for each pledge if every one owes something and
    together exactly amount_cents, else None."""
    rows = open_amounts(conn, pledge_ids)
    if len(rows) != len(pledge_ids) or any(r["outstanding_cents"] <= 0 for r in rows.values()):
        return None
    if sum(r["outstanding_cents"] for r in rows.values()) != amount_cents:
        return None
    return [(rows[pid], rows[pid]["outstanding_cents"]) for pid in pledge_ids]


LIVE_PLEDGES_SQL = """
SELECT p.id, p.reference, p.sponsor_name, r.start_number, r.name, r.class
FROM pledge p JOIN runner o ON o.id = p.runner_id
JOIN runner r ON r.id = coalesce(o.merged_into, o.id)
WHERE p.deleted_ms IS NULL
"""
INSERT_LINE = """
INSERT INTO statement_line (line_key, booked_on, amount_cents, purpose, counterparty,
                            file_name, imported_ms, imported_by)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (line_key) DO NOTHING RETURNING id
"""
OPEN_LINES_SQL = """
SELECT id, booked_on, amount_cents, purpose, counterparty, file_name, imported_ms
FROM statement_line WHERE payment_id IS NULL AND ignored_ms IS NULL
ORDER BY booked_on, id LIMIT %s
"""


def import_statement(conn: psycopg.Connection, user_id: str | None, data: bytes,
                     filename: str) -> dict:
    """Import a statement: new credits matched by reference become payments; return counts.

    Counts: lines (bookings read), debits (skipped), known (imported before), matched
    (payments recorded now: a transfer split over pledges counts one each), unmatched (new
    lines left for an admin); overpaid lists the credits booked to a pledge that then has
    been paid more than it owes (see overpaid_by).
    """
    lines = parse_statement(data)
    credits = [line for line in lines if line["amount_cents"] > 0]
    report = {"lines": len(lines), "debits": len(lines) - len(credits), "known": 0,
              "matched": 0, "unmatched": 0, "overpaid": []}
    with conn.transaction():
        pledges = {row["reference"]: row for row in conn.execute(LIVE_PLEDGES_SQL)}
        for line, key in zip(credits, line_keys(credits)):
            row = conn.execute(INSERT_LINE, [key, line["booked_on"], line["amount_cents"],
                                             line["purpose"], line["counterparty"],
                                             filename[:200], now_ms(), user_id]).fetchone()
            if row is None:
                report["known"] += 1
                continue
            parts = auto_parts(conn, line, pledges)
            if parts is None:
                report["unmatched"] += 1
                continue
            report["matched"] += len(settle(conn, user_id, row["id"], line, parts, "reference"))
            report["overpaid"] += overpaid_by(conn, line, [pledge for pledge, _cents in parts])
        log_money(conn, user_id, "statement_import", {"file": filename[:200], **report})
    return report


def overpaid_by(conn: psycopg.Connection, line: dict, pledges: list[dict]) -> list[dict]:
    """Return, per pledge a credit was just booked to that is now paid more than it owes
    (what its letter states), the credit and the pledge: {amount_cents, counterparty,
    sponsor, runner, overpaid_cents}."""
    rows = letter_rows(conn, pledge_ids=[pledge["id"] for pledge in pledges])
    return [{"amount_cents": line["amount_cents"], "counterparty": line["counterparty"],
             "sponsor": row["sponsor_name"], "runner": runner_text(row),
             "overpaid_cents": -row["outstanding_cents"]}
            for row in rows if row["outstanding_cents"] < 0]


def auto_parts(conn: psycopg.Connection, line: dict,
               pledges: dict[str, dict]) -> list[tuple[dict, int]] | None:
    """Return how a new credit pays the pledges its purpose names, or None to leave it to
    an admin: one pledge takes it whole; several take each its open amount if those add up
    to the credit exactly."""
    found, unknown = find_references(line["purpose"], pledges)
    if unknown or not found:
        return None
    if len(found) == 1:
        return [(pledges[found[0]], line["amount_cents"])]
    return exact_parts(conn, [pledges[ref]["id"] for ref in found], line["amount_cents"])


def settle(conn: psycopg.Connection, user_id: str | None, line_id: int, line: dict,
           parts: list[tuple[dict, int]], how: str) -> list[str]:
    """Record a line's payments, one per (pledge, cents), and link the line to them; return
    the payment ids."""
    ids = [record_payment(conn, user_id, line, pledge, cents, line_id) for pledge, cents in parts]
    conn.execute("UPDATE statement_line SET pledge_id = %s, payment_id = %s, matched_by = %s "
                 "WHERE id = %s", [parts[0][0]["id"] if len(parts) == 1 else None, ids[0],
                                   how, line_id])
    return ids


def open_lines(conn: psycopg.Connection, limit: int = 1000) -> list[dict]:
    """Return the credits that matched no pledge and wait for an admin, oldest first."""
    return conn.execute(OPEN_LINES_SQL, [limit]).fetchall()


def open_line(conn: psycopg.Connection, line_id: int) -> dict:
    """Lock and return a line still waiting for an admin, or raise InputError (404/409)."""
    line = conn.execute("SELECT * FROM statement_line WHERE id = %s FOR UPDATE",
                        [line_id]).fetchone()
    if line is None:
        raise InputError("unknown_line", _("There is no such statement line."), 404)
    if line["payment_id"] is not None or line["ignored_ms"] is not None:
        raise InputError("line_done", _("This statement line was assigned or ignored already."),
                         409)
    return line


def assign_line(conn: psycopg.Connection, user_id: str, line_id: int,
                pledge_id: str) -> tuple[str, list[dict]]:
    """Record an unmatched line as a payment of the pledge an admin chose; return its id and,
    if the pledge is now paid more than it owes, the overpayment (overpaid_by)."""
    with conn.transaction():
        line = open_line(conn, line_id)
        pledge = live_pledge(conn, pledge_id)
        payment = settle(conn, user_id, line_id, line, [(pledge, line["amount_cents"])], "admin")[0]
        return payment, overpaid_by(conn, line, [pledge])


def parse_parts(typed: dict[str, str]) -> dict[str, int]:
    """Read a split as typed, {pledge id: amount text}, as {pledge id: cents}; an empty or
    zero amount leaves its pledge out. Raise InputError (errors by pledge id) when refused."""
    if len(typed) > MAX_PARTS:
        raise InputError("too_many_parts", _("A credit is split over at most %(max)s pledges.",
                                              max=MAX_PARTS), 400)
    parts, errors = {}, {}
    for pledge_id, text in typed.items():
        text = "".join(str(text or "").split())
        if not text or ZERO.fullmatch(text):
            continue
        try:
            parts[pledge_id] = parse_cents(text)
        except ValueError:
            errors[pledge_id] = _("Each part must be an amount like 12,50 or 12.50, or empty. "
                                  "Nothing was booked.")
    if errors:
        raise InputError("invalid_part", next(iter(errors.values())), 422, errors=errors)
    if not parts:
        raise InputError("no_parts", _("Type an amount for at least one pledge. Nothing was "
                                       "booked."), 422)
    return parts


def split_line(conn: psycopg.Connection, user_id: str, line_id: int,
               typed: dict[str, str]) -> tuple[list[str], list[dict]]:
    """Record an unmatched line as payments of several pledges, the amounts an admin typed,
    all or nothing; they must add up to the line's amount exactly. Return the payment ids
    and the pledges now paid more than they owe (overpaid_by)."""
    parts = parse_parts(typed)
    with conn.transaction():
        line = open_line(conn, line_id)
        total = sum(parts.values())
        if total != line["amount_cents"]:
            raise InputError("split_mismatch", _(
                "The parts add up to %(sum)s, but the credit is %(amount)s: they must add up "
                "to it exactly. Nothing was booked.", sum=money(total, conn),
                amount=money(line["amount_cents"], conn)), 422,
                sum_cents=total, amount_cents=line["amount_cents"])
        pledges = [(live_pledge(conn, pledge_id), cents) for pledge_id, cents in parts.items()]
        ids = settle(conn, user_id, line_id, line, pledges, "admin")
        return ids, overpaid_by(conn, line, [pledge for pledge, _cents in pledges])


def named_pledges(conn: psycopg.Connection, lines: list[dict]) -> dict[int, list[dict]]:
    """Return, per line id, the live pledges its purpose names with what each still owes."""
    references = {row["reference"]: row["id"] for row in conn.execute(
        "SELECT id, reference FROM pledge WHERE deleted_ms IS NULL")} if lines else {}
    named = {line["id"]: [references[ref] for ref in find_references(line["purpose"], references)[0]]
             for line in lines}
    wanted = sorted({pid for ids in named.values() for pid in ids})
    rows = {row["id"]: row for row in letter_rows(conn, pledge_ids=wanted)} if wanted else {}
    return {line_id: [rows[pid] for pid in ids if pid in rows]
            for line_id, ids in named.items() if ids}


def line_details(line: dict) -> dict:
    """Return what the money log keeps of a statement line."""
    return {"amount_cents": line["amount_cents"], "paid_on": line["booked_on"].isoformat(),
            "purpose": line["purpose"], "counterparty": line["counterparty"]}


def ignore_line(conn: psycopg.Connection, user_id: str, line_id: int) -> dict:
    """Mark an unmatched line as no sponsor's payment (logged); it leaves the list for the
    ignored ones. Return the line."""
    with conn.transaction():
        line = open_line(conn, line_id)
        conn.execute("UPDATE statement_line SET ignored_ms = %s, ignored_by = %s WHERE id = %s",
                     [now_ms(), user_id, line_id])
        log_money(conn, user_id, "statement_ignore", line_details(line))
    return line


def ignored_lines(conn: psycopg.Connection, limit: int = 1000) -> list[dict]:
    """Return the credits an admin ignored, the latest first, with who ignored them."""
    return conn.execute(
        "SELECT l.id, l.booked_on, l.amount_cents, l.purpose, l.counterparty, l.ignored_ms, "
        "u.name AS ignored_by_name FROM statement_line l "
        "LEFT JOIN app_user u ON u.id = l.ignored_by "
        "WHERE l.ignored_ms IS NOT NULL AND l.payment_id IS NULL "
        "ORDER BY l.ignored_ms DESC, l.id DESC LIMIT %s", [limit]).fetchall()


def restore_line(conn: psycopg.Connection, user_id: str, line_id: int) -> dict:
    """Put an ignored line back on the list of credits to assign (logged); return it."""
    with conn.transaction():
        line = conn.execute("SELECT * FROM statement_line WHERE id = %s FOR UPDATE",
                            [line_id]).fetchone()
        if line is None:
            raise InputError("unknown_line", _("There is no such statement line."), 404)
        if line["ignored_ms"] is None or line["payment_id"] is not None:
            raise InputError("line_not_ignored", _("This statement line is not ignored."), 409)
        conn.execute("UPDATE statement_line SET ignored_ms = NULL, ignored_by = NULL "
                     "WHERE id = %s", [line_id])
        log_money(conn, user_id, "statement_restore", line_details(line))
    return line
