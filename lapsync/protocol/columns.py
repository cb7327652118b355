"""The columnar push body: the JSON body's batch with its lap runs as binary columns.

A laptop sends it (Content-Type COLUMNS_TYPE) only to a central whose push answer lists
that type in its content_types; every other body stays JSON, which central keeps accepting.
Central reads it back into exactly what validate_push returns for the same batch sent
as JSON, under the same rules and with the same refusals, so that push() cannot tell
the two apart. What it saves: JSON's quoting and parsing of 50,000 laps and their
checks one value at a time; ids arrive as one block, checked by one regular expression.

Layout (integers little-endian; docs/PROTOCOL.md):
  MAGIC, then sections; each is a kind (1 byte), a length (4 bytes) and that many bytes:
    H  the head, first and once: a JSON object of the JSON body's fields but changes
    C  verbose changes: a JSON array of changes exactly as in the JSON body
    L  a lap run: seq (8 bytes), n (4 bytes), n times (8 bytes each, signed), the ids
       (a text block), then runner_id, created_by and device_id as dictionary columns
  a text block: its length (4 bytes), then its values in UTF-8 joined by newlines;
  a dictionary column: a text block of its distinct values, then n indexes (4 bytes each).
The sections' changes follow one another in seq order, as the JSON body's list does.
"""
from __future__ import annotations

import json
import struct
import sys
from array import array
from collections.abc import Iterator
from typing import Any

from . import limits
from .limits import LAP_RUN, MAX_TIME
from .validate import (_ID_LINES, ProtocolError, _too_many, change_count, last_seq,
                       validate_change, validate_push)

COLUMNS_TYPE = "application/vnd.lapsync.push-columns"
JSON_TYPE = "application/json"
PUSH_CONTENT_TYPES = (JSON_TYPE, COLUMNS_TYPE)     # what central takes (push answer)
MAGIC = b"LAPSYNC\x01"                             # the layout's version in its last byte
HEAD, CHANGES, RUN = b"H", b"C", b"L"
SECTION = struct.Struct("<cI")
RUN_START = struct.Struct("<QI")                   # seq, n
LENGTH = struct.Struct("<I")
DICTIONARY_COLUMNS = ("runner_id", "created_by", "device_id")
SWAP = sys.byteorder != "little"                   # array() speaks the machine's order
TOP_SEQ = 2 ** 63 - 1


