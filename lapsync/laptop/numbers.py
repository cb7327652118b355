"""Start numbers for runners added on this laptop: from the block central reserved for it
(pulled), or from the local range while it has none (docs/PROTOCOL.md, "Start-number blocks").

A block stays reserved at central once given, so the laptop keeps the last block it pulled
until central sends another. When every number of it is taken the laptop asks for a typed
number rather than falling back to the local range, which all unconnected laptops share.
"""
from __future__ import annotations

from typing import Any

import sqlite_utils
from flask_babel import ngettext

from lapsync.protocol import LOCAL_NUMBERS, pulled_number_block
from lapsync.roster_csv import NumberPool

from .db import get_meta, set_meta

BLOCK_KEY = "number_block"         # meta: "first-last" of the block central sent last


def store_block(db: sqlite_utils.Database, value: Any) -> None:
    """Store the number block of a pull page (None: central sent none, keep the last one)."""
    block = pulled_number_block(value)
    if block is not None:
        set_meta(db, BLOCK_KEY, f"{block[0]}-{block[1]}")


def current_range(db: sqlite_utils.Database) -> tuple[str, int, int]:
    """Return ("block" or "local", first, last): where this laptop's new numbers come from."""
    raw = get_meta(db, BLOCK_KEY)
    if raw:
        first, last = (int(part) for part in raw.split("-"))
        return "block", first, last
    return "local", LOCAL_NUMBERS.start, LOCAL_NUMBERS.stop - 1


def number_source(db: sqlite_utils.Database) -> dict:
    """Return the range new numbers come from, its kind and its next free number (None: used up)."""
    kind, first, last = current_range(db)
    used = {row[0] for row in db.execute("SELECT start_number FROM runner "
                                         "WHERE start_number BETWEEN ? AND ?", [first, last])}
    free = next((n for n in range(first, last + 1) if n not in used), None)
    return {"kind": kind, "first": first, "last": last, "next": free}


def too_few_text(kind: str, first: int, last: int, needed: int, free: int) -> str:
    """Say that a roster's rows without a number need more than the range has free, and what to do."""
    if kind == "block":
        return ngettext(
            "%(num)s runner in the file has no start number, but the block %(first)s–%(last)s "
            "that central reserved for this laptop has only %(free)s free. Type the start "
            "numbers into the file (column Startnummer), or ask an admin at central for more "
            "numbers on the devices page: they arrive at the next sync.",
            "%(num)s runners in the file have no start number, but the block %(first)s–%(last)s "
            "that central reserved for this laptop has only %(free)s free. Type the start "
            "numbers into the file (column Startnummer), or ask an admin at central for more "
            "numbers on the devices page: they arrive at the next sync.",
            needed, first=first, last=last, free=free)
    return ngettext(
        "%(num)s runner in the file has no start number, but the local start numbers "
        "%(first)s–%(last)s have only %(free)s free. Type the start numbers into the file "
        "(column Startnummer), or connect this laptop to central and sync: central reserves "
        "a block of numbers for it.",
        "%(num)s runners in the file have no start number, but the local start numbers "
        "%(first)s–%(last)s have only %(free)s free. Type the start numbers into the file "
        "(column Startnummer), or connect this laptop to central and sync: central reserves "
        "a block of numbers for it.",
        needed, first=first, last=last, free=free)


def import_pool(db: sqlite_utils.Database) -> NumberPool:
    """Return the numbers an imported roster's rows without one take: this laptop's range."""
    kind, first, last = current_range(db)
    return NumberPool(first, last, lambda needed, free: too_few_text(kind, first, last,
                                                                     needed, free))
