"""Hybrid logical clock: orders edits across laptops without trusting wall clocks."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

ZERO = "0000000000000.0000"
MAX_COUNTER = 9999


def parse(hlc: str) -> tuple[int, int]:
    """Split an hlc string into (physical ms, counter)."""
    physical, counter = hlc.split(".")
    return int(physical), int(counter)


def format_hlc(physical: int, counter: int) -> str:
    """Render (physical ms, counter) as a fixed-width, sortable string."""
    return f"{physical:013d}.{counter:04d}"


def after(last: str, now: int) -> str:
    """Return the timestamp that follows LAST at wall clock NOW."""
    last_physical, last_counter = parse(last)
    physical = max(now, last_physical)
    counter = last_counter + 1 if physical == last_physical else 0
    # The counter has four digits (the wire format; and ".10000" would sort before
    # ".9999"). It runs up while the clock lags the stamps seen, e.g. for an hour after
    # pulling from a laptop an hour fast: then the next millisecond is taken.
    if counter > MAX_COUNTER:
        physical, counter = physical + 1, 0
    return format_hlc(physical, counter)


def latest(current: str, remote: str) -> str:
    """Return the clock's value after observing REMOTE: never earlier than CURRENT."""
    return remote if remote > current else current


# Both apps keep their clock under the "hlc" key of a meta table: get_meta(db, key,
# default) and set_meta(db, key, value) are the app's own (SQLite or PostgreSQL).
MetaGet = Callable[[Any, str, str], str]
MetaSet = Callable[[Any, str, str], None]


def tick_meta(db: Any, get_meta: MetaGet, set_meta: MetaSet, now: int) -> str:
    """Return a new timestamp later than the stored one and now, and store it."""
    value = after(get_meta(db, "hlc", ZERO), now)
    set_meta(db, "hlc", value)
    return value


def observe_meta(db: Any, get_meta: MetaGet, set_meta: MetaSet, remote: str) -> None:
    """Move the stored clock past a timestamp received from another node."""
    current = get_meta(db, "hlc", ZERO)
    if latest(current, remote) != current:
        set_meta(db, "hlc", remote)
