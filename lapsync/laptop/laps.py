"""Lap entry and void: the helper's page and the domain functions behind it."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime
from functools import partial

import sqlite_utils
from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    has_app_context,
    has_request_context,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import force_locale
from flask_babel import gettext as _
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from lapsync.errors import InputError, wants_json
from lapsync.i18n import LANGUAGES
from lapsync.ids import new_id
from lapsync.protocol import CONTROL_CHARS, MAX_REASON

from . import clock, clockwatch, new_event, scheduler
from .auth import can_record, login_required
from .client.pull import min_lap_seconds
from .counts import OTHER_LAPS_SQL, OWN_LAPS_SQL, lap_counts
from .db import device_id, get_db, now_ms, record_change, rows, transaction
from .groupcommit import GroupCommit
from .lapform import parse_start_number, parse_typed_ago
from .lapnotes import RENUMBERED_SQL, central_void_text, flash_lap, js_strings, renumbered

bp = Blueprint("laps", __name__)
RECENT_LIMIT = 30
GROUP_COMMIT = "lapsync_lap_writes"  # the app's GroupCommit: laps posted at once, one commit


# The runners a merged runner's number now stands for (the ones it was merged into).
MERGED_INTO = """runner.id IN (
    SELECT m.merged_into FROM runner r JOIN runner_merge m ON m.runner_id = r.id
    WHERE r.start_number = :number)"""


def pick_runner(db: sqlite_utils.Database, start_number: int, runner_id: str | None) -> dict:
    """Find the runner with this start number, or raise InputError."""
    runners = rows(db, "SELECT id, start_number, name, class, grade FROM runner "
                       "WHERE start_number = ? AND id NOT IN (SELECT runner_id FROM "
                       "runner_merge) ORDER BY name", [start_number])
    if not runners:  # a merged runner's number: the runners it was merged into
        runners = rows(db, "SELECT id, start_number, name, class, grade FROM runner WHERE "
                           f"{MERGED_INTO} AND runner.id NOT IN (SELECT runner_id FROM "
                           "runner_merge) ORDER BY name", {"number": start_number})
    if runner_id:
        runners = [r for r in runners if r["id"] == runner_id]
    if not runners:
        raise InputError("unknown_runner", _("No runner has start number %(number)s. "
                                             "Nothing was recorded.", number=start_number), 404)
    if len(runners) > 1:
        raise InputError("ambiguous_start_number", _(
            "Start number %(number)s belongs to %(count)s runners: choose one.",
            number=start_number, count=len(runners)), 409, runners=runners)
    return runners[0]


def last_lap(db: sqlite_utils.Database, runner_id: str, before: int | None = None) -> tuple | None:
    """Return (rowid, time) of the runner's latest lap that counts here, by entry order.

    Entry order, not the latest time: after the clock was set back, the laps typed
    before lie "in the future", and every interval from them would look negative.
    before: only laps entered before this rowid.
    """
    return db.execute("SELECT rowid, time FROM lap WHERE runner_id = ? AND voided_at IS NULL "
                      "AND rowid < ? ORDER BY rowid DESC LIMIT 1",
                      [runner_id, before or 2 ** 62]).fetchone()


def lap_count(db: sqlite_utils.Database, runner_id: str) -> int:
    """Return how many of the runner's laps count: this laptop's plus other devices' (as pulled)."""
    return lap_counts(db, runner_id)[0]


def lap_result(db: sqlite_utils.Database, lap: dict, runner: dict, previous: tuple | None,
               since: int | None, duplicate: bool = False) -> dict:
    """Describe a recorded lap for the helper: lap, runner, counts, time since previous.

    count is the runner's laps on all laptops (own_count: on this one). Other laptops'
    lap times are not pulled, so since_previous_ms is the time since this laptop's
    previous lap of the runner; when there is none here but count > 1, it is None and
    previous_elsewhere is true. When the clock went back between the two laps by more
    than was seen, it is None and since_unknown is true. first_lap: count is 1.
    """
    count, own = lap_counts(db, runner["id"])
    return {"lap": {"id": lap["id"], "time": lap["time"]}, "runner": runner,
            "count": count, "own_count": own, "duplicate": duplicate, "first_lap": count == 1,
            "since_previous_ms": since, "since_unknown": previous is not None and since is None,
            "previous_elsewhere": previous is None and count > 1, "renumbered": None}


