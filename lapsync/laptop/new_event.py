"""Starting the event central started: last event's runners, laps and queue go, users stay.

Central names its event in every pull (sync/events.py). When the name changes, central
has archived and emptied the last event: this laptop keeps a snapshot of its database as
it was (backups/event-<old id>-<time>.sqlite beside it, owner-only), then empties its
runners, laps, the laps', voids' and runners' changes not yet at central (they belong to
the last event, and central refuses them), the decisions and totals it pulled, and pulls
again from the start. Its users and their changes stay; the changes still waiting close up
over the ones that went (db.close_hole), so the seqs go on without a gap.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import sqlite_utils
from flask_babel import gettext as _
from flask_babel import ngettext

from .db import PENDING, close_hole, get_meta, now_ms, set_meta, snapshot, transaction

EVENT_KEY = "event_id"
NOTICE_KEY = "event_notice"  # what the lap page and sync-status say until a helper presses OK
EVENT_TABLES = ("lap", "runner", "runner_other_laps", "runner_merge", "rejected_pull",
                "central_decision", "clock_jump")
# Pulled with the last event: pulled again (or not at all, if central has no such thing now).
EVENT_META = ("pull_cursor", "number_block", "setting:event_name", "setting:event_date")
log = logging.getLogger(__name__)


def database_path(db: sqlite_utils.Database) -> Path:
    """Return the file of the laptop's database."""
    return Path(db.execute("PRAGMA database_list").fetchone()[2])


def keep_last_event(db: sqlite_utils.Database, event: str) -> Path:
    """Snapshot the database as the last event left it; return the file."""
    folder = database_path(db).parent / "backups"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return snapshot(db.conn, folder / f"event-{event}-{datetime.now():%Y%m%d-%H%M%S}.sqlite")


def follow_event(db: sqlite_utils.Database, event: str) -> bool:
    """Take central's event id from a pull; start it if it is new. Return whether it was.

    The first id this laptop learns is only stored: its data is that event's.
    """
    known = get_meta(db, EVENT_KEY)
    if known == event:
        return False
    if known is None:
        with transaction(db):
            set_meta(db, EVENT_KEY, event)
        return False
    kept = keep_last_event(db, known)
    with transaction(db):
        dropped = db.execute(f"SELECT count(*) FROM change WHERE entity <> 'user' AND {PENDING}"
                             ).fetchone()[0]
        db.execute("DELETE FROM change WHERE entity <> 'user'")
        # The next change follows the last one central has (or a user's still waiting).
        db.execute("UPDATE sqlite_sequence SET seq = max((SELECT pushed_seq FROM outbox_mark), "
                   "(SELECT coalesce(max(seq), 0) FROM change)) WHERE name = 'change'")
        for table in EVENT_TABLES:
            db.execute(f"DELETE FROM {table}")
        db.execute("DELETE FROM rejected_change WHERE entity <> 'user'")  # a user's still holds
        db.execute("DELETE FROM lww_origin WHERE entity = 'lap_void'")
        db.execute(f"DELETE FROM meta WHERE key IN ({', '.join('?' * len(EVENT_META))})",
                   list(EVENT_META))
        set_meta(db, EVENT_KEY, event)
        set_meta(db, NOTICE_KEY, json.dumps({"dropped": dropped, "file": kept.name,
                                             "at": now_ms()}))
    # The queue's users' changes after the mark close up over the ones that went.
    close_hole(db, db.execute("SELECT pushed_seq FROM outbox_mark").fetchone()[0] + 1)
    log.warning("central started a new event: this laptop emptied the last one's runners and "
                "laps (%d changes had not reached central); the last event is kept in %s",
                dropped, kept)
    return True


def notice(db: sqlite_utils.Database) -> str | None:
    """Say that this laptop started central's new event and what of the last did not count."""
    raw = get_meta(db, NOTICE_KEY)
    if raw is None:
        return None
    started = json.loads(raw)
    text = _("Central started a new event: this laptop now counts for it, with central's new "
             "roster.")
    if started["dropped"]:
        text += " " + ngettext(
            "%(num)s change of the last event had not reached central and does not count; it "
            "is kept in backups/%(file)s.",
            "%(num)s changes of the last event had not reached central and do not count; they "
            "are kept in backups/%(file)s.", started["dropped"], file=started["file"])
    return text


def notice_seen(db: sqlite_utils.Database) -> None:
    """Forget the notice once a helper pressed OK."""
    with transaction(db):
        db.execute("DELETE FROM meta WHERE key = ?", [NOTICE_KEY])
