"""The push encoder (lapsync/protocol/encode.py) against the validator: what one end
writes, the other reads back as the same changes."""
from __future__ import annotations

import json

import pytest

from lapsync.protocol import encode, expand_changes, validate_push
from lapsync.protocol.encode import BatchEncoder, push_head

LAPTOP = "l" + "a" * 23
RUNNER = "r" + "b" * 23
USER = "u" + "c" * 23


def lap_id(n: int) -> str:
    """Return the n-th lap id of these tests (24 characters)."""
    return f"p{n:023d}"


def lap_payload(n: int, time: int = 1_700_000_000_000) -> str:
    """Return a lap's outbox payload exactly as the laptop writes it."""
    return json.dumps({"id": lap_id(n), "runner_id": RUNNER, "created_by": USER,
                       "time": time + n, "device_id": LAPTOP}, separators=(",", ":"))


def decoded(encoder: BatchEncoder, device_time: int = 5) -> tuple[dict, list[dict]]:
    """Return the batch's body as JSON and its changes validated and expanded."""
    body = json.loads(encoder.batch().body(LAPTOP, device_time))
    return body, expand_changes(validate_push(body)["changes"])


def test_push_head_opens_a_body_that_the_changes_close():
    assert push_head(LAPTOP, 1234) == (b'{"protocol":1,"device_id":"' + LAPTOP.encode()
                                       + b'","device_time":1234,"changes":[')


def test_verbose_changes_travel_verbatim_in_seq_order():
    encoder = BatchEncoder(10_000, compact=False)
    assert encoder.add(1, "lap", lap_id(1), lap_payload(1))
    assert encoder.add(2, "lap", lap_id(2), lap_payload(2))
    body, changes = decoded(encoder)
    assert body["device_time"] == 5 and [c["entity"] for c in body["changes"]] == ["lap", "lap"]
    assert [(c["seq"], c["id"], c["data"]) for c in changes] == [
        (1, lap_id(1), json.loads(lap_payload(1))), (2, lap_id(2), json.loads(lap_payload(2)))]


def test_consecutive_laps_travel_as_one_compact_run_that_reads_back_the_same():
    encoder = BatchEncoder(100_000, compact=True)
    for seq in range(7, 12):
        assert encoder.add(seq, "lap", lap_id(seq), lap_payload(seq))
    batch = encoder.batch()
    assert batch.runs and batch.seqs == [7, 8, 9, 10, 11]
    body = json.loads(batch.body(LAPTOP, 9))
    assert [(c["seq"], c["entity"]) for c in body["changes"]] == [(7, "laps")]
    changes = expand_changes(validate_push(body)["changes"])
    assert [c["data"] for c in changes] == [json.loads(lap_payload(s)) for s in range(7, 12)]


def test_a_gap_in_seqs_or_another_entity_closes_the_run():
    encoder = BatchEncoder(100_000, compact=True)
    encoder.add(1, "lap", lap_id(1), lap_payload(1))
    encoder.add(2, "lap", lap_id(2), lap_payload(2))
    void = json.dumps({"lap_id": lap_id(1), "voided": True, "at": 5, "by": USER, "reason": "x",
                       "hlc": "0000000000005.0000", "origin": LAPTOP}, separators=(",", ":"))
    encoder.add(3, "lap_void", lap_id(1), void)
    encoder.add(4, "lap", lap_id(4), lap_payload(4))
    body = json.loads(encoder.batch().body(LAPTOP, 1))
    assert [(c["seq"], c["entity"]) for c in body["changes"]] == [(1, "laps"), (3, "lap_void"),
                                                                   (4, "laps")]
    changes = expand_changes(validate_push(body)["changes"])
    assert [c["seq"] for c in changes] == [1, 2, 3, 4]


def test_a_run_never_stands_for_seqs_that_are_not_consecutive():
    encoder = BatchEncoder(100_000, compact=True)
    encoder.add(1, "lap", lap_id(1), lap_payload(1))
    encoder.add(3, "lap", lap_id(3), lap_payload(3))
    runs = json.loads(encoder.batch().body(LAPTOP, 1))["changes"]
    assert [(r["seq"], len(r["data"]["id"])) for r in runs] == [(1, 1), (3, 1)]


