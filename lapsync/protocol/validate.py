"""Validation of push bodies (central runs it on every push), compact lap runs, gzip bodies."""
from __future__ import annotations

import datetime
import math
import re
import zlib
from typing import Any

from lapsync.errors import InputError

from . import limits
from .jumps import clean_jumps
from .limits import (
    CHANGE_FIELDS,
    CLOCK_JUMPS,
    CONTROL_CHARS,
    DATA_FIELDS,
    GRADES,
    GZIP,
    HLC_PATTERN,
    ID_FIELD,
    LAP_RUN,
    LAP_RUN_FIELDS,
    MAX_CLASS,
    MAX_ID_LENGTH,
    MAX_PASSWORD_HASH,
    MAX_REASON,
    MAX_RUNNER_NAME,
    MAX_START_NUMBER,
    MAX_TIME,
    MAX_USER_NAME,
    MIN_ID_LENGTH,
    PROTOCOL_VERSION,
    PUSH_ENTITIES,
    PUSH_FIELDS,
    ROLES,
    SETTINGS,
)


class ProtocolError(InputError):
    """A push or pull the server refuses as a whole: {"error", "message"} with a 4xx."""


# The rule of cuid2.is_cuid(value, MIN_ID_LENGTH, MAX_ID_LENGTH), compiled once:
# ids are checked a few thousand times per push.
_ID_PATTERN = re.compile(rf"[a-z][0-9a-z]{{{MIN_ID_LENGTH - 1},{MAX_ID_LENGTH - 1}}}")
# A whole column of a compact lap run, joined by newlines, checked in one C-level match.
_ID_LINES = re.compile(rf"{_ID_PATTERN.pattern}(?:\n{_ID_PATTERN.pattern})*")


def is_id(value: Any) -> bool:
    """Tell whether value is an id as the protocol allows it (a cuid2)."""
    return type(value) is str and _ID_PATTERN.fullmatch(value) is not None


