"""Review queue: suspected double counts and runner clashes, decided by the admin and logged.

Laps pair by corrected device time (device_time + clock_offset_ms), not receipt
time: a laptop back online delivers an hour of laps with one receipt time. Each
decision checks the version the admin was shown (409 if it changed) and becomes a
change the laptops pull; totals change through the ledger (sync/ledger.py).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from flask import Blueprint, Flask, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from psycopg.types.json import Jsonb

from lapsync.errors import InputError, wants_json
from lapsync.i18n import N_
from lapsync.protocol import MAX_START_NUMBER, is_id
from lapsync.text import check_start_number, whole_number

from . import clock
from .auth import admin_required, login_required
from .blocks import check_unreserved
from .db import get_db, now_ms, write_transaction
from .decisions import decisions, log_decision
from .derived import min_lap_ms
from .derived import init_app as init_derived
from .ledger import Deltas, apply_totals, apply_void, detect_clashes

bp = Blueprint("review", __name__, url_prefix="/review")

PAIRS_PER_PAGE = 25   # 3 forms a pair: a page renders in ~12 ms; the queue is worked from the top
MAX_PAGE = 10_000
VOID_REASON = N_("double count (central review)")

# Pairs of neighbouring counting laps closer than the minimum lap time, kept in step by
# every writer (sync/derived.py): the page never sorts the lap table.
PAIRS_SQL = """
SELECT p.first_id, p.second_id, p.runner_id, p.second_time - p.first_time AS gap_ms,
       p.two_laptops
FROM close_lap_pair p
WHERE NOT EXISTS (SELECT 1 FROM kept_lap_pair k WHERE k.lap_a = least(p.first_id, p.second_id)
                                                  AND k.lap_b = greatest(p.first_id, p.second_id))
ORDER BY p.two_laptops DESC, gap_ms, p.runner_id, p.second_id
LIMIT %(limit)s OFFSET %(offset)s
"""
OPEN_PAIRS_SQL = """
SELECT count(*) AS n FROM close_lap_pair p
WHERE NOT EXISTS (SELECT 1 FROM kept_lap_pair k WHERE k.lap_a = least(p.first_id, p.second_id)
                                                  AND k.lap_b = greatest(p.first_id, p.second_id))
"""

LAPS_SQL = """
SELECT l.id, l.runner_id, l.device_id, l.device_time, l.received_at, l.clock_offset_ms,
       l.device_time + l.clock_offset_ms AS central_time, coalesce(v.change_id, 0) AS version,
       coalesce(v.voided, false) AS voided, coalesce(v.central, false) AS central_void,
       d.name AS device_name, u.name AS helper_name
FROM lap l
LEFT JOIN lap_void v ON v.lap_id = l.id
LEFT JOIN device d ON d.id = l.pushed_by
LEFT JOIN app_user u ON u.id = l.created_by
WHERE l.id = ANY(%s)
"""

RUNNERS_SQL = """
SELECT r.id, r.start_number, r.name, r.class, r.grade, r.change_id AS version, r.merged_into,
       coalesce(t.laps, 0) AS laps
