"""Lifting a freeze, and the figures an admin kept: what changes, shown before it does.

Lifting the freeze puts the live figure into every letter whose frozen figure differs,
except where the admin kept the frozen figure (a letter already went out): those stay,
while unfrozen and in the next freeze (sync/sponsors/freeze.py kept_pins). The
confirmation lists both; the page sends a fingerprint of what it showed, and the lift
is refused when the list changed meanwhile, so that no letter's figure changes unseen.
An admin gives up a kept figure only pledge by pledge (release_kept).
"""
from __future__ import annotations

import hashlib

import psycopg
from flask_babel import gettext as _

from lapsync.errors import InputError
from lapsync.text import class_key, plain

from ..db import now_ms
from .amounts import pledge_amounts
from .freeze import (FIGURES, LAST_SQL, accept_figures, change_row, current_freeze, frozen_rows,
                     kept_pins, same_figures)
from .mail import withdraw_mail
from .money_log import log_money


def sorted_cases(cases: list[dict]) -> list[dict]:
    """Put cases in the changes page's order: class, runner, sponsor."""
    return sorted(cases, key=lambda c: (class_key(c["class"] or ""), c["class"] or "",
                                        plain(c["name"] or ""), c["name"] or "",
                                        c["sponsor_name"]))


def unfreeze_preview(conn: psycopg.Connection) -> dict[str, list[dict]]:
    """Return what lifting the freeze in force does: letters that change, kept ones that stay."""
    freeze = current_freeze(conn)
    if freeze is None:
        return {"changing": [], "kept": []}
    live = {r["id"]: r for r in pledge_amounts(conn)}
    found = {"changing": [], "kept": []}
    for pledge_id, snap in frozen_rows(conn, freeze["id"]).items():
        row = live.get(pledge_id)
        # A deleted pledge has no letter, an added one shows its live figure already.
        if snap["removed"] or row is None or same_figures(row, snap):
            continue
        found["kept" if snap["kept"] else "changing"].append(
            change_row(conn, freeze, pledge_id, snap, row))
    return {key: sorted_cases(cases) for key, cases in found.items()}


def fingerprint(preview: dict[str, list[dict]]) -> str:
    """Return a short digest of a preview's pledges and amounts (what the admin saw)."""
    parts = sorted(f"{key}:{c['pledge_id']}:{[c['old'][f] for f in FIGURES]}:"
                   f"{[c['new'][f] for f in FIGURES]}" for key, cases in preview.items() for c in cases)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def unfreeze(conn: psycopg.Connection, user_id: str | None, seen: str | None = None) -> dict:
    """End the freeze in force (logged) unless what changes differs from `seen`; return it.

    Letters then use the live figures, except those the admin kept. Queued mails that
    state a figure that changes are withdrawn, as for any other change of a figure.
    """
    with conn.transaction():
        conn.execute("LOCK TABLE event_freeze IN EXCLUSIVE MODE")
        freeze = current_freeze(conn)
        if freeze is None:
            raise InputError("not_frozen", _("The results are not frozen."), 409)
        preview = unfreeze_preview(conn)
        if seen is not None and seen != fingerprint(preview):
            raise InputError("changed_meanwhile", _(
                "The figures changed while you looked: check the list again."), 409)
        conn.execute("UPDATE event_freeze SET unfrozen_ms = %s, unfrozen_by = %s WHERE id = %s",
                     [now_ms(), user_id, freeze["id"]])
        withdrawn = sum(withdraw_mail(conn, c["pledge_id"]) for c in preview["changing"])
        log_money(conn, user_id, "unfreeze", {
            "frozen_ms": freeze["frozen_ms"], "changed": [summary(c) for c in preview["changing"]],
            "kept": len(preview["kept"]), **({"withdrawn_mail": withdrawn} if withdrawn else {})})
    return preview


def summary(case: dict) -> dict:
    """Return a case as the money log keeps it: who, for whom, from and to."""
    return {"sponsor": case["sponsor_name"], "runner": f"{case['start_number']} {case['name']}",
            "from": case["old"], "to": case["new"]}


def kept_cases(conn: psycopg.Connection) -> list[dict]:
    """Return the kept figures that differ from the live ones and are not up for a decision.

    While frozen, a kept case whose live figure moved again is on the changes list
    instead; while unfrozen, every kept figure still in force is here.
    """
    freeze = current_freeze(conn)
    source = freeze or conn.execute(LAST_SQL).fetchone()
    snaps = frozen_rows(conn, freeze["id"]) if freeze else kept_pins(conn)
    live = {r["id"]: r for r in pledge_amounts(conn)}
    found = []
    for pledge_id, snap in snaps.items():
        row = live.get(pledge_id)
        if not snap["kept"] or snap["removed"] or row is None \
                or row["amount_cents"] == snap["amount_cents"]:
            continue
        if freeze is None or row["amount_cents"] == snap["kept_cents"]:
            found.append(change_row(conn, source, pledge_id, snap, row))
    return sorted_cases(found)


def release_kept(conn: psycopg.Connection, user_id: str | None, pledge_id: str) -> dict:
    """Give up a kept figure: the pledge's letter shows the live figure (logged); return it."""
    with conn.transaction():
        conn.execute("LOCK TABLE event_freeze IN SHARE MODE")   # no freeze or lift meanwhile
        case = next((c for c in kept_cases(conn) if c["pledge_id"] == pledge_id), None)
        if case is None:
            raise InputError("no_kept", _("This pledge has no kept figure to give up (any "
                                          "more)."), 409)
        freeze = current_freeze(conn)
        if freeze is not None:
            accept_figures(conn, freeze["id"], case)
        else:
            conn.execute("UPDATE frozen_amount SET kept = false, kept_cents = NULL "
                         "WHERE freeze_id = %s AND pledge_id = %s",
                         [conn.execute(LAST_SQL).fetchone()["id"], pledge_id])
        count = withdraw_mail(conn, pledge_id)
        log_money(conn, user_id, "freeze_release", {
            **summary(case), **({"withdrawn_mail": count} if count else {})}, pledge_id=pledge_id)
    return case
