"""The sync wire format that laptop (client.py) and central (sync/api.py) share.

Protocol version 1, JSON over HTTP, `Authorization: Bearer <device token>`.

PUSH  POST /api/v1/push   Content-Type: application/json
  request  {"protocol": 1, "device_id": "<laptop cuid>", "device_time": <laptop epoch ms>,
            "changes": [{"seq": 12, "entity": "lap", "id": "<cuid>", "data": {...}}, ...]}
           changes are this laptop's outbox rows in ascending, contiguous seq order.
  entity / data:
    lap       {"id", "runner_id", "created_by", "time", "device_id"}
    lap_void  {"lap_id", "voided": bool, "at", "by", "reason", "hlc", "origin"}
    runner    {"id", "start_number", "name", "class", "grade", "hlc", "origin"}
    user      {"id", "name", "password_hash", "role", "created_at", "hlc", "origin"}
  compact lap runs (optional): consecutive lap changes may travel as one item
           {"seq": 12, "entity": "laps", "data": {"id": [...], "runner_id": [...],
            "created_by": [...], "time": [...], "device_id": [...]}}
           which stands for the n lap changes with seqs 12 .. 12 + n - 1, the i-th being
           {"seq": 12 + i, "entity": "lap", "id": id[i], "data": {"id": id[i],
            "runner_id": runner_id[i], "created_by": created_by[i], "time": time[i],
            "device_id": device_id[i]}}. The five lists have one length n >= 1; every value
           is checked exactly as in a lap change, and a run counts as n changes towards
           MAX_BATCH_CHANGES. Verbose and compact items mix freely in one batch. A laptop
           sends runs only to a central whose push answer lists "laps" in "encodings".
  gzip (optional): the body may be sent with `Content-Encoding: gzip` to a central
           whose push answer lists "gzip" in "content_encodings"; MAX_BATCH_BYTES applies
           to the decompressed body. The laptop compresses only when the link is slow
           (client.py: the round trip less "apply_ms" gives the link's bytes/s).
  200      {"acked_seq": N, "server_time": ms, "rejected": [{"seq", "error", "message"}],
            "encodings": ["laps"], "content_encodings": ["gzip"], "apply_ms": ms}
           acked_seq is the device's last applied seq after this batch; seqs at or below
           it are already applied and are skipped when sent again (replay is a no-op).
           "rejected" lists items refused for good (kept at central for the admin);
           they are acknowledged too so that they never wedge the queue. A replayed
           batch gets the same answer, its earlier rejections included. "apply_ms" is
           central's own time for the batch, from its body fully received to the answer.
  409      {"error": "seq_gap", "message", "acked_seq": N, "resume_from": N + 1}
  4xx      {"error": "<code>", "message": "..."}: 400 malformed, 401 token, 413 too big,
           415 content type or encoding, 422 invalid item (nothing of the batch applied).

PULL  GET /api/v1/pull?cursor=N&limit=M
  200      {"protocol": 1, "server_time": ms, "next_cursor": N, "more": bool,
            "changes": [{"cursor": N, "entity": E, "id": "...", "data": {...}}, ...]}
  entity / data (a laptop is not sent back changes it made itself):
    runner    as in push, plus "merged_into": "<runner id>" once the admin merged this
              runner into another (the survivor keeps its id; field absent otherwise).
              A merge is final and applies whatever the LWW order says: the laptop
              points the runner's laps to the survivor (as soon as it has the
              survivor) and hides the merged runner from lap entry and the roster.
              A merged runner is sent even to the laptop whose edit it last took.
    user      as in push (password hashes go only to authenticated devices)
    lap_void  as in push: voids and restores decided elsewhere (central, other laptops)
    setting   {"key": "min_lap_seconds" | "metres_per_lap" | "event_name" | "event_date",
               "value": ...}
    total     {"runner_id", "other_laps"}: laps of this runner that count, recorded on
              other devices; the laptop shows its own laps + other_laps.
  The cursor is a server-assigned change id given out in commit order, never a
  device clock: a row committed late never hides below a cursor already served.
  A total may name a runner id the laptop does not know yet (its runner change comes
  in a later page or push): keep it by runner id.
  400      invalid_cursor / invalid_limit (cursor: integer >= 0; limit: 1..MAX_PULL_LIMIT)
  409      {"error": "cursor_ahead", "message", "resume_from": 0}: the cursor is beyond
           anything central ever handed out (central's database was replaced): pull
           again from 0.

Validation (validate_push below; both ends run it, central on every push):
  ids         cuid2: a lowercase letter, then lowercase letters and digits, 20 to 32
              characters in all (laptops make 24; cuid v1 ids of the old app fit too).
  every object has exactly the fields listed (an unknown or missing field is 422);
  integers are JSON integers (not 1.0, not "1", not true); strings are valid Unicode
  without NUL; times are epoch ms in [0, 10^14); hlc is "<13 digits>.<4 digits>".
  A change's "origin" (and a lap's "device_id") names the node that made it; that is
  normally the pushing laptop, but it is not enforced (a laptop database copied from
  another keeps the other's origin on its older changes: refusing them would wedge it).
  Errors: 400 malformed_json / malformed_gzip / unsupported_protocol, 413 batch_too_large,
  415 unsupported_media_type (not JSON, or a Content-Encoding other than gzip),
  422 invalid_body / invalid_change (with "index" into changes, "seq" when known and
  "field" naming the item; in a compact run, "seq" names the lap at fault); nothing of
  the batch is applied.
  401 missing_token / invalid_token / revoked_token; 403 device_mismatch: a token is
  bound to the laptop "device_id" of its first push (a revoked token's successor for
  the same laptop carries on from its last applied seq; two live tokens for one laptop:
  403 laptop_registered). 503 unavailable: central's database is down or busy; retry.

Central's merge rules (sync/push.py):
  lap       insert once by id, never changed again. A lap for a runner central does not
            know yet is kept (no foreign key) and counts for that runner id; it links as
            soon as the runner arrives. Nothing is ever refused for it.
  lap_void  the void state of a lap is a last-writer-wins register keyed by lap id:
            the change with the greater (hlc, origin) wins, on every node. A void for a
            lap central does not have yet is kept and applies when the lap arrives.
  runner    last writer wins by (hlc, origin). Start numbers are not unique: a second
            runner id with the same start number (or the same name in the same class)
            is stored as well and the clash is recorded for the admin.
            A runner the admin merged stays merged; a lap pushed for it later counts
            for the survivor, and it takes part in no clash any more.
  user      last writer wins by (hlc, origin); a user whose name another user id has
            already is refused for good (listed in "rejected", error "duplicate_user").
            From a device not trusted to manage users (central's device.manage_users),
            a change that would create an admin, make a user an admin, change anything
            of an admin or demote one is refused for good too ("admin_only_at_central"):
            only central makes and changes admins; teachers and viewers replicate freely.
  admin     decisions made at central (sync/review.py) are changes like these: a void
            with central's hlc and origin (it wins by LWW over older stamps), a
            renumbered runner, a runner with merged_into; each is logged at central.
  Push (even with no changes) before the first pull: the push binds the token to
  the laptop, so that the pull can leave out the laptop's own changes.
"""
from __future__ import annotations

