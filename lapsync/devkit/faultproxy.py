"""A fault-injecting HTTP proxy on loopback, between a laptop and central.

It forwards each HTTP/1.x request of a laptop's keep-alive connection to central
on a fresh upstream connection, and can, per connection or per request:

  refuse     reset the laptop's new connection (RST) before reading anything
  delay      hold central's answer back for a while (after central committed)
  drop       forward the request, read central's answer, close without sending it
             (central committed; the laptop never hears of it)
  truncate   send only the head and part of the body of central's answer, then close
  cut        send central only part of the request body, then close both sides
             (central must not commit half a batch)
  5xx        answer 502, 503 or 504 itself: before central saw the request, or
             instead of central's answer (after central committed)
  hold       (scripted only) keep the laptop waiting until `release` is set

Faults come from a seeded Schedule (random.Random(seed): the n-th connection and
the n-th request draw the same fault in every run with that seed) or are scripted
for the n-th push (`faults[n] = Fault(...)`, as the integration tests do) or for the next
requests of a method and path (`path_faults["POST /laps"] = [Fault(...)]`). `counts`
tallies what was done, by kind. `heal()` ends all faults. `rate` limits the
throughput in each direction (bytes/s, shared by all connections like one link).

Standard library only; listens on 127.0.0.1 only. Used by tests/system/test_integration.py,
tests/core/test_devkit_faultproxy.py, bench/chaos.py and bench/bench_push.py.
"""
from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

KINDS = ("refuse", "delay", "drop", "truncate", "cut", "5xx")
CHUNK = 16 * 1024
UPSTREAM_TIMEOUT_S = 60.0
ERROR_PAGES = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass
class Exchange:
    """One HTTP request that went through the proxy, and central's answer to it."""

    method: str
    path: str
    body: bytes
    push: int | None = None          # 1, 2, ... for POST /api/v1/push
    status: int | None = None
    answer: bytes | None = None


@dataclass
class Fault:
    """What the proxy does to one request: hooks around forwarding, and the answer's fate.

    respond: "pass" forwards central's answer, "drop" closes the laptop's connection
    without it, "hold" keeps the laptop waiting (held is set) until release,
    "truncate" sends part of it, "error" sends `status` instead (forwarding the
    request first only if `forward`), "cut" sends central part of the request.
    delay_s holds the answer back first. answered runs once central's answer is read.
    """

    respond: str = "pass"
    before: Callable[[Exchange], None] | None = None
    after: Callable[[Exchange], None] | None = None
    answered: Callable[[Exchange], None] | None = None
    delay_s: float = 0.0
    status: int = 503
    forward: bool = True

    @property
    def kind(self) -> str | None:
        """Return the kind counted for this fault (None for a plain pass)."""
        if self.respond == "error":
            return "5xx"
        if self.respond in ("drop", "truncate", "cut", "hold"):
            return self.respond
        return "delay" if self.delay_s > 0 else None


@dataclass
class Message:
    """One parsed HTTP message: its first line, headers, raw bytes and body."""

    first: str
    headers: dict
    raw: bytes
    body: bytes


def read_message(reader, response: bool) -> Message | None:
    """Read one HTTP/1.x message (Content-Length, chunked or until EOF); None at EOF."""
    first = reader.readline(65537)
    if not first:
        return None
    head, headers = [first], {}
    while True:
        line = reader.readline(65537)
        if not line:
            raise ConnectionError("message cut off in its headers")
        head.append(line)
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raw, body = b"", b""
    if "content-length" in headers:
        body = reader.read(int(headers["content-length"]))
        if len(body) < int(headers["content-length"]):
            raise ConnectionError("message cut off in its body")
        raw = body
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = reader.readline(65537)
            size = int(size_line.split(b";")[0], 16)
            chunk = reader.read(size + 2)
            raw, body = raw + size_line + chunk, body + chunk[:size]
            if size == 0:
                break
    elif response:
        body = raw = reader.read()
    return Message(first.decode("latin-1").strip(), headers, b"".join(head) + raw, body)