@pytest.mark.parametrize("payload", [
    lap_payload(1).replace('"time":', '"time": '),           # not the laptop's compact JSON
    lap_payload(1).replace(RUNNER, RUNNER.upper()),           # not an id the run takes
])
def test_a_lap_payload_in_another_form_travels_verbatim(payload):
    encoder = BatchEncoder(100_000, compact=True)
    assert encoder.add(1, "lap", lap_id(1), payload)
    item = json.loads(encoder.batch().body(LAPTOP, 1))["changes"][0]
    assert item["entity"] == "lap" and json.dumps(item["data"], separators=(",", ":")) \
        == json.dumps(json.loads(payload), separators=(",", ":"))


def test_a_lap_whose_change_id_differs_from_its_payload_id_travels_verbatim():
    encoder = BatchEncoder(100_000, compact=True)
    encoder.add(1, "lap", lap_id(2), lap_payload(1))
    item = json.loads(encoder.batch().body(LAPTOP, 1))["changes"][0]
    assert (item["entity"], item["id"]) == ("lap", lap_id(2))


def test_runs_hold_at_most_run_laps_laps(monkeypatch):
    monkeypatch.setattr(encode, "RUN_LAPS", 3)
    encoder = BatchEncoder(100_000, compact=True)
    for seq in range(1, 8):
        encoder.add(seq, "lap", lap_id(seq), lap_payload(seq))
    runs = json.loads(encoder.batch().body(LAPTOP, 1))["changes"]
    assert [(r["seq"], len(r["data"]["id"])) for r in runs] == [(1, 3), (4, 3), (7, 1)]


@pytest.mark.parametrize("compact", [False, True])
def test_the_budget_bounds_the_body_but_the_first_change_always_goes(compact):
    encoder = BatchEncoder(1, compact=compact)
    assert encoder.add(1, "lap", lap_id(1), lap_payload(1))      # alone it goes, however big
    assert not encoder.add(2, "lap", lap_id(2), lap_payload(2))  # no room for a second
    assert encoder.batch().seqs == [1]


@pytest.mark.parametrize("compact", [False, True])
def test_the_encoded_size_never_exceeds_the_budget_after_the_first_change(compact):
    budget = 2_000
    encoder = BatchEncoder(budget, compact=compact)
    seq = 0
    while encoder.add(seq + 1, "lap", lap_id(seq + 1), lap_payload(seq + 1)):
        seq += 1
    batch = encoder.batch()
    assert batch.seqs == list(range(1, seq + 1)) and seq > 2
    assert len(batch.changes) <= budget
    body = batch.body(LAPTOP, 1)
    assert [c["seq"] for c in expand_changes(validate_push(json.loads(body))["changes"])] \
        == batch.seqs


def test_a_batch_lets_go_of_its_changes_once_sent():
    encoder = BatchEncoder(10_000, compact=False)
    encoder.add(1, "lap", lap_id(1), lap_payload(1))
    batch = encoder.batch()
    first = batch.body(LAPTOP, 1)
    assert b'"seq":1' in first and batch.body(LAPTOP, 1) == push_head(LAPTOP, 1) + b"]}"


def test_a_verbose_batch_says_it_holds_no_run():
    encoder = BatchEncoder(10_000, compact=False)
    encoder.add(1, "lap", lap_id(1), lap_payload(1))
    assert encoder.batch().runs is False


def test_laps_fill_a_budget_exactly_and_not_one_byte_beyond():
    probe = BatchEncoder(10**9, compact=True)
    for seq in range(1, 6):
        probe.add(seq, "lap", lap_id(seq), lap_payload(seq))
    estimate = probe.size  # the encoder's own bound: one run frame plus each lap's values
    exact = BatchEncoder(estimate, compact=True)
    assert all(exact.add(seq, "lap", lap_id(seq), lap_payload(seq)) for seq in range(1, 6))
    short = BatchEncoder(estimate - 1, compact=True)
    added = [short.add(seq, "lap", lap_id(seq), lap_payload(seq)) for seq in range(1, 6)]
    assert added == [True, True, True, True, False]


def test_the_size_bound_of_a_run_counts_its_frame_once():
    encoder = BatchEncoder(10**9, compact=True)
    for seq in range(1, 101):
        encoder.add(seq, "lap", lap_id(seq), lap_payload(seq))
    bound, encoded = encoder.size, len(encoder.batch().changes)
    assert encoded <= bound <= encoded + 25  # the frame's room for a 20-digit seq and a comma
