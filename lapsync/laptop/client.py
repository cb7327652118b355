"""Push and pull over HTTP: the laptop side of the sync protocol (see protocol.py).

Domain functions take the database; only `sync_app` (the scheduler's job) and the
CLI open a connection. HTTP calls never run inside a database transaction, and
every write transaction is short, so sync never blocks lap entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sqlite3
import time
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests
import sqlite_utils
from flask import Blueprint, Flask, current_app, jsonify
from flask_babel import gettext, ngettext

from lapsync import protocol
from lapsync.errors import InputError
from lapsync.text import age

from . import clock
from .db import connect, device_id, get_db, get_meta, now_ms, set_meta, transaction

bp = Blueprint("sync", __name__, url_prefix="/sync")

BACKOFF_BASE_MS = 1_000
BACKOFF_CAP_MS = 30 * 1000       # back within 30 s of central returning, at ~1 request/15 s while down
MAX_BATCHES_PER_RUN = 10_000      # a run always ends
MAX_PAGES_PER_RUN = 10_000
MAX_TOKEN = 500
MAX_URL = 2_000
TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")      # printable ASCII: safe in a header
STATE_KEYS = ("last_success_ms", "last_error", "last_error_ms", "auth_failed",
              "backoff_until_ms", "failures", "clock_offset_ms")
TRANSIENT, AUTH, REFUSED, PROTOCOL = "transient", "auth", "refused", "protocol"
# A push goes gzip-compressed when the link to central carried less than this on the
# last large push (bytes/s: the push's size over its round trip less central's own
# time, apply_ms). zlib at level 1 packs a batch of laps ~3.5x at ~80 MB/s, which
# saves more time than it costs below ~50 MB/s; on loopback or gigabit it would not
# pay (docs/BENCHMARKS.md: a 10 Mbit/s link and loopback, with and without).
GZIP_BELOW_BYTES_PER_S = 25_000_000
MEASURE_FROM_BYTES = 256_000      # a smaller push tells more of latency than of bandwidth


class SyncError(Exception):
    """A failed sync step, classified: transient, auth, refused (4xx) or protocol."""

    def __init__(self, kind: str, message: str, status: int | None = None):
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status


@dataclass
class SyncResult:
    """What one sync run moved, and why it stopped early if it did."""

    pushed: int = 0
    rejected: int = 0
    pulled: Counter = field(default_factory=Counter)
    skipped: str | None = None
    error: SyncError | None = None

    @property
    def pulled_total(self) -> int:
        """Return how many pulled changes were applied or recorded."""
        return sum(self.pulled.values())


# ---- talking to central -----------------------------------------------------

def classify(status: int) -> str:
    """Map an HTTP error status to an error kind."""
    if status in (401, 403):
        return AUTH
    if status >= 500 or status in (408, 429):
        return TRANSIENT
    return REFUSED


class Central:
    """One central server: its URL, this device's token and a keep-alive session."""

    def __init__(self, url: str, token: str, connect_timeout: float = 3.0,
                 read_timeout: float = 30.0):
        self.url, self.token = url.rstrip("/"), token
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}",
                                     "Accept": "application/json"})
        self.encodings: set[str] = set()  # optional push encodings central announced
        self.content_encodings: set[str] = set()  # Content-Encodings central accepts
        self.link_rate: float | None = None  # bytes/s to central, from the last large push
        self.gzip: bool | None = None        # None: when the link is slow; True/False: forced

    @property
    def fingerprint(self) -> str:
        """Return a short hash of URL and token: an auth failure sticks to these."""
        return config_fingerprint(self.url, self.token)

    def request(self, method: str, path: str, **kwargs) -> tuple[int, dict]:
        """Send one request; return (status, JSON body) or raise a transient SyncError."""
        try:
            response = self.session.request(method, self.url + protocol.API_PREFIX + path,
                                            timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise SyncError(TRANSIENT, f"central did not answer in time ({exc.__class__.__name__})")
        except requests.ConnectionError as exc:
            raise SyncError(TRANSIENT, f"central cannot be reached ({exc.__class__.__name__})")
        except requests.RequestException as exc:  # e.g. a body cut off mid-way
            raise SyncError(TRANSIENT, f"the connection to central broke ({exc.__class__.__name__})")
        # The body is read already. Parsed apart from the request: requests' JSON error
        # is a RequestException too, and an HTML error page (a gateway's 502, another
        # server's 404) is an answer to classify by its status, not a broken connection.
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = None
        return self.check(response.status_code, body)

    @staticmethod
    def check(status: int, body: Any) -> tuple[int, dict]:
        """Raise SyncError for an unusable answer; return (status, body) otherwise."""
        if not isinstance(body, dict):
            if status < 300 or status >= 500:
                raise SyncError(TRANSIENT, f"central answered {status} without valid JSON", status)
            body = {}
        if status in (200, 409):
            return status, body
        message = str(body.get("message") or body.get("error") or f"HTTP {status}")[:300]
        if classify(status) == AUTH:
            message = f"device not authorised: {message}"
        raise SyncError(classify(status), f"central answered {status}: {message}", status)

    def compressing(self) -> bool:
        """Tell whether the next push goes gzip-compressed (only if central accepts gzip)."""
        if protocol.GZIP not in self.content_encodings:
            return False
        if self.gzip is not None:
            return self.gzip
        return self.link_rate is not None and self.link_rate < GZIP_BELOW_BYTES_PER_S

    @staticmethod
    def compress(body: bytes) -> bytes:
        """Return body gzip-compressed at level 1 (the fastest; most of the gain)."""
        packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: the gzip format
        return packer.compress(body) + packer.flush()

    def push(self, body: bytes) -> tuple[int, dict]:
        """POST one batch to /push, gzip-compressed when the link is slow; learn its speed."""
        headers = {"Content-Type": "application/json"}
        if self.compressing():
            body = self.compress(body)
            headers["Content-Encoding"] = protocol.GZIP
        started = time.perf_counter()
        try:
            status, answer = self.request("POST", "/push", data=body, headers=headers)
        except SyncError as exc:
            if "Content-Encoding" in headers and exc.status in (400, 415):
                self.content_encodings.discard(protocol.GZIP)  # e.g. a downgraded central
            raise
        if status == 200:
            self.learn_link(len(body), time.perf_counter() - started, answer)
        return status, answer

    def learn_link(self, size: int, seconds: float, answer: dict) -> None:
        """Take central's Content-Encodings and the link's speed from a push's answer."""
        accepted = answer.get("content_encodings")
        self.content_encodings = {e for e in accepted if isinstance(e, str)} \
            if isinstance(accepted, list) else set()
        apply_ms = answer.get("apply_ms")
        if size >= MEASURE_FROM_BYTES and type(apply_ms) in (int, float) and apply_ms >= 0:
            self.link_rate = size / max(seconds - apply_ms / 1000, 0.001)

    def pull(self, cursor: int, limit: int = protocol.MAX_PULL_LIMIT) -> tuple[int, dict]:
        """GET one page of changes after the cursor."""
        return self.request("GET", "/pull", params={"cursor": cursor, "limit": limit})


def config_fingerprint(url: str, token: str) -> str:
    """Return a short, non-secret hash of a central URL and token."""
    return hashlib.sha256(f"{url}\n{token}".encode()).hexdigest()[:16]


def central_from_config(config: Mapping[str, Any]) -> Central | None:
    """Build a Central from CENTRAL_URL and CENTRAL_TOKEN, or None when unset."""
    url, token = config.get("CENTRAL_URL"), config.get("CENTRAL_TOKEN")
    if not url or not token:
        return None
    return Central(url, token, float(config.get("SYNC_CONNECT_TIMEOUT", 3)),
                   float(config.get("SYNC_READ_TIMEOUT", 30)))


# ---- push ---------------------------------------------------------------------

def first_pending(db: sqlite_utils.Database) -> int | None:
    """Return the lowest seq not yet acknowledged by central."""
    return db.execute("SELECT min(seq) FROM change WHERE pushed_at IS NULL").fetchone()[0]


def pending_count(db: sqlite_utils.Database) -> int:
    """Return how many outbox rows wait for central."""
    return db.execute("SELECT count(*) FROM change WHERE pushed_at IS NULL").fetchone()[0]


# A lap's outbox payload exactly as record_change writes it (compact JSON, keys in
# this order, ids of letters and digits): such a lap can travel in a compact lap run.
# Any other payload goes verbatim, so central checks it exactly as it is.
LAP_PAYLOAD = re.compile(r'\{"id":"([a-z][0-9a-z]*)","runner_id":"([a-z][0-9a-z]*)",'
                         r'"created_by":"([a-z][0-9a-z]*)","time":(0|[1-9][0-9]*),'
                         r'"device_id":"([a-z][0-9a-z]*)"\}')
LAP_PAYLOAD_FRAME = len('{"id":"","runner_id":"","created_by":"","time":,"device_id":""}')
RUN_FRAME = len('{"seq":,"entity":"laps","data":{"id":[],"runner_id":[],"created_by":[],'
                '"time":[],"device_id":[]}}') + 20 + 1  # + seq digits + a comma


RUN_LAPS = 8192  # laps per compact run: each run's columns are joined and let go as it ends


@dataclass
class Batch:
    """The encoded changes of one push (the body's head is stamped when it is sent)."""

    changes: bytearray   # the encoded changes, comma-separated
    seqs: list[int]
    runs: bool = False   # holds a compact lap run

    def body(self, laptop_id: str, device_time: int | None = None) -> bytes:
        """Return the push body, stamped now; the batch lets go of its changes (sent once)."""
        changes, self.changes = self.changes, bytearray()
        return b"".join([push_head(laptop_id, device_time), changes, b"]}"])


class BatchEncoder:
    """Encode outbox rows as push changes within the batch byte limit."""

    def __init__(self, budget: int, compact: bool):
        """Start an empty batch of at most budget bytes; compact: lap runs allowed."""
        self.budget, self.compact = budget, compact
        # One buffer, not a list of items: 50,000 small bytes objects would take half as
        # much memory again as their text.
        self.changes = bytearray()
        self.seqs: list[int] = []
        self.size = 0
        self.run: list[list[str]] | None = None  # id, runner_id, created_by, time, device_id
        self.run_seq = 0                          # the open run's first seq
        self.runs = False
        self.known: dict[str, str] = {}           # one copy of each repeated id

    def add(self, seq: int, entity: str, entity_id: str, payload: str) -> bool:
        """Add one outbox row; False when it does not fit any more."""
        lap = LAP_PAYLOAD.fullmatch(payload) if self.compact and entity == "lap" else None
        if lap is not None and lap.group(1) == entity_id:
            if self.run is not None and (seq != self.run_seq + len(self.run[0])
                                         or len(self.run[0]) >= RUN_LAPS):
                self.end_run()  # a run stands for consecutive seqs only
            extra = len(payload) - LAP_PAYLOAD_FRAME + 13  # quotes and commas of 5 values
            extra += RUN_FRAME if self.run is None else 0
        else:
            lap = None
            # payload is stored as JSON text already: splice it in, don't re-encode.
            item = (f'{{"seq":{seq},"entity":{json.dumps(entity)},"id":{json.dumps(entity_id)},'
                    f'"data":{payload}}}').encode()
            extra = len(item) + 1
        if self.seqs and self.size + extra > self.budget:
            return False
        if lap is None:
            self.end_run()
            self.append(item)
        else:
            if self.run is None:
                self.run = [[], [], [], [], []]
                self.run_seq = seq
            ids, runners, creators, times, devices = self.run
            values = lap.groups()
            ids.append(values[0])
            times.append(values[3])
            # Interned: a run repeats a few runner, user and laptop ids thousands of times.
            known = self.known
            runners.append(known.setdefault(values[1], values[1]))
            creators.append(known.setdefault(values[2], values[2]))
            devices.append(known.setdefault(values[4], values[4]))
        self.seqs.append(seq)
        self.size += extra
        return True

    def append(self, item: bytes) -> None:
        """Add an encoded change after the others."""
        if self.changes:
            self.changes += b","
        self.changes += item

    def end_run(self) -> None:
        """Close the open lap run into one compact item."""
        if self.run is None:
            return
        ids, runners, creators, times, devices = ('","'.join(values) for values in self.run)
        self.append(f'{{"seq":{self.run_seq},"entity":"laps","data":{{"id":["{ids}"],'
                    f'"runner_id":["{runners}"],"created_by":["{creators}"],'
                    f'"time":[{",".join(self.run[3])}],"device_id":["{devices}"]}}}}'.encode())
        self.run, self.runs = None, True

    def batch(self) -> Batch:
        """Return the encoded changes."""
        self.end_run()
        return Batch(self.changes, self.seqs, self.runs)


def head_bytes(db: sqlite_utils.Database) -> int:
    """Return an upper bound of a push body's size without its changes."""
    return len(push_head(device_id(db), 10 ** 14 - 1)) + 2


def encode_batch(db: sqlite_utils.Database, start: int, compact: bool = False) -> Batch:
    """Encode the outbox rows from seq START (one query) within the batch limits.

    Rows are read as they are encoded, not fetched all at once: a batch's rows as
    Python tuples would take several times the memory of its encoded text.
    """
    encoder = BatchEncoder(protocol.MAX_BATCH_BYTES - head_bytes(db), compact)
    rows = db.execute("SELECT seq, entity, entity_id, payload FROM change WHERE seq >= ? "
                      "ORDER BY seq LIMIT ?", [start, protocol.MAX_BATCH_CHANGES])
    try:
        for row in rows:
            if not encoder.add(*row):
                break
    finally:
        rows.close()  # ends the read (a WAL snapshot) even when the batch is full early
    return encoder.batch()


def push_head(laptop_id: str, device_time: int | None = None) -> bytes:
    """Return a push body up to its list of changes, stamped with this laptop's clock."""
    device_time = now_ms() if device_time is None else device_time
    return (f'{{"protocol":{protocol.PROTOCOL_VERSION},"device_id":{json.dumps(laptop_id)},'
            f'"device_time":{device_time},"changes":[').encode()


def build_batch(db: sqlite_utils.Database, start: int,
                compact: bool = False) -> tuple[bytes, list[int]]:
    """Encode the outbox rows from seq START as one push body within the batch limits.

    compact: consecutive laps travel as compact lap runs (protocol.py), which only a
    central that announced "laps" in its encodings accepts.
    """
    batch = encode_batch(db, start, compact)
    return batch.body(device_id(db)), batch.seqs


def as_seq(value: Any, name: str) -> int:
    """Return a seq number from central's answer or raise a protocol SyncError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SyncError(PROTOCOL, f"central's answer has no valid {name}: {value!r}")
    return value


def check_acked(db: sqlite_utils.Database, acked: int) -> None:
    """Refuse an acknowledgement of seqs this laptop never wrote."""
    last = db.execute("SELECT max(seq) FROM change").fetchone()[0] or 0
    if acked > last:
        raise SyncError(PROTOCOL, f"central acknowledges seq {acked} but this laptop's last "
                        f"change is {last}: is this device token used by another laptop?")


def mark_pushed(db: sqlite_utils.Database, acked: int, rejected: list | None = None,
                fingerprint: str | None = None, central: Central | None = None) -> int:
    """Mark rows up to ACKED as pushed and store rejected items, in one transaction."""
    with transaction(db):
        count = db.execute("UPDATE change SET pushed_at = ? WHERE seq <= ? AND pushed_at IS NULL",
                           [now_ms(), acked]).rowcount
        for item in rejected or []:
            store_rejected(db, item)
        if fingerprint:  # central has bound this token to this laptop
            set_meta(db, "push_bound", fingerprint)
        if central is not None:
            remember_encodings(db, central)
    return count


def store_rejected(db: sqlite_utils.Database, item: Any) -> None:
    """Keep one item central refused for good (inside the caller's transaction)."""
    if not isinstance(item, dict) or isinstance(item.get("seq"), bool) \
            or not isinstance(item.get("seq"), int):
        return
    row = db.execute("SELECT entity, entity_id FROM change WHERE seq = ?", [item["seq"]]).fetchone()
    entity, entity_id = row if row else ("?", "?")
    db.execute("INSERT OR REPLACE INTO rejected_change (seq, entity, entity_id, error, message, "
               "rejected_at) VALUES (?, ?, ?, ?, ?, ?)",
               [item["seq"], entity, entity_id, str(item.get("error") or "rejected")[:100],
                str(item.get("message") or "")[:500], now_ms()])


def store_clock_offset(db: sqlite_utils.Database, server_time: Any, sent: int, received: int) -> None:
    """Estimate central's clock minus this laptop's from one round trip."""
    if isinstance(server_time, int) and not isinstance(server_time, bool):
        with transaction(db):
            set_meta(db, "clock_offset_ms", str(server_time - (sent + received) // 2))


def learn_encodings(central: Central, answer: dict) -> None:
    """Take the optional push encodings central's answer announces (none if it lists none)."""
    encodings = answer.get("encodings")
    central.encodings = {e for e in encodings if isinstance(e, str)} \
        if isinstance(encodings, list) else set()


def remember_encodings(db: sqlite_utils.Database, central: Central) -> None:
    """Store central's push encodings for the next run (inside the caller's transaction)."""
    set_meta(db, "push_encodings", " ".join([central.fingerprint, *sorted(central.encodings)]))


def recall_encodings(db: sqlite_utils.Database, central: Central) -> None:
    """Start with the push encodings this URL and token announced in an earlier run."""
    stored = (get_meta(db, "push_encodings") or "").split()
    if not central.encodings and stored[:1] == [central.fingerprint]:
        central.encodings = set(stored[1:])


def send(central: Central, laptop_id: str, batch: Batch) -> tuple[int, dict, int, int]:
    """POST one batch; return (status, answer, sent at, answered at) in laptop ms."""
    sent = now_ms()
    status, answer = central.push(batch.body(laptop_id, sent))
    return status, answer, sent, now_ms()


def settle(db: sqlite_utils.Database, central: Central, status: int, answer: dict,
           sent: int, received: int, result: SyncResult) -> int | None:
    """Mark what central's answer to a batch acknowledged; return the next start."""
    acked = as_seq(answer.get("acked_seq"), "acked_seq")
    check_acked(db, acked)
    if status == 409:
        if answer.get("error") != "seq_gap":
            raise SyncError(REFUSED, f"central answered 409: {answer.get('message', '')}"[:300], 409)
        result.pushed += mark_pushed(db, acked)
        return as_seq(answer.get("resume_from"), "resume_from")
    learn_encodings(central, answer)
    rejected = answer.get("rejected") or []
    result.pushed += mark_pushed(db, acked, rejected if isinstance(rejected, list) else [],
                                 central.fingerprint, central)
    result.rejected += len(rejected) if isinstance(rejected, list) else 0
    store_clock_offset(db, answer.get("server_time"), sent, received)
    return first_pending(db)


def push_once(db: sqlite_utils.Database, central: Central, start: int,
              result: SyncResult, allow_empty: bool = False) -> int | None:
    """Send one batch from seq START; mark what central acknowledged; return the next start."""
    batch = encode_batch(db, start, protocol.LAP_RUN in central.encodings)
    if not batch.seqs and not allow_empty:
        raise SyncError(PROTOCOL, f"central asks to resume from seq {start}, which this laptop "
                        "does not have")
    return settle(db, central, *send(central, device_id(db), batch), result)


def compact_refused(db: sqlite_utils.Database, central: Central, batch: Batch,
                    error: SyncError) -> SyncError:
    """Stop sending lap runs after central refused a batch holding one (e.g. a downgrade)."""
    if error.status == 422 and batch.runs:
        central.encodings.discard(protocol.LAP_RUN)
        with transaction(db):
            remember_encodings(db, central)
    return error


def push(db: sqlite_utils.Database, central: Central, result: SyncResult,
         progress: Callable[[int], None] | None = None) -> None:
    """Push every pending change in bounded batches until none is left.

    Pipelined: while central applies batch n, this laptop encodes batch n + 1; as
    soon as central acknowledges all of n, n + 1 goes out and n is marked pushed
    meanwhile. A batch is marked only after central's answer to it, as before.
    """
    start, seen = first_pending(db), Counter()
    # The backlog found now: laps typed meanwhile go with the next sync. Chasing them
    # under a steady stream of laps kept one run going, a few laps and two commits
    # (fsyncs) per round trip (bench/bench_load.py).
    end = db.execute("SELECT max(seq) FROM change").fetchone()[0] or 0
    recall_encodings(db, central)
    if start is None and get_meta(db, "push_bound") != central.fingerprint:
        # An empty push binds the token to this laptop before the first pull, so
        # that central leaves this laptop's own changes out of the pull.
        last = db.execute("SELECT max(seq) FROM change").fetchone()[0] or 0
        start = push_once(db, central, last + 1, result, allow_empty=True)
    laptop_id, batch, inflight = device_id(db), None, None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lapsync-push") as sender:
        for _ in range(MAX_BATCHES_PER_RUN):
            if inflight is None:  # not pipelined: start from the first pending change
                if start is None or start > end:
                    return
                seen[start] += 1
                if seen[start] > 2:  # central keeps answering without moving on
                    raise SyncError(PROTOCOL, f"central does not acknowledge seq {start}")
                batch = encode_batch(db, start, protocol.LAP_RUN in central.encodings)
                if not batch.seqs:
                    raise SyncError(PROTOCOL, f"central asks to resume from seq {start}, which "
                                    "this laptop does not have")
                inflight = sender.submit(send, central, laptop_id, batch)
            batch, inflight, start = push_step(db, central, sender, laptop_id, batch, inflight,
                                               result, progress, end)


Step = tuple[Batch | None, Future | None, int | None]  # next batch, its request, next start


def push_step(db: sqlite_utils.Database, central: Central, sender: ThreadPoolExecutor,
              laptop_id: str, batch: Batch, inflight: Future, result: SyncResult,
              progress: Callable[[int], None] | None, end: int | None = None) -> Step:
    """Settle the batch in flight, sending the next one first when central took all of it.

    END: the last seq of this run's backlog; nothing after it is sent ahead.
    """
    ahead = encode_batch(db, batch.seqs[-1] + 1, protocol.LAP_RUN in central.encodings)
    try:
        status, answer, sent, received = inflight.result()
    except SyncError as exc:
        raise compact_refused(db, central, batch, exc) from None
    following = None
    if status == 200 and answer.get("acked_seq") == batch.seqs[-1] and ahead.seqs \
            and (end is None or batch.seqs[-1] < end):
        following = sender.submit(send, central, laptop_id, ahead)
    before = result.pushed
    start = settle(db, central, status, answer, sent, received, result)
    if progress:
        progress(result.pushed - before)
    return (ahead, following, start) if following else (None, None, start)


# ---- pull ---------------------------------------------------------------------

def check_hlc(value: Any) -> str:
    """Return a valid hlc string or raise ValueError."""
    if not isinstance(value, str) or not protocol.HLC_PATTERN.fullmatch(value):
        raise ValueError(f"invalid hlc {value!r}")
    return value


def text(data: dict, key: str, limit: int = 200) -> str:
    """Return a required, non-empty string field or raise ValueError."""
    value = data[key]
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise ValueError(f"invalid {key}")
    return value


def integer(data: dict, key: str) -> int:
    """Return a required integer field or raise ValueError."""
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"invalid {key}")
    return value


def local_origin(db: sqlite_utils.Database, entity: str, entity_id: str,
                 local_hlc: str | None, me: str) -> str:
    """Return who wrote the local version (tables without an origin column)."""
    row = db.execute("SELECT hlc, origin FROM lww_origin WHERE entity = ? AND entity_id = ?",
                     [entity, entity_id]).fetchone()
    return row[1] if row and row[0] == local_hlc else me


def remember_origin(db: sqlite_utils.Database, entity: str, entity_id: str, stamp: str,
                    origin: str) -> None:
    """Remember the origin of a pulled write that won."""
    db.execute("INSERT OR REPLACE INTO lww_origin (entity, entity_id, hlc, origin) "
               "VALUES (?, ?, ?, ?)", [entity, entity_id, stamp, origin])


def apply_runner(db: sqlite_utils.Database, data: dict, me: str) -> None:
    """Upsert a pulled runner if its (hlc, origin) beats the local one; apply a merge."""
    runner = {"id": text(data, "id", 64), "start_number": integer(data, "start_number"),
              "name": text(data, "name", 100), "class": text(data, "class", 20),
              "grade": integer(data, "grade"), "hlc": check_hlc(data["hlc"]),
              "origin": text(data, "origin", 64)}
    merged_into = text(data, "merged_into", 64) if data.get("merged_into") is not None else None
    if merged_into == runner["id"]:
        raise ValueError("runner merged into itself")
    clock.observe(db, runner["hlc"])
    row = db.execute("SELECT hlc, origin FROM runner WHERE id = ?", [runner["id"]]).fetchone()
    if not row or (runner["hlc"], runner["origin"]) > (row[0], row[1]):
        db.execute("INSERT INTO runner (id, start_number, name, class, grade, hlc, origin) "
                   "VALUES (:id, :start_number, :name, :class, :grade, :hlc, :origin) "
                   "ON CONFLICT (id) DO UPDATE SET start_number = excluded.start_number, "
                   "name = excluded.name, class = excluded.class, grade = excluded.grade, "
                   "hlc = excluded.hlc, origin = excluded.origin", runner)
    if merged_into is not None:  # final, whatever the LWW order: not part of the register
        db.execute("INSERT INTO runner_merge (runner_id, merged_into) VALUES (?, ?) "
                   "ON CONFLICT (runner_id) DO UPDATE SET merged_into = excluded.merged_into",
                   [runner["id"], merged_into])
    relink_merged(db, runner["id"])


def relink_merged(db: sqlite_utils.Database, runner_id: str) -> None:
    """Point laps of a merged runner to its survivor once both are here (RUNNER_ID is either)."""
    db.execute("UPDATE lap SET runner_id = (SELECT merged_into FROM runner_merge "
               "WHERE runner_merge.runner_id = lap.runner_id) "
               "WHERE runner_id IN (SELECT m.runner_id FROM runner_merge m "
               "JOIN runner s ON s.id = m.merged_into WHERE ? IN (m.runner_id, m.merged_into))",
               [runner_id])


def apply_user(db: sqlite_utils.Database, data: dict, me: str) -> None:
    """Upsert a pulled user (with password hash, for offline login) by LWW."""
    user = {"id": text(data, "id", 64), "name": text(data, "name", 50),
            "password_hash": text(data, "password_hash", 500), "role": text(data, "role", 20),
            "created_at": integer(data, "created_at"), "hlc": check_hlc(data["hlc"])}
    origin = text(data, "origin", 64)
    clock.observe(db, user["hlc"])
    row = db.execute("SELECT hlc FROM user WHERE id = ?", [user["id"]]).fetchone()
    if row and (user["hlc"], origin) <= (row[0], local_origin(db, "user", user["id"], row[0], me)):
        return
    db.execute("INSERT INTO user (id, name, password_hash, role, created_at, hlc) "
               "VALUES (:id, :name, :password_hash, :role, :created_at, :hlc) "
               "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
               "password_hash = excluded.password_hash, role = excluded.role, "
               "hlc = excluded.hlc", user)
    remember_origin(db, "user", user["id"], user["hlc"], origin)


def apply_void(db: sqlite_utils.Database, data: dict, me: str) -> None:
    """Void or restore a local lap if the pulled decision is newer (LWW)."""
    lap_id, stamp, origin = text(data, "lap_id", 64), check_hlc(data["hlc"]), text(data, "origin", 64)
    if not isinstance(data["voided"], bool):
        raise ValueError("invalid voided")
    clock.observe(db, stamp)
    row = db.execute("SELECT void_hlc FROM lap WHERE id = ?", [lap_id]).fetchone()
    if row is None:  # a lap of another device: its effect arrives in the totals
        return
    if row[0] is not None and (stamp, origin) <= (row[0], local_origin(db, "lap_void", lap_id, row[0], me)):
        return
    values = [None, None, None]
    if data["voided"]:
        by = data.get("by")
        known = isinstance(by, str) and db.execute("SELECT 1 FROM user WHERE id = ?", [by]).fetchone()
        values = [integer(data, "at"), by if known else None,
                  str(data.get("reason") or "voided centrally")[:200]]
    db.execute("UPDATE lap SET voided_at = ?, voided_by = ?, void_reason = ?, void_hlc = ? "
               "WHERE id = ?", [*values, stamp, lap_id])
    remember_origin(db, "lap_void", lap_id, stamp, origin)


def apply_setting(db: sqlite_utils.Database, data: dict, me: str) -> None:
    """Store a pulled event setting in meta as `setting:<key>` (JSON value)."""
    set_meta(db, f"setting:{text(data, 'key', 100)}", json.dumps(data["value"]))


def apply_total(db: sqlite_utils.Database, data: dict, me: str) -> None:
    """Store how many laps of a runner other devices recorded."""
    laps = integer(data, "other_laps")
    if laps < 0:
        raise ValueError("invalid other_laps")
    db.execute("INSERT INTO runner_other_laps (runner_id, laps) VALUES (?, ?) "
               "ON CONFLICT (runner_id) DO UPDATE SET laps = excluded.laps",
               [text(data, "runner_id", 64), laps])


APPLY = {"runner": apply_runner, "user": apply_user, "lap_void": apply_void,
         "setting": apply_setting, "total": apply_total}


def apply_change(db: sqlite_utils.Database, change: Any, me: str) -> bool:
    """Apply one pulled change (never to the outbox); record it if unusable; return success."""
    db.execute("SAVEPOINT pulled_change")
    try:
        apply = APPLY.get(change.get("entity")) if isinstance(change, dict) else None
        if apply is None or not isinstance(change.get("data"), dict):
            raise ValueError(f"unknown entity {change.get('entity') if isinstance(change, dict) else change!r}")
        apply(db, change["data"], me)
        ok = True
    except (KeyError, TypeError, ValueError, sqlite3.IntegrityError) as exc:
        db.execute("ROLLBACK TO pulled_change")
        store_rejected_pull(db, change, exc)
        ok = False
    db.execute("RELEASE pulled_change")
    return ok


def store_rejected_pull(db: sqlite_utils.Database, change: Any, exc: Exception) -> None:
    """Keep a pulled item that could not be applied, for sync-status."""
    change = change if isinstance(change, dict) else {"data": change}
    cursor = change.get("cursor")
    db.execute("INSERT OR REPLACE INTO rejected_pull (cursor, entity, entity_id, error, data, "
               "rejected_at) VALUES (?, ?, ?, ?, ?, ?)",
               [cursor if isinstance(cursor, int) and not isinstance(cursor, bool) else None,
                str(change.get("entity"))[:50], str(change.get("id"))[:64],
                f"{exc.__class__.__name__}: {exc}"[:300], json.dumps(change)[:10_000], now_ms()])


def check_page(page: dict, cursor: int) -> tuple[list, int, bool]:
    """Return (changes, next_cursor, more) of a pull answer or raise a protocol SyncError."""
    if page.get("protocol") != protocol.PROTOCOL_VERSION:
        raise SyncError(PROTOCOL, f"central speaks protocol {page.get('protocol')!r}, "
                        f"this laptop {protocol.PROTOCOL_VERSION}")
    changes, more = page.get("changes"), page.get("more")
    next_cursor = as_seq(page.get("next_cursor"), "next_cursor")
    if not isinstance(changes, list) or not isinstance(more, bool) or next_cursor < cursor:
        raise SyncError(PROTOCOL, "central's pull answer is malformed")
    return changes, next_cursor, more


def apply_page(db: sqlite_utils.Database, changes: list, next_cursor: int, result: SyncResult) -> None:
    """Apply one page and store the new cursor, in one transaction."""
    with transaction(db):
        me = device_id(db)
        for change in changes:
            ok = apply_change(db, change, me)
            result.pulled[change.get("entity") if ok else "not applied"] += 1
        set_meta(db, "pull_cursor", str(next_cursor))


def restart_pull(db: sqlite_utils.Database, answer: dict, restarted: bool) -> int:
    """Move the cursor where central says (its database was replaced); return it."""
    if answer.get("error") != "cursor_ahead" or restarted:
        raise SyncError(REFUSED, f"central answered 409 to a pull: {answer.get('message', '')}"[:300], 409)
    cursor = as_seq(answer.get("resume_from"), "resume_from")
    with transaction(db):
        set_meta(db, "pull_cursor", str(cursor))
    return cursor


def pull(db: sqlite_utils.Database, central: Central, result: SyncResult) -> None:
    """Pull pages from the stored cursor until central says there is no more."""
    cursor, restarted = int(get_meta(db, "pull_cursor", "0")), False
    for _ in range(MAX_PAGES_PER_RUN):
        status, page = central.pull(cursor)
        if status == 409:
            cursor = restart_pull(db, page, restarted)
            restarted = True
            continue
        changes, next_cursor, more = check_page(page, cursor)
        apply_page(db, changes, next_cursor, result)
        if not more:
            return
        if next_cursor == cursor and not changes:
            raise SyncError(PROTOCOL, f"central says there is more after cursor {cursor} "
                            "but sends nothing")
        cursor = next_cursor


# ---- one sync run and its state -----------------------------------------------

def backoff_ms(failures: int, rng: random.Random | None = None) -> int:
    """Return a full-jitter exponential backoff delay for the n-th failure in a row."""
    ceiling = min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (min(max(failures, 1), 30) - 1))
    return int((rng or random).uniform(0, ceiling))


def sync_state(db: sqlite_utils.Database) -> dict:
    """Return the sync state kept in meta."""
    rows = db.execute(f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(STATE_KEYS))})",
                      list(STATE_KEYS)).fetchall()
    return dict(rows)


