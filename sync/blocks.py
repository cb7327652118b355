"""Start-number blocks: numbers central reserves for each device's late registrations.

A laptop that adds a runner offline numbers it from its block (sent in every pull,
docs/PROTOCOL.md), so two laptops never give out the same number. Every block ever given
stays reserved (its numbers may be in use); a device's latest block is its current one.
Central's own next free number, its roster import and its number checks skip every
block and the laptops' local range (LOCAL_NUMBERS, used before a laptop's first pull).
Functions that write run inside the caller's write_transaction: blocks are checked
against each other and the roster under the write lock.
"""
from __future__ import annotations

import bisect
from typing import Any

import psycopg
from flask import current_app
from flask_babel import gettext as _

from lapsync.errors import InputError
from lapsync.protocol import LOCAL_NUMBERS, MAX_START_NUMBER
from lapsync.text import whole_number

from .db import now_ms, write_transaction
from .decisions import log_decision

DEFAULT_BASE = 9000                # first number central considers for a block
DEFAULT_SIZE = 100                 # numbers per block
MAX_BLOCK_SIZE = 10_000
LOCAL = (LOCAL_NUMBERS.start, LOCAL_NUMBERS.stop - 1)

RESERVED_SQL = """
SELECT b.first, b.last, b.device_id, d.name FROM number_block b JOIN device d ON d.id = b.device_id
ORDER BY b.first
"""
CURRENT_SQL = """
SELECT DISTINCT ON (b.device_id) b.device_id, b.id, b.first, b.last,
       (SELECT count(*) FROM runner r WHERE r.start_number BETWEEN b.first AND b.last
        AND r.merged_into IS NULL) AS used
FROM number_block b WHERE %(device)s::bigint IS NULL OR b.device_id = %(device)s
ORDER BY b.device_id, b.id DESC
"""
# The highest number in use outside every block and the local range.
HIGHEST_FREE_SQL = """
SELECT max(r.start_number) AS n FROM runner r
WHERE r.start_number NOT BETWEEN %(local_first)s AND %(local_last)s
  AND NOT EXISTS (SELECT 1 FROM number_block b WHERE r.start_number BETWEEN b.first AND b.last)
"""


def block_settings() -> tuple[int, int]:
    """Return the app's (NUMBER_BLOCK_BASE, NUMBER_BLOCK_SIZE)."""
    config = current_app.config
    return (int(config.get("NUMBER_BLOCK_BASE", DEFAULT_BASE)),
            int(config.get("NUMBER_BLOCK_SIZE", DEFAULT_SIZE)))


def reserved_ranges(conn: psycopg.Connection) -> list[dict]:
    """Return every reserved range by its first number: the blocks and the local range."""
    ranges = [dict(row) for row in conn.execute(RESERVED_SQL)]
    ranges.append({"first": LOCAL[0], "last": LOCAL[1], "device_id": None, "name": None})
    return sorted(ranges, key=lambda r: r["first"])


def current_blocks(conn: psycopg.Connection, device_id: int | None = None) -> dict[int, dict]:
    """Return each device's current block (first, last, numbers used) by device id."""
    return {row["device_id"]: row for row in conn.execute(CURRENT_SQL, {"device": device_id})}


def current_block(conn: psycopg.Connection, device_id: int) -> dict | None:
    """Return a device's current block as the pull sends it ({first, last}), or None."""
    return conn.execute("SELECT first, last FROM number_block WHERE device_id = %s "
                        "ORDER BY id DESC LIMIT 1", [device_id]).fetchone()


def reserved_error(number: int, holder: dict) -> InputError:
    """Return the 409 for a start number inside a reserved range."""
    if holder["device_id"] is None:
        return InputError("start_number_reserved", _(
            "Start numbers %(first)s–%(last)s are kept for laptops that have not synced yet: "
            "choose another number.", first=holder["first"], last=holder["last"]), 409)
    return InputError("start_number_reserved", _(
        "Start number %(number)s is in the block %(first)s–%(last)s reserved for device "
        "%(device)s: choose another number, or leave the field empty for the next free one.",
        number=number, first=holder["first"], last=holder["last"], device=holder["name"]), 409)


def overlap_error(first: int, last: int, holder: dict) -> InputError:
    """Return the 409 for a block range that overlaps another device's block or the local range."""
    whose = holder["name"] if holder["device_id"] is not None else _("laptops that have not synced yet")
    return InputError("block_overlaps", _(
        "The range %(first)s–%(last)s overlaps %(held_first)s–%(held_last)s, kept for %(whose)s: "
        "choose a range outside it. Nothing was changed.", first=first, last=last,
        held_first=holder["first"], held_last=holder["last"], whose=whose), 409)


def check_unreserved(conn: psycopg.Connection, number: int,
                     ranges: list[dict] | None = None) -> None:
    """Raise a 409 if a start number lies in a device's block or the local range.

    ranges: reserved_ranges read earlier in the same transaction (a roster import checks
    thousands of numbers against one read).
    """
    for holder in reserved_ranges(conn) if ranges is None else ranges:
        if holder["first"] <= number <= holder["last"]:
            raise reserved_error(number, holder)


