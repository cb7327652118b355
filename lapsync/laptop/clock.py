"""The laptop's hybrid logical clock, kept in its meta table."""
from __future__ import annotations

import sqlite_utils

from lapsync.hlc import ZERO, after, latest

from .db import get_meta, now_ms, set_meta


def tick(db: sqlite_utils.Database) -> str:
    """Return a new local timestamp, later than any seen (call inside a transaction)."""
    value = after(get_meta(db, "hlc", ZERO), now_ms())
    set_meta(db, "hlc", value)
    return value


def observe(db: sqlite_utils.Database, remote: str) -> None:
    """Move the local clock past a timestamp received from another node."""
    current = get_meta(db, "hlc", ZERO)
    if latest(current, remote) != current:
        set_meta(db, "hlc", remote)
