"""The sponsors' pages: pledges with their amounts, add, edit, delete, fast entry from cards, import.

Everyone logged in sees the amounts; only admins change pledges (a viewer's or
teacher's post gets the 403 page). Every change is logged (sync/money_log.py).
"""
from __future__ import annotations

import psycopg
from flask import Blueprint, Flask, abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from lapsync.errors import InputError, wants_json
from lapsync.protocol import MAX_CLASS
from lapsync.roster_csv import MAX_BYTES
from lapsync.sheets import SheetError
from lapsync.text import name_matches

from ..auth import admin_required, login_required
from ..db import get_db
from ..money_settings import money_settings, save_money_settings
from ..roster import list_classes
from . import pledge_import
from .amounts import metres_per_lap, money, pledge_amounts, raised, sum_rows
from .freeze import letter_rows
from .letters import gets_letter
from .money_log import money_log
from .payments import payments_of
from .pledges import (
    add_pledges,
    delete_pledge,
    edit_pledge,
    format_reference,
    live_pledge,
    runner_by_number,
)

bp = Blueprint("sponsors", __name__, url_prefix="/sponsors")
PER_PAGE = 100
MAX_QUERY = 100
ENTRY_LINES = 5          # sponsor lines the fast-entry page shows at first (more on demand)
MAX_LINES = 50
LINE_FIELDS = ("sponsor_name", "kind", "rate_cents", "cap_cents", "email")
FORM_FIELDS = ("sponsor_name", "email", "address", "kind", "rate_cents", "cap_cents")


def kind_label(kind: str) -> str:
    """Name a pledge's kind in the reader's language."""
    return {"per_lap": _("per lap"), "per_km": _("per km"), "fixed": _("fixed")}.get(kind, kind)


def matches(row: dict, query: str, number: int | None) -> bool:
    """Tell whether a pledge row matches a search: sponsor, e-mail, runner, number, reference."""
    if number is not None and row["start_number"] == number:
        return True
    compact = "".join(query.split()).upper()
    # Sponsors and runners as every search finds names: Müller by mueller (lapsync.text).
    return (name_matches(row["sponsor_name"], query) or name_matches(row["name"], query)
            or query.casefold() in (row["email"] or "").casefold()
            or (len(compact) >= 4 and compact in row["reference"]))


def search(conn: psycopg.Connection, query: str, class_name: str | None) -> list[dict]:
    """Return the live pledges with what they owe matching a search, of one class or all."""
    rows = letter_rows(conn, class_name=class_name)
    if not query:
        return rows
    number = int(query) if query.isascii() and query.isdigit() and len(query) <= 6 else None
    return [row for row in rows if matches(row, query, number)]


def page_number(text: str | None) -> int:
    """Return the page asked for (1 when absent or not a sensible number)."""
    text = (text or "1").strip()
    return int(text) if text.isascii() and text.isdigit() and 0 < len(text) <= 5 else 1


