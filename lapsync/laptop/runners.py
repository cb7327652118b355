"""The roster: runners, their start numbers, search and CSV import."""
from __future__ import annotations

import itertools
from pathlib import Path

import click
import sqlite_utils
from flask import (
    Blueprint,
    current_app,
    render_template,
    request,
)
from flask.cli import with_appcontext
from flask_babel import gettext as _

from lapsync import classes, roster_csv, roster_file
from lapsync.errors import InputError
from lapsync.ids import new_id
from lapsync.names import class_fold
from lapsync.protocol import (
    MAX_RUNNER_NAME,
    MAX_START_NUMBER,
)
from lapsync.roster_csv import RosterError
from lapsync.runners import (
    Imported,
    RunnerForm,
    added_text,
    roster_upload,
    saved_text,
    typed_runner,
    validate_runner,
)
from lapsync.text import class_key, name_matches, plain

from . import clock
from .auth import admin_required, login_required
from .counts import OTHER_LAPS_SQL, OWN_LAPS_SQL
from .db import connect, device_id, get_db, record_change, transaction
from .numbers import import_pool, number_source

bp = Blueprint("runners", __name__, url_prefix="/runners")
MAX_NAME = MAX_RUNNER_NAME
# Each class's spellings with their runners (but one's), in roster order: lapsync/classes.py
# keeps the most used (ties: the first).
SPELLINGS_SQL = """
SELECT class, count(*) FROM runner
WHERE id IS NOT ? AND id NOT IN (SELECT runner_id FROM runner_merge)
GROUP BY class ORDER BY min(start_number), class
"""


def number_taken(db: sqlite_utils.Database, start_number: int, except_id: str | None = None) -> bool:
    """Tell whether another runner has this start number."""
    return db.execute("SELECT 1 FROM runner WHERE start_number = ? AND id IS NOT ? "
                      "AND id NOT IN (SELECT runner_id FROM runner_merge)",
                      [start_number, except_id]).fetchone() is not None


def class_spellings(db: sqlite_utils.Database, except_id: str | None = None) -> dict[str, str]:
    """Map each class key to the spelling this laptop's roster has for it (leaving one runner out)."""
    return classes.preferred(db.execute(SPELLINGS_SQL, [except_id]).fetchall())


def spelled(db: sqlite_utils.Database, fields: dict, runner_id: str | None = None) -> dict:
    """Return a runner's checked fields with the class spelled as the roster spells it."""
    return {**fields, "class": classes.spelled(fields["class"], class_spellings(db, runner_id))}


def save_runner(db: sqlite_utils.Database, fields: dict, runner_id: str | None = None) -> str:
    """Insert or update a validated runner and its outbox change (caller's transaction)."""
    if number_taken(db, fields["start_number"], runner_id):
        raise InputError("duplicate_start_number", _("Start number %(number)s is taken already.",
                                                     number=fields["start_number"]), 409)
    runner = {"id": runner_id or new_id(), **fields, "hlc": clock.tick(db), "origin": device_id(db)}
    db.table("runner").upsert(runner, pk="id")
    record_change(db, "runner", runner["id"], runner)
    return runner["id"]


def add_runner(db: sqlite_utils.Database, start_number, name, class_, grade) -> str:
    """Validate and add one runner (its class spelled as on the roster); return its id."""
    fields = validate_runner(start_number, name, class_, grade)
    with transaction(db):
        return save_runner(db, spelled(db, fields))


def next_start_number(db: sqlite_utils.Database) -> int | None:
    """Return the next free number of this laptop's block (or local range); None if used up."""
    return number_source(db)["next"]


def numbers_used_up(source: dict) -> InputError:
    """Return the 409 for an empty start number when the block (or local range) is used up."""
    if source["kind"] == "block":
        message = _("The start numbers central reserved for this laptop (%(first)s–%(last)s) "
                    "are all given out: type a start number. An admin at central can give "
                    "this laptop a new block on the devices page; it arrives at the next sync.",
                    first=source["first"], last=source["last"])
    else:
        message = _("The local start numbers %(first)s–%(last)s are all given out: type a "
                    "start number.", first=source["first"], last=source["last"])
    return InputError("start_numbers_used_up", message, 409)


