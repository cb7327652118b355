"""Closing the event: a snapshot of each pledge's laps, distance and amount that letters use.

An admin freezes the results before letters go out (one freeze at a time). From then on
letters show the frozen figures, never the live ones. A later void, merge, lap or pledge
edit that changes a pledge's live amount is listed (changes()) with the old and new
figures and what caused it; the admin decides per pledge: accept the new figure (the
frozen row takes it, so letters change) or keep the frozen one (the case leaves the list
until the live figure changes again). Pledges added after the freeze are listed too, and
deleted ones. Unfreezing is an admin action (sync/sponsors/thaw.py); letters then use
live figures, except those the admin kept: a kept figure stands for a letter already
sent, so it stays while unfrozen and the next freeze takes it over (kept again). The
admin gives one up only by choosing the live figure for it. Everything is logged in
money_log.
"""
from __future__ import annotations

import psycopg
from flask_babel import gettext as _
from flask_babel import ngettext

from lapsync.errors import InputError
from lapsync.text import class_key, plain

from ..db import now_ms
from ..decisions import describe
from .amounts import pledge_amounts
from .mail import withdrawn
from .money_log import log_money

FIGURES = ("laps", "distance_m", "amount_cents")
CURRENT_SQL = """
SELECT f.id, f.frozen_ms, f.frozen_by, u.name AS frozen_by_name
FROM event_freeze f LEFT JOIN app_user u ON u.id = f.frozen_by
WHERE f.unfrozen_ms IS NULL ORDER BY f.id DESC LIMIT 1
"""
FROZEN_SQL = """
SELECT pledge_id, laps, distance_m, amount_cents, kept, kept_cents, removed
FROM frozen_amount WHERE freeze_id = %s AND (NOT %s OR (kept AND NOT removed))
"""
LAST_SQL = """
SELECT f.id, f.frozen_ms, f.unfrozen_ms FROM event_freeze f ORDER BY f.id DESC LIMIT 1
"""
CAUSE_DECISIONS = """
SELECT d.action, d.details, d.at, u.name AS user_name FROM decision d
LEFT JOIN app_user u ON u.id = d.user_id
WHERE d.at > %(since)s AND d.action IN ('void_lap', 'restore_lap', 'merge', 'renumber')
  AND (%(runner)s = ANY(d.subject_ids)
       OR d.subject_ids && ARRAY(SELECT id FROM lap WHERE runner_id = %(runner)s))
ORDER BY d.id
"""
CAUSE_LAPS = """
SELECT (SELECT count(*) FROM lap WHERE runner_id = %(runner)s AND received_at > %(since)s)
         AS added,
       (SELECT count(*) FROM lap_void v JOIN lap l ON l.id = v.lap_id
        WHERE l.runner_id = %(runner)s AND NOT v.central AND v.at > %(since)s) AS voided
"""


def current_freeze(conn: psycopg.Connection) -> dict | None:
    """Return the freeze in force (id, when, by whom), or None."""
    return conn.execute(CURRENT_SQL).fetchone()


def frozen_rows(conn: psycopg.Connection, freeze_id: int,
                kept_only: bool = False) -> dict[str, dict]:
    """Return the frozen (or only the kept) figures of a freeze by pledge id, distances as
    pledge_amounts has them."""
    rows = {}
    for row in conn.execute(FROZEN_SQL, [freeze_id, kept_only]):
        metres = row["distance_m"]
        if metres is not None:
            whole = metres == metres.to_integral_value()
            row["distance_m"] = int(metres) if whole else float(metres)
        rows[row["pledge_id"]] = row
    return rows


