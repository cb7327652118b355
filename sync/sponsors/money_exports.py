"""The amounts as files: every pledge with what it raised, what is paid and what is still open.

/sponsors/amounts.csv is Excel-safe like the results export (sync/results.py): UTF-8 with a
byte order mark, every text cell quoted, formula starts neutralised; numbers stay numbers,
amounts in the currency's units with a decimal point (5.00), column names fixed in English.
/sponsors/amounts-de.csv is the same for German Excel, as results-de.csv: semicolons,
German headings, decimal commas. /sponsors/amounts.xlsx has headings in the reader's
language and amounts as numbers with a currency format: a sheet with every pledge, then
one per class, each ending in a total row.

Outstanding never goes below 0: what a sponsor paid beyond the pledge is in a column of
its own (overpaid), as the pages show it, so that each column's sum is the page's figure
(sum_rows). Each pledge carries the RF reference its letter prints and the postal address,
then whether its runner did not run and whether a letter goes out for it (a pledge per lap or
km of a runner who did not run owes nothing and gets none).
"""
from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache

import openpyxl
from babel.numbers import get_currency_symbol
from flask import Blueprint, Flask, Response
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from ..auth import login_required
from ..db import get_db
from ..money_settings import money_settings
from ..results import GermanDecimal, excel_safe, export_filename, ran
from ..settings import get_settings
from ..workbooks import XLSX_TYPE, cell, download, sheet_title
from .amounts import sum_rows
from .freeze import letter_rows
from .letters import gets_letter
from .pledges import KINDS, format_reference
from .sponsor_views import kind_label

bp = Blueprint("money_exports", __name__, url_prefix="/sponsors")
# did_not_run and letter come last: columns that were there keep their places.
COLUMNS = ("sponsor", "email", "start_number", "name", "class", "kind", "rate", "cap", "laps",
           "distance_m", "amount", "paid", "outstanding", "overpaid", "reference", "address",
           "did_not_run", "letter")
MONEY = frozenset(COLUMNS.index(c) for c in ("rate", "cap", "amount", "paid", "outstanding",
                                             "overpaid"))
ADDRESS = COLUMNS.index("address")
TOTALS = {"amount": "amount_cents", "paid": "paid_cents", "outstanding": "outstanding_cents",
          "overpaid": "overpaid_cents"}
WIDTHS = {"A": 24, "B": 24, "D": 24, "O": 18, "P": 32}  # characters: names, references, address
BOLD, WRAP = Font(bold=True), Alignment(wrap_text=True, vertical="top")
FORMULA_STARTS = "=+-@\t\r\n"   # what sync/results.py's FORMULA_PIECE looks for


def labels() -> list[str]:
    """Return the column headings in the reader's language (the workbook and German CSV)."""
    return [_("Sponsor"), _("E-mail"), _("Start number"), _("Name"), _("Class"), _("Kind"),
            _("Pledge"), _("Cap"), _("Laps"), _("Distance (m)"), _("Amount"), _("Paid"),
            _("Outstanding"), _("Overpaid"), _("Payment reference"), _("Address"),
            _("Did not run"), _("Letter")]


def safe_text(value: str | None) -> str:
    """Return a text cell Excel-safe ("" when empty); the regex only where a formula may start."""
    if not value:
        return ""
    return excel_safe(value) if value[0] in FORMULA_STARTS or ";" in value else value


def units(cents: int) -> Decimal:
    """Return cents in the currency's units, exactly: 500 -> 5.00."""
    return Decimal(cents).scaleb(-2)


def money_cells(convert: Callable[[int], object], empty: object) -> Callable:
    """Return convert for money cells (None as empty), each figure converted once.

    10,000 pledges share a few hundred figures: the cache keeps amounts.csv near the
    200 ms its benchmark allows.
    """
    return lru_cache(maxsize=4096)(lambda cents: empty if cents is None else convert(cents))


@dataclass(frozen=True)
class Style:
    """How an amounts file writes its heading and a pledge's text, kind, money and distance."""

    header: Callable[[], list]
    text: Callable[[str | None], object]
    kind: Callable[[str], str]
    money: Callable[[int | None], object]
    distance: Callable[[int | float | None], object]
    words: Callable[[], tuple[str, str]] = lambda: ("yes", "no")
    delimiter: str = ","


# amounts.csv: fixed English names, amounts as 5.00, the kind as stored (per_lap).
ENGLISH = Style(lambda: list(COLUMNS), safe_text, str, money_cells(units, ""),
                lambda metres: "" if metres is None else metres)
# amounts-de.csv (written under force_locale("de")): German Excel's ";" and 5,00.
GERMAN = Style(labels, safe_text, kind_label,
               money_cells(lambda cents: GermanDecimal(units(cents), 2, trim=False), ""),
               lambda metres: "" if metres is None else GermanDecimal(metres, 2),
               lambda: (_("yes"), _("no")), ";")
# amounts.xlsx: numbers stay numbers; text cells become string cells (workbooks.cell).
SHEET = Style(labels, lambda text: text or None, kind_label, money_cells(units, None),
              lambda metres: metres, lambda: (_("yes"), _("no")))


def named_once(style: Style) -> Style:
    """Return style with each kind (and yes, no) named once: a gettext call per pledge costs as
    much as the rest."""
    names, words = {kind: style.kind(kind) for kind in KINDS}, style.words()
    return replace(style, kind=lambda kind: names.get(kind, kind), words=lambda: words)


