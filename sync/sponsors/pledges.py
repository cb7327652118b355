"""Sponsors' pledges at central: check, add, edit, delete (soft), find; every change logged.

A pledge is a sponsor's promise for one runner: per lap, per km or a fixed sum, in
cents, with an optional cap. Its amount due is never stored: sync/amounts.py computes
it from the laps that count. Each pledge gets an ISO 11649 creditor reference ("RF.."),
which banks carry intact and a GiroCode can hold; bank statements are matched by it.
Laptops get none of this (nothing here is pulled).
"""
from __future__ import annotations

import re
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
from flask_babel import gettext as _
from flask_babel import ngettext
from stdnum.iso7064 import mod_97_10

from lapsync.errors import InputError
from lapsync.ids import new_id
from lapsync.names import clean_name

from ..db import now_ms
from .amounts import money
from .mail import withdrawn
from .money_log import log_money

KINDS = ("per_lap", "per_km", "fixed")
# What a file or a form may say for a kind: the codes, German and English words.
KIND_WORDS = {"per_lap": "per_lap", "per lap": "per_lap", "pro runde": "per_lap",
              "per_km": "per_km", "per km": "per_km", "pro km": "per_km",
              "fixed": "fixed", "fest": "fixed"}
FIELDS = ("sponsor_name", "email", "address", "kind", "rate_cents", "cap_cents")
MAX_SPONSOR = 100
MAX_EMAIL = 254
MAX_ADDRESS = 400
MAX_ADDRESS_LINES = 6
MAX_CENTS = 10_000_000          # 100,000.00 per lap, km or sum: beyond any sponsor card
AMOUNT = re.compile(r"(\d{1,7})(?:[.,](\d{1,2}))?")
# Thousands grouped by one separator, decimals after the other: 1.000,00 or 1,000.00. Without
# decimals ("1.000", "1,000") the separator could be either: refused, as before.
GROUPED = re.compile(r"([1-9]\d{0,2}(?:\.\d{3})+),(\d{1,2})|([1-9]\d{0,2}(?:,\d{3})+)\.(\d{1,2})")
EMAIL = re.compile(r"[^@\s<>\"(),;:]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,63}")
# Reference payloads: no 0/O or 1/I, so a reference read aloud or typed stays right.
REFERENCE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
REFERENCE_LENGTH = 10

PLEDGE_SQL = """
SELECT p.*, r.id AS counted_runner_id, r.start_number, r.name, r.class, r.grade
FROM pledge p JOIN runner o ON o.id = p.runner_id
JOIN runner r ON r.id = coalesce(o.merged_into, o.id)
WHERE p.id = %s
"""


def parse_cents(value: Any) -> int:
    """Read an amount in currency units ("0,50", "1.25", "20", "1.000,00", "1,000.00", or a
    number) as cents."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        try:
            cents = Decimal(str(value)) * 100
        except InvalidOperation:
            raise ValueError from None
        if cents != cents.to_integral_value() or not 0 < cents <= MAX_CENTS:
            raise ValueError
        return int(cents)
    text = "".join(str(value or "").split()).removesuffix("€").removeprefix("€")
    if match := AMOUNT.fullmatch(text):
        whole, decimals = match[1], match[2]
    elif match := GROUPED.fullmatch(text):
        whole, decimals = re.sub(r"\D", "", match[1] or match[3]), match[2] or match[4]
    else:
        raise ValueError
    cents = int(whole) * 100 + int((decimals or "0").ljust(2, "0"))
    if not 0 < cents <= MAX_CENTS:
        raise ValueError
    return cents


def parse_kind(value: Any) -> str:
    """Return per_lap, per_km or fixed for a code or a German or English word, or raise."""
    kind = KIND_WORDS.get(" ".join(str(value or "").split()).casefold())
    if kind is None:
        raise ValueError
    return kind


def clean_sponsor(value: Any) -> str:
    """Return a sponsor's name (one line, 1..100 characters), or raise ValueError."""
    name = " ".join(clean_name(value).split())
    if not 0 < len(name) <= MAX_SPONSOR:
        raise ValueError
    return name