def malformed(message: str) -> ProtocolError:
    """Return the 400 for a columnar body that does not follow the layout."""
    return ProtocolError("malformed_body", f"The columnar body is malformed: {message}.", 400)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """Build a JSON object, refusing a key given twice (which value would count?)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return obj


def _no_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which are not JSON."""
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes | str) -> Any:
    """Parse JSON as central reads every push body: no repeated keys, no NaN; else a 400."""
    try:
        return json.loads(raw, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("malformed_json", f"The body is not valid JSON: {exc}"[:300],
                            400) from None


# ---- writing ---------------------------------------------------------------------------

def section(kind: bytes, payload: bytes) -> bytes:
    """Return one section: its kind, its length and its bytes."""
    return SECTION.pack(kind, len(payload)) + payload


def head_section(laptop_id: str, device_time: int, clock_jumps: list[dict] | None = None) -> bytes:
    """Return the head section of a push body stamped with the laptop's clock."""
    head: dict[str, Any] = {"protocol": limits.PROTOCOL_VERSION, "device_id": laptop_id,
                            "device_time": device_time}
    if clock_jumps:
        head[limits.CLOCK_JUMPS] = clock_jumps
    return section(HEAD, json.dumps(head, separators=(",", ":")).encode())


def text_block(values: list[str]) -> bytes:
    """Return values as a text block."""
    text = "\n".join(values).encode()
    return LENGTH.pack(len(text)) + text


def int_array(typecode: str, values) -> bytes:
    """Return integers as little-endian bytes of array typecode ("q" times, "I" indexes)."""
    packed = array(typecode, values)
    if SWAP:
        packed.byteswap()
    return packed.tobytes()


def dictionary_column(values: list[str], positions: array) -> bytes:
    """Return a dictionary column: its distinct values and each lap's index into them."""
    return text_block(values) + int_array("I", positions)


def run_section(seq: int, times: bytes, ids: bytes, dictionaries: list[bytes]) -> bytes:
    """Return a lap run's section from its parts already encoded (times: n int64s)."""
    n = len(times) // 8
    return section(RUN, b"".join([RUN_START.pack(seq, n), times, ids, *dictionaries]))


def encode_run(run: dict) -> bytes:
    """Return a compact lap run (the JSON body's form: five lists) as a run section."""
    data = run["data"]
    dictionaries = []
    for name in DICTIONARY_COLUMNS:
        distinct = list(dict.fromkeys(data[name]))
        where = {value: i for i, value in enumerate(distinct)}
        dictionaries.append(dictionary_column(distinct, array("I", map(where.__getitem__, data[name]))))
    return run_section(run["seq"], int_array("q", data["time"]), text_block(data["id"]), dictionaries)


def encode_body(body: dict) -> bytes:
    """Return a JSON-shaped push body as a columnar body (compact runs as run sections).

    The head holds the body's other fields as they are, valid or not.
    """
    head = {name: value for name, value in body.items() if name != "changes"}
    parts, verbose = [MAGIC, section(HEAD, json.dumps(head).encode())], []
    for change in body["changes"]:
        if change.get("entity") == LAP_RUN:
            if verbose:
                parts.append(section(CHANGES, json.dumps(verbose).encode()))
                verbose = []
            parts.append(encode_run(change))
        else:
            verbose.append(change)
    if verbose:
        parts.append(section(CHANGES, json.dumps(verbose).encode()))
    return b"".join(parts)


# ---- reading (central) -------------------------------------------------------------------

class _Reader:
    """Bounded reads from a body or a section."""

    def __init__(self, data: memoryview, what: str):
        """Read DATA (named WHAT in errors) from its start."""
        self.data, self.what, self.pos = data, what, 0

    def take(self, size: int, what: str) -> memoryview:
        """Return the next SIZE bytes."""
        end = self.pos + size
        if end > len(self.data):
            raise malformed(f"{what} runs past the end of {self.what}")
        view, self.pos = self.data[self.pos:end], end
        return view

    def unpack(self, layout: struct.Struct, what: str) -> tuple:
        """Return the next fixed-size fields."""
        return layout.unpack(self.take(layout.size, what))

    def text(self, what: str) -> str:
        """Return the next text block's text."""
        (size,) = self.unpack(LENGTH, what)
        try:
            return str(self.take(size, what), "utf-8")
        except UnicodeDecodeError:
            raise malformed(f"{what} is not UTF-8") from None

    def integers(self, typecode: str, n: int, what: str) -> array:
        """Return the next N integers of array typecode."""
        values = array(typecode)
        values.frombytes(self.take(n * values.itemsize, what))
        if SWAP:
            values.byteswap()
        return values

    def done(self) -> bool:
        """Tell whether everything was read."""
        return self.pos == len(self.data)


def sections(raw: bytes) -> Iterator[tuple[bytes, memoryview]]:
    """Yield (kind, bytes) of each section of a columnar body."""
    if raw[:len(MAGIC)] != MAGIC:
        raise malformed(f"it must start with {MAGIC!r}")
    reader = _Reader(memoryview(raw)[len(MAGIC):], "the body")
    while not reader.done():
        kind, size = reader.unpack(SECTION, "a section's header")
        yield kind, reader.take(size, f"a section of kind {kind!r}")


def split(text: str) -> list[str]:
    """Return a text block's values (an empty block holds none)."""
    return text.split("\n") if text else []


def ids_ok(text: str, count: int) -> bool:
    """Tell whether a text block holds exactly COUNT ids (cuids), checked in one match."""
    return count > 0 and text.count("\n") == count - 1 and _ID_LINES.fullmatch(text) is not None


def read_run(payload: memoryview, index: int, expected: int | None) -> dict:
    """Return a run section as the compact lap run it stands for, checked as validate_change would."""
    reader = _Reader(payload, "a lap run")
    seq, n = reader.unpack(RUN_START, "a lap run's seq and count")
    times = reader.integers("q", n, "the run's times")
    id_text = reader.text("the run's ids")
    data: dict[str, list] = {"id": split(id_text), "runner_id": [], "created_by": [],
                             "time": times.tolist(), "device_id": []}
    fine = ids_ok(id_text, n) and (not times or (min(times) >= 0 and max(times) < MAX_TIME))
    for name in DICTIONARY_COLUMNS:
        text = reader.text(f"the run's {name} values")
        values, positions = split(text), reader.integers("I", n, f"the run's {name} indexes")
        if positions and max(positions) >= len(values):
            raise malformed(f"an index of the run's {name} is past its {len(values)} values")
        data[name] = list(map(values.__getitem__, positions))
        fine = fine and ids_ok(text, len(values))
    if not reader.done():
        raise malformed("a lap run has bytes after its last column")
    run = {"seq": seq, "entity": LAP_RUN, "data": data}
    if fine and 1 <= seq <= TOP_SEQ - n + 1 and (expected is None or seq == expected):
        return run
    validate_change(run, index, expected)  # raises the JSON body's error for the same run
    raise ProtocolError("invalid_change", f"changes[{index}] (seq {seq}, lap): a value of the "
                        "run is out of range", 422, index=index, seq=seq)


def read_items(parts: Iterator[tuple[bytes, memoryview]]) -> list:
    """Return the changes sections hold, in order: verbose changes as parsed, runs unread."""
    items: list = []
    for kind, payload in parts:
        if kind == CHANGES:
            changes = strict_json(bytes(payload))
            if not isinstance(changes, list):
                raise ProtocolError("invalid_body", "push body: a changes section must hold a "
                                    "list", 422, field="changes")
            items += changes
        elif kind == RUN:
            items.append(payload)
        else:
            raise malformed(f"a section of kind {kind!r} where C or L belongs")
    return items


def validate_columns(raw: bytes) -> dict:
    """Check a columnar push body; return it as validate_push returns a JSON one, or raise.

    The checks run in the JSON body's order: the head's fields, the number of items,
    then each change in turn (a run read and checked as a whole), counting laps.
    """
    parts = sections(raw)
    kind, head = next(parts, (None, None))
    if kind != HEAD:
        raise malformed("the head section must come first")
    head = strict_json(bytes(head))
    if isinstance(head, dict) and "changes" in head:
        raise ProtocolError("invalid_body", "push body: unknown field 'changes' in the head "
                            "(changes go in sections)", 422, field="changes")
    batch = validate_push({**head, "changes": []} if isinstance(head, dict) else head)
    items = read_items(parts)
    if len(items) > limits.MAX_BATCH_CHANGES:
        raise _too_many(len(items))
    changes, count = batch["changes"], 0
    for index, item in enumerate(items):
        expected = last_seq(changes[-1]) + 1 if changes else None
        changes.append(read_run(item, index, expected) if isinstance(item, memoryview)
                       else validate_change(item, index, expected))
        count += change_count(changes[-1])
        if count > limits.MAX_BATCH_CHANGES:  # compact runs count their laps
            raise _too_many(count)
    return batch