@dataclass
class Schedule:
    """Seeded random faults: each new connection may be refused, each request may get a fault.

    Probabilities are per connection (refuse) and per request (the others; at most
    one fault per request). Delays are uniform in [min_delay_s, max_delay_s].
    """

    seed: int | str
    refuse: float = 0.0
    delay: float = 0.0
    drop: float = 0.0
    truncate: float = 0.0
    cut: float = 0.0
    error: float = 0.0
    min_delay_s: float = 0.05
    max_delay_s: float = 2.0

    def __post_init__(self) -> None:
        # Two streams: connections and requests interleave differently from run to
        # run, yet the n-th connection and the n-th request always draw the same.
        self.connections = random.Random(f"{self.seed}/connections")
        self.rng = random.Random(f"{self.seed}/requests")
        self.lock = threading.Lock()

    def refuses(self) -> bool:
        """Draw whether the next new connection is refused."""
        with self.lock:
            return self.connections.random() < self.refuse

    def draw(self) -> Fault:
        """Draw the fault of the next request (a plain Fault when none)."""
        with self.lock:
            x, rng = self.rng.random(), self.rng
            for kind in ("delay", "drop", "truncate", "cut", "error"):
                x -= getattr(self, kind)
                if x < 0:
                    break
            else:
                return Fault()
            if kind == "delay":
                return Fault(delay_s=rng.uniform(self.min_delay_s, self.max_delay_s))
            if kind == "error":
                return Fault(respond="error", status=rng.choice(sorted(ERROR_PAGES)),
                             forward=rng.random() < 0.5)
            return Fault(respond=kind)


class Throttle:
    """Pace bytes to a rate (bytes/s), shared by every connection that uses it."""

    def __init__(self, rate: float):
        self.rate, self.lock, self.free_at = float(rate), threading.Lock(), 0.0

    def take(self, size: int) -> None:
        """Wait until SIZE more bytes fit into the rate."""
        with self.lock:
            now = time.monotonic()
            self.free_at = max(self.free_at, now) + size / self.rate
            wait = self.free_at - now - size / self.rate
        if wait > 0:
            time.sleep(wait)


def send(sock: socket.socket, data: bytes, throttle: Throttle | None) -> None:
    """Send all of data, paced by the throttle if there is one."""
    if throttle is None:
        sock.sendall(data)
        return
    for start in range(0, len(data), CHUNK):
        chunk = data[start:start + CHUNK]
        throttle.take(len(chunk))
        sock.sendall(chunk)


def reset(sock: socket.socket) -> None:
    """Close a socket with an RST rather than a FIN (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def head_length(raw: bytes) -> int:
    """Return the length of a raw HTTP message's head (status line and headers)."""
    end = raw.find(b"\r\n\r\n")
    return end + 4 if end >= 0 else raw.find(b"\n\n") + 2


