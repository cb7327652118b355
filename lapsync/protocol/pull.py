"""A laptop's checks of what central sends in a pull: items and pages."""
from __future__ import annotations

from typing import Any

from .limits import (CONTROL_CHARS, DATABASE_FIELD, DECISION_ACTIONS, HLC_PATTERN,
                     MAX_DATABASE_ID, MAX_ID_LENGTH, MAX_REASON, MAX_START_NUMBER, MAX_TIME,
                     MAX_USER_NAME, PROTOCOL_VERSION)
from .validate import ProtocolError

# Pull: a laptop's checks of what central sends. A bad item raises ValueError and is
# set aside by the laptop; a bad page raises ProtocolError and stops the pull.

def pulled_hlc(value: Any) -> str:
    """Return a pulled hlc stamp or raise ValueError."""
    if not isinstance(value, str) or not HLC_PATTERN.fullmatch(value):
        raise ValueError(f"invalid hlc {value!r}")
    return value


def pulled_text(data: dict, key: str, limit: int = 200) -> str:
    """Return a pulled string field of 1 to LIMIT characters or raise ValueError."""
    value = data[key]
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise ValueError(f"invalid {key}")
    return value


def pulled_id(data: dict, key: str) -> str:
    """Return a pulled id field (at most MAX_ID_LENGTH characters) or raise ValueError."""
    return pulled_text(data, key, MAX_ID_LENGTH)


def pulled_integer(data: dict, key: str) -> int:
    """Return a pulled integer field or raise ValueError."""
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"invalid {key}")
    return value


def pulled_flag(data: dict, key: str, default: bool) -> bool:
    """Return a pulled true/false field (DEFAULT if absent: older central) or raise ValueError."""
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"invalid {key}")
    return value


def pulled_optional_text(data: dict, key: str, limit: int) -> str | None:
    """Return a pulled one-line string field of 1 to LIMIT characters, or None if absent."""
    if data.get(key) is None:
        return None
    value = pulled_text(data, key, limit)
    if CONTROL_CHARS.search(value):
        raise ValueError(f"invalid {key}")
    return value


def pulled_decision(data: dict, entity: str) -> dict | None:
    """Return the central decision a pulled item carries (None if none) or raise ValueError."""
    value = data.get("decision")
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("action") not in DECISION_ACTIONS[entity]:
        raise ValueError("invalid decision")
    at = pulled_integer(value, "at")
    was = value.get("was_start_number")
    if not 0 <= at <= MAX_TIME or (was is not None and not 1 <= pulled_integer(
            value, "was_start_number") <= MAX_START_NUMBER):
        raise ValueError("invalid decision")
    return {"action": value["action"], "at": at, "was_start_number": was,
            "by_name": pulled_optional_text(value, "by_name", MAX_USER_NAME),
            "reason": pulled_optional_text(value, "reason", MAX_REASON)}


def pulled_number_block(value: Any) -> tuple[int, int] | None:
    """Return a pull page's number block as (first, last), None for none, or raise ValueError."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"first", "last"}:
        raise ValueError("invalid number_block")
    first, last = pulled_integer(value, "first"), pulled_integer(value, "last")
    if not 1 <= first <= last <= MAX_START_NUMBER:
        raise ValueError(f"invalid number_block {first}-{last}")
    return first, last


def answer_seq(value: Any, name: str) -> int:
    """Return a seq or cursor (an integer >= 0) of central's answer or raise ProtocolError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError("invalid_answer", f"central's answer has no valid {name}: {value!r}")
    return value


def answer_database(answer: dict) -> str | None:
    """Return the identity of central's database an answer names, or None.

    None from an older central (it names none) or for a value no central sends: the
    laptop then goes on as before, with no identity to compare.
    """
    value = answer.get(DATABASE_FIELD)
    if isinstance(value, str) and 0 < len(value) <= MAX_DATABASE_ID \
            and not CONTROL_CHARS.search(value):
        return value
    return None


def check_pull_page(page: dict, cursor: int) -> tuple[list, int, bool]:
    """Return (changes, next_cursor, more) of a pull page after CURSOR or raise ProtocolError."""
    if page.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError("unsupported_protocol", f"central speaks protocol "
                            f"{page.get('protocol')!r}, this laptop {PROTOCOL_VERSION}")
    changes, more = page.get("changes"), page.get("more")
    next_cursor = answer_seq(page.get("next_cursor"), "next_cursor")
    if not isinstance(changes, list) or not isinstance(more, bool) or next_cursor < cursor:
        raise ProtocolError("invalid_answer", "central's pull answer is malformed")
    return changes, next_cursor, more