def freeze_results(conn: psycopg.Connection, user_id: str | None) -> int:
    """Freeze every live pledge's laps, distance and amount now (logged); return the freeze id."""
    with conn.transaction():
        conn.execute("LOCK TABLE event_freeze IN EXCLUSIVE MODE")  # two admins: one freeze
        if current_freeze(conn) is not None:
            raise InputError("frozen_already", _("The results are frozen already."), 409)
        pins = kept_pins(conn)      # read before the new freeze becomes the last one
        freeze_id = conn.execute("INSERT INTO event_freeze (frozen_ms, frozen_by) "
                                 "VALUES (%s, %s) RETURNING id",
                                 [now_ms(), user_id]).fetchone()["id"]
        rows = [{**r, **pin_figures(pins.get(r["id"]))} for r in pledge_amounts(conn)]
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO frozen_amount (freeze_id, pledge_id, laps, distance_m, "
                "amount_cents, kept, kept_cents) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [[freeze_id, r["id"], r["laps"], r["distance_m"], r["amount_cents"],
                  r.get("kept", False), r.get("kept_cents")] for r in rows])
        log_money(conn, user_id, "freeze", {
            "pledges": len(rows), "amount_cents": sum(r["amount_cents"] for r in rows),
            "kept": sum(1 for r in rows if r.get("kept"))})
    return freeze_id


def kept_pins(conn: psycopg.Connection) -> dict[str, dict]:
    """Return the figures an admin kept in the last freeze if it has ended, by pledge id.

    A kept figure is what a letter already sent says; lifting the freeze does not undo
    that decision, so letters keep it and the next freeze takes it over.
    """
    last = conn.execute(LAST_SQL).fetchone()
    if last is None or last["unfrozen_ms"] is None:
        return {}
    return frozen_rows(conn, last["id"], kept_only=True)


def pin_figures(pin: dict | None) -> dict:
    """Return a kept figure's frozen figures and its kept flag, or nothing without one."""
    if pin is None:
        return {}
    return {**{key: pin[key] for key in FIGURES}, "kept": True, "kept_cents": pin["kept_cents"]}


def letter_rows(conn: psycopg.Connection, **filters) -> list[dict]:
    """Return pledge_amounts rows with the frozen figures while a freeze is in force.

    What the letters state and every money page shows (what a sponsor owes), so that
    they agree. Each row gets `frozen` (True when its figures come from the freeze) and
    `live_amount_cents`; outstanding is the frozen amount less what is paid now.
    Pledges added after the freeze keep their live figures until the admin accepts them
    on the changes page. Without a freeze, the figures the admin kept stay (`pinned`).
    """
    rows, freeze = pledge_amounts(conn, **filters), current_freeze(conn)
    frozen = frozen_rows(conn, freeze["id"]) if freeze else kept_pins(conn)
    for row in rows:
        snap = frozen.get(row["id"])
        row["frozen"] = snap is not None and not snap["removed"]
        row["pinned"] = row["frozen"] and freeze is None
        row["live_amount_cents"] = row["amount_cents"]
        if row["frozen"]:
            row.update({key: snap[key] for key in FIGURES})
            row["outstanding_cents"] = row["amount_cents"] - row["paid_cents"]
    return rows


def changes(conn: psycopg.Connection) -> list[dict]:
    """Return the pledges whose live figures differ from the freeze, with old, new and causes."""
    freeze = current_freeze(conn)
    if freeze is None:
        return []
    frozen, live = frozen_rows(conn, freeze["id"]), {r["id"]: r for r in pledge_amounts(conn)}
    found = []
    for pledge_id, snap in frozen.items():
        row = live.get(pledge_id)
        now_cents = row["amount_cents"] if row else None
        if snap["removed"] or same_figures(row, snap) \
                or (snap["kept"] and now_cents == snap["kept_cents"]):
            continue
        found.append(change_row(conn, freeze, pledge_id, snap, row))
    for pledge_id, row in live.items():
        if pledge_id not in frozen:
            found.append(change_row(conn, freeze, pledge_id, None, row))
    return sorted(found, key=lambda c: (class_key(c["class"] or ""), c["class"] or "",
                                        plain(c["name"] or ""), c["name"] or "", c["sponsor_name"]))


def same_figures(row: dict | None, snap: dict) -> bool:
    """Tell whether a pledge's live figures are the frozen ones: its letter states its laps and
    distance as well as its amount (a fixed or capped pledge keeps its amount when laps move)."""
    return row is not None and all(row[key] == snap[key] for key in FIGURES)