def blocked(db: sqlite_utils.Database, fingerprint: str, now: int | None = None) -> str | None:
    """Tell why the background job must not try now: 'auth', 'backoff' or None."""
    state = sync_state(db)
    if state.get("auth_failed") == fingerprint:
        return "auth"
    now = now if now is not None else now_ms()
    # No backoff is longer than the cap: one further ahead was set before this laptop's
    # clock went back (a correction, a restart) and must not stall sync for hours.
    if now < int(state.get("backoff_until_ms") or 0) <= now + BACKOFF_CAP_MS:
        return "backoff"
    return None


def record_success(db: sqlite_utils.Database) -> None:
    """Note a complete sync; clear failures, backoff and auth state."""
    with transaction(db):
        for key, value in [("last_success_ms", str(now_ms())), ("failures", "0"),
                           ("backoff_until_ms", "0"), ("auth_failed", "")]:
            set_meta(db, key, value)


def record_failure(db: sqlite_utils.Database, error: SyncError, fingerprint: str) -> None:
    """Note a failed sync: auth failures stick to this URL and token, others back off."""
    with transaction(db):
        now = now_ms()
        set_meta(db, "last_error", f"{error.kind}: {error.message}"[:500])
        set_meta(db, "last_error_ms", str(now))
        if error.kind == AUTH:
            set_meta(db, "auth_failed", fingerprint)
            return
        failures = int(get_meta(db, "failures", "0") or 0) + 1
        set_meta(db, "failures", str(failures))
        set_meta(db, "backoff_until_ms", str(now + backoff_ms(failures)))