def error_page(status: int) -> bytes:
    """Return a proxy's own HTML error answer (not JSON: as a real gateway sends)."""
    body = f"<html><body><h1>{status} {ERROR_PAGES[status]}</h1></body></html>".encode()
    return (f"HTTP/1.1 {status} {ERROR_PAGES[status]}\r\nContent-Type: text/html\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class FaultProxy:
    """A loopback TCP proxy for central: forwards each request on a fresh connection."""

    def __init__(self, upstream: str, schedule: Schedule | None = None, rate: float | None = None,
                 keep_exchanges: bool = True):
        self.upstream = upstream
        self.schedule, self.keep_exchanges = schedule, keep_exchanges
        self.throttle = Throttle(rate) if rate else None
        self.throttle_up = Throttle(rate) if rate else None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.exchanges: list[Exchange] = []
        self.faults: dict[int, Fault] = {}
        # Faults for the next requests of a method and path, e.g. "POST /laps": each used once.
        self.path_faults: dict[str, list[Fault]] = {}
        self.counts: Counter = Counter()
        self.held, self.release = threading.Event(), threading.Event()
        self.lock, self.stopped, self.healed = threading.Lock(), threading.Event(), False
        self.pushes = self.requests = 0
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop accepting; let held connections go."""
        self.stopped.set()
        self.release.set()
        self.thread.join(5)
        self.listener.close()

    def heal(self) -> None:
        """End all faults: no schedule, no scripted faults, held answers released (rate stays)."""
        with self.lock:
            self.healed, self.schedule = True, None
            self.faults.clear()
            self.path_faults.clear()
        self.release.set()

    def faults_injected(self) -> Counter:
        """Return the faults done so far by kind (refuse, delay, drop, truncate, cut, 5xx, hold)."""
        with self.lock:
            return Counter({kind: n for kind, n in self.counts.items() if n})

    def pushed(self) -> list[Exchange]:
        """Return the push exchanges so far, in order."""
        return [e for e in self.exchanges if e.push is not None]

    def count(self, kind: str | None) -> None:
        """Count one fault done."""
        if kind:
            with self.lock:
                self.counts[kind] += 1

    def accept(self) -> None:
        """Serve each laptop connection in a thread of its own (or refuse it)."""
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            schedule = self.schedule
            if schedule is not None and schedule.refuses():
                self.count("refuse")
                reset(conn)
                continue
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        """Forward requests of one keep-alive connection until a fault or EOF ends it."""
        with conn:
            reader = conn.makefile("rb")
            while True:
                try:
                    request = read_message(reader, response=False)
                except (OSError, ValueError):
                    return
                try:
                    if request is None or not self.forward(conn, request):
                        return
                except OSError:
                    return

    def record(self, request: Message) -> tuple[Exchange, Fault]:
        """Log a request; return it with the fault scripted or drawn for it."""
        method, path, _ = request.first.split(" ", 2)
        exchange = Exchange(method, path, request.body if self.keep_exchanges else b"")
        with self.lock:
            self.requests += 1
            if method == "POST" and path.endswith("/api/v1/push"):
                self.pushes += 1
                exchange.push = self.pushes
            if self.keep_exchanges:
                self.exchanges.append(exchange)
            fault = self.faults.pop(exchange.push, None)
            queued = self.path_faults.get(f"{method} {path}")
            if fault is None and queued:
                fault = queued.pop(0)
            schedule = None if self.healed else self.schedule
        if fault is None:
            fault = schedule.draw() if schedule is not None else Fault()
        return exchange, fault

    def exchange_upstream(self, request: Message, exchange: Exchange, fault: Fault) -> Message | None:
        """Send the request to central and read its answer; None when central is gone or cut."""
        host, port = self.upstream.rsplit("/", 1)[-1].split(":")
        try:
            with socket.create_connection((host, int(port)), timeout=UPSTREAM_TIMEOUT_S) as upstream:
                if fault.respond == "cut":   # half of it: a body cut short, or even the head
                    send(upstream, request.raw[:len(request.raw) // 2], self.throttle_up)
                    reset(upstream)
                    return None
                send(upstream, request.raw, self.throttle_up)
                if fault.after:
                    fault.after(exchange)
                return read_message(upstream.makefile("rb"), response=True)
        except (OSError, ValueError):
            return None   # central died: the laptop sees its connection close

    def forward(self, conn: socket.socket, request: Message) -> bool:
        """Send one request upstream and deal with the answer; tell whether to go on."""
        exchange, fault = self.record(request)
        self.count(fault.kind)
        if fault.before:
            fault.before(exchange)
        if fault.respond == "error" and not fault.forward:
            conn.sendall(error_page(fault.status))
            return False
        answer = self.exchange_upstream(request, exchange, fault)
        if answer is None:
            return False
        exchange.status = int(answer.first.split(" ")[1])
        exchange.answer = answer.body if self.keep_exchanges else None
        if fault.answered:
            fault.answered(exchange)
        return self.respond(conn, answer, fault)

    def respond(self, conn: socket.socket, answer: Message, fault: Fault) -> bool:
        """Give the laptop central's answer, or what the fault makes of it."""
        if fault.delay_s:
            time.sleep(fault.delay_s)
        if fault.respond == "drop":
            return False    # central committed; the laptop never hears of it
        if fault.respond == "hold":
            self.held.set()
            self.release.wait(60)
            return False
        if fault.respond == "error":
            conn.sendall(error_page(fault.status))
            return False
        if fault.respond == "truncate":
            head = head_length(answer.raw)
            send(conn, answer.raw[:head + (len(answer.raw) - head) // 2], self.throttle)
            return False
        send(conn, answer.raw, self.throttle)
        return True
