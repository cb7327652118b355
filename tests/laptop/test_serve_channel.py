"""waitress as the laptop serves it (serve.make_server): every answer arrives whole, small or large."""
from __future__ import annotations

import hashlib
import json
import http.client
import os
import sys
import threading
import time

import click
import pytest
from flask import Flask, Response
from waitress import wasyncore

from lapsync.laptop.serve import AnswerChannel, make_server, serve

CHUNK = b"0123456789abcdef" * 4096  # 64 KiB
BIG_CHUNKS = 320                  # 20 MiB: above waitress's 16 MiB output high watermark


@pytest.fixture(scope="module")
def server():
    """A small app served by make_server on a free loopback port, in a thread."""
    app = Flask(__name__)

    @app.get("/small/<int:n>")
    def small(n: int):
        return {"n": n}

    @app.get("/policy")
    def policy():
        return {"policy": os.sched_getscheduler(0), "thread": threading.current_thread().name}

    @app.get("/big")
    def big():
        return Response((CHUNK for _ in range(BIG_CHUNKS)), mimetype="application/octet-stream")
    served = make_server(app, "127.0.0.1", 0, threads=4)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    served.loop_thread = thread
    yield served
    # Closed by the main loop itself: closed from here, its select() can meet a closed socket.
    served.trigger.pull_trigger(lambda: wasyncore.close_all(served._map))
    thread.join(5)
    served.task_dispatcher.shutdown()
    assert not thread.is_alive()


def get(server, path: str, wait: float = 0) -> tuple[int, bytes]:
    """Fetch one path on a new connection, starting to read after WAIT seconds."""
    connection = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=30)
    try:
        connection.request("GET", path)
        time.sleep(wait)  # the answer piles up in the server's output meanwhile
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class RecordingChannel(AnswerChannel):
    """The answer channel, keeping what each request hands to the socket's output."""

    writes: list[bytes] = []

    def write_soon(self, data):
        """Keep the data, then queue it as the answer channel does."""
        if data:
            self.writes.append(bytes(data))
        return super().write_soon(data)


def test_connections_use_the_answer_channel(server):
    assert server.channel_class is AnswerChannel


def test_an_answer_of_one_piece_goes_out_with_its_header_in_one_send(server):
    server.channel_class = RecordingChannel
    try:
        status, body = get(server, "/small/7")
    finally:
        server.channel_class = AnswerChannel
    assert status == 200 and body == b'{"n":7}\n'
    [sent] = RecordingChannel.writes
    assert sent.startswith(b"HTTP/1.1 200 OK\r\n") and sent.endswith(b"\r\n\r\n" + body)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux's")
def test_requests_are_served_by_batch_threads_and_the_main_loop_stays_normal(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=30)
    served = []
    for _ in range(8):
        connection.request("GET", "/policy")
        served.append(json.loads(connection.getresponse().read()))
    connection.close()
    assert {answer["policy"] for answer in served} == {os.SCHED_BATCH}
    assert all(answer["thread"].startswith("waitress-") for answer in served)
    # The main loop, which reads the requests, keeps the normal policy.
    assert os.sched_getscheduler(server.loop_thread.native_id) == os.SCHED_OTHER


def test_a_port_already_taken_is_an_error_that_leaves_no_worker_threads(server):
    before = {thread.ident for thread in threading.enumerate()}
    with pytest.raises(OSError):
        make_server(Flask(__name__), "127.0.0.1", server.effective_port, threads=3)
    left = [thread.name for thread in threading.enumerate()
            if thread.ident not in before and thread.is_alive()]
    assert left == []


def test_serving_on_a_port_already_taken_says_so_and_starts_nothing(server, app):
    before = {thread.ident for thread in threading.enumerate()}
    with pytest.raises(click.ClickException) as refused:
        serve(app, "127.0.0.1", server.effective_port, threads=2)
    assert refused.value.format_message() == (
        f"cannot listen on 127.0.0.1:{server.effective_port}: Address already in use. Is the "
        "laptop app already running there? Stop it, or start this one with another --port.")
    # Neither waitress's workers nor the background sync were left running.
    assert [thread.name for thread in threading.enumerate()
            if thread.ident not in before and thread.is_alive()] == []


def test_answers_to_helpers_asking_at_once_all_arrive_whole(server):
    answers: list[bytes] = []

    def helper(first: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=30)
        for n in range(first, first + 50):  # one kept-alive connection, as a lap page's
            connection.request("GET", f"/small/{n}")
            answers.append(connection.getresponse().read())
        connection.close()
    threads = [threading.Thread(target=helper, args=(i * 50,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == sorted(f'{{"n":{n}}}\n'.encode() for n in range(200))


def test_an_answer_above_the_output_watermark_arrives_whole_beside_small_ones(server):
    big: list[tuple[int, bytes]] = []
    thread = threading.Thread(target=lambda: big.append(get(server, "/big", wait=1.0)))
    thread.start()
    assert all(get(server, f"/small/{n}")[0] == 200 for n in range(20))
    thread.join(60)
    status, body = big[0]
    assert status == 200 and len(body) == len(CHUNK) * BIG_CHUNKS
    assert hashlib.sha256(body).digest() == hashlib.sha256(CHUNK * BIG_CHUNKS).digest()
