"""What the workbook downloads share: the file type, an uncached download, sheet titles and
text cells that never turn into formulas (results and the sponsors' amounts)."""
from __future__ import annotations

import re

from flask import Response
from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def download(body: str | bytes, mimetype: str, filename: str) -> Response:
    """Answer a file download that no cache keeps."""
    return Response(body, mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def sheet_title(class_name: str, used: set[str]) -> str:
    """Return a worksheet title for a class: at most 31 characters, allowed ones, unique."""
    base = SHEET_FORBIDDEN.sub("_", class_name).strip("'")[:31] or "_"
    title, number = base, 2
    while title.casefold() in used:
        suffix = f" ({number})"
        title, number = base[:31 - len(suffix)] + suffix, number + 1
    used.add(title.casefold())
    return title


def cell(sheet: WriteOnlyWorksheet, value: object) -> WriteOnlyCell | object:
    """Return a text value as a string cell (never a formula); other values as they are."""
    if not isinstance(value, str):
        return value
    text = WriteOnlyCell(sheet, value=value)
    text.data_type = "s"  # openpyxl takes a leading "=" for a formula
    return text
