"""Central takes the columnar push body over HTTP (Content-Type COLUMNS_TYPE): applied as its
JSON form is, its replay a no-op, gzip-compressed or not; every refusal a 4xx with nothing
written; the JSON body still taken and the answer naming both types."""
from __future__ import annotations

import gzip
import json

import pytest

from lapsync import protocol
from lapsync.protocol import compact_changes
from lapsync.protocol.columns import COLUMNS_TYPE, JSON_TYPE, MAGIC, encode_body, section
from tests.pg import Outbox, snapshot


def post(client, token: str, data: bytes, content_type: str = COLUMNS_TYPE,
         encoding: str | None = None):
    """POST a push body as it is."""
    headers = {"Authorization": f"Bearer {token}"}
    if encoding:
        headers["Content-Encoding"] = encoding
    return client.post("/api/v1/push", data=data, content_type=content_type, headers=headers)


def columnar(body: dict) -> bytes:
    """Return a push body with its consecutive laps as runs, in the columnar form."""
    return encode_body({**body, "changes": compact_changes(body["changes"])})


def day(laps: int = 6) -> tuple[Outbox, str, list[str]]:
    """Return an outbox with a runner, LAPS laps of it and a void of the second lap."""
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    ids = [box.lap(runner) for _ in range(laps)]
    box.void(ids[1])
    return box, runner, ids


def counted(conn) -> dict:
    """Return {runner_id: laps that count} as central keeps them and as recounted."""
    kept = {r["runner_id"]: r["laps"] for r in conn.execute("SELECT * FROM runner_total")}
    recount = {r["runner_id"]: r["n"] for r in conn.execute(
        "SELECT l.runner_id, count(*) AS n FROM lap l LEFT JOIN lap_void v ON v.lap_id = l.id "
        "WHERE v.voided IS NOT TRUE GROUP BY l.runner_id")}
    assert kept == recount
    return kept


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_a_columnar_push_applies_and_its_replay_changes_nothing(central_client, central_db,
                                                                device_token, encoding):
    box, runner, ids = day()
    raw = columnar(box.body())
    data = gzip.compress(raw) if encoding else raw
    answer = post(central_client, device_token, data, encoding=encoding)
    assert answer.status_code == 200, answer.json
    assert answer.json["acked_seq"] == 8 and answer.json["rejected"] == []
    assert answer.json["content_types"] == [JSON_TYPE, COLUMNS_TYPE]
    assert sorted(r["id"] for r in central_db.execute("SELECT id FROM lap")) == sorted(ids)
    assert counted(central_db) == {runner: 5}
    before = snapshot(central_db, skip_device_contact=True)
    again = post(central_client, device_token, data, encoding=encoding)
    assert again.status_code == 200 and again.json["acked_seq"] == 8
    assert snapshot(central_db, skip_device_contact=True) == before


def test_columnar_and_json_pushes_follow_each_other(central_client, central_db, device_token):
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    first = [box.lap(runner) for _ in range(3)]
    assert post(central_client, device_token, json.dumps(box.body()).encode(),
                JSON_TYPE).json["acked_seq"] == 4
    later = [box.lap(runner) for _ in range(4)]
    answer = post(central_client, device_token, columnar(box.body(5)))
    assert answer.status_code == 200 and answer.json["acked_seq"] == 8
    assert sorted(r["id"] for r in central_db.execute("SELECT id FROM lap")) == sorted(first + later)
    assert counted(central_db) == {runner: 7}


def broken(body: bytes) -> bytes:
    """Return a columnar body with its last byte cut off."""
    return body[:-1]


def with_bad_lap(box: Outbox) -> bytes:
    """Return the columnar body of BOX with a run whose third lap has an upper-case id."""
    body = {**box.body(), "changes": compact_changes(box.body()["changes"])}
    body["changes"][1]["data"]["id"][2] = "X" * 24
    return encode_body(body)


@pytest.mark.parametrize("case, status, code", [
    ("cut short", 400, "malformed_body"),
    ("not columnar", 400, "malformed_body"),
    ("a bad lap in a run", 422, "invalid_change"),
    ("another protocol", 400, "unsupported_protocol"),
    ("a seq gap", 409, "seq_gap"),
    ("too many changes", 413, "batch_too_large"),
    ("sent as JSON", 400, "malformed_json"),
    ("another type", 415, "unsupported_media_type"),
])
def test_a_bad_columnar_push_is_a_4xx_and_writes_nothing(central_client, central_db, device_token,
                                                         monkeypatch, case, status, code):
    box, _, _ = day()
    raw = columnar(box.body())
    gap = columnar(box.body(3))
    head = json.dumps({"protocol": 2, "device_id": box.laptop_id, "device_time": 5}).encode()
    data, content_type = {
        "cut short": (broken(raw), COLUMNS_TYPE),
        "not columnar": (json.dumps(box.body()).encode(), COLUMNS_TYPE),
        "a bad lap in a run": (with_bad_lap(box), COLUMNS_TYPE),
        "another protocol": (MAGIC + section(b"H", head), COLUMNS_TYPE),
        "a seq gap": (gap, COLUMNS_TYPE),
        "too many changes": (raw, COLUMNS_TYPE),
        "sent as JSON": (raw, JSON_TYPE),
        "another type": (raw, "application/octet-stream"),
    }[case]
    if case == "too many changes":
        monkeypatch.setattr(protocol.limits, "MAX_BATCH_CHANGES", 7)
    before = snapshot(central_db)
    answer = post(central_client, device_token, data, content_type)
    assert (answer.status_code, answer.json["error"]) == (status, code), answer.json
    assert answer.json["message"]
    assert snapshot(central_db) == before
