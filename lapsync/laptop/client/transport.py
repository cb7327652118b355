"""Talking to central: the HTTP session, error classes and what a sync run moved."""
from __future__ import annotations

import hashlib
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

import requests

from lapsync import hlc, protocol
from lapsync.protocol.columns import COLUMNS_TYPE, JSON_TYPE, MAGIC
from lapsync.protocol.limits import EVENT_HEADER, FOLLOWS_HEADER

T = TypeVar("T")
TRANSIENT, AUTH, REFUSED, PROTOCOL = "transient", "auth", "refused", "protocol"
# A push goes gzip-compressed when the link to central carried less than this on the
# last large push (bytes/s: the push's size over its round trip less central's own
# time, apply_ms). zlib at level 1 packs a batch of laps ~3.5x at ~80 MB/s, which
# saves more time than it costs on slow links only (docs/BENCHMARKS.md).
GZIP_BELOW_BYTES_PER_S = 25_000_000
MEASURE_FROM_BYTES = 256_000      # a smaller push tells more of latency than of bandwidth


class SyncError(Exception):
    """A failed sync step, classified: transient, auth, refused (4xx) or protocol."""

    def __init__(self, kind: str, message: str, status: int | None = None):
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status


class EventChanged(SyncError):
    """Central started the next event: it refuses this laptop's changes of the last one."""

    def __init__(self, message: str):
        super().__init__(REFUSED, message, 409)


@dataclass
class SyncResult:
    """What one sync run moved, and why it stopped early if it did."""

    pushed: int = 0
    rejected: int = 0
    pulled: Counter = field(default_factory=Counter)
    skipped: str | None = None
    error: SyncError | None = None
    resend: bool = False  # central lost changes it had acknowledged (restored): push them again
    new_event: bool = False  # central started the next event: this laptop started it too

    @property
    def pulled_total(self) -> int:
        """Return how many pulled changes were applied or recorded."""
        return sum(self.pulled.values())


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
                 read_timeout: float = 30.0, clock_bound_s: float = hlc.MAX_AHEAD_S):
        self.url, self.token = url.rstrip("/"), token
        # How far ahead of this laptop's and central's clocks a pulled stamp may be.
        self.clock_bound_ms = round(clock_bound_s * 1000)
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}",
                                     "Accept": "application/json"})
        self.encodings: set[str] = set()  # optional push encodings central announced
        self.content_encodings: set[str] = set()  # Content-Encodings central accepts
        self.content_types: set[str] = set()      # push body types central announced (JSON always)
        self.link_rate: float | None = None  # bytes/s to central, from the last large push
        self.gzip: bool | None = None        # None: when the link is slow; True/False: forced
        self.event: str | None = None        # the event this laptop counts for (its last pull)

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

    def push(self, body: bytes, follows: int | None = None) -> tuple[int, dict]:
        """POST one batch (JSON or columnar) to /push, gzip-compressed when the link is slow;
        learn its speed. follows: the first seq of the batch sent before it, still unanswered."""
        content_type = COLUMNS_TYPE if body.startswith(MAGIC) else JSON_TYPE  # JSON starts with {
        headers = {"Content-Type": content_type}
        if follows is not None:
            headers[FOLLOWS_HEADER] = str(follows)
        if self.event:
            headers[EVENT_HEADER] = self.event
        if self.compressing():
            body = self.compress(body)
            headers["Content-Encoding"] = protocol.GZIP
        started = time.perf_counter()
        try:
            status, answer = self.request("POST", "/push", data=body, headers=headers)
        except SyncError as exc:
            if exc.status in (400, 415):  # e.g. a downgraded central: plain JSON from now on
                if "Content-Encoding" in headers:
                    self.content_encodings.discard(protocol.GZIP)
                if content_type == COLUMNS_TYPE:
                    self.content_types.discard(COLUMNS_TYPE)
            raise
        if status == 200:
            self.learn_link(len(body), time.perf_counter() - started, answer)
        return status, answer

    def learn_link(self, size: int, seconds: float, answer: dict) -> None:
        """Take central's Content-Encodings, body types and the link's speed from a push's answer."""
        accepted = answer.get("content_encodings")
        self.content_encodings = {e for e in accepted if isinstance(e, str)} \
            if isinstance(accepted, list) else set()
        types = answer.get("content_types")
        self.content_types = {t for t in types if isinstance(t, str)} \
            if isinstance(types, list) else set()
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
                   float(config.get("SYNC_READ_TIMEOUT", 30)),
                   float(config.get("MAX_CLOCK_AHEAD_S", hlc.MAX_AHEAD_S)))



def decoded(check: Callable[..., T], *args: Any) -> T:
    """Run a protocol check of central's answer; its ProtocolError becomes a protocol SyncError."""
    try:
        return check(*args)
    except protocol.ProtocolError as exc:
        raise SyncError(PROTOCOL, exc.message) from None


def as_seq(value: Any, name: str) -> int:
    """Return a seq number from central's answer or raise a protocol SyncError."""
    return decoded(protocol.answer_seq, value, name)