def clean_email(value: Any) -> str | None:
    """Return an e-mail address (or None when empty), or raise ValueError."""
    text = str(value or "").strip()
    if not text:
        return None
    if len(text) > MAX_EMAIL or not EMAIL.fullmatch(text):
        raise ValueError
    return text


def clean_address(value: Any) -> str | None:
    """Return a postal address of up to 6 lines (or None when empty), or raise ValueError."""
    lines = [clean_name(line) for line in str(value or "").replace("\r", "").split("\n")]
    lines = [" ".join(line.split()) for line in lines if line.strip()]
    text = "\n".join(lines)
    if len(lines) > MAX_ADDRESS_LINES or len(text) > MAX_ADDRESS:
        raise ValueError
    return text or None


def field_messages() -> dict[str, str]:
    """Return what each field says when it refuses a value."""
    return {
        "sponsor_name": _("The sponsor's name must be 1 to %(max)s characters on one line.",
                          max=MAX_SPONSOR),
        "email": _("This is not an e-mail address (like name@example.org)."),
        "address": _("The address must be at most %(lines)s lines and %(max)s characters.",
                     lines=MAX_ADDRESS_LINES, max=MAX_ADDRESS),
        "kind": _("The kind must be per lap, per km or fixed (pro Runde, pro km, fest)."),
        "rate_cents": _("The amount must be above 0 with at most two decimals, "
                        "like 0,50 or 1.25 or 20."),
        "cap_cents": _("The cap must be empty or an amount above 0, like 25 or 30,00."),
    }


def check_pledge(values: dict) -> tuple[dict, dict[str, str]]:
    """Check a pledge's fields as typed: (cleaned fields, errors by field)."""
    cleaners = {"sponsor_name": clean_sponsor, "email": clean_email, "address": clean_address,
                "kind": parse_kind, "rate_cents": parse_cents,
                "cap_cents": lambda v: parse_cents(v) if str(v or "").strip() else None}
    fields, errors, messages = {}, {}, field_messages()
    for key, clean in cleaners.items():
        try:
            fields[key] = clean(values.get(key))
        except ValueError:
            errors[key] = messages[key]
    if not errors and fields["kind"] == "fixed" and fields["cap_cents"] is not None:
        errors["cap_cents"] = _("A fixed amount takes no cap.")
    return fields, errors


def validate_pledge(values: dict) -> dict:
    """Return a pledge's cleaned fields, or raise InputError naming the first bad field."""
    fields, errors = check_pledge(values)
    if errors:
        key = next(iter(errors))
        raise InputError("invalid_pledge", errors[key], 422, field=key, errors=errors)
    return fields


def new_references(conn: psycopg.Connection, count: int) -> list[str]:
    """Return count new ISO 11649 creditor references that no pledge has."""
    found: set[str] = set()
    while len(found) < count:
        batch = set()
        for _n in range(count - len(found)):
            payload = "".join(secrets.choice(REFERENCE_LETTERS) for _i in range(REFERENCE_LENGTH))
            batch.add("RF" + mod_97_10.calc_check_digits(payload + "RF") + payload)
        taken = {row["reference"] for row in conn.execute(
            "SELECT reference FROM pledge WHERE reference = ANY(%s)", [list(batch)])}
        found |= batch - taken
    return sorted(found)[:count]


def format_reference(reference: str) -> str:
    """Write a stored reference in groups of four, as letters print it: RF18 ABCD EFGH JK."""
    # iso11649.format without its clean-up: stored references are compact (new_references),
    # and the clean-up was half the amounts CSV's time at 10,000 pledges.
    return " ".join(reference[i:i + 4] for i in range(0, len(reference), 4))