def change_row(conn: psycopg.Connection, freeze: dict, pledge_id: str, snap: dict | None,
               row: dict | None) -> dict:
    """Describe one differing pledge: old and new figures and what caused the change."""
    pledge = row or conn.execute(
        "SELECT p.id, p.sponsor_name, r.id AS counted_runner_id, r.start_number, r.name, r.class "
        "FROM pledge p JOIN runner r ON r.id = p.runner_id WHERE p.id = %s", [pledge_id]).fetchone()
    old = {key: snap[key] for key in FIGURES} if snap else None
    new = {key: row[key] for key in FIGURES} if row else None
    return {"pledge_id": pledge_id, "sponsor_name": pledge["sponsor_name"],
            "start_number": pledge["start_number"], "name": pledge["name"],
            "class": pledge["class"], "old": old, "new": new,
            "causes": causes(conn, freeze["frozen_ms"], pledge_id, pledge["counted_runner_id"],
                             snap, row)}


def causes(conn: psycopg.Connection, since: int, pledge_id: str, runner_id: str,
           snap: dict | None, row: dict | None) -> list[str]:
    """Say what changed a pledge's figures since the freeze: decisions, laps, edits."""
    if snap is None:
        return [_("Pledge added after the freeze.")]
    if row is None:
        return [_("Pledge deleted after the freeze.")]
    found = [f"{describe(d['action'], d['details'])} ({d['user_name']})"
             for d in conn.execute(CAUSE_DECISIONS, {"since": since, "runner": runner_id})]
    laps = conn.execute(CAUSE_LAPS, {"since": since, "runner": runner_id}).fetchone()
    if laps["added"]:
        found.append(ngettext("%(num)s lap arrived after the freeze.",
                              "%(num)s laps arrived after the freeze.", laps["added"]))
    if laps["voided"]:
        found.append(ngettext("%(num)s lap was voided on a laptop after the freeze.",
                              "%(num)s laps were voided on a laptop after the freeze.",
                              laps["voided"]))
    edits = conn.execute("SELECT count(*) AS n FROM money_log WHERE pledge_id = %s "
                         "AND action = 'pledge_edit' AND at > %s", [pledge_id, since]).fetchone()
    if edits["n"]:
        found.append(_("The pledge was edited after the freeze."))
    return found or [_("The laps or the metres per lap changed after the freeze.")]


def decide(conn: psycopg.Connection, user_id: str | None, pledge_id: str, accept: bool) -> dict:
    """Accept a pledge's live figure into the freeze, or keep the frozen one; log it."""
    with conn.transaction():
        freeze = current_freeze(conn)
        if freeze is None:
            raise InputError("not_frozen", _("The results are not frozen."), 409)
        case = next((c for c in changes(conn) if c["pledge_id"] == pledge_id), None)
        if case is None:
            raise InputError("no_change", _("This pledge has no change to decide (any more)."),
                             409)
        if accept:
            accept_figures(conn, freeze["id"], case)
        elif case["old"] is not None:
            conn.execute("UPDATE frozen_amount SET kept = true, kept_cents = %s "
                         "WHERE freeze_id = %s AND pledge_id = %s",
                         [case["new"] and case["new"]["amount_cents"], freeze["id"], pledge_id])
        else:
            raise InputError("nothing_frozen", _("A pledge added after the freeze has no "
                                                 "frozen figure to keep."), 409)
        log_money(conn, user_id, "freeze_accept" if accept else "freeze_keep", {
            "sponsor": case["sponsor_name"], "runner": f"{case['start_number']} {case['name']}",
            "from": case["old"], "to": case["new"], **withdrawn(conn, pledge_id)},
            pledge_id=pledge_id)
    return case


def accept_figures(conn: psycopg.Connection, freeze_id: int, case: dict) -> None:
    """Put a pledge's live figures (or its deletion) into the freeze."""
    new = case["new"]
    if new is None:
        conn.execute("UPDATE frozen_amount SET removed = true WHERE freeze_id = %s "
                     "AND pledge_id = %s", [freeze_id, case["pledge_id"]])
        return
    conn.execute("INSERT INTO frozen_amount (freeze_id, pledge_id, laps, distance_m, "
                 "amount_cents) VALUES (%s, %s, %s, %s, %s) "
                 "ON CONFLICT (freeze_id, pledge_id) DO UPDATE SET "
                 "laps = excluded.laps, distance_m = excluded.distance_m, "
                 "amount_cents = excluded.amount_cents, kept = false, kept_cents = NULL",
                 [freeze_id, case["pledge_id"], new["laps"], new["distance_m"],
                  new["amount_cents"]])
