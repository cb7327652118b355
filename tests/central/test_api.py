"""The sync API over real loopback HTTP, every response checked against sync/openapi.yaml."""
from __future__ import annotations

import copy
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import (
    RequestsOpenAPIRequest,
    RequestsOpenAPIResponse,
)

from lapsync.protocol import MAX_BATCH_BYTES, MAX_BATCH_CHANGES, compact_changes
from sync import create_app
from sync.db import close_pool
from sync.devices import revoke_device
from sync.settings import set_setting
from sync.users import create_user
from tests.pg import Outbox, register, snapshot

ROOT = Path(__file__).resolve().parents[2]
SPEC = OpenAPI.from_file_path(str(ROOT / "sync" / "openapi.yaml"))


def checked(response: requests.Response, request_too: bool = False) -> requests.Response:
    """Validate a real response (and, for good requests, the request) against the spec."""
    openapi_request = RequestsOpenAPIRequest(response.request)
    if request_too:
        SPEC.validate_request(openapi_request)
    SPEC.validate_response(openapi_request, RequestsOpenAPIResponse(response))
    return response


def post_push(base: str, token: str | None, body, **kwargs) -> requests.Response:
    """POST a push body (a dict is sent as JSON; bytes as they are)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(body, (dict, list)):
        headers.update(kwargs.pop("headers", {}))
        return requests.post(f"{base}/api/v1/push", json=body, headers=headers, timeout=30, **kwargs)
    headers = {"Content-Type": "application/json", **headers, **kwargs.pop("headers", {})}
    return requests.post(f"{base}/api/v1/push", data=body, headers=headers, timeout=30, **kwargs)


def get_pull(base: str, token: str | None, **params) -> requests.Response:
    """GET one pull page."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{base}/api/v1/pull", params=params, headers=headers, timeout=30)


def test_push_then_pull_happy_path(live_central, central_db, device_token):
    box = Outbox()
    runner = box.runner(17, "Cleo Dahl", "6b", 6)
    lap = box.lap(runner)
    box.lap(runner)
    box.void(lap)
    pushed = checked(post_push(live_central, device_token, box.body()), request_too=True)
    assert pushed.status_code == 200
    assert pushed.json()["acked_seq"] == 4 and pushed.json()["rejected"] == []
    create_user(central_db, "tom", "teacher", "correct-horse")
    set_setting(central_db, "metres_per_lap", 400)
    set_setting(central_db, "event_name", "Sponsorenlauf")
    other = register(central_db, "laptop-b")
    checked(post_push(live_central, other, Outbox().body()), request_too=True)
    page = checked(get_pull(live_central, other, cursor=0), request_too=True).json()
    kinds = {c["entity"]: c["data"] for c in page["changes"]}
    assert kinds["user"]["name"] == "tom" and kinds["setting"]["key"] == "event_name"
    assert kinds["runner"]["name"] == "Cleo Dahl" and kinds["lap_void"]["lap_id"] == lap
    assert kinds["total"] == {"runner_id": runner, "other_laps": 1}
    assert page["more"] is False and page["next_cursor"] == max(c["cursor"] for c in page["changes"])
    own = checked(get_pull(live_central, device_token, cursor=0)).json()
    # its own runner and void stay home; what central and others decided comes (the users:
    # the helper its laps name, and tom)
    assert sorted(c["entity"] for c in own["changes"]) == ["setting", "setting", "total", "user",
                                                            "user"]
    own["changes"] = [c for c in own["changes"] if c["entity"] == "total"]
    assert own["changes"][0]["data"]["other_laps"] == 0 and own["next_cursor"] == page["next_cursor"]


def test_replayed_push_over_http_gets_the_same_answer_and_changes_nothing(live_central, central_db,
                                                                          device_token):
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    box.lap(runner)
    first = checked(post_push(live_central, device_token, box.body())).json()
    before = snapshot(central_db, skip_device_contact=True)
    again = checked(post_push(live_central, device_token, box.body())).json()
    assert again["acked_seq"] == first["acked_seq"] == 2 and again["rejected"] == []
    assert snapshot(central_db, skip_device_contact=True) == before


def test_a_gap_answers_409_with_resume_from(live_central, central_db, device_token):
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    box.lap(runner), box.lap(runner)
    checked(post_push(live_central, device_token, box.body(1, 1)))
    before = snapshot(central_db)
    gap = checked(post_push(live_central, device_token, box.body(3, 3)))
    assert gap.status_code == 409
    assert gap.json()["error"] == "seq_gap" and gap.json()["resume_from"] == 2
    assert gap.json()["acked_seq"] == 1
    assert snapshot(central_db) == before


