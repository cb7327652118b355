"""A class's other data at central follows its spelling: the class teacher's address and the
class-list e-mails, when an import or a rename writes the class in another spelling.

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

log = logging.getLogger(__name__)

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
