"""Hybrid logical clock: orders edits across laptops without trusting wall clocks.

A stamp is "TTTTTTTTTTTTT.CCCC": 13 digits of epoch milliseconds, a dot, a 4-digit
counter. The width is fixed so that comparing stamps as strings orders them in
time; no stamp outside it is ever made or accepted (ClockError). Each node bounds
the stamps it takes from others (MAX_AHEAD_S beyond its clock, see docs/PROTOCOL.md),
so that one wrong clock cannot drag every clock to the end of the range.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

ZERO = "0000000000000.0000"
MAX_PHYSICAL = 10 ** 13 - 1        # the last millisecond with 13 digits (year 2286)
MAX_COUNTER = 9999
MAX_AHEAD_S = 300                  # default bound of a stamp ahead of the clock that takes it
CLOCK_AHEAD = "clock_ahead"        # the error of an item refused for that
_STAMP = re.compile(r"[0-9]{13}\.[0-9]{4}")  # not \d: that takes any Unicode digit


class ClockError(ValueError):
    """A stamp outside the fixed width, or a clock that has reached its last stamp."""


def is_stamp(value: Any) -> bool:
    """Tell whether value is a stamp in the fixed width."""
    return isinstance(value, str) and _STAMP.fullmatch(value) is not None


def parse(hlc: str) -> tuple[int, int]:
    """Split an hlc string into (physical ms, counter); refuse any other width."""
    if not is_stamp(hlc):
        raise ClockError(f"invalid hlc stamp {hlc!r}: 13 digits, a dot and 4 digits expected")
    physical, counter = hlc.split(".")
    return int(physical), int(counter)


def format_hlc(physical: int, counter: int) -> str:
    """Render (physical ms, counter) as a fixed-width, sortable string."""
    if not 0 <= physical <= MAX_PHYSICAL or not 0 <= counter <= MAX_COUNTER:
        raise ClockError(f"no hlc stamp for {physical} ms, counter {counter}: the fixed width "
                         f"holds 0..{MAX_PHYSICAL} ms and counters 0..{MAX_COUNTER}")
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
    if physical > MAX_PHYSICAL:
        raise ClockError(f"the clock is at its last stamp {last}: no later stamp fits the "
                         "fixed width")
    return format_hlc(physical, counter)


def latest(current: str, remote: str) -> str:
    """Return the clock's value after observing REMOTE: never earlier than CURRENT."""
    return remote if remote > current else current


def ahead_ms(stamp: str, clock_ms: int) -> int:
    """Return how many milliseconds STAMP's time lies ahead of CLOCK_MS (negative: behind)."""
    return parse(stamp)[0] - clock_ms


def ceiling(clock_ms: int, bound_ms: int) -> str:
    """Return the latest stamp a node with this clock takes from others under this bound."""
    return format_hlc(min(max(clock_ms + bound_ms, 0), MAX_PHYSICAL), MAX_COUNTER)


def too_far_ahead(stamp: str, clock_ms: int, bound_ms: int) -> bool:
    """Tell whether STAMP lies more than BOUND_MS ahead of CLOCK_MS (or is malformed)."""
    return not is_stamp(stamp) or stamp > ceiling(clock_ms, bound_ms)


def span(ms: int) -> str:
    """Say a duration in plain English for a message: '90 s', '14 min', '5 h', '365 days'."""
    seconds = abs(ms) // 1000
    for unit, size, below in (("s", 1, 120), ("min", 60, 7200), ("h", 3600, 172_800)):
        if seconds < below:
            return f"{seconds // size} {unit}"
    return f"{seconds // 86_400} days"


def ahead_message(stamp: str, clock_ms: int, bound_ms: int, whose: str) -> str:
    """Say that STAMP lies too far ahead of WHOSE clock (CLOCK_MS) to be taken."""
    return (f"stamp {stamp} lies {span(ahead_ms(stamp, clock_ms))} ahead of {whose} clock "
            f"(at most {span(bound_ms)} are taken)")


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
    parse(remote)  # a stamp outside the fixed width never reaches the clock
    current = get_meta(db, "hlc", ZERO)
    if latest(current, remote) != current:
        set_meta(db, "hlc", remote)
