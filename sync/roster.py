"""The roster at central: CSV/XLSX import, add and edit runners, start-number sheets and labels.

Same rules as the laptop: the school office CSV or XLSX goes through lapsync/roster_file.py and
every runner through lapsync/runners.validate_runner. Every runner written here gets
central's hlc and origin and a new change id, so every laptop pulls it; clashes are
recorded with the function the push uses (sync/ledger.py, detect_clashes).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import psycopg
from flask import (
    Blueprint,
    Flask,
    abort,
    g,
    render_template,
    request,
    url_for,
)
from flask.cli import with_appcontext
from flask_babel import gettext as _

from lapsync import classes, roster_csv, roster_file
from lapsync.errors import InputError
from lapsync.ids import new_id
from lapsync.protocol import MAX_CLASS, MAX_RUNNER_NAME
from lapsync.roster_csv import RosterError
from lapsync.runners import (Imported, RunnerForm, added_text, clean_class, roster_upload,
                             saved_text, typed_runner, validate_runner)

from . import class_names, clock, labels, search
from .auth import admin_required, login_required
from .blocks import check_unreserved, free_gap_end, next_free_number, reserved_ranges
from .db import connection, get_db, now_ms, write_transaction
from .ledger import class_rows, class_spellings, detect_clashes, upsert_runner
from .settings import get_settings

bp = Blueprint("roster", __name__, url_prefix="/runners")
# Classes sort naturally (5a before 10a), names as a search compares them (sync/search.py).
CLASSES = f"""
SELECT DISTINCT class, class_key FROM runner WHERE merged_into IS NULL
ORDER BY {search.class_order()}
"""
SEARCH = f"""
SELECT id, start_number, name, class, grade, change_id FROM runner
WHERE merged_into IS NULL AND (%(q)s = '' OR start_number = %(n)s OR {search.name_matches()})
  AND (%(c)s = '' OR class = %(c)s)
ORDER BY {search.class_order()}, name_plain, name, start_number
"""
INSERT_MANY = """
INSERT INTO runner (id, start_number, name, class, grade, hlc, origin, change_id)
SELECT id, n, name, class, grade, %(hlc)s, %(origin)s, nextval('change_id_seq')
FROM unnest(%(ids)s::text[], %(numbers)s::int[], %(names)s::text[], %(classes)s::text[],
            %(grades)s::int[]) WITH ORDINALITY AS t(id, n, name, class, grade, pos)
ORDER BY pos
"""
# Runners of a class the import writes in another spelling: central's edit, like the import.
RESPELL_MANY = """
UPDATE runner AS r SET class = t.written, hlc = %(hlc)s, origin = %(origin)s,
    change_id = nextval('change_id_seq')
FROM unnest(%(stored)s::text[], %(written)s::text[]) AS t(stored, written)
WHERE r.class = t.stored
"""
# The same test detect_clashes applies, for many runners at once: which of them clash?
CLASHING = """
SELECT n.id FROM runner n JOIN runner o ON o.start_number = n.start_number AND o.id <> n.id
WHERE o.merged_into IS NULL AND n.id = ANY(%(ids)s)
UNION
SELECT n.id FROM runner n JOIN runner o ON o.same_child = n.same_child AND o.id <> n.id
WHERE o.merged_into IS NULL AND n.id = ANY(%(ids)s)
"""


def get_runner(conn: psycopg.Connection, runner_id: str) -> dict | None:
    """Return one runner (with its change id, the version an edit form carries), or None."""
    return conn.execute("SELECT id, start_number, name, class, grade, change_id FROM runner "
                        "WHERE id = %s", [runner_id]).fetchone()


def list_classes(conn: psycopg.Connection) -> list[str]:
    """Return every class that has runners, in natural order."""
    return [row["class"] for row in conn.execute(CLASSES)]


def search_runners(conn: psycopg.Connection, query: str = "", class_name: str = "") -> list[dict]:
    """Return runners whose name contains QUERY or whose number is QUERY, of one class or all."""
    query = query.strip()
    number = int(query) if query.isascii() and query.isdigit() and len(query) <= 9 else None
    return conn.execute(SEARCH, {"q": query, "n": number, "c": class_name,
                                 **search.search_params(query)}).fetchall()


def _spelled(conn: psycopg.Connection, fields: dict, runner_id: str | None) -> dict:
    """Return a runner's checked fields with the class spelled as the roster spells it."""
    return {**fields, "class": classes.spelled(fields["class"], class_spellings(conn, runner_id))}


