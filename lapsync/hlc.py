"""Hybrid logical clock: orders edits across laptops without trusting wall clocks."""
from __future__ import annotations

import sqlite_utils

from .db import get_meta, now_ms, set_meta

ZERO = "0000000000000.0000"


def parse(hlc: str) -> tuple[int, int]:
    """Split an hlc string into (physical ms, counter)."""
    physical, counter = hlc.split(".")
    return int(physical), int(counter)


def format_hlc(physical: int, counter: int) -> str:
    """Render (physical ms, counter) as a fixed-width, sortable string."""
    return f"{physical:013d}.{counter:04d}"


def tick(db: sqlite_utils.Database) -> str:
    """Return a new local timestamp, later than any seen (call inside a transaction)."""
    last_physical, last_counter = parse(get_meta(db, "hlc", ZERO))
    physical = max(now_ms(), last_physical)
    counter = last_counter + 1 if physical == last_physical else 0
    value = format_hlc(physical, counter)
    set_meta(db, "hlc", value)
    return value


def observe(db: sqlite_utils.Database, remote: str) -> None:
    """Move the local clock past a timestamp received from another node."""
    if remote > get_meta(db, "hlc", ZERO):
        set_meta(db, "hlc", remote)
