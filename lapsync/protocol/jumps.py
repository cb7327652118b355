"""Clock jumps a laptop reports with a push: an optional list beside the changes.

A laptop whose wall clock moved more than a minute against its boot clock reports each
jump once (by id, so a re-sent report is a no-op): when it noticed it by its own clock,
how far the clock moved, and its outbox's latest seq then (the changes up to that seq
were made before the jump). Central shows that laptop's times around the jump as suspect.
A laptop sends the list only to a central whose push answer lists CLOCK_JUMPS in its
encodings: an older central refuses a body with fields it does not know.
"""
from __future__ import annotations

import json
from typing import Any

from .limits import CLOCK_JUMPS, MAX_TIME

CLOCK_JUMP_FIELDS = ("id", "at", "jump_ms", "after_seq")
MAX_CLOCK_JUMPS = 100              # per push; more wait for the next one


def encode_jumps(jumps: list[dict]) -> bytes:
    """Return the body's clock_jumps field with a trailing comma (empty for no jumps)."""
    if not jumps:
        return b""
    items = [{name: jump[name] for name in CLOCK_JUMP_FIELDS} for jump in jumps]
    return f'"{CLOCK_JUMPS}":{json.dumps(items, separators=(",", ":"))},'.encode()


def clean_jumps(item: Any, value: Any) -> list[dict]:
    """Check a push body's clock_jumps (item: the body's field checks); return them cleaned."""
    if not isinstance(value, list):
        raise item.fail(CLOCK_JUMPS, f"'{CLOCK_JUMPS}' must be a list")
    if len(value) > MAX_CLOCK_JUMPS:
        raise item.fail(CLOCK_JUMPS, f"at most {MAX_CLOCK_JUMPS} clock jumps per push")
    cleaned = []
    for index, jump in enumerate(value):
        label = item.label
        item.label = f"{CLOCK_JUMPS}[{index}]"
        try:
            item.fields(jump, CLOCK_JUMP_FIELDS)
            cleaned.append({"id": item.ident(jump, "id"),
                            "at": item.integer(jump, "at", 0, MAX_TIME - 1),
                            "jump_ms": item.integer(jump, "jump_ms", -MAX_TIME, MAX_TIME),
                            "after_seq": item.integer(jump, "after_seq", 0, 2 ** 63 - 1)})
        finally:
            item.label = label
    return cleaned