def _number_taken(conn: psycopg.Connection, start_number: int, except_id: str | None) -> bool:
    """Tell whether another runner has this start number."""
    return conn.execute("SELECT 1 FROM runner WHERE start_number = %s AND id IS DISTINCT FROM %s "
                        "AND merged_into IS NULL",
                        [start_number, except_id]).fetchone() is not None


def _store(conn: psycopg.Connection, runner: dict) -> None:
    """Insert or overwrite a runner with a new hlc, central's origin and a change id."""
    runner.update(hlc=clock.tick(conn), origin=clock.node_id(conn))
    upsert_runner(conn, runner, newer_only=False)
    detect_clashes(conn, runner, now_ms())


def add_runner(conn: psycopg.Connection, start_number: str | int, name: str, class_: str,
               grade: str | int) -> dict:
    """Validate and add a runner (an empty start number gets the next free one); return it.

    A number in a device's block (or the laptops' local range) is refused: it is theirs.
    """
    with write_transaction(conn):
        if not str(start_number or "").strip():
            start_number = next_free_number(conn)
        fields = _spelled(conn, validate_runner(start_number, name, class_, grade), None)
        check_unreserved(conn, fields["start_number"])
        if _number_taken(conn, fields["start_number"], None):
            raise InputError("duplicate_start_number", _(
                "Start number %(number)s is taken already.", number=fields["start_number"]), 409)
        runner = {"id": new_id(), **fields}
        _store(conn, runner)
    return runner


def edit_runner(conn: psycopg.Connection, runner_id: str, version: str | int | None,
                start_number: str | int, name: str, class_: str, grade: str | int) -> dict:
    """Save an edit made on the form of VERSION (the change id it showed); return the runner.

    Refused with 409 when the runner changed since (a laptop's push or another admin),
    so an edit never silently overwrites what the form did not show.
    """
    fields = validate_runner(start_number, name, class_, grade)
    with write_transaction(conn):
        current = conn.execute("SELECT change_id, start_number FROM runner WHERE id = %s "
                               "FOR UPDATE", [runner_id]).fetchone()
        if current is None:
            raise InputError("unknown_runner", _("There is no such runner."), 404)
        if str(current["change_id"]) != str(version or "").strip():
            raise InputError("changed_meanwhile", _(
                "This runner was changed by someone else while you edited. "
                "Reload the form and make your change again."), 409)
        if _number_taken(conn, fields["start_number"], runner_id):
            raise InputError("duplicate_start_number", _(
                "Start number %(number)s is taken already.", number=fields["start_number"]), 409)
        if fields["start_number"] != current["start_number"]:
            check_unreserved(conn, fields["start_number"])
        runner = {"id": runner_id, **_spelled(conn, fields, runner_id)}
        _store(conn, runner)
    return runner