class _Item:
    """Field checks for one object of the body; errors name the item and field."""

    def __init__(self, label: str = "", seq: int | None = None, index: int | None = None):
        """Name the item: a label for the body, or index and seq for a change."""
        self.label, self.seq, self.index, self.entity = label, seq, index, None

    @property
    def where(self) -> str:
        """Name the item for a message (built only when there is an error)."""
        if self.index is None:
            return self.label
        entity = f", {self.entity}" if self.entity else ""
        return f"changes[{self.index}] (seq {self.seq}{entity})"

    def fail(self, field: str | None, message: str) -> ProtocolError:
        """Return the 422 error for this item."""
        extra = {"field": field} if field else {}
        if self.index is None:
            return ProtocolError("invalid_body", f"{self.where}: {message}", 422, **extra)
        if self.seq is not None:
            extra["seq"] = self.seq
        return ProtocolError("invalid_change", f"{self.where}: {message}", 422,
                             index=self.index, **extra)

    def fields(self, obj: Any, names: tuple[str, ...]) -> dict:
        """Check obj is an object with exactly these fields."""
        if type(obj) is dict and len(obj) == len(names) and all(n in obj for n in names):
            return obj  # the common case, checked fast
        if not isinstance(obj, dict):
            raise self.fail(None, "must be a JSON object")
        unknown = sorted(set(obj) - set(names))
        missing = [name for name in names if name not in obj]
        if unknown:
            raise self.fail(unknown[0], f"unknown field {unknown[0]!r}")
        if missing:
            raise self.fail(missing[0], f"missing field {missing[0]!r}")
        return obj

    def integer(self, obj: dict, name: str, low: int, high: int) -> int:
        """Return a JSON integer field within [low, high]."""
        value = obj[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(name, f"{name!r} must be an integer")
        if not low <= value <= high:
            raise self.fail(name, f"{name!r} must be between {low} and {high}")
        return value

    def text(self, obj: dict, name: str, high: int, low: int = 1, one_line: bool = True) -> str:
        """Return a stripped string field of low..high characters."""
        value = obj[name]
        if not isinstance(value, str):
            raise self.fail(name, f"{name!r} must be a string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise self.fail(name, f"{name!r} is not valid Unicode") from None
        if "\x00" in value or (one_line and CONTROL_CHARS.search(value)):
            raise self.fail(name, f"{name!r} must not contain control characters")
        value = value.strip()
        if not low <= len(value) <= high:
            raise self.fail(name, f"{name!r} must be {low} to {high} characters")
        return value

    def ident(self, obj: dict, name: str) -> str:
        """Return an id field (a cuid2)."""
        if not is_id(obj[name]):
            raise self.fail(name, f"{name!r} must be a cuid "
                            f"({MIN_ID_LENGTH}-{MAX_ID_LENGTH} lowercase letters and digits)")
        return obj[name]

    def hlc(self, obj: dict, name: str = "hlc") -> str:
        """Return a hybrid logical clock field."""
        value = obj[name]
        if not isinstance(value, str) or not HLC_PATTERN.fullmatch(value):
            raise self.fail(name, f"{name!r} must look like 1700000000000.0000 "
                            "(13 digits, a dot, 4 digits)")
        return value

def _lap(item: _Item, data: dict) -> dict:
    """Clean a lap's data."""
    return {"id": item.ident(data, "id"), "runner_id": item.ident(data, "runner_id"),
            "created_by": item.ident(data, "created_by"),
            "time": item.integer(data, "time", 0, MAX_TIME - 1),
            "device_id": item.ident(data, "device_id")}


def _lap_void(item: _Item, data: dict) -> dict:
    """Clean a void's (or restore's) data."""
    if not isinstance(data["voided"], bool):
        raise item.fail("voided", "'voided' must be true or false")
    reason = data["reason"]
    if reason is not None:
        reason = item.text(data, "reason", MAX_REASON, low=0, one_line=False) or None
    return {"lap_id": item.ident(data, "lap_id"), "voided": data["voided"],
            "at": item.integer(data, "at", 0, MAX_TIME - 1), "by": item.ident(data, "by"),
            "reason": reason, "hlc": item.hlc(data), "origin": item.ident(data, "origin")}


def _runner(item: _Item, data: dict) -> dict:
    """Clean a runner's data."""
    return {"id": item.ident(data, "id"),
            "start_number": item.integer(data, "start_number", 1, MAX_START_NUMBER),
            "name": item.text(data, "name", MAX_RUNNER_NAME),
            "class": item.text(data, "class", MAX_CLASS),
            "grade": item.integer(data, "grade", GRADES.start, GRADES.stop - 1),
            "hlc": item.hlc(data), "origin": item.ident(data, "origin")}


def _user(item: _Item, data: dict) -> dict:
    """Clean a user's data."""
    role = data["role"]
    if role not in ROLES:
        raise item.fail("role", f"'role' must be one of {', '.join(ROLES)}")
    password_hash = item.text(data, "password_hash", MAX_PASSWORD_HASH)
    if not password_hash.startswith("$argon2"):
        raise item.fail("password_hash", "'password_hash' must be an argon2 hash")
    return {"id": item.ident(data, "id"), "name": item.text(data, "name", MAX_USER_NAME, one_line=False),
            "password_hash": password_hash, "role": role,
            "created_at": item.integer(data, "created_at", 0, MAX_TIME - 1),
            "hlc": item.hlc(data), "origin": item.ident(data, "origin")}


_CLEANERS = {"lap": _lap, "lap_void": _lap_void, "runner": _runner, "user": _user}


def _valid_lap_change(change: Any, expected_seq: int | None) -> bool:
    """Tell fast whether a change is a valid lap (most of a push); False: check in detail."""
    if type(change) is not dict or len(change) != 4 or change.get("entity") != "lap":
        return False
    seq, data = change.get("seq"), change.get("data")
    if type(seq) is not int or not 1 <= seq <= 2 ** 63 - 1 \
            or (expected_seq is not None and seq != expected_seq):
        return False
    if type(data) is not dict or len(data) != 5 or change.get("id") != data.get("id"):
        return False
    time = data.get("time")
    return (type(time) is int and 0 <= time < MAX_TIME and is_id(data.get("id"))
            and is_id(data.get("runner_id")) and is_id(data.get("created_by"))
            and is_id(data.get("device_id")))


def _all_ids(values: Any, repeats: bool = False) -> bool:
    """Tell fast whether values is a list of ids (a column of a compact lap run).

    repeats: a column that holds few distinct values (runners, users, laptops): each
    distinct value is checked once (a set of 50,000 is built in ~0.5 ms, their check
    as text takes ~8 ms).
    """
    if type(values) is not list or not values:
        return False
    try:
        distinct = set(values) if repeats else values
        joined = "\n".join(distinct)
    except TypeError:
        return False  # not all strings (or not even hashable)
    # An id with a newline inside would pass as two: the count of newlines rules it out.
    return joined.count("\n") == len(distinct) - 1 and _ID_LINES.fullmatch(joined) is not None


def _valid_lap_run(change: Any, expected_seq: int | None) -> bool:
    """Tell fast whether a change is a valid compact lap run; False: check in detail."""
    if type(change) is not dict or len(change) != 3 or change.get("entity") != LAP_RUN:
        return False
    seq, data = change.get("seq"), change.get("data")
    if type(seq) is not int or seq < 1 or (expected_seq is not None and seq != expected_seq):
        return False
    if type(data) is not dict or len(data) != 5 or not all(k in data for k in DATA_FIELDS["lap"]):
        return False
    times = data["time"]
    n = len(times) if type(times) is list else 0
    return (n > 0 and seq + n - 1 <= 2 ** 63 - 1
            and _all_ids(data["id"]) and len(data["id"]) == n
            and all(_all_ids(data[k], repeats=True) and len(data[k]) == n
                    for k in ("runner_id", "created_by", "device_id"))
            and all(type(t) is int for t in times) and 0 <= min(times) and max(times) < MAX_TIME)


def _numbered(change: Any, index: int, expected_seq: int | None,
              fields: tuple) -> tuple["_Item", int]:
    """Check a change's fields and seq; return its item (named by its seq) and the seq."""
    seq = change.get("seq") if isinstance(change, dict) else None
    if type(seq) is not int:
        seq = expected_seq  # name the change by the seq it should have had
    item = _Item(seq=seq, index=index)
    item.fields(change, fields)
    seq = item.integer(change, "seq", 1, 2 ** 63 - 1)
    if expected_seq is not None and seq != expected_seq:
        raise item.fail("seq", f"seqs must ascend without gaps inside a batch: "
                        f"expected {expected_seq}")
    return item, seq


def _lap_run(change: Any, index: int, expected_seq: int | None) -> dict:
    """Check a compact lap run in detail; raise the error for its first bad lap."""
    item, seq = _numbered(change, index, expected_seq, LAP_RUN_FIELDS)
    item.entity = "lap"
    data = item.fields(change["data"], DATA_FIELDS["lap"])
    for name in DATA_FIELDS["lap"]:
        if not isinstance(data[name], list) or not data[name]:
            raise item.fail(name, f"{name!r} of a lap run must be a non-empty list")
        if len(data[name]) != len(data["id"]):
            raise item.fail(name, f"{name!r} must have as many values as 'id' "
                            f"({len(data['id'])})")
    if seq + len(data["id"]) - 1 > 2 ** 63 - 1:
        raise item.fail("seq", "the run's last seq is out of range")
    for i, values in enumerate(zip(*(data[name] for name in DATA_FIELDS["lap"]))):
        item.seq = seq + i
        _lap(item, dict(zip(DATA_FIELDS["lap"], values)))
    return change  # every lap passed: the run is its own cleaned form


def last_seq(change: dict) -> int:
    """Return the last seq a validated change stands for (a lap run stands for several)."""
    if change["entity"] == LAP_RUN:
        return change["seq"] + len(change["data"]["id"]) - 1
    return change["seq"]


def change_count(change: dict) -> int:
    """Return how many changes a validated change stands for."""
    return last_seq(change) - change["seq"] + 1


def expand_changes(changes: list[dict]) -> list[dict]:
    """Return validated changes with every compact lap run written out as lap changes."""
    expanded = []
    for change in changes:
        if change["entity"] != LAP_RUN:
            expanded.append(change)
            continue
        columns = change["data"]
        for i, values in enumerate(zip(*(columns[name] for name in DATA_FIELDS["lap"]))):
            data = dict(zip(DATA_FIELDS["lap"], values))
            expanded.append({"seq": change["seq"] + i, "entity": "lap", "id": data["id"],
                             "data": data})
    return expanded


def compact_changes(changes: list[dict]) -> list[dict]:
    """Return changes with consecutive lap changes grouped into compact lap runs."""
    grouped: list[dict] = []
    for change in changes:
        if change["entity"] != "lap":
            grouped.append(change)
            continue
        run = grouped[-1] if grouped and grouped[-1]["entity"] == LAP_RUN else None
        if run is None or last_seq(run) + 1 != change["seq"]:
            run = {"seq": change["seq"], "entity": LAP_RUN,
                   "data": {name: [] for name in DATA_FIELDS["lap"]}}
            grouped.append(run)
        for name, values in run["data"].items():
            values.append(change["data"][name])
    return grouped


def validate_change(change: Any, index: int = 0, expected_seq: int | None = None) -> dict:
    """Check one pushed change (changes[index]); return it cleaned: seq, entity, id, data.

    A compact lap run comes back as it is (seq, entity "laps", data of five lists).
    """
    if _valid_lap_change(change, expected_seq):
        return change
    if _valid_lap_run(change, expected_seq):
        return change
    if isinstance(change, dict) and change.get("entity") == LAP_RUN:
        return _lap_run(change, index, expected_seq)
    item, seq = _numbered(change, index, expected_seq, CHANGE_FIELDS)
    entity = change["entity"]
    if entity not in PUSH_ENTITIES:
        raise item.fail("entity", f"'entity' must be one of {', '.join(PUSH_ENTITIES)}")
    item.seq, item.entity = seq, entity
    data = _CLEANERS[entity](item, item.fields(change["data"], DATA_FIELDS[entity]))
    if change["id"] != data[ID_FIELD[entity]]:
        raise item.fail("id", f"'id' must equal data.{ID_FIELD[entity]}")
    return {"seq": seq, "entity": entity, "id": change["id"], "data": data}


def _too_many(count: int) -> ProtocolError:
    """Return the 413 for a batch of too many changes."""
    return ProtocolError("batch_too_large", f"At most {limits.MAX_BATCH_CHANGES} changes per push, "
                         f"not {count}.", 413, max_changes=limits.MAX_BATCH_CHANGES)


def too_large_body() -> ProtocolError:
    """Return the 413 for a push body of too many bytes."""
    return ProtocolError("batch_too_large", f"A push body may have at most {limits.MAX_BATCH_BYTES} "
                         "bytes.", 413, max_bytes=limits.MAX_BATCH_BYTES)


def decode_body(raw: bytes, content_encoding: str | None) -> bytes:
    """Return a push body without its Content-Encoding (gzip or none), within limits.MAX_BATCH_BYTES.

    The limit applies to the decompressed body too: a small gzip stream that would
    unpack to gigabytes is refused after limits.MAX_BATCH_BYTES + 1 bytes of it.
    """
    coding = (content_encoding or "identity").strip().lower()
    if coding == "identity":
        return raw
    if coding != GZIP:
        raise ProtocolError("unsupported_media_type", f"A push body may be gzip-compressed, not "
                            f"{content_encoding[:50]!r}.", 415)
    inflater = zlib.decompressobj(wbits=31)  # gzip only: its header and CRC are checked
    try:
        body = inflater.decompress(raw, limits.MAX_BATCH_BYTES + 1)
    except zlib.error as exc:
        raise ProtocolError("malformed_gzip", f"The body is not valid gzip: {exc}"[:300], 400) from None
    if len(body) > limits.MAX_BATCH_BYTES:
        raise too_large_body()
    if not inflater.eof or inflater.unused_data:
        raise ProtocolError("malformed_gzip", "The gzip body is cut short or has data after "
                            "its end.", 400)
    return body


def validate_push(body: Any) -> dict:
    """Check a decoded push body; return it cleaned or raise ProtocolError."""
    # "protocol": null is a wrong version too (it passed as absent); absent is a 422 below.
    has_version = isinstance(body, dict) and "protocol" in body
    version = body["protocol"] if has_version else PROTOCOL_VERSION
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ProtocolError("unsupported_protocol", f"This server speaks sync protocol "
                            f"{PROTOCOL_VERSION}, not {body['protocol']!r}.", 400,
                            supported=[PROTOCOL_VERSION])
    item = _Item("push body")
    jumps = body.get(CLOCK_JUMPS, []) if isinstance(body, dict) else []
    item.fields({k: v for k, v in body.items() if k != CLOCK_JUMPS}
                if isinstance(body, dict) else body, PUSH_FIELDS)
    device_id = item.ident(body, "device_id")
    device_time = item.integer(body, "device_time", 0, MAX_TIME - 1)
    changes = body["changes"]
    if not isinstance(changes, list):
        raise item.fail("changes", "'changes' must be a list")
    if len(changes) > limits.MAX_BATCH_CHANGES:
        raise _too_many(len(changes))
    cleaned: list[dict] = []
    count = 0
    for index, change in enumerate(changes):
        expected = last_seq(cleaned[-1]) + 1 if cleaned else None
        cleaned.append(validate_change(change, index, expected))
        count += change_count(cleaned[-1])
        if count > limits.MAX_BATCH_CHANGES:  # compact runs count their laps
            raise _too_many(count)
    valid = {"protocol": PROTOCOL_VERSION, "device_id": device_id, "device_time": device_time,
             "changes": cleaned}
    if isinstance(body, dict) and CLOCK_JUMPS in body:  # optional: only laptops that saw a jump
        valid[CLOCK_JUMPS] = clean_jumps(item, jumps)
    return valid


def validate_setting(key: Any, value: Any) -> Any:
    """Check an event setting; return its cleaned value or raise ProtocolError."""
    item = _Item(f"setting {key!r}")
    if key not in SETTINGS:
        raise ProtocolError("unknown_setting", f"Settings are {', '.join(SETTINGS)}.", 422)
    holder = {key: value}
    if key == "min_lap_seconds":
        return item.integer(holder, key, 0, 3600)
    if key == "metres_per_lap":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or not 0 < value <= 100_000:
            raise item.fail(key, "'metres_per_lap' must be a number above 0 and at most 100000")
        return value
    if key == "event_name":
        return item.text(holder, key, 100)
    text = item.text(holder, key, 10)
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        raise item.fail(key, "'event_date' must be a date like 2025-06-27") from None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise item.fail(key, "'event_date' must be a date like 2025-06-27")
    return text
