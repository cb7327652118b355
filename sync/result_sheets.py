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

from lapsync.protocol import MAX_CLASS

from .auth import login_required
from .db import get_db
from .results import class_results, export_filename, ran
from .settings import get_settings
from .workbooks import XLSX_TYPE, cell, download, sheet_title

bp = Blueprint("result_sheets", __name__, url_prefix="/admin")
NAME_WIDTH = 32  # characters: most names fit without widening the column by hand


def workbook(groups: list[tuple[str, list[dict]]], header: list[str],
             cells: Callable[[dict], list], name_column: str) -> bytes:
    """Return an XLSX with a sheet per class: a frozen header row, then a row per runner."""
    book = openpyxl.Workbook(write_only=True)
    used: set[str] = set()
    for class_name, rows in groups or [(_("Results"), [])]:
        sheet = book.create_sheet(sheet_title(class_name, used))
        sheet.freeze_panes = "A2"
        sheet.column_dimensions[name_column].width = NAME_WIDTH
        sheet.append([cell(sheet, text) for text in header])
        for row in rows:
            sheet.append([cell(sheet, value) for value in cells(row)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def results_workbook(groups: list[tuple[str, list[dict]]]) -> bytes:
    """Return every runner's result (results.csv's columns), a sheet per class."""
    header = [_("Start number"), _("Name"), _("Class"), _("Grade"), _("Laps"), _("Distance (m)"),
              _("Did not run")]
    did_not_run = _("yes")
    return workbook(groups, header, lambda r: [r["start_number"], r["name"], r["class"],
                                               r["grade"], r["laps"], r["distance"],
                                               None if ran(r) else did_not_run], "B")


def ceremony_workbook(groups: list[tuple[str, list[dict]]]) -> bytes:
    """Return the ceremony lists (rank, number, name, laps, distance), a sheet per class."""
    header = [_("Rank"), _("Start number"), _("Name"), _("Laps"), _("Distance (m)")]
    return workbook(groups, header, lambda r: [r["rank"], r["start_number"], r["name"],
                                               r["laps"], r["distance"]], "C")


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