def import_roster(conn: psycopg.Connection, data: bytes) -> Imported:
    """Import a roster CSV or XLSX whole in one transaction, or raise RosterError; say what it wrote.

    One hlc for the whole import: each runner is its own last-writer-wins register,
    so they may share a timestamp, and 10,000 ticks within one millisecond would
    overrun the clock's counter. Each class takes the spelling most of the roster's runners
    and the file's rows have (lapsync/classes.py, tallied): the roster's runners of a class
    the file's spelling wins are re-spelled with the import's stamp, so laptops pull them.
    """
    with write_transaction(conn):
        existing = [(r["start_number"], r["name"], r["class"]) for r in
                    conn.execute("SELECT start_number, name, class FROM runner")]
        # Rows without a number continue after the highest free one, up to the next block.
        following = next_free_number(conn)
        runners = roster_file.parse_roster(data, existing, unreserved_validator(conn),
                                           free_gap_end(conn, following))
        roster = class_rows(conn)
        respelled, moved = classes.unify_with_roster(runners, roster)
        ids = [new_id() for _runner in runners]
        stamp = {"hlc": clock.tick(conn), "origin": clock.node_id(conn)}
        conn.execute(RESPELL_MANY, {**stamp, "stored": list(moved), "written": list(moved.values())})
        class_names.follow(conn, moved, {name for name, _count, _first in roster})
        conn.execute(INSERT_MANY, {
            **stamp, "ids": ids,
            "numbers": [r["start_number"] for r in runners], "names": [r["name"] for r in runners],
            "classes": [r["class"] for r in runners], "grades": [r["grade"] for r in runners]})
        now, by_id = now_ms(), dict(zip(ids, runners))
        for row in conn.execute(CLASHING, {"ids": ids}).fetchall():
            detect_clashes(conn, {"id": row["id"], **by_id[row["id"]]}, now)
    return Imported(len(runners), respelled)


def unreserved_validator(conn: psycopg.Connection) -> Callable[..., dict]:
    """Return validate_runner that also refuses start numbers of a block or the local range."""
    ranges = reserved_ranges(conn)  # once: a query per row was most of a big import's time

    def validate(start_number, name, class_, grade) -> dict:
        """Check a roster row's fields and that its number is nobody's block."""
        fields = validate_runner(start_number, name, class_, grade)
        check_unreserved(conn, fields["start_number"], ranges)
        return fields
    return validate


FORM = RunnerForm("roster_form.html", lambda: next_free_number(get_db()), "roster.index")


def _refused_edit(runner_id: str, exc: InputError) -> dict:
    """Return the runner to show again with the error of a refused edit."""
    if exc.code == "changed_meanwhile":  # show what is stored now, not the stale edit
        return get_runner(get_db(), runner_id)
    return typed_runner(id=runner_id, change_id=request.form.get("version", ""))


@bp.get("/")
@login_required
def index():
    """List the runners (search by name or number, filter by class); admins get the actions."""
    query = request.args.get("q", "").strip()[:MAX_RUNNER_NAME]
    class_name = request.args.get("class", "").strip()[:MAX_CLASS + 1]  # too long: no match
    return roster_page(query, class_name)


def roster_page(query: str, class_name: str, rename_error: InputError | None = None) -> str:
    """Render the runners page (with a refused rename of its class and what was typed)."""
    conn = get_db()
    classes_ = list_classes(conn)
    return render_template("roster.html", runners=search_runners(conn, query, class_name),
                           classes=classes_, q=query, class_name=class_name,
                           is_admin=g.user["role"] == "admin", rename_error=rename_error,
                           renamable=class_name in classes_)


@bp.route("/new", methods=["GET", "POST"])
@admin_required
def new():
    """Add a runner (admin); laptops receive it at their next pull."""
    return FORM.serve({}, lambda *fields: add_runner(get_db(), *fields),
                      lambda exc: typed_runner(), added_text)


def _respelled(runner: dict) -> bool:
    """Tell whether a saved runner's class is written otherwise than the edit form typed it."""
    return clean_class(request.form.get("class")) != runner["class"]


def _edited_text(runner: dict) -> str:
    """Say which runner was saved, and how its class is written if not as typed."""
    if not _respelled(runner):
        return saved_text(runner)
    return _("Saved %(name)s in class %(class_name)s: the class is written so for all its "
             "runners. To write it %(typed)s, use “Rename class” below.", name=runner["name"],
             class_name=runner["class"], typed=clean_class(request.form.get("class")))