def since_previous(db: sqlite_utils.Database, previous: tuple | None, until: int,
                   until_lap: int | None = None) -> int | None:
    """Return the time since the previous lap (rowid, time), clock jumps taken out; None: unknown."""
    if previous is None:
        return None
    return clockwatch.elapsed_ms(db, previous[1], previous[0], until, until_lap)


def known_lap(db: sqlite_utils.Database, client_key: str) -> dict | None:
    """Return the result of the lap already recorded under this idempotency key, if any."""
    found = rows(db, "SELECT rowid, id, runner_id, time FROM lap WHERE client_key = ?", [client_key])
    if not found:
        return None
    lap = found[0]
    runner = rows(db, "SELECT id, start_number, name, class, grade FROM runner WHERE id = ?",
                  [lap["runner_id"]])[0]
    previous = last_lap(db, runner["id"], before=lap["rowid"])
    return lap_result(db, lap, runner, previous,
                      since_previous(db, previous, lap["time"], lap["rowid"]), duplicate=True)


# The runner and what a lap needs to know about them, in one read: the latest lap that
# counts here (by entry order), the counts before this lap, the clock jumps since that
# lap, this laptop's device id, a runner central renumbered away from this number (lapnotes),
# and whether a lap holds the request's client key already.
CONTEXT_SQL = f"""
SELECT runner.id, runner.start_number, runner.name, runner.class, runner.grade,
       prev.rowid, prev.time, {OWN_LAPS_SQL}, {OTHER_LAPS_SQL},
       (SELECT coalesce(sum(jump_ms), 0) FROM clock_jump WHERE after_lap >= prev.rowid),
       (SELECT value FROM meta WHERE key = 'device_id'), {RENUMBERED_SQL},
       EXISTS (SELECT 1 FROM lap WHERE client_key = :key)
FROM runner LEFT JOIN lap prev ON prev.rowid = (SELECT max(l.rowid) FROM lap l
    WHERE l.runner_id = runner.id AND l.voided_at IS NULL)
WHERE {{runners}} AND runner.id NOT IN (SELECT runner_id FROM runner_merge)
ORDER BY runner.name
"""
LAP_CONTEXT_SQL = CONTEXT_SQL.format(runners="runner.start_number = :number")
# A number only a merged runner had (the child still wears that bib): the lap counts for the
# runner it was merged into, as central counts that runner's laps.
MERGED_CONTEXT_SQL = CONTEXT_SQL.format(runners=MERGED_INTO)
# A runner the helper chose by name (a choice, a warning confirmed): counted by its id.
CHOSEN_CONTEXT_SQL = CONTEXT_SQL.format(runners="runner.id = :id")
RUNNER_FIELDS = ("id", "start_number", "name", "class", "grade")


def lap_context(db: sqlite_utils.Database, start_number: int, runner_id: str | None,
                client_key: str | None) -> tuple | dict:
    """Return the runner's LAP_CONTEXT_SQL row (runner as a dict first), the lap already
    recorded under client_key (known_lap's dict), or raise InputError."""
    found = db.execute(LAP_CONTEXT_SQL, {"number": start_number, "key": client_key}).fetchall()
    if not found:
        found = db.execute(MERGED_CONTEXT_SQL, {"number": start_number, "key": client_key}).fetchall()
    if client_key and (not found or found[0][-1]):  # a double submit or a retried request
        known = known_lap(db, client_key)  # (the runner may have another number by now)
        if known:
            return known
    if runner_id:
        found = [row for row in found if row[0] == runner_id]
        if not found:  # the runner the helper chose by name has another number by now
            found = db.execute(CHOSEN_CONTEXT_SQL, {"number": start_number, "key": client_key,
                                                    "id": runner_id}).fetchall()
    if len(found) != 1:  # pick_runner's refusal: nobody, or a choice to make
        pick_runner(db, start_number, runner_id)
    row = found[0]
    return (dict(zip(RUNNER_FIELDS, row[:5])), *row[5:-1])


def record_lap(db: sqlite_utils.Database, start_number: int, user_id: str, min_lap_ms: int,
               confirm: bool = False, client_key: str | None = None,
               runner_id: str | None = None) -> dict:
    """Record one lap and its outbox change in one transaction; return lap_result.

    A clock jump is checked for first and kept on its own: a refused lap rolls back.
    """
    clockwatch.check_now(db)
    with transaction(db):
        return write_lap(db, start_number, user_id, min_lap_ms, confirm, client_key, runner_id)


