"""Hybrid logical clock: orders edits across laptops without trusting wall clocks."""
from __future__ import annotations

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