def create_runner(db: sqlite_utils.Database, start_number, name, class_, grade) -> str:
    """Add a runner from form input; an empty start number gets the block's next free one."""
    with transaction(db):
        if not str(start_number or "").strip():
            source = number_source(db)
            if source["next"] is None:
                raise numbers_used_up(source)
            start_number = source["next"]
        return save_runner(db, spelled(db, validate_runner(start_number, name, class_, grade)))


def get_runner(db: sqlite_utils.Database, runner_id: str) -> dict | None:
    """Return one runner, or None."""
    rows = list(db.query("SELECT id, start_number, name, class, grade FROM runner WHERE id = ?",
                         [runner_id]))
    return rows[0] if rows else None


def central_decision(db: sqlite_utils.Database, runner_id: str) -> dict | None:
    """Return central's merge or renumber of a runner (who, why, when), or None."""
    rows = list(db.query("SELECT action, by_name, reason, at, was_start_number FROM "
                         "central_decision WHERE entity = 'runner' AND entity_id = ?",
                         [runner_id]))
    return rows[0] if rows else None


def check_central_decision(db: sqlite_utils.Database, runner: dict, start_number: int) -> None:
    """Refuse (403) an edit that would undo central's merge or renumber of this runner."""
    decision = central_decision(db, runner["id"])
    by = (decision or {}).get("by_name") or _("an admin")
    if decision and decision["action"] == "merge":
        raise InputError("central_decision", _(
            "%(name)s was merged into another runner at central by %(by)s: only an admin at "
            "central can undo that.", name=runner["name"], by=by), 403)
    if decision and start_number != runner["start_number"]:
        raise InputError("central_decision", _(
            "Start number %(number)s of %(name)s was given at central by %(by)s: only an "
            "admin at central can change it.", by=by, name=runner["name"],
            number=runner["start_number"]), 403)


def update_runner(db: sqlite_utils.Database, runner_id: str, start_number, name, class_,
                  grade) -> None:
    """Edit a runner: a new hlc and an outbox change, or InputError (404 when unknown)."""
    with transaction(db):
        runner = get_runner(db, runner_id)
        if runner is None:
            raise InputError("unknown_runner", _("There is no such runner."), 404)
        fields = validate_runner(start_number, name, class_, grade)
        check_central_decision(db, runner, fields["start_number"])
        save_runner(db, spelled(db, fields, runner_id), runner_id)


def import_roster(db: sqlite_utils.Database, data: bytes) -> Imported:
    """Import a roster CSV or XLSX whole in one transaction, or raise RosterError; say what it wrote."""
    with transaction(db):
        existing = db.execute("SELECT start_number, name, class FROM runner").fetchall()
        # Rows without a number take free ones of this laptop's block (or the local range),
        # never the next after the highest: those may be another laptop's or central's.
        runners = roster_file.parse_roster(data, existing, validate_runner, MAX_START_NUMBER,
                                           import_pool(db))
        respelled = classes.unify(runners, class_spellings(db))
        for fields in runners:
            save_runner(db, fields)
    return Imported(len(runners), respelled)


SEARCH_SQL = f"""
SELECT runner.id, runner.start_number, runner.name, runner.class, runner.grade,
       {OWN_LAPS_SQL} AS own_laps, {OWN_LAPS_SQL} + {OTHER_LAPS_SQL} AS laps,
       d.action AS decision, d.by_name AS decided_by, d.reason AS decision_reason,
       d.was_start_number
FROM runner
LEFT JOIN central_decision d ON d.entity = 'runner' AND d.entity_id = runner.id
WHERE runner.id NOT IN (SELECT runner_id FROM runner_merge) AND (:query = ''
      OR lapsync_finds(runner.name, :query) OR runner.start_number = :number)
"""
MERGED_SQL = """
SELECT r.id, r.start_number, r.name, r.class, s.start_number AS into_number,
       s.name AS into_name, s.class AS into_class, d.by_name AS decided_by,
       d.reason AS decision_reason, d.at AS decided_at
FROM runner_merge m JOIN runner r ON r.id = m.runner_id
LEFT JOIN runner s ON s.id = m.merged_into
LEFT JOIN central_decision d ON d.entity = 'runner' AND d.entity_id = m.runner_id
ORDER BY r.start_number, r.name
"""


