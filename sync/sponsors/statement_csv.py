"""Reading a bank statement CSV into bookings: columns found by name, amounts and days as
German and English online banking write them (sync/sponsors/statement.py books them).

A CSV export of German online banking: semicolons (or commas, tabs), a decimal comma,
dates dd.mm.yyyy, any column order, a BOM or Windows-1252, lines of account details
above the header. The columns are found by name: the booking day (Buchungstag,
Buchungsdatum, booking_date, ...), the purpose (Verwendungszweck, purpose, ...), the
amount (Betrag, Umsatz, amount, ...) and, if there, the other party (Auftraggeber, Name
Zahlungsbeteiligter, counterparty, ...) and a debit/credit mark (Soll/Haben: S or H, as
Volksbanks export an amount without a sign; there the column may have no name). Balance
lines (Anfangssaldo, Endsaldo) are no bookings. CAMT files are out of scope. A file with a
line that cannot be read is refused whole, with a problem per line.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from datetime import date

from flask_babel import gettext as _

from lapsync.errors import InputError

MAX_LINES = 20_000
HEADERS = {
    "booked_on": ("buchungstag", "buchungsdatum", "booking_date", "booking date", "datum",
                  "date", "wertstellung", "valutadatum", "value_date", "value date"),
    "purpose": ("verwendungszweck", "purpose", "vorgang/verwendungszweck", "remittance",
                "remittance information", "reference", "buchungstext"),
    "amount_cents": ("betrag", "betrag (eur)", "betrag (€)", "betrag in eur", "umsatz",
                     "umsatz in eur", "amount", "amount (eur)"),
    # Volksbank's "Auftraggeber/Zahlungsempfänger" holds a credit's payer (its
    # "Empfänger/Zahlungspflichtiger" the account's owner then).
    "counterparty": ("auftraggeber", "auftraggeber/zahlungsempfänger", "name zahlungsbeteiligter",
                     "zahlungspflichtiger",
                     "beguenstigter/zahlungspflichtiger", "begünstigter/zahlungspflichtiger",
                     "auftraggeber/empfänger", "auftraggeber / begünstigter", "counterparty",
                     "payer", "name"),
    # A column of S (Soll, debit) and H (Haben, credit) beside an amount without a sign.
    "sign": ("soll/haben", "s/h", "soll-haben", "soll / haben", "haben/soll", "h/s",
             "soll/haben-kennzeichen", "debit/credit", "credit/debit", "debit/credit indicator",
             "credit/debit indicator", "credit debit indicator", "dr/cr", "cr/dr", "d/c", "c/d"),
}
SIGNS = {"s": -1, "soll": -1, "h": 1, "haben": 1, "d": -1, "dr": -1, "debit": -1, "dbit": -1,
         "c": 1, "cr": 1, "credit": 1, "crdt": 1}
# Balance lines below the bookings (Volksbank: "Anfangssaldo" in the Kundenreferenz column).
BALANCE_WORDS = {"anfangssaldo", "endsaldo", "schlusssaldo", "alter kontostand",
                 "neuer kontostand", "opening balance", "closing balance"}
AMOUNT = re.compile(r"[+-]?\d{1,3}(?:([.,' ])\d{3})*(?:[.,]\d{1,2})?|[+-]?\d+(?:[.,]\d{1,2})?")


class StatementError(InputError):
    """A file that cannot be imported, with a problem per line (nothing was recorded)."""

    def __init__(self, message: str, problems: list[tuple[int, str]] | None = None):
        super().__init__("invalid_statement", message, 422,
                         problems=[{"line": n, "message": m} for n, m in problems or []])
        self.problems = problems or []


def decode(data: bytes) -> str:
    """Return the file's text: UTF-8 (with or without BOM), else Windows-1252."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def header_columns(cells: list[str]) -> dict[str, int] | None:
    """Return {field: column} if cells are a statement header (day, purpose, amount), else None."""
    names = [" ".join(c.strip().strip('"').lower().split()) for c in cells]
    found = {}
    for field, choices in HEADERS.items():
        for choice in choices:  # the first name in the list wins (Buchungstag over Valuta)
            if choice in names:
                found[field] = names.index(choice)
                break
    return found if {"booked_on", "purpose", "amount_cents"} <= found.keys() else None


def parse_amount(text: str) -> int:
    """Return cents from 1.234,56 / -12,50 / 12.50 / 20 (with € or EUR), or raise ValueError."""
    text = text.replace("€", "").replace("EUR", "").replace("\xa0", " ").strip()
    if not AMOUNT.fullmatch(text):
        raise ValueError
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    decimals = re.search(r"[.,](\d{1,2})$", digits)
    whole = digits[:decimals.start()] if decimals else digits
    cents = (decimals.group(1).ljust(2, "0")) if decimals else "00"
    return sign * (int(re.sub(r"\D", "", whole) or "0") * 100 + int(cents))