def reset_state(db: sqlite_utils.Database) -> None:
    """Forget auth failures and backoff (after `connect`)."""
    with transaction(db):
        for key, value in [("auth_failed", ""), ("failures", "0"), ("backoff_until_ms", "0")]:
            set_meta(db, key, value)


def sync_once(db: sqlite_utils.Database, central: Central, force: bool = False,
              progress: Callable[[int], None] | None = None) -> SyncResult:
    """Push, then pull; record success or the classified error; return what moved."""
    result = SyncResult()
    if not force and (reason := blocked(db, central.fingerprint)):
        result.skipped = reason
        return result
    try:
        push_error = None
        try:
            push(db, central, result, progress)
        except SyncError as exc:
            if exc.kind in (TRANSIENT, AUTH):
                raise
            push_error = exc  # a refused batch must not stop the roster arriving
        pull(db, central, result)
        if push_error:
            raise push_error
    except SyncError as exc:
        result.error = exc
    except sqlite3.OperationalError as exc:  # e.g. locked longer than busy_timeout
        result.error = SyncError(TRANSIENT, f"local database busy: {exc}")
    if result.error:
        record_failure(db, result.error, central.fingerprint)
    else:
        record_success(db)
    return result


def refresh_central_config(app: Flask) -> None:
    """Take CENTRAL_URL/CENTRAL_TOKEN from the instance config file when it changed."""
    path = config_file(app)
    try:
        info = path.stat()
    except OSError:
        return
    seen = (info.st_mtime_ns, info.st_size, info.st_ino)  # connect replaces the file
    if app.extensions.get("lapsync_config_seen") == seen:
        return
    app.extensions["lapsync_config_seen"] = seen
    values: dict = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), values)
    for key in ("CENTRAL_URL", "CENTRAL_TOKEN"):
        if key in values and f"LAPSYNC_{key}" not in os.environ:  # the environment wins
            app.config[key] = values[key]