@bp.route("/<runner_id>/edit", methods=["GET", "POST"])
@admin_required
def edit(runner_id: str):
    """Edit a runner (admin); laptops take the edit at their next pull (newest edit wins).

    A class typed in another spelling keeps the class's (edit_runner): the runners page of
    the class, where it can be renamed, says so.
    """
    return FORM.serve(get_runner(get_db(), runner_id),
                      lambda *fields: edit_runner(get_db(), runner_id, request.form.get("version"),
                                                  *fields),
                      lambda exc: _refused_edit(runner_id, exc), _edited_text,
                      lambda runner: url_for("roster.index", **{"class": runner["class"]})
                      if _respelled(runner) else None)


@bp.route("/import", methods=["GET", "POST"])
@admin_required
def import_csv():
    """Import a school office roster CSV or XLSX (admin): all rows or none."""
    return roster_upload("roster_import.html", import_roster, get_db(), "roster.index")


def _runners_to_print(class_name: str) -> list[dict]:
    """Return the runners of one class (404 for a class without runners) or all, as listed."""
    runners = search_runners(get_db(), "", class_name)
    if class_name and not runners:
        abort(404, _("There are no runners in class %(class_name)s.", class_name=class_name))
    return runners


@bp.get("/sheets")
@login_required
def sheets():
    """Print start-number sheets with a barcode: one per page (or two), all runners or one class."""
    class_name = request.args.get("class", "").strip()[:MAX_CLASS + 1]  # too long: no match
    per_page = request.args.get("per_page", "1")
    if per_page not in ("1", "2"):
        raise InputError("invalid_per_page", _("Print one or two sheets per page."), 400)
    return render_template("roster_sheets.html", runners=_runners_to_print(class_name),
                           class_name=class_name, per_page=int(per_page),
                           event=get_settings(get_db()).get("event_name"),
                           barcode=labels.code128_svg)


@bp.get("/labels")
@login_required
def label_sheets():
    """Print A4 sheets of 3 x 8 labels (number, name, class, barcode): all runners or one class."""
    class_name = request.args.get("class", "").strip()[:MAX_CLASS + 1]  # too long: no match
    order, layout = request.args.get("order", "class"), request.args.get("layout", "3475")
    if order not in labels.ORDERS:
        raise InputError("invalid_order", _("Order the labels by class or by start number."), 400)
    if layout not in labels.LAYOUTS:
        raise InputError("invalid_layout", _(
            "Unknown label sheet %(layout)s: choose one of %(layouts)s.",
            layout=layout[:20], layouts=", ".join(labels.LAYOUTS)), 400)
    runners = labels.order_runners(_runners_to_print(class_name), order)
    return render_template("roster_labels.html", class_name=class_name, order=order,
                           layout=layout, layouts=labels.LAYOUTS, sheet=labels.LAYOUTS[layout],
                           pages=labels.label_pages(runners, labels.LAYOUTS[layout]),
                           count=len(runners), barcode=labels.code128_svg)


@click.command("import-runners")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_runners_command(file: Path) -> None:
    """Import runners from a school office CSV or XLSX file, all rows or none.

    \b
    The same file and rules as the import page and the laptop's import-runners:
    header Name,Klasse,Jahrgang and optionally Startnummer; an Excel workbook's
    first sheet. Rows without a start number get the next free ones at central.
    A bad file changes nothing: every bad line is listed and the exit code is 1.
    """
    try:
        with file.open("rb") as handle, connection() as conn:
            imported = import_roster(conn, handle.read(roster_csv.MAX_BYTES + 1))
    except RosterError as exc:
        click.echo(roster_csv.format_report(exc), err=True)
        raise SystemExit(1)
    click.echo("\n".join(imported.lines(str(file))))


def init_app(app: Flask) -> None:
    """Register the roster blueprint and the import-runners command."""
    app.register_blueprint(bp)
    app.cli.add_command(import_runners_command)
