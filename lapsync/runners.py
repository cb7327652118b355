"""The roster: runners, their start numbers, search and CSV import."""
from __future__ import annotations

import sqlite_utils
from flask import Blueprint, render_template

from . import hlc
from .auth import login_required
from .db import get_db, device_id, new_id, record_change, transaction
from .errors import InputError

bp = Blueprint("runners", __name__, url_prefix="/runners")
MAX_START_NUMBER = 999_999
MAX_NAME = 100
MAX_CLASS = 20
GRADES = range(1, 14)


def validate_runner(start_number, name, class_, grade) -> dict:
    """Check a runner's fields; return them cleaned or raise InputError."""
    try:
        start_number = int(str(start_number).strip())
    except ValueError:
        raise InputError("invalid_start_number", "The start number must be a whole number.")
    if not 1 <= start_number <= MAX_START_NUMBER:
        raise InputError("invalid_start_number", f"Start numbers run from 1 to {MAX_START_NUMBER}.")
    name, class_ = str(name or "").strip(), str(class_ or "").strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise InputError("invalid_name", f"The name must be 1 to {MAX_NAME} characters.")
    if not 1 <= len(class_) <= MAX_CLASS:
        raise InputError("invalid_class", f"The class must be 1 to {MAX_CLASS} characters.")
    try:
        grade = int(str(grade).strip())
    except ValueError:
        raise InputError("invalid_grade", "The grade must be a whole number.")
    if grade not in GRADES:
        raise InputError("invalid_grade", f"The grade must be {GRADES.start} to {GRADES.stop - 1}.")
    return {"start_number": start_number, "name": name, "class": class_, "grade": grade}


def number_taken(db: sqlite_utils.Database, start_number: int, except_id: str | None = None) -> bool:
    """Tell whether another runner has this start number."""
    return db.execute("SELECT 1 FROM runner WHERE start_number = ? AND id IS NOT ?",
                      [start_number, except_id]).fetchone() is not None


def save_runner(db: sqlite_utils.Database, fields: dict, runner_id: str | None = None) -> str:
    """Insert or update a validated runner and its outbox change (caller's transaction)."""
    if number_taken(db, fields["start_number"], runner_id):
        raise InputError("duplicate_start_number",
                         f"Start number {fields['start_number']} is taken already.", 409)
    runner = {"id": runner_id or new_id(), **fields, "hlc": hlc.tick(db), "origin": device_id(db)}
    db.table("runner").upsert(runner, pk="id")
    record_change(db, "runner", runner["id"], runner)
    return runner["id"]


def add_runner(db: sqlite_utils.Database, start_number, name, class_, grade) -> str:
    """Validate and add one runner; return its id."""
    fields = validate_runner(start_number, name, class_, grade)
    with transaction(db):
        return save_runner(db, fields)


@bp.get("/")
@login_required
def index():
    """List runners grouped by class."""
    rows = list(get_db().query("SELECT * FROM runner ORDER BY class, name"))
    return render_template("runners.html", runners=rows)


def init_app(app) -> None:
    """Register the blueprint."""
    app.register_blueprint(bp)