def sync_app(app: Flask, cache: dict | None = None) -> SyncResult | None:
    """Run one background sync with its own connection (no request context)."""
    if not app.testing:
        refresh_central_config(app)
    central = central_from_config(app.config)
    if central is None:
        return None
    if cache is not None:  # keep one HTTP session (keep-alive) per URL and token
        central = cache.setdefault(central.fingerprint, central)
    db = connect(app.config["DATABASE"])
    try:
        return sync_once(db, central)
    finally:
        db.close()


# ---- settings pulled from central ---------------------------------------------

def min_lap_seconds(db: sqlite_utils.Database, default: float) -> float:
    """Return the event's minimum lap time: central's setting if pulled, else DEFAULT."""
    raw = get_meta(db, "setting:min_lap_seconds")
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86_400:
        return default
    return value


def other_laps(db: sqlite_utils.Database, runner_id: str) -> int:
    """Return the runner's laps recorded on other devices (as last pulled)."""
    row = db.execute("SELECT laps FROM runner_other_laps WHERE runner_id = ?", [runner_id]).fetchone()
    return row[0] if row else 0


# ---- status -------------------------------------------------------------------

STATUS_SQL = """
WITH pending AS (
    SELECT count(*) AS n, coalesce(sum(entity = 'lap'), 0) AS laps
    FROM change WHERE pushed_at IS NULL
)
SELECT pending.n, pending.laps,
       (SELECT created_at FROM change WHERE pushed_at IS NULL ORDER BY seq LIMIT 1),
       (SELECT count(*) FROM rejected_change) + (SELECT count(*) FROM rejected_pull),
       (SELECT json_group_object(key, value) FROM meta
        WHERE key IN (SELECT value FROM json_each(?)))
FROM pending
"""


