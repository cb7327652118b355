"""Runners in both apps: a runner's fields checked, the add/edit form and the roster
upload form (CSV or XLSX) served."""
from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from lapsync import roster_csv
from lapsync.classes import Respelled, respelled_text
from lapsync.errors import InputError, wants_json
from lapsync.names import refused_character
from lapsync.protocol import (
    CONTROL_CHARS,
    GRADES,
    MAX_CLASS,
    MAX_RUNNER_NAME,
    MAX_START_NUMBER,
)
from lapsync.roster_csv import RosterError
from lapsync.text import whole_number

MAX_NAME = MAX_RUNNER_NAME


def validate_runner(start_number, name, class_, grade) -> dict:
    """Check a runner's fields; return them cleaned or raise InputError."""
    try:
        start_number = whole_number(start_number)
    except ValueError:
        raise InputError("invalid_start_number", _("The start number must be a whole number."))
    if not 1 <= start_number <= MAX_START_NUMBER:
        raise InputError("invalid_start_number",
                         _("Start numbers run from 1 to %(max)s.", max=MAX_START_NUMBER))
    name = unicodedata.normalize("NFC", str(name or "").strip())
    if not 1 <= len(name) <= MAX_NAME:
        raise InputError("invalid_name", _("The name must be 1 to %(max)s characters.",
                                           max=MAX_NAME))
    if CONTROL_CHARS.search(name):
        raise InputError("invalid_name", _("The name must not contain line breaks or tabs."))
    if refused_character(name):
        raise InputError("invalid_name", _("The name must not contain invisible characters "
                                           "such as %(char)s.", char=refused_character(name)))
    class_ = clean_class(class_)
    try:
        grade = whole_number(grade)
    except ValueError:
        raise InputError("invalid_grade", _("The grade must be a whole number."))
    if grade not in GRADES:
        raise InputError("invalid_grade", _("The grade must be %(low)s to %(high)s.",
                                            low=GRADES.start, high=GRADES.stop - 1))
    return {"start_number": start_number, "name": name, "class": class_, "grade": grade}


def clean_class(text) -> str:
    """Return a class name as stored (trimmed, NFC) or raise InputError."""
    class_ = unicodedata.normalize("NFC", str(text or "").strip())
    if not 1 <= len(class_) <= MAX_CLASS or CONTROL_CHARS.search(class_):
        raise InputError("invalid_class", _("The class must be 1 to %(max)s characters "
                                            "on one line.", max=MAX_CLASS))
    if refused_character(class_):
        raise InputError("invalid_class", _("The class must not contain invisible characters "
                                            "such as %(char)s.", char=refused_character(class_)))
    return class_


def roster_upload(template: str, importer, db, index_endpoint: str):
    """Serve a roster import form (laptop and central): all rows or none, a report per line."""
    if request.method == "GET":
        return render_template(template)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        error = InputError("missing_file", _("Choose a CSV or Excel file to import."), 400)
        if wants_json():
            raise error
        return render_template(template, error=error), 400
    try:
        imported = importer(db, upload.read(roster_csv.MAX_BYTES + 1))
    except RosterError as exc:
        if wants_json():
            raise
        return render_template(template, report=exc, filename=upload.filename), exc.status
    for line in imported.lines(upload.filename):
        flash(line)
    return redirect(url_for(index_endpoint))


def imported_text(count: int, filename: str) -> str:
    """Say how many runners came from which file (English outside a request)."""
    return ngettext("Imported %(num)s runner from %(file)s.",
                    "Imported %(num)s runners from %(file)s.", count, file=filename)


@dataclass(frozen=True)
class Imported:
    """What a roster import wrote: how many runners, and the classes it wrote as spelled already."""

    count: int
    respelled: list[Respelled]

    def lines(self, filename: str) -> list[str]:
        """Return the import's report: the count, then one line per re-spelled class."""
        return [imported_text(self.count, filename), *map(respelled_text, self.respelled)]


def runner_form_fields() -> tuple:
    """Read the runner form's fields in validate_runner's order."""
    form = request.form
    return (form.get("start_number", ""), form.get("name", ""), form.get("class", ""),
            form.get("grade", ""))


def typed_runner(**extra) -> dict:
    """Return what was typed into the runner form (and extra), to show it again with the error."""
    return {**dict(zip(("start_number", "name", "class", "grade"), runner_form_fields())), **extra}


def added_text(runner: dict) -> str:
    """Say which runner was added."""
    return _("Added %(name)s (%(class_name)s) with start number %(number)s.", name=runner["name"],
             class_name=runner["class"], number=runner["start_number"])


def saved_text(runner: dict) -> str:
    """Say which runner was saved."""
    return _("Saved %(name)s.", name=runner["name"])


@dataclass(frozen=True)
class RunnerForm:
    """An app's add/edit runner form: its template, next free start number and list page."""

    template: str
    next_number: Callable[[], int]
    index_endpoint: str

    def page(self, runner: dict, error: InputError | None = None, status: int = 200):
        """Render the form with runner's fields and the error of a refused save (raised for JSON)."""
        if error is not None and wants_json():
            raise error
        return render_template(self.template, runner=runner, error=error,
                               next_number=self.suggested_number()), status

    def suggested_number(self) -> int | None:
        """Return the next free start number for the form's hint, or None when none is free."""
        try:
            return self.next_number()
        except InputError:
            return None  # the form still opens: a number is typed

    def serve(self, runner: dict | None, save: Callable[..., dict],
              refused: Callable[[InputError], dict], message: Callable[[dict], str],
              after: Callable[[dict], str | None] = lambda saved: None):
        """Show the form of runner (GET), or save(*fields) and go back to the list with message."""
        # refused(error) returns the fields to show again with the error of a refused save;
        # after(saved) a page to go to instead of the list (None: the list).
        if runner is None:
            abort(404, _("There is no such runner."))
        if request.method == "GET":
            return self.page(runner)
        try:
            saved = save(*runner_form_fields())
        except InputError as exc:
            return self.page(refused(exc), exc, exc.status)
        flash(message(saved))
        return redirect(after(saved) or url_for(self.index_endpoint))
