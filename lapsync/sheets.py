"""Uploaded tables as rows: a CSV (UTF-8 or Windows-1252, comma or semicolon) or an XLSX.

read_sheet() turns the bytes into (line, cells as text) for every line that is not
blank, the header first; an importer checks the header and the cells. Line numbers
are those a person sees: the CSV's line (a quoted cell may span several) or the
spreadsheet's row. A file that cannot be read raises SheetError with the line at fault.
"""
from __future__ import annotations

import csv
import datetime
import io
import zipfile
from decimal import Decimal

import openpyxl
from flask_babel import gettext as _
from flask_babel import ngettext

from .errors import InputError
from .roster_csv import MAX_BYTES, Problem, RosterError, decode, delimiter

XLSX_MAGIC = b"PK\x03\x04"
MAX_COLUMNS = 30
MAX_ROWS = 20_000
# A workbook is a zip: a few MB can unpack to GBs. A 20,000-row roster unpacks to ~10 MB.
MAX_UNPACKED_BYTES = 64 * 1024 * 1024


class SheetError(InputError):
    """A file that is refused whole, with a report of every bad line (header = line 1)."""

    def __init__(self, problems: list[Problem], code: str = "invalid_file"):
        self.problems = sorted(problems, key=lambda p: p.line)
        count = len(self.problems)
        super().__init__(code, ngettext(
            "The file was not imported: %(num)s problem found. Nothing was changed.",
            "The file was not imported: %(num)s problems found. Nothing was changed.", count),
            422, problems=[p.as_dict() for p in self.problems])


def is_xlsx(data: bytes) -> bool:
    """Tell whether the bytes are a zip file, as every XLSX is."""
    return data.startswith(XLSX_MAGIC)


def cell_text(value: object) -> str:
    """Write a spreadsheet cell as the text a CSV would hold (17, 0.5, 2025-06-27)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(Decimal(str(value)), "f")
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return str(value)


def read_csv(data: bytes) -> list[tuple[int, list[str]]]:
    """Return the non-blank lines of a CSV file with their line numbers."""
    try:
        text = decode(data)
    except RosterError as exc:
        raise SheetError(exc.problems) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(text.split("\n", 1)[0]))
    rows, previous_end = [], 0
    try:
        for cells in reader:
            line, previous_end = previous_end + 1, reader.line_num
            if any(cell.strip() for cell in cells):
                rows.append((line, cells))
                check_size(rows, line)
    except csv.Error as exc:
        raise SheetError([Problem(reader.line_num, _(
            "The line cannot be read as CSV (%(reason)s).", reason=str(exc)))]) from None
    return rows


def read_xlsx(data: bytes) -> list[tuple[int, list[str]]]:
    """Return the non-blank rows of an XLSX file's first sheet with their row numbers."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise SheetError([Problem(1, _("The file cannot be read as an Excel workbook (XLSX)."))])
    if unpacked > MAX_UNPACKED_BYTES:
        raise SheetError([Problem(1, _("The file is larger than %(size)s MB.",
                                       size=MAX_UNPACKED_BYTES // (1024 * 1024)))])
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError):
        raise SheetError([Problem(1, _("The file cannot be read as an Excel workbook (XLSX)."))])
    try:
        rows = []
        sheet = book.worksheets[0]
        for line, values in enumerate(sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True), 1):
            cells = [cell_text(value) for value in values]
            while cells and not cells[-1].strip():
                cells.pop()  # a spreadsheet's empty cells at the end are no columns
            if cells:
                rows.append((line, cells))
                check_size(rows, line)
        return rows
    finally:
        book.close()


def check_size(rows: list, line: int) -> None:
    """Refuse a file with more lines than any import takes."""
    if len(rows) > MAX_ROWS + 1:
        raise SheetError([Problem(line, _("Too many lines: at most %(max)s per file.",
                                          max=MAX_ROWS))])


def read_sheet(data: bytes) -> list[tuple[int, list[str]]]:
    """Return every non-blank line of a CSV or XLSX file as (line, cells), header first."""
    if len(data) > MAX_BYTES:
        raise SheetError([Problem(1, _("The file is larger than %(size)s MB.",
                                       size=MAX_BYTES // (1024 * 1024)))])
    rows = read_xlsx(data) if is_xlsx(data) else read_csv(data)
    if not rows:
        raise SheetError([Problem(1, _("The file is empty: expected a header line and "
                                       "one line per entry."))])
    return rows


def format_report(error: SheetError) -> str:
    """Render a refused file's report as plain text lines for the CLI."""
    lines = [_("line %(line)s: %(message)s", line=p.line, message=p.message)
             for p in error.problems]
    return "\n".join([error.message, *lines])
