"""A roster file as school offices hand it over: a CSV or an Excel workbook (XLSX).

Both go through the same checks (roster_csv.py) and get the same report; a workbook's
first sheet is read (sheets.py) and its problems name the sheet's row numbers.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from . import roster_csv, sheets
from .roster_csv import NumberPool, RosterError


def read_roster_rows(data: bytes) -> tuple[list, list[roster_csv.Problem]]:
    """Return a roster file's data rows and the problems of its lines, CSV or XLSX."""
    if not sheets.is_xlsx(data):
        return roster_csv.read_rows(roster_csv.decode(data))
    roster_csv.check_size(data)
    try:
        lines = sheets.read_xlsx(data)
    except sheets.SheetError as exc:
        raise RosterError(exc.problems) from None
    return roster_csv.sheet_rows(lines)


def parse_roster(data: bytes, existing: Iterable[tuple[int, str, str]],
                 validate: Callable[..., dict], highest: int = 999_999,
                 pool: NumberPool | None = None) -> list[dict]:
    """Check a whole roster file (CSV or XLSX) as roster_csv.parse_roster does; return the runners."""
    rows, problems = read_roster_rows(data)
    return roster_csv.check_roster(rows, problems, existing, validate, highest, pool)
