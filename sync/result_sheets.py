"""Results as Excel workbooks, one sheet per class: every runner, and the ceremony lists.

/admin/results.xlsx holds what results.csv holds; /admin/results/classes.xlsx (all
classes, or ?class=5a) the ranking the printed ceremony lists show. Headers follow the
reader's language. Names are string cells, never formulas: a runner called "=1+1" stays
text (openpyxl would otherwise store it as a formula), with no quote added in front.
"""
from __future__ import annotations

import io
from collections.abc import Callable

import openpyxl
from flask import Blueprint, Flask, Response, abort, request
from flask_babel import gettext as _
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from lapsync.protocol import MAX_CLASS

from .auth import login_required
from .db import get_db
from .results import class_results, export_filename, ran
from .settings import get_settings
from .workbooks import XLSX_TYPE, cell, download, sheet_title

bp = Blueprint("result_sheets", __name__, url_prefix="/admin")
NAME_WIDTH = 32  # characters: most names fit without widening the column by hand
BOLD = Font(bold=True)


class Heading(str):
    """A text a sheet writes in bold: the heading of a block of rows."""


def workbook(groups: list[tuple[str, list[dict]]], header: list[str],
             lines: Callable[[str, list[dict]], list[list]], name_column: str) -> bytes:
    """Return an XLSX with a sheet per class: a frozen header row, then the class's lines."""
    book = openpyxl.Workbook(write_only=True)
    used: set[str] = set()
    for class_name, rows in groups or [(_("Results"), [])]:
        sheet = book.create_sheet(sheet_title(class_name, used))
        sheet.freeze_panes = "A2"
        sheet.column_dimensions[name_column].width = NAME_WIDTH
        sheet.append([heading(sheet, text) for text in header])
        for line in lines(class_name, rows):
            sheet.append([heading(sheet, value) if isinstance(value, Heading)
                          else cell(sheet, value) for value in line])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def heading(sheet: WriteOnlyWorksheet, text: str) -> WriteOnlyCell:
    """Return a text cell in bold: a header, or the heading of a block of a sheet."""
    found = cell(sheet, text)
    found.font = BOLD
    return found


def results_workbook(groups: list[tuple[str, list[dict]]]) -> bytes:
    """Return every runner's result (results.csv's columns), a sheet per class."""
    header = [_("Start number"), _("Name"), _("Class"), _("Grade"), _("Laps"), _("Distance (m)"),
              _("Did not run")]
    did_not_run = _("yes")
    return workbook(groups, header, lambda _class, rows: [
        [r["start_number"], r["name"], r["class"], r["grade"], r["laps"], r["distance"],
         None if ran(r) else did_not_run] for r in rows], "B")


def ceremony_workbook(groups: list[tuple[str, list[dict]]]) -> bytes:
    """Return the ceremony lists (rank, number, name, laps, distance), a sheet per class."""
    header = [_("Rank"), _("Start number"), _("Name"), _("Laps"), _("Distance (m)")]
    return workbook(groups, header, ceremony_lines, "C")


def ceremony_lines(class_name: str, rows: list[dict]) -> list[list]:
    """Return a class's ranked runners, then apart, under a heading, those who did not run."""
    # As on the printed list: who did not run gets no rank and is not read out among the
    # ranked, so the sheet lists them in a block of their own (number and name only).
    lines: list[list] = [[r["rank"], r["start_number"], r["name"], r["laps"], r["distance"]]
                         for r in rows if ran(r)]
    if not lines:
        lines.append([_("Nobody in %(class_name)s ran.", class_name=class_name)])
    absent = [r for r in rows if not ran(r)]
    if absent:
        lines += [[], [Heading(_("Did not run (no lap that counts):"))]]
        lines += [[None, r["start_number"], r["name"]] for r in absent]
    return lines


def sheet_download(body: bytes, stem: str) -> Response:
    """Answer a workbook download named after the event."""
    name = export_filename(get_settings(get_db()).get("event_name"), stem, "xlsx")
    return download(body, XLSX_TYPE, name)


@bp.get("/results.xlsx")
@login_required
def results_xlsx() -> Response:
    """Download every runner's result as an Excel workbook, one sheet per class."""
    return sheet_download(results_workbook(class_results(get_db())), "results")


@bp.get("/results/classes.xlsx")
@login_required
def ceremony_xlsx() -> Response:
    """Download the ceremony lists of every class (or ?class=) as a workbook, a sheet each."""
    class_name = request.args.get("class", "").strip()[:MAX_CLASS + 1] or None
    groups = class_results(get_db(), class_name)
    if class_name and not groups:
        abort(404, _("There are no runners in class %(class_name)s.", class_name=class_name))
    return sheet_download(ceremony_workbook(groups), "ceremony")


def init_app(app: Flask) -> None:
    """Register the workbook downloads."""
    app.register_blueprint(bp)