def waiting_text(pending: int, laps: int, oldest_ms: int | None, now: int) -> str:
    """Describe the backlog: '37 laps waiting (oldest 14 min)'."""
    if not pending:
        return gettext("nothing waiting")
    if laps == pending:
        text = ngettext("%(num)s lap waiting", "%(num)s laps waiting", pending)
    else:
        text = ngettext("%(num)s change waiting", "%(num)s changes waiting", pending)
    if oldest_ms is None:
        return text
    return gettext("%(waiting)s (oldest %(age)s)", waiting=text, age=age(now - oldest_ms))


def status_text(state: dict, central_url: str | None, fingerprint: str | None,
                waiting: str, pending: int, now: int) -> tuple[str, str]:
    """Return (state, text) for the top bar: synced, offline, not authorised, ..."""
    success, error_ms = int(state.get("last_success_ms") or 0), int(state.get("last_error_ms") or 0)
    if not central_url:
        kind, text_ = "not_connected", gettext("not connected to central")
    elif fingerprint and state.get("auth_failed") == fingerprint:
        kind, text_ = "unauthorised", gettext("device not authorised")
    elif error_ms > success:
        return "offline", gettext("offline – %(waiting)s", waiting=waiting)
    elif success:
        kind, text_ = "synced", gettext("synced %(age)s ago", age=age(now - success))
    else:
        kind, text_ = "never", gettext("not synced yet")
    return kind, text_ + (f" – {waiting}" if pending else "")


