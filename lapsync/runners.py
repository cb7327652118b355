"""Runners in both apps: a runner's fields checked, the roster CSV upload form served."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from lapsync import roster_csv
from lapsync.errors import InputError, wants_json
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
    name, class_ = str(name or "").strip(), str(class_ or "").strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise InputError("invalid_name", _("The name must be 1 to %(max)s characters.",
                                           max=MAX_NAME))
    if CONTROL_CHARS.search(name):
        raise InputError("invalid_name", _("The name must not contain line breaks or tabs."))
    if not 1 <= len(class_) <= MAX_CLASS or CONTROL_CHARS.search(class_):
        raise InputError("invalid_class", _("The class must be 1 to %(max)s characters "
                                            "on one line.", max=MAX_CLASS))
    try:
        grade = whole_number(grade)
    except ValueError:
        raise InputError("invalid_grade", _("The grade must be a whole number."))
    if grade not in GRADES:
        raise InputError("invalid_grade", _("The grade must be %(low)s to %(high)s.",
                                            low=GRADES.start, high=GRADES.stop - 1))
    return {"start_number": start_number, "name": name, "class": class_, "grade": grade}


def roster_upload(template: str, importer, db, index_endpoint: str):
    """Serve a roster import form (laptop and central): all rows or none, a report per line."""
    if request.method == "GET":
        return render_template(template)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        error = InputError("missing_file", _("Choose a CSV file to import."), 400)
        if wants_json():
            raise error
        return render_template(template, error=error), 400
    try:
        count = importer(db, upload.read(roster_csv.MAX_BYTES + 1))
    except RosterError as exc:
        if wants_json():
            raise
        return render_template(template, report=exc, filename=upload.filename), exc.status
    flash(imported_text(count, upload.filename))
    return redirect(url_for(index_endpoint))


def imported_text(count: int, filename: str) -> str:
    """Say how many runners came from which file (English outside a request)."""
    return ngettext("Imported %(num)s runner from %(file)s.",
                    "Imported %(num)s runners from %(file)s.", count, file=filename)
