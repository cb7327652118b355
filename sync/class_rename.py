"""Rename a class at central: every runner of it written as the admin types the new name.

The runners page of one class offers it to admins. Another spelling of the class ("9 a"
to "9A") re-spells its runners; the name of another class ("Kl. 5a" to "5A" while 5a
exists) makes the two one class, every runner of both written as typed (the admin's
spelling is the class's from then on); any other name is a new class. All in one write
transaction: central's edit of every runner re-spelled (one new stamp, a change id each,
so that every laptop pulls it), the class teacher's address and the class-list e-mails
follow (sync/class_names.py), and the money log and central's log say so.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg
from flask import Blueprint, Flask, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from lapsync.errors import InputError, wants_json
from lapsync.names import class_fold
from lapsync.runners import clean_class

from . import class_names, clock
from .auth import admin_required
from .db import get_db, now_ms, write_transaction
from .ledger import detect_clashes
from .roster import roster_page
from .sponsors.money_log import log_money

log = logging.getLogger(__name__)
bp = Blueprint("class_rename", __name__, url_prefix="/runners/classes")

LIVE = "SELECT class, count(*) AS runners FROM runner WHERE merged_into IS NULL GROUP BY class"
RESPELL = """
UPDATE runner SET class = %(new)s, hlc = %(hlc)s, origin = %(origin)s,
    change_id = nextval('change_id_seq')
WHERE class = ANY(%(stored)s)
RETURNING id, start_number, name, class, merged_into
"""


@dataclass(frozen=True)
class Renamed:
    """What a rename wrote: the class's old and new name, the classes joined, runners re-spelled."""

    old: str
    new: str
    joined: list[str] = field(default_factory=list)
    runners: int = 0


def rename_class(conn: psycopg.Connection, user_id: str | None, old: str, typed: str) -> Renamed:
    """Write every runner of class OLD (and of the class TYPED names, if any) as TYPED."""
    new = clean_class(typed)
    with write_transaction(conn):
        live = {row["class"]: row["runners"] for row in conn.execute(LIVE)}
        if old not in live:
            raise InputError("unknown_class", _("There is no class %(name)s.", name=old), 404)
        keys = {class_fold(old), class_fold(new)}
        stored = [name for name in live if class_fold(name) in keys and name != new]
        joined = [name for name in live if class_fold(name) == class_fold(new) != class_fold(old)]
        renamed = Renamed(old, new, joined, sum(live[name] for name in stored))
        if not stored:
            return renamed
        rows = conn.execute(RESPELL, {"new": new, "stored": stored, "hlc": clock.tick(conn),
                                      "origin": clock.node_id(conn)}).fetchall()
        if len(keys) > 1:   # a child may now be in one class twice: a name clash to review
            now = now_ms()
            for row in rows:
                if row["merged_into"] is None:
                    detect_clashes(conn, row, now)
        class_names.follow(conn, dict.fromkeys(stored, new), set(live))
        log_money(conn, user_id, "class_renamed", {"from": old, "to": new, "joined": joined,
                                                   "runners": renamed.runners})
    log.info("class %s renamed to %s by user %s: %d runners (joined: %s)", old, new, user_id,
             renamed.runners, ", ".join(joined) or "none")
    return renamed


def renamed_text(renamed: Renamed) -> str:
    """Say what a rename did."""
    if not renamed.runners:
        return _("Class %(name)s is written so already.", name=renamed.new)
    if renamed.joined:
        return ngettext("Class %(old)s is now %(new)s, one class with %(joined)s: %(num)s runner "
                        "written as %(new)s.",
                        "Class %(old)s is now %(new)s, one class with %(joined)s: %(num)s runners "
                        "written as %(new)s.", renamed.runners, old=renamed.old, new=renamed.new,
                        joined=", ".join(renamed.joined))
    return ngettext("Class %(old)s is now written %(new)s: %(num)s runner.",
                    "Class %(old)s is now written %(new)s: %(num)s runners.", renamed.runners,
                    old=renamed.old, new=renamed.new)


@bp.post("/rename")
@admin_required
def rename():
    """Rename the class of the runners page (admin); laptops pull the new name."""
    old = request.form.get("class", "")
    try:
        renamed = rename_class(get_db(), g.user["id"], old, request.form.get("new_name", ""))
    except InputError as exc:
        if wants_json() or exc.status == 404:
            raise
        return roster_page("", old, exc), exc.status
    flash(renamed_text(renamed))
    return redirect(url_for("roster.index", **{"class": renamed.new}))


def init_app(app: Flask) -> None:
    """Register the class rename."""
    app.register_blueprint(bp)