def sync_status(db: sqlite_utils.Database, central_url: str | None, fingerprint: str | None,
                now: int | None = None) -> dict:
    """Return the sync state for the page and the CLI, from one cheap query."""
    now = now_ms() if now is None else now
    pending, laps, oldest, rejected, meta = db.execute(STATUS_SQL, [json.dumps(STATE_KEYS)]).fetchone()
    state = json.loads(meta or "{}")
    kind, text_ = status_text(state, central_url, fingerprint,
                              waiting_text(pending, laps, oldest, now), pending, now)
    if rejected:  # refused for good (e.g. an admin only central may make): seen on every page
        text_ += " – " + ngettext("%(num)s change refused (see sync-status)",
                                  "%(num)s changes refused (see sync-status)", rejected)
    level = {"synced": "good", "never": "warn", "not_connected": "neutral"}.get(kind, "bad")
    number = lambda key: int(state.get(key) or 0) or None  # noqa: E731
    return {"state": kind, "text": text_, "level": level, "central_url": central_url,
            "pending": pending, "pending_laps": laps, "oldest_pending_ms": oldest,
            "oldest_pending_age_s": None if oldest is None else max(0, (now - oldest) // 1000),
            "last_success_ms": number("last_success_ms"), "last_error": state.get("last_error") or None,
            "last_error_ms": number("last_error_ms"), "failures": number("failures") or 0,
            "backoff_until_ms": number("backoff_until_ms"),
            "clock_offset_ms": int(state["clock_offset_ms"]) if state.get("clock_offset_ms") else None,
            "authorised": state.get("auth_failed") != fingerprint if fingerprint else None,
            "rejected": rejected}


def status_for(app: Flask, db: sqlite_utils.Database) -> dict:
    """Return sync_status with the app's configured central."""
    url, token = app.config.get("CENTRAL_URL"), app.config.get("CENTRAL_TOKEN")
    return sync_status(db, url, config_fingerprint(url, token) if url and token else None)


def rejected_items(db: sqlite_utils.Database, limit: int = 50) -> list[dict]:
    """Return the pushed and pulled items that central or this laptop refused."""
    pushed = list(db.query("SELECT 'push' AS direction, seq AS ref, entity, entity_id, error, "
                           "message, rejected_at FROM rejected_change ORDER BY seq LIMIT ?", [limit]))
    pulled = list(db.query("SELECT 'pull' AS direction, cursor AS ref, entity, entity_id, error, "
                           "'' AS message, rejected_at FROM rejected_pull ORDER BY cursor LIMIT ?",
                           [limit]))
    return pushed + pulled


# ---- connect: the instance config file ----------------------------------------

def validate_url(url: str) -> str:
    """Return a clean central URL (http or https) or raise InputError."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError on a bad port
    except ValueError:
        parts = None
    if not parts or len(url) > MAX_URL or parts.scheme not in ("http", "https") \
            or not parts.hostname or re.search(r"\s", url) or parts.username or parts.password \
            or parts.query or parts.fragment:
        raise InputError("invalid_url", f"{url[:80]!r} is not a central URL: use http://host:port "
                         "or https://host (no user, query or fragment).", 400)
    return url.rstrip("/")


def validate_token(token: str) -> str:
    """Return the device token or raise InputError."""
    token = (token or "").strip()
    if not token:
        raise InputError("invalid_token", "The device token is empty: copy the token that "
                         "`flask --app sync register-device NAME` printed.", 400)
    if len(token) > MAX_TOKEN or not TOKEN_RE.match(token):
        raise InputError("invalid_token", f"A device token is at most {MAX_TOKEN} visible ASCII "
                         "characters without spaces.", 400)
    return token


def config_file(app: Flask) -> Path:
    """Return the instance config file (config INSTANCE_CONFIG_FILE overrides it)."""
    return Path(app.config.get("INSTANCE_CONFIG_FILE") or Path(app.instance_path) / "config.py")


def write_central_config(path: Path, url: str, token: str) -> None:
    """Create or update the CENTRAL_URL and CENTRAL_TOKEN lines only (mode 600)."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    wanted = {"CENTRAL_URL": f"CENTRAL_URL = {url!r}", "CENTRAL_TOKEN": f"CENTRAL_TOKEN = {token!r}"}
    for key, line in wanted.items():
        pattern = re.compile(rf"^\s*{key}\s*=")
        hits = [i for i, old in enumerate(lines) if pattern.match(old)]
        if hits:
            lines[hits[0]] = line
            lines = [old for i, old in enumerate(lines) if i not in hits[1:]]
        else:
            lines.append(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never world-readable
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temp, 0o600)  # O_CREAT's mode does not apply to a leftover temp file
    temp.replace(path)


# ---- web ----------------------------------------------------------------------

@bp.get("/status")
def status():
    """Answer the sync state shown in the top bar (polled by sync_status.js)."""
    info = status_for(current_app, get_db())
    return jsonify({key: info[key] for key in ("state", "text", "level", "pending")})


def init_app(app: Flask) -> None:
    """Register the status endpoint, the template helper and the CLI commands."""
    from .sync_cli import connect_command, sync_command, sync_status_command
    app.register_blueprint(bp)
    app.context_processor(lambda: {"sync_status": lambda: status_for(current_app, get_db())})
    for command in (connect_command, sync_command, sync_status_command):
        app.cli.add_command(command)