FROM runner r LEFT JOIN runner_total t ON t.runner_id = r.id
WHERE r.id = ANY(%s)
"""

CLASHES_SQL = """
SELECT c.id, c.kind, c.value, c.runner_a, c.runner_b, c.detected_at
FROM clash c
JOIN runner a ON a.id = c.runner_a AND a.merged_into IS NULL
JOIN runner b ON b.id = c.runner_b AND b.merged_into IS NULL
WHERE c.resolved_at IS NULL AND c.dismissed_at IS NULL
ORDER BY c.detected_at, c.id
"""

# ---- reading the queue --------------------------------------------------------------

def runners_by_id(conn: psycopg.Connection, ids: list[str]) -> dict[str, dict]:
    """Return runners (with version and laps that count) by id."""
    return {row["id"]: row for row in conn.execute(RUNNERS_SQL, [list(ids)])}


def suspected_doubles(conn: psycopg.Connection, limit: int = PAIRS_PER_PAGE,
                      offset: int = 0) -> list[dict]:
    """Return pairs of counting laps closer than the minimum lap time, two-laptop pairs first."""
    pairs = conn.execute(PAIRS_SQL, {"limit": limit, "offset": offset}).fetchall()
    ids = [lap for p in pairs for lap in (p["first_id"], p["second_id"])]
    laps = {row["id"]: row for row in conn.execute(LAPS_SQL, [ids])}
    runners = runners_by_id(conn, [p["runner_id"] for p in pairs])
    return [{**p, "first": laps[p["first_id"]], "second": laps[p["second_id"]],
             "runner": runners.get(p["runner_id"])} for p in pairs]


def open_clashes(conn: psycopg.Connection) -> list[dict]:
    """Return clashes nobody resolved or dismissed, with both runners."""
    clashes = conn.execute(CLASHES_SQL).fetchall()
    runners = runners_by_id(conn, [r for c in clashes for r in (c["runner_a"], c["runner_b"])])
    return [{**c, "a": runners[c["runner_a"]], "b": runners[c["runner_b"]]} for c in clashes]


def runner_label(conn: psycopg.Connection, runner_id: str) -> str:
    """Return 'number name (class)' of a runner for the log (its id if central lacks it)."""
    runner = runners_by_id(conn, [runner_id]).get(runner_id)
    return f"{runner['start_number']} {runner['name']} ({runner['class']})" if runner else runner_id


# ---- checks shared by the actions ----------------------------------------------------

def parse_version(value: Any) -> int:
    """Return the version a form carried, or raise a 400."""
    try:
        return whole_number(value)
    except ValueError:
        raise InputError("invalid_version", _("The form lacks the version of the record it "
                                              "showed. Reload the page and try again."), 400)


def stale(what: str) -> InputError:
    """Return the 409 for a record that changed after the page showed it."""
    return InputError("stale", _("%(what)s changed since this page was loaded, so nothing was "
                                 "done. Look at it again and decide anew.", what=what), 409)


def lap_state(conn: psycopg.Connection, lap_id: Any) -> dict:
    """Return a lap with its version and void state, or raise a 404."""
    row = conn.execute(LAPS_SQL, [[lap_id]]).fetchone() if is_id(lap_id) else None
    if row is None:
        raise InputError("unknown_lap", _("There is no such lap."), 404)
    return row


def runner_state(conn: psycopg.Connection, runner_id: Any, version: Any) -> dict:
    """Return a runner that still has VERSION and is not merged, or raise 404/409."""
    version = parse_version(version)
    row = runners_by_id(conn, [runner_id]).get(runner_id) if is_id(runner_id) else None
    if row is None:
        raise InputError("unknown_runner", _("There is no such runner."), 404)
    if row["version"] != version:
        raise stale(_("Runner %(number)s (%(name)s)", number=row["start_number"], name=row["name"]))
    if row["merged_into"] is not None:
        raise InputError("merged_runner", _("%(name)s was merged into another runner already.",
                                            name=row["name"]), 409)
    return row


def central_stamp(conn: psycopg.Connection) -> dict:
    """Return a new (hlc, origin) of central for a last-writer-wins change."""
    return {"hlc": clock.tick(conn), "origin": clock.node_id(conn)}


# ---- double counts -----------------------------------------------------------------

def void_lap(conn: psycopg.Connection, user_id: str, lap_id: Any, version: Any,
             other_id: Any = None) -> dict:
    """Void a lap as a double count (the laptops pull the void); log it; return the lap.

    other_id: the lap it doubles (the review queue's pair). If that one no longer counts
    (voided meanwhile, in another tab or by another admin), this lap is the runner's one
    count of the two and is not voided.
    """
    version = parse_version(version)
    with write_transaction(conn):
        lap = lap_state(conn, lap_id)
        if lap["version"] != version:
            raise stale(_("This lap"))
        if lap["voided"]:
            raise InputError("already_voided", _("This lap is voided already."), 409)
        if is_id(other_id) and other_id != lap["id"] and lap_state(conn, other_id)["voided"]:
            raise InputError("pair_voided", _("The other lap of this pair was voided meanwhile: "
                                              "this one is the only count of the two, so nothing "
                                              "was voided. Look at the queue again."), 409)
        void = {"lap_id": lap["id"], "voided": True, "at": now_ms(), "by": user_id,
                "reason": VOID_REASON, "central": True, **central_stamp(conn)}
        deltas = Deltas()
        apply_void(conn, void, deltas)
        apply_totals(conn, deltas)
        subjects = [lap["id"]] + ([other_id] if is_id(other_id) and other_id != lap["id"] else [])
        log_decision(conn, user_id, "void_lap", subjects,
                     {"runner_id": lap["runner_id"], "runner": runner_label(conn, lap["runner_id"]),
                      "device": lap["device_name"], "device_time": lap["device_time"],
                      "reason": VOID_REASON})
    return lap


def restore_lap(conn: psycopg.Connection, user_id: str, lap_id: Any, version: Any) -> dict:
    """Restore a lap central voided (laptops pull it: it counts again); log it; return the lap."""
    version = parse_version(version)
    with write_transaction(conn):
        lap = lap_state(conn, lap_id)
        if lap["version"] != version:
            raise stale(_("This lap"))
        if not lap["voided"] or not lap["central_void"]:
            raise InputError("not_voided_at_central", _("Only a lap voided at central can be "
                                                        "restored here."), 409)
        deltas = Deltas()
        apply_void(conn, {"lap_id": lap["id"], "voided": False, "at": now_ms(), "by": user_id,
                          "reason": None, "central": True, **central_stamp(conn)}, deltas)
        apply_totals(conn, deltas)
        log_decision(conn, user_id, "restore_lap", [lap["id"]],
                     {"runner_id": lap["runner_id"], "runner": runner_label(conn, lap["runner_id"]),
                      "device": lap["device_name"], "device_time": lap["device_time"]})
    return lap


def keep_laps(conn: psycopg.Connection, user_id: str, first_id: Any, first_version: Any,
              second_id: Any, second_version: Any) -> None:
    """Keep both laps of a suspected pair: the pair leaves the queue; log it."""
    versions = [parse_version(first_version), parse_version(second_version)]
    if first_id == second_id:
        raise InputError("same_lap", _("A pair needs two different laps."), 400)
    with write_transaction(conn):
        laps = [lap_state(conn, first_id), lap_state(conn, second_id)]
        for lap, version in zip(laps, versions):
            if lap["version"] != version or lap["voided"]:
                raise stale(_("One of the two laps"))
        if laps[0]["runner_id"] != laps[1]["runner_id"]:
            raise InputError("not_a_pair", _("These laps belong to different runners."), 400)
        a, b = sorted(lap["id"] for lap in laps)
        runner_id = laps[0]["runner_id"]
        decision = log_decision(conn, user_id, "keep_laps", [a, b], {
            "runner_id": runner_id, "runner": runner_label(conn, runner_id)})
        conn.execute("INSERT INTO kept_lap_pair (lap_a, lap_b, decision_id) VALUES (%s, %s, %s) "
                     "ON CONFLICT DO NOTHING", [a, b, decision])


# ---- clashes -----------------------------------------------------------------------

def parse_start_number(value: Any) -> int:
    """Return a start number from a form, or raise a 400."""
    try:
        return check_start_number(value)
    except ValueError:
        raise InputError("invalid_start_number", _("A start number is a whole number from 1 to "
                                                   "%(max)s.", max=MAX_START_NUMBER), 400) from None


def renumber(conn: psycopg.Connection, user_id: str, runner_id: Any, version: Any,
             start_number: Any) -> dict:
    """Give a runner a new start number nobody else has; log it; return the runner."""
    number = parse_start_number(start_number)
    with write_transaction(conn):
        runner = runner_state(conn, runner_id, version)
        if runner["start_number"] == number:
            raise InputError("same_start_number", _("%(name)s has start number %(number)s "
                             "already.", name=runner["name"], number=number), 400)
        holder = conn.execute("SELECT name FROM runner WHERE start_number = %s AND id <> %s "
                              "AND merged_into IS NULL", [number, runner["id"]]).fetchone()
        if holder is not None:
            raise InputError("start_number_taken", _("Start number %(number)s belongs to "
                             "%(name)s: choose a free number.", number=number,
                             name=holder["name"]), 409)
        check_unreserved(conn, number)
        shared = conn.execute("SELECT 1 FROM runner WHERE start_number = %s AND id <> %s AND "
                              "merged_into IS NULL", [runner["start_number"], runner["id"]])
        reason = (N_("start number %(number)s was given twice") % {"number": runner["start_number"]}
                  if shared.fetchone() else N_("central review"))
        changed = {**runner, "start_number": number, **central_stamp(conn), "decision": note(
            conn, user_id, "renumber", reason, was_start_number=runner["start_number"])}
        conn.execute("UPDATE runner SET start_number = %(start_number)s, hlc = %(hlc)s, "
                     "origin = %(origin)s, decision = %(decision)s, "
                     "change_id = nextval('change_id_seq') WHERE id = %(id)s", changed)
        detect_clashes(conn, changed, now_ms())
        log_decision(conn, user_id, "renumber", [runner["id"]],
                     {"name": runner["name"], "from": runner["start_number"], "to": number})
    return changed


def move_laps(conn: psycopg.Connection, from_id: str, to_id: str) -> int:
    """Point every lap of one runner to another and move their totals; return laps moved."""
    counting = conn.execute(
        "SELECT l.device_id, count(*) AS n FROM lap l LEFT JOIN lap_void v ON v.lap_id = l.id "
        "WHERE l.runner_id = %s AND v.voided IS NOT TRUE GROUP BY l.device_id",
        [from_id]).fetchall()
    moved = conn.execute("UPDATE lap SET runner_id = %s WHERE runner_id = %s",
                         [to_id, from_id]).rowcount
    deltas = Deltas()
    for row in counting:
        deltas.add(from_id, row["device_id"], -row["n"])
        deltas.add(to_id, row["device_id"], row["n"])
    deltas.reread |= {from_id, to_id}  # both runners' lap pairs change
    apply_totals(conn, deltas)
    return moved


def note(conn: psycopg.Connection, user_id: str, action: str, reason: str, **extra) -> Jsonb:
    """Return a runner's decision as laptops get it: action, the admin's name, why, when."""
    user = conn.execute("SELECT name FROM app_user WHERE id = %s", [user_id]).fetchone()
    return Jsonb({"action": action, "by_name": user and user["name"], "reason": reason,
                  "at": now_ms(), **extra})


def mark_merged(conn: psycopg.Connection, runner_id: str, survivor: dict, decision: Jsonb) -> None:
    """Mark a runner merged into the survivor with a new central change (laptops pull it)."""
    conn.execute("UPDATE runner SET merged_into = %(to)s, hlc = %(hlc)s, origin = %(origin)s, "
                 "decision = %(decision)s, change_id = nextval('change_id_seq') "
                 "WHERE id = %(id)s", {"to": survivor["id"], "id": runner_id,
                                       "decision": decision, **central_stamp(conn)})


def merge(conn: psycopg.Connection, user_id: str, survivor_id: Any, survivor_version: Any,
          merged_id: Any, merged_version: Any) -> dict:
    """Merge one runner into another: laps move to the survivor, which keeps its id; log it."""
    if survivor_id == merged_id:
        raise InputError("same_runner", _("A runner cannot be merged with itself."), 400)
    with write_transaction(conn):
        survivor = runner_state(conn, survivor_id, survivor_version)
        merged = runner_state(conn, merged_id, merged_version)
        moved = move_laps(conn, merged["id"], survivor["id"])
        decision = note(conn, user_id, "merge", N_("the same runner as %(runner)s") % {
            "runner": f"{survivor['start_number']} {survivor['name']} ({survivor['class']})"})
        mark_merged(conn, merged["id"], survivor, decision)
        # Runners merged into the one that goes now follow it to the survivor.
        for row in conn.execute("SELECT id FROM runner WHERE merged_into = %s",
                                [merged["id"]]).fetchall():
            move_laps(conn, row["id"], survivor["id"])
            mark_merged(conn, row["id"], survivor, decision)
        conn.execute("UPDATE clash SET resolved_at = %s WHERE resolved_at IS NULL "
                     "AND %s IN (runner_a, runner_b)", [now_ms(), merged["id"]])
        log_decision(conn, user_id, "merge", [survivor["id"], merged["id"]],
                     {"survivor": f"{survivor['start_number']} {survivor['name']} ({survivor['class']})",
                      "merged": f"{merged['start_number']} {merged['name']} ({merged['class']})",
                      "laps_moved": moved})
    return survivor


def keep_runners(conn: psycopg.Connection, user_id: str, clash_id: Any, version_a: Any,
                 version_b: Any) -> None:
    """Dismiss a clash: both runners stay as they are; log it."""
    try:
        clash_id = whole_number(clash_id)
    except ValueError:
        clash_id = None
    with write_transaction(conn):
        clash = None if clash_id is None else conn.execute(
            "SELECT id, kind, value, runner_a, runner_b, resolved_at, dismissed_at FROM clash "
            "WHERE id = %s", [clash_id]).fetchone()
        if clash is None:
            raise InputError("unknown_clash", _("There is no such clash."), 404)
        runner_state(conn, clash["runner_a"], version_a)
        runner_state(conn, clash["runner_b"], version_b)
        if clash["resolved_at"] is not None or clash["dismissed_at"] is not None:
            raise stale(_("This clash"))
        conn.execute("UPDATE clash SET dismissed_at = %s WHERE id = %s", [now_ms(), clash["id"]])
        log_decision(conn, user_id, "keep_runners", [clash["runner_a"], clash["runner_b"]],
                     {"clash": clash["id"], "kind": clash["kind"], "value": clash["value"]})


# ---- pages -------------------------------------------------------------------------

def render_index(error: InputError | None = None, status: int = 200, page: int = 1):
    """Render the review page (one page of pairs): both queues and the decision log."""
    conn = get_db()
    pages = max(1, -(-conn.execute(OPEN_PAIRS_SQL).fetchone()["n"] // PAIRS_PER_PAGE))
    return render_template("review.html",
                           doubles=suspected_doubles(conn, offset=(page - 1) * PAIRS_PER_PAGE),
                           pair_page=page, pair_pages=pages,
                           clashes=open_clashes(conn), log=decisions(conn),
                           min_lap_seconds=min_lap_ms(conn) // 1000, error=error), status


def parse_page(value: Any) -> int:
    """Return a page number of the pairs from the query string (1 if absent), or raise a 400."""
    try:
        page = 1 if value is None else whole_number(value, 5)
    except ValueError:
        page = 0
    if not 1 <= page <= MAX_PAGE:
        raise InputError("invalid_page", _("The page must be a whole number from 1 to "
                                           "%(max)s.", max=MAX_PAGE), 400)
    return page


def act(action: Callable[..., Any], fields: tuple[str, ...],
        message: str | Callable[[Any], str]) -> Any:
    """Run action(conn, user id, *form fields); flash and redirect, or re-render with its 4xx."""
    form = request.form
    try:
        result = action(get_db(), g.user["id"], *(form.get(field) for field in fields))
    except InputError as exc:
        if wants_json():
            raise
        return render_index(exc, exc.status)
    text = message(result) if callable(message) else message
    if wants_json():
        return jsonify(ok=True, message=text)
    flash(text)
    return redirect(url_for("review.index"))


@bp.get("/")
@login_required
def index():
    """Show a page of the suspected double counts, the clashes and the decision log."""
    try:
        page = parse_page(request.args.get("page"))
    except InputError as exc:
        return render_index(exc, exc.status)
    return render_index(page=page)


@bp.post("/void")
@admin_required
def void():
    """Void one lap of a suspected double count."""
    return act(void_lap, ("lap_id", "version", "other_id"),
               _("The lap was voided. Laptops learn it at their next sync."))


@bp.post("/restore")
@admin_required
def restore():
    """Restore a lap central voided."""
    return act(restore_lap, ("lap_id", "version"),
               _("The lap counts again. Laptops learn it at their next sync."))


@bp.post("/keep-laps")
@admin_required
def keep_both_laps():
    """Keep both laps of a suspected double count."""
    return act(keep_laps, ("first_id", "first_version", "second_id", "second_version"),
               _("Both laps count. The pair left the queue."))


@bp.post("/renumber")
@admin_required
def renumber_runner():
    """Give a runner of a clash a new start number."""
    return act(renumber, ("runner_id", "version", "start_number"),
               lambda r: _("%(name)s now has start number %(number)s.", name=r["name"],
                           number=r["start_number"]))


@bp.post("/merge")
@admin_required
def merge_runners():
    """Merge one runner of a clash into the other."""
    return act(merge, ("survivor_id", "survivor_version", "merged_id", "merged_version"),
               lambda r: _("Merged: the laps now count for %(name)s (%(number)s).",
                           name=r["name"], number=r["start_number"]))


@bp.post("/keep-runners")
@admin_required
def keep_both_runners():
    """Dismiss a clash: both runners stay."""
    return act(keep_runners, ("clash_id", "version_a", "version_b"),
               _("Both runners stay as they are. The clash left the queue."))


def init_app(app: Flask) -> None:
    """Register the review blueprint and the rebuild-review command."""
    app.register_blueprint(bp)
    init_derived(app)
