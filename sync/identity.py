"""The identity of central's database: made by init-db (migration 0011), renewed by a restore.

Every pull and push answer names it (lapsync.protocol DATABASE_FIELD). A restore may give
central back lower seqs than a laptop saw acknowledged and change ids below the laptop's
pull cursor; writes after the restore (a roster import, another laptop's push) can then
move the change ids past that cursor before the laptop pulls, and nothing in the ids tells
it. The identity does: a laptop that finds another one than it last synced with pushes
again what central lacks and pulls from the start (lapsync/laptop/client/realign.py).
"""
from __future__ import annotations

import psycopg

from .db import get_meta

DATABASE_KEY = "database_id"
# Run by psql in the restore's transaction, after the dump's rows (sync/backup.py): a dump
# holds the identity of the database it was taken from, and one older than migration 0011
# none (the migration that follows keeps this one).
RENEW = (f"INSERT INTO public.meta (key, value) VALUES ('{DATABASE_KEY}', "
         "substr(md5(random()::text || clock_timestamp()::text), 1, 24)) "
         "ON CONFLICT (key) DO UPDATE SET value = excluded.value;")


def current_database(conn: psycopg.Connection) -> str | None:
    """Return the identity of central's database (None before migration 0011)."""
    return get_meta(conn, DATABASE_KEY)