def gap_around(db: sqlite_utils.Database, runner_id: str, at: int) -> int:
    """Return how far a lap at AT would be from the runner's nearest counting laps (ms)."""
    before, after = db.execute(
        "SELECT (SELECT max(time) FROM lap WHERE runner_id = :id AND time <= :at AND voided_at IS NULL), "
        "(SELECT min(time) FROM lap WHERE runner_id = :id AND time >= :at AND voided_at IS NULL)",
        {"id": runner_id, "at": at}).fetchone()
    return min(at - before if before is not None else at, after - at if after is not None else at)


def write_lap(db: sqlite_utils.Database, start_number: int, user_id: str, min_lap_ms: int,
              confirm: bool = False, client_key: str | None = None,
              runner_id: str | None = None, typed_ago_ms: int = 0) -> dict:
    """Record one lap and its outbox change inside the caller's write transaction.

    The caller has checked the clocks (the group commit once a batch): shift holds every
    jump kept since the runner's previous lap. typed_ago_ms: how long the number waited
    on the lap page before it was sent (the app not answering); the lap's time is when
    it was typed.
    """
    context = lap_context(db, start_number, runner_id, client_key)
    if isinstance(context, dict):  # the same lap, once
        return context
    runner, prev_rowid, prev_time, own, other, shift, device, moved = context
    now = now_ms() - typed_ago_ms
    # An unknown interval (the clock went back further than was seen) is never "too soon".
    # A number that waited on the page and was typed before the runner's latest lap is as
    # close as its nearest laps around the time it was typed (never unknown: never counted
    # unasked): another helper's lap minutes later is no double.
    since = None if prev_rowid is None else now - prev_time - shift
    if since is not None and since < 0:
        since = gap_around(db, runner["id"], now) if typed_ago_ms else None
    if since is not None and since < min_lap_ms and not confirm:
        raise InputError("too_soon", _(
            "%(name)s (%(number)s) was counted %(seconds)s s ago. Count this lap anyway?",
            name=runner["name"], number=start_number, seconds=since // 1000), 409,
            runner=runner, since_previous_ms=since)
    lap = {"id": new_id(), "runner_id": runner["id"], "created_by": user_id, "time": now,
           "device_id": device, "client_key": client_key}
    db.execute("INSERT INTO lap (id, runner_id, created_by, time, device_id, client_key) "
               "VALUES (:id, :runner_id, :created_by, :time, :device_id, :client_key)", lap)
    record_change(db, "lap", lap["id"], {k: v for k, v in lap.items() if k != "client_key"})
    count = own + other + 1  # the counts were read under this transaction's write lock
    return {"lap": {"id": lap["id"], "time": now}, "runner": runner, "count": count,
            "own_count": own + 1, "duplicate": False, "first_lap": count == 1,
            "since_previous_ms": since, "since_unknown": prev_rowid is not None and since is None,
            "previous_elsewhere": prev_rowid is None and count > 1, "renumbered": renumbered(moved)}


def set_void(db: sqlite_utils.Database, lap_id: str, user_id: str, voided: bool,
             reason: str = "") -> dict:
    """Void (or restore) a lap, never deleting it; record the change; return the lap.

    A void decided at central is refused a restore here (403 central_decision).
    """
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON or CONTROL_CHARS.search(reason):
        raise InputError("invalid_reason", _("The reason may be at most %(max)s characters, "
                                             "on one line.", max=MAX_REASON))
    with transaction(db):
        row = db.execute("SELECT lap.voided_at, d.action, d.by_name, d.reason FROM lap "
                         "LEFT JOIN central_decision d ON d.entity = 'lap' "
                         "AND d.entity_id = lap.id WHERE lap.id = ?", [lap_id]).fetchone()
        if row is None:
            raise InputError("unknown_lap", _("That lap does not exist."), 404)
        if (row[0] is not None) == voided:  # already in that state: nothing to change
            return {"id": lap_id, "voided": voided, "changed": False}
        if row[1] == "void_lap":
            raise InputError("central_decision", _(
                "This lap was voided at central by %(name)s (%(reason)s). Only an admin at "
                "central can restore it.", name=row[2] or _("an admin"),
                reason=row[3] or _("no reason given")), 403, voided_by_name=row[2],
                void_reason=row[3])
        stamp = clock.tick(db)
        values = [now_ms(), user_id, reason or "voided at the track"] if voided else [None] * 3
        db.execute("UPDATE lap SET voided_at = ?, voided_by = ?, void_reason = ?, void_hlc = ? "
                   "WHERE id = ?", [*values, stamp, lap_id])
        record_change(db, "lap_void", lap_id, {
            "lap_id": lap_id, "voided": voided, "at": values[0] or now_ms(), "by": user_id,
            "reason": values[2], "hlc": stamp, "origin": device_id(db)})
    return {"id": lap_id, "voided": voided, "changed": True}


RECENT_SQL = f"""
SELECT lap.id, lap.time, lap.voided_at, runner.id AS runner_id, runner.start_number,
       runner.name, runner.class, d.entity IS NOT NULL AS central_void,
       CASE WHEN lap.voided_at IS NOT NULL THEN coalesce(d.by_name, u.name) END AS voided_by_name,
       CASE WHEN lap.voided_at IS NOT NULL THEN coalesce(d.reason, lap.void_reason) END
           AS void_reason,
       {OWN_LAPS_SQL} AS own_count, {OWN_LAPS_SQL} + {OTHER_LAPS_SQL} AS count
FROM lap JOIN runner ON runner.id = lap.runner_id
LEFT JOIN central_decision d ON d.entity = 'lap' AND d.entity_id = lap.id
    AND d.action = 'void_lap' AND lap.voided_at IS NOT NULL
LEFT JOIN user u ON u.id = lap.voided_by
WHERE lap.device_id = ? ORDER BY lap.rowid DESC LIMIT ?
"""


def recent_laps(db: sqlite_utils.Database, limit: int = RECENT_LIMIT) -> list[dict]:
    """Return this laptop's latest laps, newest first (by entry order, not clock).

    Each row has who voided it and why (central_void: decided at central, which alone
    can restore it) and the runner's laps now: count on all laptops, own_count here.
    """
    return [{**row, "central_void": bool(row["central_void"])}
            for row in db.query(RECENT_SQL, [device_id(db), limit])]


def render_index(status: int = 200, **context):
    """Render the lap entry page with the recent laps."""
    db = get_db()
    return render_template("laps.html", recent=recent_laps(db), recent_limit=RECENT_LIMIT,
                           client_key=new_id(), js_strings=js_strings(),
                           central_void_text=central_void_text, event_notice=new_event.notice(db),
                           clock_jumps=clockwatch.notices(db), **context), status


@bp.get("/")
@login_required
def index():
    """Show the lap entry page."""
    return render_index()


RECENT_FIELDS = ("id", "time", "start_number", "name", "class", "voided_at")


@bp.get("/laps/recent")
@login_required
def recent():
    """The recent laps as JSON: the lap page shows other helpers' laps and voids unreloaded."""
    return jsonify(laps=[{**{k: lap[k] for k in RECENT_FIELDS},
                          "central": central_void_text(lap) if lap["central_void"] else None}
                         for lap in recent_laps(get_db())])


@bp.post("/laps")
@can_record
def create():
    """Record a lap from the typed start number (JSON or plain form post)."""
    try:
        work = lap_work(get_db(), request.form, g.user["id"], current_app.config)
        result = current_app.extensions[GROUP_COMMIT].run(in_this_language(work))
    except InputError as exc:
        if wants_json():
            raise
        return render_index(exc.status, problem=exc, typed=request.form.get("start_number", ""))
    if not result["duplicate"]:
        scheduler.nudge(current_app)  # push soon; never blocks the helper
    if wants_json():
        return jsonify(result), 200 if result["duplicate"] else 201
    flash_lap(result)
    return redirect(url_for("laps.index"))


def lap_work(db: sqlite_utils.Database, form, user_id: str, config) -> Callable:
    """Read a lap post's form; return its work for the group commit (or raise InputError)."""
    start_number = parse_start_number(form.get("start_number"))
    min_lap_ms = int(min_lap_seconds(db, config["MIN_LAP_SECONDS"]) * 1000)
    return partial(write_lap, start_number=start_number, user_id=user_id, min_lap_ms=min_lap_ms,
                   confirm=form.get("confirm") == "1",
                   client_key=(form.get("client_key") or "")[:64] or None,
                   runner_id=form.get("runner_id") or None,
                   typed_ago_ms=parse_typed_ago(form.get("typed_ms_ago")))


def in_this_language(work: Callable) -> Callable:
    """Wrap work so that what it says is in this request's language, whichever request runs it."""
    header = request.headers.get("Accept-Language")
    app = current_app._get_current_object()

    def run(db: sqlite_utils.Database):
        if has_request_context() and request.headers.get("Accept-Language") == header:
            return work(db)  # the leader's own language, or alike
        language = parse_accept_header(header, LanguageAccept).best_match(LANGUAGES) or "en"
        # A leader posted through lappost runs without an app context: force_locale needs one.
        with nullcontext() if has_app_context() else app.app_context(), force_locale(language):
            return work(db)
    return run


VOID_TARGET_SQL = """
SELECT lap.id, lap.time, lap.voided_at, runner.start_number, runner.name, runner.class
FROM lap JOIN runner ON runner.id = lap.runner_id WHERE lap.id = ?
"""


def void_target(db: sqlite_utils.Database, lap_id: str) -> dict:
    """Return the lap a void asks about (time, number, name, class), or raise 404."""
    rows = list(db.query(VOID_TARGET_SQL, [lap_id]))
    if not rows:
        raise InputError("unknown_lap", _("That lap does not exist."), 404)
    return rows[0]


def ask_void(lap_id: str, problem: InputError | None = None):
    """Show the lap page asking whether to void this lap (the page's second step)."""
    lap = void_target(get_db(), lap_id)
    if lap["voided_at"] is not None:  # nothing to ask: it no longer counts already
        flash(_("That lap is voided already."), "info")
        return redirect(url_for("laps.index"))
    return render_index(problem.status if problem else 200, problem=problem, confirm_void=lap,
                        max_reason=MAX_REASON)


@bp.post("/laps/<lap_id>/void")
@can_record
def void(lap_id: str):
    """Void a lap (undo); it stays visible, struck through.

    A page's post voids only with confirm=1 and otherwise asks first; a JSON client
    (laps.js, after its own second press) voids at once.
    """
    lap_id = lap_id[:64]
    if wants_json():
        return change_void(lap_id, True)
    if request.form.get("confirm") != "1":
        return ask_void(lap_id)
    try:
        return change_void(lap_id, True)
    except InputError as exc:
        if exc.code != "invalid_reason":
            raise
        return ask_void(lap_id, exc)


@bp.post("/laps/<lap_id>/restore")
@can_record
def restore(lap_id: str):
    """Restore a voided lap."""
    return change_void(lap_id, False)


def change_void(lap_id: str, voided: bool):
    """Apply a void or restore and answer JSON or redirect."""
    result = set_void(get_db(), lap_id[:64], g.user["id"], voided, request.form.get("reason", ""))
    if wants_json():
        return jsonify(result)
    flash(_("Lap voided.") if voided else _("Lap restored."), "success")
    return redirect(url_for("laps.index"))


def time_of_day(ms: int | None) -> str:
    """Format epoch ms as the laptop's local time of day."""
    return "" if ms is None else datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


@bp.post("/event-notice/seen")
@can_record
def event_notice_seen():
    """Note that a helper saw that this laptop started central's new event."""
    new_event.notice_seen(get_db())
    return redirect(url_for("laps.index"))


@bp.post("/clock-jumps/seen")
@can_record
def clock_jumps_seen():
    """Note that the helper saw the clock jump notices (ids separated by spaces)."""
    count = clockwatch.acknowledge(get_db(), (request.form.get("ids") or "").split())
    if wants_json():
        return jsonify({"acknowledged": count})
    return redirect(url_for("laps.index"))


def init_app(app) -> None:
    """Register the blueprint, the clock filter and the clock watch's rate."""
    app.register_blueprint(bp)
    # A clock jump is noticed and kept once per batch, before its laps: a lap refused
    # (too soon) rolls back its own writes, and would take a jump it noticed with it.
    app.extensions[GROUP_COMMIT] = GroupCommit(app.config["DATABASE"], app.config["SQLITE_SYNCHRONOUS"],
                                               prepare=clockwatch.check)
    app.add_template_filter(time_of_day, "clock")
    clockwatch.init_app(app)
