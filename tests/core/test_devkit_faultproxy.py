"""The fault proxy of lapsync/devkit/faultproxy.py: every fault kind, the seeded schedule, heal, rate.

A small real HTTP server (werkzeug, threaded, loopback) stands for central; it
notes every request it handled completely, so each test can tell whether a fault
struck before or after "central" saw the request.
"""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from lapsync.devkit.faultproxy import KINDS, Fault, FaultProxy, Schedule

BIG = 64 * 1024


class Upstream:
    """A loopback HTTP server that records each request it read whole."""

    def __init__(self):
        self.seen: list[tuple[str, str, int]] = []
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    @Request.application
    def app(self, request: Request) -> Response:
        """Echo the body's size; /big answers BIG bytes."""
        body = request.get_data()   # a body cut short raises ClientDisconnected: not recorded
        self.seen.append((request.method, request.path, len(body)))
        if request.path == "/big":
            return Response(b"x" * BIG, content_type="application/octet-stream")
        return Response(f'{{"got": {len(body)}}}', content_type="application/json")

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def upstream():
    """The stand-in for central."""
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def make_proxy(upstream):
    """Make proxies in front of the upstream: make_proxy(schedule=..., rate=...)."""
    made: list[FaultProxy] = []

    def make(**kwargs) -> FaultProxy:
        made.append(FaultProxy(upstream.url, **kwargs))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


def post(proxy: FaultProxy, body: bytes = b"a" * 5000, path: str = "/api/v1/push", **kwargs):
    """POST a body through the proxy on a fresh session."""
    return requests.post(proxy.url + path, data=body, timeout=5, **kwargs)


def test_without_faults_requests_pass_unchanged_over_one_keep_alive_connection(upstream, make_proxy):
    proxy = make_proxy()
    with requests.Session() as session:
        answers = [session.post(proxy.url + "/api/v1/push", data=b"b" * n, timeout=5) for n in (0, 10, 70_000)]
        answers.append(session.get(proxy.url + "/big", timeout=5))
    assert [a.status_code for a in answers] == [200] * 4
    assert [a.json()["got"] for a in answers[:3]] == [0, 10, 70_000] and len(answers[3].content) == BIG
    assert upstream.seen == [("POST", "/api/v1/push", 0), ("POST", "/api/v1/push", 10),
                             ("POST", "/api/v1/push", 70_000), ("GET", "/big", 0)]
    assert proxy.pushes == 3 and [e.status for e in proxy.pushed()] == [200] * 3
    assert proxy.faults_injected() == Counter()


def test_refuse_resets_the_connection_before_anything_reaches_central(upstream, make_proxy):
    proxy = make_proxy(schedule=Schedule(seed=1, refuse=1.0))
    with pytest.raises(requests.ConnectionError):
        post(proxy)
    assert upstream.seen == [] and proxy.faults_injected() == Counter(refuse=1)


def test_delay_holds_the_answer_back_after_central_handled_the_request(upstream, make_proxy):
    proxy = make_proxy(schedule=Schedule(seed=1, delay=1.0, min_delay_s=0.3, max_delay_s=0.3))
    start = time.monotonic()
    answer = post(proxy)
    assert answer.status_code == 200 and answer.json() == {"got": 5000}
    assert time.monotonic() - start >= 0.3
    assert len(upstream.seen) == 1 and proxy.faults_injected() == Counter(delay=1)


def test_drop_forwards_the_request_and_never_delivers_the_answer(upstream, make_proxy):
    proxy = make_proxy(schedule=Schedule(seed=1, drop=1.0))
    with pytest.raises(requests.ConnectionError):
        post(proxy)
    assert upstream.seen == [("POST", "/api/v1/push", 5000)]      # central committed
    assert proxy.pushed()[0].status == 200 and proxy.faults_injected() == Counter(drop=1)


def test_truncate_delivers_part_of_the_answer_then_closes(upstream, make_proxy):
    proxy = make_proxy(schedule=Schedule(seed=1, truncate=1.0))
    with pytest.raises(requests.RequestException):
        requests.get(proxy.url + "/big", timeout=5).content
    assert upstream.seen == [("GET", "/big", 0)] and proxy.faults_injected() == Counter(truncate=1)


def test_cut_sends_central_only_part_of_the_request_body(upstream, make_proxy):
    proxy = make_proxy(schedule=Schedule(seed=1, cut=1.0))
    with pytest.raises(requests.ConnectionError):
        post(proxy, body=b"c" * 100_000)
    time.sleep(0.2)   # let the upstream notice the short body
    assert upstream.seen == [] and proxy.faults_injected() == Counter(cut=1)


@pytest.mark.parametrize("forward", [False, True], ids=["before_central", "after_central"])
def test_5xx_is_the_proxys_own_html_answer_before_or_after_central(upstream, make_proxy, forward):
    proxy = make_proxy()
    proxy.faults[1] = Fault(respond="error", status=502, forward=forward)
    answer = post(proxy)
    assert answer.status_code == 502 and answer.headers["Content-Type"] == "text/html"
    assert upstream.seen == ([("POST", "/api/v1/push", 5000)] if forward else [])
    assert proxy.faults_injected() == Counter({"5xx": 1})


def test_a_seed_gives_the_same_faults_in_the_same_order_and_the_mix_asked_for():
    mix = dict(delay=0.2, drop=0.1, truncate=0.1, cut=0.1, error=0.1, refuse=0.3)

    def draws(seed: int) -> list:
        schedule = Schedule(seed=seed, **mix)
        return [(schedule.refuses(), schedule.draw().kind) for _ in range(4000)]

    first = draws(42)
    assert first == draws(42) and first != draws(43)
    kinds = Counter(kind for _, kind in first)
    assert set(kinds) == {None, *KINDS} - {"refuse"}
    for kind, share in [("delay", 0.2), ("drop", 0.1), ("truncate", 0.1), ("cut", 0.1),
                        ("5xx", 0.1), (None, 0.4)]:
        assert abs(kinds[kind] / 4000 - share) < 0.03, (kind, kinds)
    assert abs(sum(refused for refused, _ in first) / 4000 - 0.3) < 0.03


def test_heal_ends_every_fault_and_the_counts_stay(upstream, make_proxy):
    proxy = make_proxy(schedule=Schedule(seed=5, drop=1.0))
    proxy.faults[2] = Fault(respond="hold")
    with pytest.raises(requests.ConnectionError):
        post(proxy)
    proxy.heal()
    answers = [post(proxy) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3 and len(upstream.seen) == 4
    assert proxy.faults_injected() == Counter(drop=1)


def test_rate_limits_the_bytes_per_second_of_the_answer(upstream, make_proxy):
    fast, slow = make_proxy(), make_proxy(rate=BIG)   # 64 KiB at 64 KiB/s: ~0.75 s of pacing
    start = time.monotonic()
    assert len(requests.get(fast.url + "/big", timeout=5).content) == BIG
    unlimited = time.monotonic() - start
    start = time.monotonic()
    assert len(requests.get(slow.url + "/big", timeout=5).content) == BIG
    limited = time.monotonic() - start
    assert limited >= 0.6 and unlimited < limited, (unlimited, limited)
