"""The amounts as files: /sponsors/amounts.csv and /sponsors/amounts.xlsx (one sheet per class).

The CSV is Excel-safe like the results export (sync/results.py): UTF-8 with a byte
order mark, every text cell quoted, formula starts neutralised; numbers stay numbers.
Amounts are integer cents, as sync/amounts.py computes them.
"""
from __future__ import annotations

import csv
import io
import itertools

import openpyxl
from flask import Blueprint, Flask, Response

from ..auth import login_required
from ..db import get_db
from ..results import excel_safe
from ..workbooks import XLSX_TYPE, download, sheet_title
from .freeze import letter_rows

bp = Blueprint("money_exports", __name__, url_prefix="/sponsors")
COLUMNS = ("sponsor", "email", "start_number", "name", "class", "kind", "rate_cents",
           "cap_cents", "laps", "distance_m", "amount_cents", "paid_cents", "outstanding_cents")
FORMULA_STARTS = "=+-@\t\r\n"   # what sync/results.py's FORMULA_PIECE looks for


def safe_text(value: str | None) -> str:
    """Return a text cell Excel-safe ("" when empty); the regex only where a formula may start."""
    if not value:
        return ""
    return excel_safe(value) if value[0] in FORMULA_STARTS or ";" in value else value


def export_row(row: dict) -> list:
    """Return one pledge as export cells: text Excel-safe, numbers as they are ("" for none)."""
    cap, distance = row["cap_cents"], row["distance_m"]
    return [safe_text(row["sponsor_name"]), safe_text(row["email"]), row["start_number"],
            safe_text(row["name"]), safe_text(row["class"]), row["kind"], row["rate_cents"],
            "" if cap is None else cap, row["laps"], "" if distance is None else distance,
            row["amount_cents"], row["paid_cents"], row["outstanding_cents"]]


def amounts_csv(rows: list[dict]) -> str:
    """Return the amounts CSV text: BOM, header, one line per pledge, every text cell quoted."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    header = csv.writer(buffer, quoting=csv.QUOTE_ALL)
    header.writerow(COLUMNS)
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC)
    for row in rows:
        writer.writerow(export_row(row))
    return buffer.getvalue()


def amounts_xlsx(rows: list[dict]) -> bytes:
    """Return the amounts as an XLSX workbook with one sheet per class."""
    book = openpyxl.Workbook(write_only=True)
    used: set[str] = set()
    for class_name, group in itertools.groupby(rows, key=lambda r: r["class"]):
        sheet = book.create_sheet(sheet_title(class_name, used))
        sheet.append(list(COLUMNS))
        for row in group:
            sheet.append([None if cell == "" else cell for cell in export_row(row)])
    if not used:
        book.create_sheet("amounts").append(list(COLUMNS))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@bp.get("/amounts.csv")
@login_required
def csv_export() -> Response:
    """Download every live pledge with laps, distance, amount, paid and outstanding as CSV."""
    return download(amounts_csv(letter_rows(get_db())), "text/csv", "amounts.csv")


@bp.get("/amounts.xlsx")
@login_required
def xlsx_export() -> Response:
    """Download the same as an Excel workbook, one sheet per class."""
    return download(amounts_xlsx(letter_rows(get_db())), XLSX_TYPE, "amounts.xlsx")


def init_app(app: Flask) -> None:
    """Register the amounts exports."""
    app.register_blueprint(bp)