@bp.get("/")
@login_required
def index():
    """Show the pledges with what each raises, paid and outstanding: search, class, pages."""
    conn = get_db()
    query = request.args.get("q", "").strip()[:MAX_QUERY]
    class_name = request.args.get("class", "").strip()[:MAX_CLASS + 1] or None
    rows = search(conn, query, class_name)
    pages = max(1, -(-len(rows) // PER_PAGE))
    page = min(page_number(request.args.get("page")), pages)
    return render_template(
        "sponsors.html", rows=rows[(page - 1) * PER_PAGE:page * PER_PAGE], total=sum_rows(rows),
        q=query, class_name=class_name, classes=list_classes(conn), page=page, pages=pages,
        no_metres=metres_per_lap(conn) is None and any(r["kind"] == "per_km" for r in rows),
        is_admin=g.user["role"] == "admin")


@bp.get("/<pledge_id>")
@login_required
def pledge(pledge_id: str):
    """Show one pledge: runner, laps, amount, payments and its log."""
    conn = get_db()
    row = letter_rows(conn, pledge_ids=[live_pledge(conn, pledge_id)["id"]])[0]
    return render_template("pledge.html", pledge=row, payments=payments_of(conn, pledge_id),
                           log=money_log(conn, pledge_id), is_admin=g.user["role"] == "admin")


def typed_pledge(**extra) -> dict:
    """Return what was typed into the pledge form (and extra) to show it again."""
    return {**{key: request.form.get(key, "") for key in FORM_FIELDS},
            "start_number": request.form.get("start_number", ""), **extra}


@bp.route("/new", methods=["GET", "POST"])
@admin_required
def new():
    """Add one pledge (admin): the runner's start number and the sponsor's card."""
    conn = get_db()
    if request.method == "GET":
        return render_template("pledge_form.html", typed={"kind": "per_lap", "start_number":
                                                          request.args.get("number", "")},
                               errors={})
    typed = typed_pledge()
    try:
        runner = runner_by_number(conn, typed["start_number"])
        pledge_id = add_pledges(conn, g.user["id"], runner["id"], [typed])[0]
    except InputError as exc:
        if wants_json():
            raise
        errors = exc.extra.get("lines", {}).get("0") or {exc.extra.get("field"): exc.message}
        return render_template("pledge_form.html", typed=typed, errors=errors), exc.status
    flash(_("Added the pledge of %(sponsor)s for %(name)s.", sponsor=typed["sponsor_name"].strip(),
            name=runner["name"]))
    return redirect(url_for("sponsors.pledge", pledge_id=pledge_id))


@bp.route("/<pledge_id>/edit", methods=["GET", "POST"])
@admin_required
def edit(pledge_id: str):
    """Edit a pledge (admin): runner (by start number), sponsor, e-mail, address, kind, amount, cap."""
    conn = get_db()
    current = live_pledge(conn, pledge_id)
    if request.method == "GET":
        typed = {**current, "rate_cents": cents_text(current["rate_cents"]),
                 "cap_cents": cents_text(current["cap_cents"]),
                 "start_number": str(current["start_number"])}
        return render_template("pledge_form.html", pledge=current, typed=typed, errors={})
    typed = typed_pledge()
    try:
        changed = edit_pledge(conn, g.user["id"], pledge_id, typed)
    except InputError as exc:
        if wants_json():
            raise
        errors = exc.extra.get("errors") or {exc.extra.get("field"): exc.message}
        return render_template("pledge_form.html", pledge=current, typed=typed,
                               errors=errors), exc.status
    flash(_("Saved the pledge of %(sponsor)s.", sponsor=typed["sponsor_name"].strip()) if changed
          else _("Nothing changed."))
    return redirect(url_for("sponsors.pledge", pledge_id=pledge_id))


@bp.post("/<pledge_id>/delete")
@admin_required
def delete(pledge_id: str):
    """Delete a pledge (admin, once confirmed): it counts nowhere from now on; the log keeps it."""
    if request.form.get("confirm") != "1":
        abort(400, description=_("Tick the box to confirm that the pledge is to be deleted. "
                                 "Nothing was deleted."))
    pledge_row = delete_pledge(get_db(), g.user["id"], pledge_id)
    flash(_("Deleted the pledge of %(sponsor)s for %(name)s.", sponsor=pledge_row["sponsor_name"],
            name=pledge_row["name"]))
    return redirect(url_for("sponsors.index"))


def cents_text(cents: int | None) -> str:
    """Write cents as the form shows an amount: 0.50, 20.00 (empty for None)."""
    return "" if cents is None else f"{cents // 100}.{cents % 100:02d}"


def runner_pledges(conn: psycopg.Connection, runner_id: str) -> list[dict]:
    """Return a runner's live pledges as the fast-entry page lists them."""
    return [{"sponsor_name": r["sponsor_name"], "kind": kind_label(r["kind"]),
             "rate": money(r["rate_cents"], conn), "amount": money(r["amount_cents"], conn)}
            for r in pledge_amounts(conn, runner_id=runner_id)]


@bp.get("/runner")
@login_required
def runner_lookup():
    """Answer JSON: the runner with ?number= and their pledges (the fast-entry page asks)."""
    conn = get_db()
    try:
        runner = runner_by_number(conn, request.args.get("number", ""))
    except InputError as exc:
        return jsonify(error=exc.code, message=exc.message), exc.status
    return jsonify(runner=dict(runner), pledges=runner_pledges(conn, runner["id"]))


def entry_lines(form) -> list[dict]:
    """Read the sponsor lines of the fast-entry form; lines with nothing typed are left out."""
    lines = []
    for index in range(MAX_LINES):
        line = {key: form.get(f"{key}_{index}", "") for key in LINE_FIELDS}
        if any(line[key].strip() for key in LINE_FIELDS if key != "kind"):
            lines.append({"index": index, **line})
    return lines


def entry_page(status: int = 200, **context):
    """Render the fast-entry page (a runner's card, or the start-number field)."""
    runner = context.get("runner")
    pledges = runner_pledges(get_db(), runner["id"]) if runner else []
    lines = context.pop("lines", [])
    count = max(ENTRY_LINES, max((line["index"] for line in lines), default=-1) + 2)
    typed = {line["index"]: line for line in lines}
    return render_template("pledge_entry.html", pledges=pledges, count=count, typed=typed,
                           **context), status


@bp.get("/entry")
@admin_required
def entry():
    """Type pledges from paper cards: start number, the runner shows, sponsor lines, Enter on."""
    number = request.args.get("number", "").strip()
    if not number:
        return entry_page()
    try:
        runner = runner_by_number(get_db(), number)
    except InputError as exc:
        return entry_page(exc.status, number=number, error=exc.message)
    return entry_page(number=number, runner=runner)


@bp.post("/entry")
@admin_required
def save_entry():
    """Save one card's sponsor lines for a runner: all lines or none."""
    conn = get_db()
    runner = conn.execute("SELECT id, start_number, name, class, grade FROM runner WHERE id = %s "
                          "AND merged_into IS NULL", [request.form.get("runner_id", "")]).fetchone()
    if runner is None:
        raise InputError("unknown_runner", _("Type the runner's start number first."), 400)
    lines = entry_lines(request.form)
    if not lines:
        raise InputError("no_lines", _("Type at least one sponsor line."), 400)
    try:
        add_pledges(conn, g.user["id"], runner["id"], lines)
    except InputError as exc:
        errors = {lines[int(i)]["index"]: e for i, e in exc.extra.get("lines", {}).items()}
        if wants_json():
            return jsonify(error=exc.code, message=_("Nothing was saved: correct the marked "
                                                     "fields."), lines=errors), exc.status
        return entry_page(exc.status, runner=runner, number=runner["start_number"], lines=lines,
                          errors=errors)
    message = ngettext("Saved %(num)s pledge for %(name)s (%(class_name)s).",
                       "Saved %(num)s pledges for %(name)s (%(class_name)s).", len(lines),
                       name=runner["name"], class_name=runner["class"])
    if wants_json():
        return jsonify(saved=len(lines), message=message)
    flash(message)
    return redirect(url_for("sponsors.entry"))


@bp.route("/import", methods=["GET", "POST"])
@admin_required
def import_file():
    """Import pledges from a CSV or XLSX file (admin): all lines or none, a report per line."""
    if request.method == "GET":
        return render_template("pledge_import.html")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InputError("missing_file", _("Choose a CSV or XLSX file to import."), 400)
    try:
        count = pledge_import.import_pledges(get_db(), g.user["id"],
                                             upload.read(MAX_BYTES + 1), upload.filename)
    except SheetError as exc:
        if wants_json():
            raise
        return render_template("pledge_import.html", report=exc,
                               filename=upload.filename), exc.status
    flash(ngettext("Imported %(num)s pledge from %(file)s.",
                   "Imported %(num)s pledges from %(file)s.", count, file=upload.filename))
    return redirect(url_for("sponsors.index"))


@bp.get("/log")
@login_required
def log():
    """Show the latest money changes: who, when, what."""
    return render_template("money_log.html", log=money_log(get_db()))


@bp.post("/settings")
@admin_required
def save_settings():
    """Save the money settings (currency, raised on certificates): central only."""
    values = {"currency": request.form.get("currency", ""),
              "certificate_raised": "1" if request.form.get("certificate_raised") else "0"}
    changed = save_money_settings(get_db(), values, g.user["id"])
    flash(_("Money settings saved. They stay at central.") if changed
          else _("Nothing changed: the settings were saved already."))
    return redirect(url_for("settings.index") + "#money")


def shown_money_settings() -> dict:
    """Return the money settings for the settings page."""
    return money_settings(get_db())


def money_totals() -> dict:
    """Return what pledges raise per runner, class, grade and school ({} without pledges), once a request."""
    if "money_totals" not in g:
        g.money_totals = raised(letter_rows(get_db()))
    return g.money_totals


def money_filter(cents: int | None) -> str:
    """Jinja filter: cents as money in the reader's language and the currency setting."""
    return money(cents, get_db())


def init_app(app: Flask) -> None:
    """Register the sponsors' pages, the import command and the money filters."""
    app.register_blueprint(bp)
    app.cli.add_command(pledge_import.import_pledges_command)
    app.add_template_filter(money_filter, "money")
    app.add_template_filter(format_reference, "reference")
    app.add_template_global(kind_label)
    app.add_template_global(gets_letter)
    app.add_template_global(shown_money_settings)
    app.add_template_global(money_totals)
