"""One class by any spelling at central: a page asked for "8b" shows class 8B, and a class's
other data follows its spelling when an import or a rename writes the class anew.

A class in a URL (/sponsors/classes/8b/list, ?class=8b on any page) in another spelling
than the roster's, as links and bookmarks made before a class was re-spelled have it, is
sent (302) to the same page with the class's spelling: no page says "no class 8b" or shows
an empty list for a class that exists. A class the roster has in that very spelling, or
none, is left to the page.

The class teacher's address and the class-list e-mails follow a class's new spelling.

The rule of migration 0013, for a change made while the event runs: of the addresses set
for the spellings that become one, the one of a spelling with runners wins over one left
behind by an earlier change (no class has that spelling any more), then the one set last.
The others are removed (the table holds one address a class) and the log names them.
Class-list e-mails, queued or not, take the new spelling, so that the next list queued for
the class replaces a queued one (sync/sponsors/mail.py).
"""
from __future__ import annotations

import logging

import psycopg
from flask import Flask, Response, g, redirect, request, url_for

from lapsync import classes
from lapsync.names import class_fold

from .db import get_db

log = logging.getLogger(__name__)

# Each spelling with its live runners, in roster order (lapsync/classes.py preferred()).
SPELLINGS = """
SELECT class, count(*) AS runners FROM runner WHERE merged_into IS NULL
GROUP BY class ORDER BY min(start_number), class
"""

TEACHERS = """
SELECT class_name, email, updated_ms FROM class_teacher WHERE class_name = ANY(%s)
ORDER BY updated_ms DESC, class_name
"""


def follow(conn: psycopg.Connection, moved: dict[str, str], live: set[str]) -> None:
    """Give the addresses and class-list mails of each stored spelling in moved its new one.

    live: the spellings that had runners before the change (caller's transaction).
    """
    for written in set(moved.values()):
        spellings = [stored for stored, new in moved.items() if new == written] + [written]
        rows = conn.execute(TEACHERS, [spellings]).fetchall()
        if rows:
            kept = max(rows, key=lambda row: (row["class_name"] in live, row["updated_ms"]))
            for row in rows:
                if row is not kept:
                    log.info("class teacher's address %s of class %s removed: class %s keeps %s",
                             row["email"], row["class_name"], written, kept["email"])
            conn.execute("DELETE FROM class_teacher WHERE class_name = ANY(%s) AND class_name <> %s",
                         [spellings, kept["class_name"]])
            conn.execute("UPDATE class_teacher SET class_name = %s WHERE class_name = %s",
                         [written, kept["class_name"]])
        conn.execute("UPDATE mail_out SET class_name = %s WHERE class_name = ANY(%s)",
                     [written, spellings])


def stored_spelling(conn: psycopg.Connection, typed: str) -> str | None:
    """Return the class's spelling on the roster for a class typed in any spelling, or None."""
    rows = [(row["class"], row["runners"]) for row in conn.execute(SPELLINGS)]
    if any(name == typed for name, _runners in rows):
        return typed
    return classes.preferred(rows).get(class_fold(typed))


def to_stored_spelling() -> Response | None:
    """Send a page asked for with a class in another spelling to the class's spelling."""
    if request.method not in ("GET", "HEAD") or g.get("user") is None or request.endpoint is None:
        return None
    path_values, query = dict(request.view_args or {}), request.args.to_dict(flat=False)
    typed = {"path": path_values.get("class_name"), "query": request.args.get("class")}
    stored = {where: stored_spelling(get_db(), text.strip())
              for where, text in typed.items() if text and text.strip()}
    if all(stored.get(where) in (None, typed[where]) for where in stored):
        return None
    if stored.get("path"):
        path_values["class_name"] = stored["path"]
    if stored.get("query"):
        query["class"] = [stored["query"]]
    return redirect(url_for(request.endpoint, **path_values, **query))


def init_app(app: Flask) -> None:
    """Send pages asked for with a class in another spelling to the class's (after the login)."""
    app.before_request(to_stored_spelling)