import datetime
import math
import re
import zlib
from typing import Any

from .errors import InputError

PROTOCOL_VERSION = 1
API_PREFIX = "/api/v1"
# Batches are large because central's cost of a batch grows with the runners it
# touches (one lap total each), not only with its laps: of 5,000 runners, 1,000 laps
# touch ~900, 20,000 laps ~4,900, 50,000 laps all of them. Each touched runner costs
# ~10 us of PostgreSQL's time (two totals updated), so the totals cost ~2.5 us per lap
# in 20,000-lap batches and ~1 us in 50,000-lap ones, against ~5 us per lap for
# the laps themselves (docs/BENCHMARKS.md). The byte limit lets 50,000 verbose laps
# (~240 bytes each) through; a compact run takes ~135 bytes per lap.
MAX_BATCH_CHANGES = 50_000        # changes per push (a compact lap run counts its laps)
MAX_BATCH_BYTES = 16_000_000      # request body bytes per push (decompressed, with gzip)
MAX_PULL_LIMIT = 1000             # changes per pull page
PUSH_ENTITIES = ("lap", "lap_void", "runner", "user")
LAP_RUN = "laps"                   # the entity of a compact lap run
PUSH_ENCODINGS = (LAP_RUN,)        # optional encodings central accepts (push answer)
GZIP = "gzip"                      # a push body's Content-Encoding, if any
PUSH_CONTENT_ENCODINGS = (GZIP,)   # Content-Encodings central accepts (push answer)
PULL_ENTITIES = ("runner", "user", "lap_void", "setting", "total")