def export_row(row: dict, style: Style) -> list:
    """Return one pledge as cells in style: outstanding never below 0, overpayment apart,
    then whether its runner did not run (yes or empty) and whether a letter goes out."""
    owed, (yes, no) = row["outstanding_cents"], style.words()
    return [style.text(row["sponsor_name"]), style.text(row["email"]), row["start_number"],
            style.text(row["name"]), style.text(row["class"]), style.kind(row["kind"]),
            style.money(row["rate_cents"]), style.money(row["cap_cents"]), row["laps"],
            style.distance(row["distance_m"]), style.money(row["amount_cents"]),
            style.money(row["paid_cents"]), style.money(max(owed, 0)),
            style.money(max(-owed, 0)), format_reference(row["reference"]),
            style.text(row["address"]), style.text(None if ran(row) else yes),
            yes if gets_letter(row) else no]


def amounts_csv(rows: list[dict], style: Style = ENGLISH) -> str:
    """Return the amounts CSV text: BOM, header, one line per pledge, every text cell quoted."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    header = csv.writer(buffer, delimiter=style.delimiter, quoting=csv.QUOTE_ALL)
    header.writerow(style.header())
    # Numbers (and German decimals, which pass for one) unquoted, every text cell quoted.
    writer = csv.writer(buffer, delimiter=style.delimiter, quoting=csv.QUOTE_NONNUMERIC)
    style = named_once(style)
    for row in rows:
        writer.writerow(export_row(row, style))
    return buffer.getvalue()


def currency_format(currency: str) -> str:
    """Return an Excel number format for currency, the symbol where the reader's language puts it."""
    locale = get_locale()
    symbol = get_currency_symbol(currency, locale)
    if locale.currency_formats["standard"].pattern.startswith("\xa4"):
        return f'"{symbol}"#,##0.00'      # English: €1,234.50
    return f'#,##0.00 "{symbol}"'         # German: 1.234,50 € (Excel puts its own separators)


def sheet_cell(sheet: WriteOnlyWorksheet, index: int, value: object, money_format: str,
               bold: bool) -> WriteOnlyCell | object:
    """Return one cell: text as text, money with the currency format, the address wrapped."""
    if value is None or (index not in MONEY and index != ADDRESS and not bold):
        return cell(sheet, value)
    styled = cell(sheet, value) if isinstance(value, str) else WriteOnlyCell(sheet, value=value)
    if index in MONEY:
        styled.number_format = money_format
    if index == ADDRESS:
        styled.alignment = WRAP   # its lines as lines, not run together
    if bold:
        styled.font = BOLD
    return styled


def sheet_cells(sheet: WriteOnlyWorksheet, values: list, money_format: str,
                bold: bool = False) -> list:
    """Return a row's cells (the total row in bold)."""
    return [sheet_cell(sheet, index, value, money_format, bold)
            for index, value in enumerate(values)]


def total_values(rows: list[dict]) -> list:
    """Return the total row: the label, then the sums the sponsors page shows."""
    totals, values = sum_rows(rows), [None] * len(COLUMNS)
    values[0] = _("Total")
    for column, key in TOTALS.items():
        values[COLUMNS.index(column)] = units(totals[key])
    return values


def add_sheet(book: openpyxl.Workbook, title: str, rows: list[dict], money_format: str,
              style: Style) -> None:
    """Add a sheet: a frozen heading row, a row per pledge, then the total row."""
    sheet = book.create_sheet(title)
    sheet.freeze_panes = "A2"
    for column, width in WIDTHS.items():
        sheet.column_dimensions[column].width = width
    sheet.append([cell(sheet, text) for text in labels()])
    for row in rows:
        sheet.append(sheet_cells(sheet, export_row(row, style), money_format))
    sheet.append(sheet_cells(sheet, total_values(rows), money_format, bold=True))


def amounts_xlsx(rows: list[dict], currency: str) -> bytes:
    """Return the amounts as an XLSX workbook: every pledge, then a sheet per class."""
    book, used = openpyxl.Workbook(write_only=True), set()
    money_format, style = currency_format(currency), named_once(SHEET)
    add_sheet(book, sheet_title(_("All pledges"), used), rows, money_format, style)
    for class_name, group in itertools.groupby(rows, key=lambda r: r["class"]):
        add_sheet(book, sheet_title(class_name, used), list(group), money_format, style)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def filename(stem: str, suffix: str) -> str:
    """Return an amounts file's name with the event's name in it, as the results have."""
    return export_filename(get_settings(get_db()).get("event_name"), stem, suffix)


@bp.get("/amounts.csv")
@login_required
def csv_export() -> Response:
    """Download every live pledge with laps, distance, amount, paid and outstanding as CSV."""
    return download(amounts_csv(letter_rows(get_db())), "text/csv", filename("amounts", "csv"))


@bp.get("/amounts-de.csv")
@login_required
def csv_export_german() -> Response:
    """Download the same for German Excel: semicolons, German headings, decimal comma."""
    rows = letter_rows(get_db())
    with force_locale("de"):  # the file is German whatever the browser says, as results-de.csv
        body = amounts_csv(rows, GERMAN)
    return download(body, "text/csv", filename("betraege", "csv"))


@bp.get("/amounts.xlsx")
@login_required
def xlsx_export() -> Response:
    """Download the same as an Excel workbook: every pledge with a total, then a sheet per class."""
    conn = get_db()
    body = amounts_xlsx(letter_rows(conn), money_settings(conn)["currency"])
    return download(body, XLSX_TYPE, filename("amounts", "xlsx"))


def init_app(app: Flask) -> None:
    """Register the amounts exports."""
    app.register_blueprint(bp)