def runner_by_number(conn: psycopg.Connection, number: Any) -> dict:
    """Return the runner with this start number, or raise InputError (404 unknown, 409 shared)."""
    text = str(number or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 6 and int(text) > 0):
        raise InputError("invalid_start_number", _(
            "A start number is a whole number from 1 to 999999."), 400, field="start_number")
    rows = conn.execute("SELECT id, start_number, name, class, grade FROM runner "
                        "WHERE start_number = %s AND merged_into IS NULL", [int(text)]).fetchall()
    if not rows:
        survivor = conn.execute(
            "SELECT s.start_number, s.name, s.class FROM runner m JOIN runner s ON s.id = m.merged_into "
            "WHERE m.start_number = %s LIMIT 1", [int(text)]).fetchone()
        if survivor:  # the runner was one child typed twice: the pledge goes to the one kept
            raise InputError("merged_runner", _(
                "Start number %(number)s was merged into %(runner)s: type %(kept)s.",
                number=int(text), runner=runner_text(survivor), kept=survivor["start_number"]),
                404, field="start_number")
        raise InputError("unknown_runner", _("No runner has start number %(number)s.",
                                             number=int(text)), 404, field="start_number")
    if len(rows) > 1:
        raise InputError("shared_start_number", _(
            "Start number %(number)s belongs to %(count)s runners: decide the clash on the "
            "review page first.", number=int(text), count=len(rows)), 409, field="start_number")
    return rows[0]


def get_pledge(conn: psycopg.Connection, pledge_id: str) -> dict | None:
    """Return a pledge with the runner its laps come from (a merged runner's survivor), or None."""
    return conn.execute(PLEDGE_SQL, [pledge_id]).fetchone()


def live_pledge(conn: psycopg.Connection, pledge_id: str) -> dict:
    """Return a pledge that is not deleted, or raise InputError 404."""
    pledge = get_pledge(conn, pledge_id) if isinstance(pledge_id, str) else None
    if pledge is None or pledge["deleted_ms"] is not None:
        raise InputError("unknown_pledge", _("There is no such pledge."), 404)
    return pledge


def runner_text(runner: dict) -> str:
    """Name a runner for the log: number, name and class."""
    return f"{runner['start_number']} {runner['name']} ({runner['class']})"


def insert_pledges(conn: psycopg.Connection, user_id: str | None, runner_ids: list[str],
                   pledges: list[dict]) -> list[str]:
    """Insert checked pledges for runner_ids (caller's transaction); return their ids."""
    now, ids = now_ms(), [new_id() for _p in pledges]
    references = new_references(conn, len(pledges))
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO pledge (id, runner_id, sponsor_name, email, address, kind, rate_cents, "
            "cap_cents, reference, created_ms, updated_ms, created_by) VALUES (%s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s, %s)",
            [[pid, runner_id, p["sponsor_name"], p["email"], p["address"], p["kind"],
              p["rate_cents"], p["cap_cents"], ref, now, now, user_id]
             for pid, runner_id, p, ref in zip(ids, runner_ids, pledges, references)])
    return ids


def add_pledges(conn: psycopg.Connection, user_id: str | None, runner_id: str,
                values: list[dict]) -> list[str]:
    """Check and add a runner's pledges, all or none, each logged; return their ids."""
    problems = {}
    cleaned = []
    for index, item in enumerate(values):
        fields, errors = check_pledge(item)
        cleaned.append(fields)
        if errors:
            problems[index] = errors
    if problems:
        first = next(iter(problems.values()))
        raise InputError("invalid_pledge", next(iter(first.values())), 422,
                         lines={str(i): e for i, e in problems.items()})
    with conn.transaction():
        runner = conn.execute("SELECT id, start_number, name, class FROM runner WHERE id = %s "
                              "AND merged_into IS NULL FOR SHARE", [runner_id]).fetchone()
        if runner is None:
            raise InputError("unknown_runner", _("There is no such runner."), 404)
        ids = insert_pledges(conn, user_id, [runner_id] * len(cleaned), cleaned)
        for pledge_id, fields in zip(ids, cleaned):
            log_money(conn, user_id, "pledge_add", {"sponsor": fields["sponsor_name"],
                                                    "runner": runner_text(runner), **fields},
                      pledge_id=pledge_id)
    return ids