MIN_ID_LENGTH, MAX_ID_LENGTH = 20, 32
MAX_TIME = 10 ** 14                # epoch ms, year 5138: rules out seconds*1000 typos
MAX_START_NUMBER = 999_999
MAX_RUNNER_NAME, MAX_CLASS, MAX_USER_NAME, MAX_REASON = 100, 20, 50, 200
MAX_PASSWORD_HASH = 500
GRADES = range(1, 14)
ROLES = ("admin", "teacher", "viewer")
HLC_PATTERN = re.compile(r"[0-9]{13}\.[0-9]{4}")  # not \d: that takes any Unicode digit
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
PUSH_FIELDS = ("protocol", "device_id", "device_time", "changes")
CHANGE_FIELDS = ("seq", "entity", "id", "data")
DATA_FIELDS = {
    "lap": ("id", "runner_id", "created_by", "time", "device_id"),
    "lap_void": ("lap_id", "voided", "at", "by", "reason", "hlc", "origin"),
    "runner": ("id", "start_number", "name", "class", "grade", "hlc", "origin"),
    "user": ("id", "name", "password_hash", "role", "created_at", "hlc", "origin"),
}
ID_FIELD = {"lap": "id", "lap_void": "lap_id", "runner": "id", "user": "id"}
LAP_RUN_FIELDS = ("seq", "entity", "data")
SETTINGS = ("min_lap_seconds", "metres_per_lap", "event_name", "event_date")


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
            raise self.fail(name, f"{name!r} must look like 0001700000000000.0000 "
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


def _lap_run(change: Any, index: int, expected_seq: int | None) -> dict:
    """Check a compact lap run in detail; raise the error for its first bad lap."""
    seq = change.get("seq")
    if type(seq) is not int:
        seq = expected_seq  # name the run by the seq it should have had
    item = _Item(seq=seq, index=index)
    item.fields(change, LAP_RUN_FIELDS)
    seq = item.integer(change, "seq", 1, 2 ** 63 - 1)
    if expected_seq is not None and seq != expected_seq:
        raise item.fail("seq", f"seqs must ascend without gaps inside a batch: "
                        f"expected {expected_seq}")
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
    seq = change.get("seq") if isinstance(change, dict) else None
    if not isinstance(seq, int) or isinstance(seq, bool):
        seq = expected_seq  # name the change by the seq it should have had
    item = _Item(seq=seq, index=index)
    item.fields(change, CHANGE_FIELDS)
    seq = item.integer(change, "seq", 1, 2 ** 63 - 1)
    if expected_seq is not None and seq != expected_seq:
        raise item.fail("seq", f"seqs must ascend without gaps inside a batch: "
                        f"expected {expected_seq}")
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
    return ProtocolError("batch_too_large", f"At most {MAX_BATCH_CHANGES} changes per push, "
                         f"not {count}.", 413, max_changes=MAX_BATCH_CHANGES)


def too_large_body() -> ProtocolError:
    """Return the 413 for a push body of too many bytes."""
    return ProtocolError("batch_too_large", f"A push body may have at most {MAX_BATCH_BYTES} "
                         "bytes.", 413, max_bytes=MAX_BATCH_BYTES)


def decode_body(raw: bytes, content_encoding: str | None) -> bytes:
    """Return a push body without its Content-Encoding (gzip or none), within MAX_BATCH_BYTES.

    The limit applies to the decompressed body too: a small gzip stream that would
    unpack to gigabytes is refused after MAX_BATCH_BYTES + 1 bytes of it.
    """
    coding = (content_encoding or "identity").strip().lower()
    if coding == "identity":
        return raw
    if coding != GZIP:
        raise ProtocolError("unsupported_media_type", f"A push body may be gzip-compressed, not "
                            f"{content_encoding[:50]!r}.", 415)
    inflater = zlib.decompressobj(wbits=31)  # gzip only: its header and CRC are checked
    try:
        body = inflater.decompress(raw, MAX_BATCH_BYTES + 1)
    except zlib.error as exc:
        raise ProtocolError("malformed_gzip", f"The body is not valid gzip: {exc}"[:300], 400) from None
    if len(body) > MAX_BATCH_BYTES:
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
    item.fields(body, PUSH_FIELDS)
    device_id = item.ident(body, "device_id")
    device_time = item.integer(body, "device_time", 0, MAX_TIME - 1)
    changes = body["changes"]
    if not isinstance(changes, list):
        raise item.fail("changes", "'changes' must be a list")
    if len(changes) > MAX_BATCH_CHANGES:
        raise _too_many(len(changes))
    cleaned: list[dict] = []
    count = 0
    for index, change in enumerate(changes):
        expected = last_seq(cleaned[-1]) + 1 if cleaned else None
        cleaned.append(validate_change(change, index, expected))
        count += change_count(cleaned[-1])
        if count > MAX_BATCH_CHANGES:  # compact runs count their laps
            raise _too_many(count)
    return {"protocol": PROTOCOL_VERSION, "device_id": device_id, "device_time": device_time,
            "changes": cleaned}


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