def next_free_number(conn: psycopg.Connection) -> int:
    """Return central's next free start number: after the highest in use, past every block;
    once that passes the highest start number, the lowest number nobody holds."""
    row = conn.execute(HIGHEST_FREE_SQL, {"local_first": LOCAL[0], "local_last": LOCAL[1]})
    number = (row.fetchone()["n"] or 0) + 1
    for held in reserved_ranges(conn):
        if held["first"] <= number <= held["last"]:
            number = held["last"] + 1
    if number <= MAX_START_NUMBER:
        return number
    try:
        return free_range(conn, 1, 1)[0]
    except InputError:
        raise InputError("no_free_start_number", _("No start number is free any more."),
                         409) from None


def free_gap_end(conn: psycopg.Connection, number: int) -> int:
    """Return the last number before the next reserved range above NUMBER."""
    following = [r["first"] for r in reserved_ranges(conn) if r["first"] > number]
    return min(following, default=MAX_START_NUMBER + 1) - 1


def free_range(conn: psycopg.Connection, start: int, size: int) -> tuple[int, int]:
    """Return the first SIZE numbers from START that no block, local range or runner holds."""
    ranges = reserved_ranges(conn)
    used = [row["start_number"] for row in conn.execute(
        "SELECT DISTINCT start_number FROM runner WHERE start_number >= %s ORDER BY 1", [start])]
    while start + size - 1 <= MAX_START_NUMBER:
        last = start + size - 1
        held = [r["last"] for r in ranges if r["first"] <= last and r["last"] >= start]
        taken = used[bisect.bisect_left(used, start):bisect.bisect_right(used, last)]
        if not held and not taken:
            return start, last
        start = max(held + taken) + 1
    raise InputError("no_free_block", _("No block of %(size)s free start numbers is left.",
                                        size=size), 409)


def insert_block(conn: psycopg.Connection, device_id: int, first: int, last: int) -> dict:
    """Store a new current block of a device (caller's write transaction); return it."""
    conn.execute("INSERT INTO number_block (device_id, first, last, created_at) "
                 "VALUES (%s, %s, %s, %s)", [device_id, first, last, now_ms()])
    return {"first": first, "last": last}


def reserve_block(conn: psycopg.Connection, device_id: int, base: int, size: int) -> dict:
    """Give a device a new block of SIZE free numbers from BASE on (caller's write lock)."""
    return insert_block(conn, device_id, *free_range(conn, base, size))


def ensure_block(conn: psycopg.Connection, device: dict, base: int, size: int) -> dict:
    """Return a device's current block, reserving one first if it has none (a pull)."""
    block = current_block(conn, device["id"])
    if block is not None:
        return block
    with write_transaction(conn):
        return current_block(conn, device["id"]) or reserve_block(conn, device["id"], base, size)


def extend_block(conn: psycopg.Connection, user_id: str, device: dict, base: int,
                 size: int) -> dict:
    """Give a device SIZE more numbers: after its block if they are free, else a new block."""
    block = current_blocks(conn, device["id"]).get(device["id"])
    try:
        first, last = free_range(conn, block["last"] + 1, size) if block else (0, 0)
    except InputError:
        first = last = 0
    if block and first == block["last"] + 1:
        conn.execute("UPDATE number_block SET last = %s WHERE id = %s", [last, block["id"]])
        changed = {"first": block["first"], "last": last}
    else:
        changed = reserve_block(conn, device["id"], base, size)
    log_decision(conn, user_id, "number_block", [str(device["id"])],
                 {"name": device["name"], **changed})
    return changed


def parse_range(first: Any, last: Any) -> tuple[int, int]:
    """Return a block's (first, last) from a form, or raise a 400."""
    try:
        first, last = whole_number(first), whole_number(last)
    except ValueError:
        first = last = 0
    if not 1 <= first <= last <= MAX_START_NUMBER or last - first >= MAX_BLOCK_SIZE:
        raise InputError("invalid_block", _(
            "A block runs from a first to a last start number (1 to %(max)s), at most "
            "%(size)s numbers.", max=MAX_START_NUMBER, size=MAX_BLOCK_SIZE), 400)
    return first, last


def set_block(conn: psycopg.Connection, user_id: str, device: dict, first: Any,
              last: Any) -> dict:
    """Give a device the block the admin typed: no other block's numbers, nor the roster's."""
    first, last = parse_range(first, last)
    own = [r for r in reserved_ranges(conn) if r["device_id"] == device["id"]]
    for held in reserved_ranges(conn):
        if held["device_id"] != device["id"] and held["first"] <= last and held["last"] >= first:
            raise overlap_error(first, last, held)
    for row in conn.execute("SELECT start_number, name FROM runner WHERE start_number "
                            "BETWEEN %s AND %s ORDER BY 1", [first, last]):
        if not any(r["first"] <= row["start_number"] <= r["last"] for r in own):
            raise InputError("start_number_taken", _(
                "Start number %(number)s of that range belongs to %(name)s already: choose "
                "a range without runners.", number=row["start_number"], name=row["name"]), 409)
    block = insert_block(conn, device["id"], first, last)
    log_decision(conn, user_id, "number_block", [str(device["id"])],
                 {"name": device["name"], **block})
    return block