def parse_day(text: str) -> date:
    """Return a date from 27.06.2025, 27.06.25 or 2025-06-27, or raise ValueError."""
    text = text.strip()
    if match := re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{2}|\d{4})", text):
        day, month, year = (int(g) for g in match.groups())
        return date(year + 2000 if year < 100 else year, month, day)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return date.fromisoformat(text)
    raise ValueError


def dialect_rows(text: str) -> list[tuple[int, list[str]]]:
    """Split the text into (line number, row) with the delimiter its header line uses (a
    quoted purpose may span lines: the number is the row's first line)."""
    text = "\n".join(text.splitlines())
    for delimiter in (";", "\t", ","):
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        rows, number = [], 1
        for row in reader:
            rows.append((number, row))
            number = reader.line_num + 1
        if any(header_columns(row) for _number, row in rows[:30]):
            return rows
    raise StatementError(_("No header found: the file needs columns for the booking day "
                           "(Buchungstag), the purpose (Verwendungszweck) and the amount "
                           "(Betrag)."))


def is_booking(row: list[str], columns: dict[str, int]) -> bool:
    """Say whether a row below the header is a booking (not empty, not a balance line)."""
    if not any(row[columns[f]].strip() for f in ("booked_on", "amount_cents")
               if columns[f] < len(row)):
        return False
    return not any(cell.strip().casefold() in BALANCE_WORDS for cell in row)


def with_sign_column(columns: dict[str, int], header: list[str],
                     bookings: list[tuple[int, list[str]]]) -> dict[str, int]:
    """Return the columns with the debit/credit mark's: a named one, or the unnamed column
    after the amount when it holds marks (Volksbank's column " " of S and H; one odd mark
    there then refuses its line rather than turn every debit into a credit)."""
    at = columns["amount_cents"] + 1
    if "sign" in columns or at >= len(header) or header[at].strip().strip('"'):
        return columns
    marks = {row[at].strip().casefold() for _number, row in bookings if at < len(row)}
    return {**columns, "sign": at} if marks & SIGNS.keys() else columns


def signed(cents: int, mark: str, amount_text: str) -> int:
    """Return the amount with the sign its mark gives (S/D: debit, H/C: credit), or raise
    ValueError saying why not."""
    sign = SIGNS.get(mark.strip().casefold())
    if sign is None:
        raise ValueError(_("The debit/credit mark %(text)s is neither S (Soll, debit) nor H "
                           "(Haben, credit).", text=mark[:30] or "–"))
    if cents < 0 and sign > 0:
        raise ValueError(_("The amount %(text)s has a minus sign but is marked as a credit "
                           "(%(mark)s).", text=amount_text[:30], mark=mark[:30]))
    return -abs(cents) if sign < 0 else cents


def read_line(number: int, row: list[str], columns: dict[str, int]) -> dict:
    """Return one booking as a line, or raise ValueError saying what cannot be read."""
    cell = {field: row[i].strip() if i < len(row) else "" for field, i in columns.items()}
    try:
        booked_on = parse_day(cell["booked_on"])
    except ValueError:
        raise ValueError(_("The booking day %(text)s is not a date like 27.06.2025.",
                           text=cell["booked_on"][:30])) from None
    try:
        amount = parse_amount(cell["amount_cents"])
    except ValueError:
        raise ValueError(_("The amount %(text)s is not an amount like 12,50.",
                           text=cell["amount_cents"][:30])) from None
    if "sign" in columns:
        amount = signed(amount, cell["sign"], cell["amount_cents"])
    return {"line": number, "booked_on": booked_on, "amount_cents": amount,
            "purpose": " ".join(cell["purpose"].split())[:500],
            "counterparty": " ".join(cell.get("counterparty", "").split())[:200]}


def parse_statement(data: bytes) -> list[dict]:
    """Return the credit and debit lines of a statement (credits above 0, debits below),
    or raise StatementError."""
    rows = dialect_rows(decode(data))
    start = next(i for i, (_number, row) in enumerate(rows) if header_columns(row))
    header = rows[start][1]
    columns = header_columns(header)
    bookings = [(n, row) for n, row in rows[start + 1:] if is_booking(row, columns)]
    columns = with_sign_column(columns, header, bookings)
    lines, problems = [], []
    for number, row in bookings:
        try:
            lines.append(read_line(number, row, columns))
        except ValueError as exc:
            problems.append((number, str(exc)))
    if problems:
        raise StatementError(_("The file was not imported: %(num)s lines cannot be read.",
                               num=len(problems)), problems)
    if len(lines) > MAX_LINES:
        raise StatementError(_("The file has more than %(max)s lines.", max=MAX_LINES))
    return lines


def line_keys(lines: list[dict]) -> list[str]:
    """Return a key per line: a hash of its fields and its occurrence among identical lines."""
    seen: Counter = Counter()
    keys = []
    for line in lines:
        fields = (line["booked_on"].isoformat(), str(line["amount_cents"]), line["purpose"],
                  line["counterparty"])
        seen[fields] += 1
        text = "\x1f".join((*fields, str(seen[fields])))
        keys.append(hashlib.sha256(text.encode("utf-8")).hexdigest())
    return keys
