"""The laptop's hybrid logical clock, kept in its meta table."""
from __future__ import annotations

import sqlite_utils

from lapsync.hlc import observe_meta, tick_meta

from .db import get_meta, now_ms, set_meta


def tick(db: sqlite_utils.Database) -> str:
    """Return a new local timestamp, later than any seen (call inside a transaction)."""
    return tick_meta(db, get_meta, set_meta, now_ms())


def observe(db: sqlite_utils.Database, remote: str) -> None:
    """Move the local clock past a timestamp received from another node."""
    observe_meta(db, get_meta, set_meta, remote)