def search_runners(db: sqlite_utils.Database, query: str = "") -> list[dict]:
    """Return runners whose name contains QUERY (folded: lapsync.text) or whose number is QUERY.

    laps counts every laptop's laps (own_laps: this laptop's), as the lap page does.
    """
    # Names are folded in Python (lapsync.text, cached): SQLite's lower() knows only ASCII.
    db.conn.create_function("lapsync_finds", 2, name_matches, deterministic=True)
    query = query.strip()
    number = int(query) if query.isascii() and query.isdigit() and len(query) <= 9 else None
    rows = db.query(SEARCH_SQL, {"query": query, "number": number})
    return sorted(rows, key=lambda r: (class_key(class_fold(r["class"])), class_fold(r["class"]),
                                       plain(r["name"]), r["name"], r["start_number"]))


def merged_runners(db: sqlite_utils.Database) -> list[dict]:
    """Return the runners central merged into another, with the survivor and who decided."""
    return list(db.query(MERGED_SQL))


def group_by_class(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """Group sorted runners by class (spellings of one class together), keeping their order.

    Central gives every class one spelling; a runner this laptop added before it pulled
    that spelling may still have its own until central's answer comes back.
    """
    grouped = [list(group) for _key, group in
               itertools.groupby(rows, key=lambda r: class_fold(r["class"]))]
    return [(classes.most_used(r["class"] for r in group), group) for group in grouped]


@bp.get("/")
@login_required
def index():
    """List runners grouped by class, with search and lap counts; printable."""
    query = request.args.get("q", "").strip()[:MAX_NAME]
    rows = search_runners(get_db(), query)
    return render_template("runners.html", groups=group_by_class(rows), q=query, total=len(rows),
                           merged=[] if query else merged_runners(get_db()))


FORM = RunnerForm("runners_form.html", lambda: next_start_number(get_db()), "runners.index")


@bp.context_processor
def numbers_context() -> dict:
    """Give the runner pages where new start numbers come from (the add form says so)."""
    return {"number_source": lambda: number_source(get_db())}


def _created(*fields) -> dict:
    """Add a runner from the form's fields; return it as stored."""
    return get_runner(get_db(), create_runner(get_db(), *fields))


def _updated(runner_id: str, *fields) -> dict:
    """Save the form's fields to a runner; return it as stored."""
    update_runner(get_db(), runner_id, *fields)
    return get_runner(get_db(), runner_id)


@bp.route("/new", methods=["GET", "POST"])
@admin_required
def new():
    """Add a runner (admin)."""
    return FORM.serve({}, _created, lambda exc: typed_runner(), added_text)


@bp.route("/<runner_id>/edit", methods=["GET", "POST"])
@admin_required
def edit(runner_id: str):
    """Edit a runner (admin)."""
    return FORM.serve(get_runner(get_db(), runner_id),
                      lambda *fields: _updated(runner_id, *fields),
                      lambda exc: typed_runner(id=runner_id), saved_text)


@bp.route("/import", methods=["GET", "POST"])
@admin_required
def import_csv():
    """Import a school office roster CSV or XLSX (admin): all rows or none."""
    return roster_upload("import.html", import_roster, get_db(), "runners.index")


@click.command("import-runners")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_runners_command(file: Path) -> None:
    """Import runners from a school office CSV or XLSX file, all rows or none.

    \b
    Header: Name,Klasse,Jahrgang and optionally Startnummer, in any order;
    ',' or ';' between fields; UTF-8 (with or without BOM) or Windows-1252.
    An Excel workbook's first sheet is read, the header in its first filled row;
    the report names the sheet's row numbers.
    Rows without a start number get the free numbers of this laptop's block from
    central (before the first pull: the local range 90000-90999); when too few are
    free, the file is refused: type the numbers into it or ask central for more.
    A bad file changes nothing: every bad line is listed and the exit code is 1.
    """
    db = connect(current_app.config["DATABASE"])
    try:
        with file.open("rb") as handle:
            imported = import_roster(db, handle.read(roster_csv.MAX_BYTES + 1))
    except RosterError as exc:
        click.echo(roster_csv.format_report(exc), err=True)
        raise SystemExit(1)
    finally:
        db.close()
    click.echo("\n".join(imported.lines(str(file))))


def init_app(app) -> None:
    """Register the blueprint and the import-runners command."""
    app.register_blueprint(bp)
    app.cli.add_command(import_runners_command)