def add_pledge(conn: psycopg.Connection, user_id: str | None, runner_id: str,
               values: dict) -> str:
    """Check and add one pledge for a runner (logged); return its id."""
    return add_pledges(conn, user_id, runner_id, [values])[0]


def edit_pledge(conn: psycopg.Connection, user_id: str | None, pledge_id: str,
                values: dict) -> dict:
    """Check and save a pledge's new fields (logged with what changed); return the changes.

    A start number in values that is not the pledge's runner's moves the pledge (and its
    payments) to that runner: a card typed with the wrong number.
    """
    fields = validate_pledge(values)
    with conn.transaction():
        pledge = live_pledge(conn, pledge_id)
        changed = {key: {"from": pledge[key], "to": fields[key]} for key in FIELDS
                   if pledge[key] != fields[key]}
        runner = moved_to(conn, pledge, values.get("start_number"))
        if runner is not None:
            changed["runner"] = {"from": runner_text(pledge), "to": runner_text(runner)}
        if not changed:
            return {}
        conn.execute("UPDATE pledge SET sponsor_name = %(sponsor_name)s, email = %(email)s, "
                     "address = %(address)s, kind = %(kind)s, rate_cents = %(rate_cents)s, "
                     "cap_cents = %(cap_cents)s, runner_id = %(runner_id)s, updated_ms = %(now)s "
                     "WHERE id = %(id)s", {**fields, "now": now_ms(), "id": pledge_id,
                                           "runner_id": runner["id"] if runner else pledge["runner_id"]})
        log_money(conn, user_id, "pledge_edit", {"sponsor": fields["sponsor_name"],
                                                 "runner": runner_text(runner or pledge),
                                                 "changed": changed,
                                                 **withdrawn(conn, pledge_id)}, pledge_id=pledge_id)
    return changed


def moved_to(conn: psycopg.Connection, pledge: dict, number: Any) -> dict | None:
    """Return the runner a pledge's form moves it to by its start number, None if it stays."""
    if number is None or str(number).strip() in ("", str(pledge["start_number"])):
        return None
    runner = runner_by_number(conn, number)
    return None if runner["id"] == pledge["counted_runner_id"] else runner


def delete_pledge(conn: psycopg.Connection, user_id: str | None, pledge_id: str) -> dict:
    """Mark a pledge deleted (it counts nowhere from now on), logged; return it.

    Not while payments are recorded for it: money received must not drop out of the
    books with the pledge (each payment is deleted first, logged with what it was).
    """
    with conn.transaction():
        pledge = live_pledge(conn, pledge_id)
        paid = conn.execute("SELECT count(*) AS n, coalesce(sum(amount_cents), 0) AS cents "
                            "FROM payment WHERE pledge_id = %s", [pledge_id]).fetchone()
        if paid["n"]:
            raise InputError("pledge_has_payments", ngettext(
                "This pledge has a payment recorded (%(amount)s): delete the payment first, so "
                "that money received never drops out of the books. Nothing was deleted.",
                "This pledge has %(num)s payments recorded (%(amount)s): delete them first, so "
                "that money received never drops out of the books. Nothing was deleted.",
                paid["n"], amount=money(paid["cents"], conn)), 409)
        conn.execute("UPDATE pledge SET deleted_ms = %s, updated_ms = %s WHERE id = %s",
                     [now_ms(), now_ms(), pledge_id])
        log_money(conn, user_id, "pledge_delete", {"sponsor": pledge["sponsor_name"],
                                                   "runner": runner_text(pledge),
                                                   **withdrawn(conn, pledge_id)},
                  pledge_id=pledge_id)
    return pledge