def set_path(body: dict, path: str, value) -> dict:
    """Set body[...] along a dotted path (numbers index lists); return the body."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target = body
    for key in parents:
        target = target[key]
    target[last] = value
    return body


def drop_path(body: dict, path: str) -> dict:
    """Delete the key at a dotted path; return the body."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target = body
    for key in parents:
        target = target[key]
    del target[last]
    return body


# Each case turns a valid batch (seqs 4-7: runner edit, lap, void, user) into bad input.
BAD_INPUT = {
    "text/plain": (lambda b: (json.dumps(b), {"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
    "form post": (lambda b: ("x=1", {"Content-Type": "application/x-www-form-urlencoded"}),
                  415, "unsupported_media_type"),
    "no content type": (lambda b: (json.dumps(b).encode(), {"Content-Type": ""}), 415, "unsupported_media_type"),
    "truncated json": (lambda b: (json.dumps(b)[:-5], {}), 400, "malformed_json"),
    "NaN": (lambda b: (json.dumps(b).replace('"grade": 5', '"grade": NaN'), {}), 400, "malformed_json"),
    "duplicate key": (lambda b: (json.dumps(b).replace('"protocol": 1', '"protocol": 1, "protocol": 1'), {}),
                      400, "malformed_json"),
    "not utf-8": (lambda b: (json.dumps(b).encode().replace(b"Anna", b"\xff\xfe"), {}), 400, "malformed_json"),
    "deep nesting": (lambda b: ("[" * 100_000 + "]" * 100_000, {}), 400, "malformed_json"),
    "empty body": (lambda b: ("", {}), 400, "malformed_json"),
    "a list": (lambda b: ([b], {}), 422, "invalid_body"),
    "protocol 2": (lambda b: set_path(b, "protocol", 2), 400, "unsupported_protocol"),
    "protocol as text": (lambda b: set_path(b, "protocol", "1"), 400, "unsupported_protocol"),
    "protocol true": (lambda b: set_path(b, "protocol", True), 400, "unsupported_protocol"),
    "missing device_id": (lambda b: drop_path(b, "device_id"), 422, "invalid_body"),
    "unknown top field": (lambda b: set_path(b, "extra", 1), 422, "invalid_body"),
    "device_id not cuid": (lambda b: set_path(b, "device_id", "LAPTOP-1"), 422, "invalid_body"),
    "device_time text": (lambda b: set_path(b, "device_time", "now"), 422, "invalid_body"),
    "device_time float": (lambda b: set_path(b, "device_time", 1.5), 422, "invalid_body"),
    "changes object": (lambda b: set_path(b, "changes", {}), 422, "invalid_body"),
    "change is a list": (lambda b: set_path(b, "changes.1", []), 422, "invalid_change"),
    "unknown change field": (lambda b: set_path(b, "changes.1.extra", 1), 422, "invalid_change"),
    "missing data": (lambda b: drop_path(b, "changes.1.data"), 422, "invalid_change"),
    "unknown entity": (lambda b: set_path(b, "changes.1.entity", "runner_delete"), 422, "invalid_change"),
    "seq zero": (lambda b: set_path(b, "changes.0.seq", 0), 422, "invalid_change"),
    "seq text": (lambda b: set_path(b, "changes.0.seq", "4"), 422, "invalid_change"),
    "seqs with a hole": (lambda b: set_path(b, "changes.2.seq", 9), 422, "invalid_change"),
    "id is not data id": (lambda b: set_path(b, "changes.1.id", Outbox().new_id()), 422, "invalid_change"),
    "lap id short": (lambda b: set_path(b, "changes.1.data.id", "abc12"), 422, "invalid_change"),
    "lap id upper": (lambda b: set_path(b, "changes.1.data.runner_id", "ABCDEFGHIJKLMNOPQRSTUVWX"),
                     422, "invalid_change"),
    "lap time negative": (lambda b: set_path(b, "changes.1.data.time", -1), 422, "invalid_change"),
    "lap time bool": (lambda b: set_path(b, "changes.1.data.time", True), 422, "invalid_change"),
    "lap time huge": (lambda b: set_path(b, "changes.1.data.time", 10 ** 30), 422, "invalid_change"),
    "lap extra field": (lambda b: set_path(b, "changes.1.data.speed", 3), 422, "invalid_change"),
    "lap missing field": (lambda b: drop_path(b, "changes.1.data.created_by"), 422, "invalid_change"),
    "lap device_id not cuid": (lambda b: set_path(b, "changes.1.data.device_id", "laptop 1"),
                               422, "invalid_change"),
    "start number 0": (lambda b: set_path(b, "changes.0.data.start_number", 0), 422, "invalid_change"),
    "start number text": (lambda b: set_path(b, "changes.0.data.start_number", "17"), 422, "invalid_change"),
    "grade 14": (lambda b: set_path(b, "changes.0.data.grade", 14), 422, "invalid_change"),
    "empty name": (lambda b: set_path(b, "changes.0.data.name", "  "), 422, "invalid_change"),
    "name with NUL": (lambda b: set_path(b, "changes.0.data.name", "Ann\x00a"), 422, "invalid_change"),
    "name lone surrogate": (lambda b: set_path(b, "changes.0.data.name", "Ann\ud800"), 422, "invalid_change"),
    "name too long": (lambda b: set_path(b, "changes.0.data.name", "x" * 101), 422, "invalid_change"),
    "class null": (lambda b: set_path(b, "changes.0.data.class", None), 422, "invalid_change"),
    "hlc format": (lambda b: set_path(b, "changes.0.data.hlc", "2024-01-01"), 422, "invalid_change"),
    "origin missing": (lambda b: drop_path(b, "changes.0.data.origin"), 422, "invalid_change"),
    "voided text": (lambda b: set_path(b, "changes.2.data.voided", "yes"), 422, "invalid_change"),
    "reason too long": (lambda b: set_path(b, "changes.2.data.reason", "x" * 201), 422, "invalid_change"),
    "role root": (lambda b: set_path(b, "changes.3.data.role", "root"), 422, "invalid_change"),
    "plain password": (lambda b: set_path(b, "changes.3.data.password_hash", "hunter22"), 422,
                       "invalid_change"),
    "too many changes": (lambda b: set_path(b, "changes", b["changes"] * (MAX_BATCH_CHANGES // 4 + 1)),
                         413, "batch_too_large"),
    "too many bytes": (lambda b: (json.dumps(b) + " " * MAX_BATCH_BYTES, {}), 413, "batch_too_large"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_4xx_and_changes_nothing(live_central, central_db, device_token, case):
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    box.lap(runner), box.lap(runner)
    assert post_push(live_central, device_token, box.body()).status_code == 200
    box.runner(2, "Anna Berg", runner_id=runner)
    lap = box.lap(runner)
    box.void(lap)
    box.user("tina")
    make, status, error = BAD_INPUT[case]
    made = make(copy.deepcopy(box.body(4)))
    data, headers = made if isinstance(made, tuple) else (made, {})
    before = snapshot(central_db)
    response = checked(post_push(live_central, device_token, data, headers=headers))
    assert (response.status_code, response.json()["error"]) == (status, error), response.text
    assert response.json()["message"]
    if error == "invalid_change":  # names the item: its index and (unless the seq is bad) seq
        body = response.json()
        assert body["index"] in range(4) and f"changes[{body['index']}]" in body["message"]
        if body.get("field") != "seq":
            assert body["seq"] == 4 + body["index"]
    assert snapshot(central_db) == before
    assert post_push(live_central, device_token, box.body(4)).json()["acked_seq"] == 7  # still fine


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-token"])
def test_push_and_pull_without_a_valid_token_get_401(live_central, central_db, device_token, header):
    headers = {"Authorization": header} if header else {}
    before = snapshot(central_db)
    for response in (requests.post(f"{live_central}/api/v1/push", json=Outbox().body(),
                                   headers=headers, timeout=10),
                     requests.get(f"{live_central}/api/v1/pull", headers=headers, timeout=10)):
        checked(response)
        assert response.status_code == 401
        assert response.json()["error"] in ("missing_token", "invalid_token")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(central_db) == before


def test_a_revoked_token_gets_401(live_central, central_db, device_token):
    box = Outbox()
    box.runner(1, "Anna Berg")
    assert post_push(live_central, device_token, box.body()).status_code == 200
    assert revoke_device(central_db, "laptop-a")
    before = snapshot(central_db)
    for response in (post_push(live_central, device_token, box.body()),
                     get_pull(live_central, device_token)):
        assert checked(response).status_code == 401
        assert response.json()["error"] == "revoked_token"
    assert snapshot(central_db) == before


def test_a_token_bound_to_laptop_a_refuses_laptop_b_with_403(live_central, central_db, device_token):
    a, b = Outbox(), Outbox()
    assert post_push(live_central, device_token, a.body()).status_code == 200
    b.runner(1, "Anna Berg")
    before = snapshot(central_db)
    refused = checked(post_push(live_central, device_token, b.body()))
    assert refused.status_code == 403 and refused.json()["error"] == "device_mismatch"
    second = register(central_db, "laptop-a2")
    before = snapshot(central_db)
    taken = checked(post_push(live_central, second, a.body()))
    assert taken.status_code == 403 and taken.json()["error"] == "laptop_registered"
    assert snapshot(central_db) == before


def test_a_new_token_for_a_laptop_carries_on_from_its_last_seq(live_central, central_db,
                                                               device_token):
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    box.lap(runner)
    assert post_push(live_central, device_token, box.body()).json()["acked_seq"] == 2
    revoke_device(central_db, "laptop-a")
    successor = register(central_db, "laptop-a")
    box.lap(runner)
    answer = checked(post_push(live_central, successor, box.body())).json()
    assert answer["acked_seq"] == 3
    assert central_db.execute("SELECT count(*) AS n FROM lap").fetchone()["n"] == 2


def test_unknown_paths_and_methods_answer_json(live_central, device_token):
    missing = requests.get(f"{live_central}/api/v1/nothing", timeout=10)  # not in the spec
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = requests.get(f"{live_central}/api/v1/push", timeout=10)
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert "POST" in wrong.headers["Allow"]


def test_the_openapi_description_is_served(live_central):
    response = checked(requests.get(f"{live_central}/api/v1/openapi.yaml", timeout=10))
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(response.text) == yaml.safe_load((ROOT / "sync" / "openapi.yaml").read_text())


@pytest.mark.parametrize("params,error", [
    ({"cursor": "-1"}, "invalid_cursor"), ({"cursor": "abc"}, "invalid_cursor"),
    ({"cursor": "1e3"}, "invalid_cursor"), ({"limit": "0"}, "invalid_limit"),
    ({"limit": "1001"}, "invalid_limit"), ({"limit": "ten"}, "invalid_limit"),
])
def test_bad_pull_arguments_get_400(live_central, device_token, params, error):
    response = checked(get_pull(live_central, device_token, **params))
    assert response.status_code == 400 and response.json()["error"] == error


def test_a_cursor_beyond_anything_handed_out_gets_409_resume_from_0(live_central, device_token):
    response = checked(get_pull(live_central, device_token, cursor=10 ** 12))
    assert response.status_code == 409
    assert response.json()["error"] == "cursor_ahead" and response.json()["resume_from"] == 0


def test_central_without_its_database_answers_503_not_500(pg_server_url):
    from tests.pg import with_database

    app = create_app({"TESTING": True, "DATABASE_URL": with_database(pg_server_url, "no_such_db"),
                      "DB_POOL_TIMEOUT": 0.5})
    response = app.test_client().post("/api/v1/push", json=Outbox().body(),
                                      headers={"Authorization": "Bearer x"})
    close_pool(app)
    assert response.status_code == 503 and response.json["error"] == "unavailable"
    assert response.headers["Retry-After"]


def start_gunicorn(pg_url: str) -> tuple[subprocess.Popen, str]:
    """Start central under gunicorn on a free loopback port; return (process, base URL)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "4", "-b", "127.0.0.1:0",
         "sync:create_app()"], cwd=ROOT, env={**os.environ, "DATABASE_URL": pg_url},
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    for line in process.stderr:
        found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep draining
            return process, found.group(1)
        assert time.monotonic() < deadline, "gunicorn did not start"
    raise AssertionError("gunicorn exited: " + str(process.wait()))


def sync_like_a_laptop(servers: list[str], token: str, box: Outbox, windows: list[tuple[int, int]],
                       errors: list) -> None:
    """Send overlapping windows of the outbox to random servers, resuming after gaps."""
    rng = random.Random(box.laptop_id)
    try:
        for first, last in windows:
            while True:
                response = post_push(rng.choice(servers), token, box.body(first, last))
                if response.status_code == 409:
                    first = response.json()["resume_from"]
                    continue
                assert response.status_code == 200, response.text
                break
    except Exception as exc:  # reported to the test thread
        errors.append(exc)


def test_two_central_processes_apply_concurrent_overlapping_pushes_exactly_once(pg_url, central_db):
    boxes, tokens, expected = [], [], {}
    for i in range(3):
        box = Outbox()
        runners = [box.runner(100 * i + n + 1, f"Runner {i}-{n}") for n in range(5)]
        laps = [box.lap(runners[n % 5]) for n in range(150)]
        for lap in laps[::10]:
            box.void(lap)
        for n, lap in enumerate(laps):
            if n % 10:
                expected[runners[n % 5]] = expected.get(runners[n % 5], 0) + 1
        boxes.append(box)
        tokens.append(register(central_db, f"laptop-{i}"))
    started = [start_gunicorn(pg_url) for _ in range(2)]
    servers = [url for _, url in started]
    try:
        errors: list = []
        threads = []
        for box, token in zip(boxes, tokens):
            size = len(box.changes)
            forward = [(s, min(s + 39, size)) for s in range(1, size + 1, 20)]
            shuffled = random.Random(token).sample(forward, len(forward)) + [(1, size)]
            for windows in (forward, shuffled, forward[::-1]):
                threads.append(threading.Thread(target=sync_like_a_laptop,
                                                args=(servers, token, box, windows, errors)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
    finally:
        for process, _ in started:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
    laps = central_db.execute("SELECT count(*) AS n, count(DISTINCT id) AS d FROM lap").fetchone()
    assert laps == {"n": 450, "d": 450}
    totals = {r["runner_id"]: r["laps"] for r in central_db.execute("SELECT * FROM runner_total")}
    assert totals == expected
    devices = central_db.execute("SELECT last_seq, laps_pushed FROM device ORDER BY name").fetchall()
    assert devices == [{"last_seq": len(box.changes), "laps_pushed": 150} for box in boxes]
    assert central_db.execute("SELECT count(*) AS n FROM runner").fetchone()["n"] == 15


# ---- compact lap runs -------------------------------------------------------------

def test_push_answers_announce_compact_lap_runs_and_accept_them(live_central, central_db, device_token):
    box = Outbox()
    runner = box.runner(5, "Emil Falk")
    first = checked(post_push(live_central, device_token, box.body()), request_too=True)
    assert first.status_code == 200 and first.json()["encodings"] == ["laps", "clock_jumps"]
    laps = [box.lap(runner) for _ in range(5)]
    box.void(laps[1])
    box.lap(runner)
    body = {**box.body(2), "changes": compact_changes(box.body(2)["changes"])}
    assert [c["entity"] for c in body["changes"]] == ["laps", "lap_void", "laps"]
    pushed = checked(post_push(live_central, device_token, body), request_too=True)
    assert pushed.status_code == 200 and pushed.json()["acked_seq"] == 8
    assert central_db.execute("SELECT laps FROM runner_total").fetchone()["laps"] == 5
    assert {r["id"] for r in central_db.execute("SELECT id FROM lap")} >= set(laps)


BAD_RUNS = {
    "runner id not cuid": (lambda run: run["runner_id"].__setitem__(2, "Runner 3"), 5, "runner_id"),
    "time as text": (lambda run: run["time"].__setitem__(1, "1700000000000"), 4, "time"),
    "columns of two lengths": (lambda run: run["device_id"].pop(), 3, "device_id"),
    "extra column": (lambda run: run.update(speed=[1, 2, 3]), 3, "speed"),
}


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_a_bad_compact_run_gets_422_naming_the_lap_and_changes_nothing(live_central, central_db,
                                                                       device_token, case):
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    box.lap(runner)
    assert post_push(live_central, device_token, box.body()).status_code == 200
    for _ in range(3):
        box.lap(runner)
    body = {**box.body(3), "changes": compact_changes(box.body(3)["changes"])}
    mutate, seq, field = BAD_RUNS[case]
    mutate(body["changes"][0]["data"])
    before = snapshot(central_db)
    response = checked(post_push(live_central, device_token, body))
    assert response.status_code == 422, response.text
    assert {k: response.json().get(k) for k in ("error", "index", "seq", "field")} == {
        "error": "invalid_change", "index": 0, "seq": seq, "field": field}
    assert snapshot(central_db) == before
