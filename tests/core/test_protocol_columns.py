"""The columnar push body (lapsync/protocol/columns.py, encode_columns.py): the JSON body's
batch with its lap runs as binary columns.

What one end writes, the other reads back as exactly what validate_push returns for the
same batch as JSON; a bad batch is refused with the JSON body's error (status, code,
message, extra); a body that breaks the layout is a 400 and nothing else ever escapes.
"""
from __future__ import annotations

import copy
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lapsync.protocol import BatchEncoder, ProtocolError, expand_changes, validate_push
from lapsync.protocol import columns
from lapsync.protocol.columns import MAGIC, encode_body, section, strict_json, validate_columns
from lapsync.protocol.encode_columns import ColumnEncoder, split_laps
from tests.core.test_protocol import _every_kind_body, near_misses

LAPTOP, RUNNER, USER = "l" + "a" * 23, "r" + "b" * 23, "u" + "c" * 23
NOW = 1_700_000_000_000


def run(seq: int = 1, laps: int = 3, runners: int = 2) -> dict:
    """Return a valid compact run of LAPS laps from SEQ over RUNNERS runners."""
    return {"seq": seq, "entity": "laps", "data": {
        "id": [f"p{seq:08d}{i:015d}" for i in range(laps)],
        "runner_id": [f"r{i % runners:023d}" for i in range(laps)],
        "created_by": [USER] * laps, "time": [NOW + i for i in range(laps)],
        "device_id": [LAPTOP] * laps}}


def outcome(check, body) -> tuple:
    """Return what a check makes of a body: ("ok", batch) or the error's fields."""
    try:
        return "ok", check(body)
    except ProtocolError as exc:
        return exc.status, exc.code, exc.message, exc.extra


def same_as_json(body: dict) -> tuple:
    """Assert the columnar form of BODY is read as validate_push reads BODY; return that."""
    expected = outcome(validate_push, copy.deepcopy(body))
    assert outcome(validate_columns, encode_body(body)) == expected
    return expected


# ---- read back as the JSON body -----------------------------------------------------------

def test_a_body_of_every_kind_reads_back_as_its_json_body():
    body = _every_kind_body()
    assert same_as_json(body) == ("ok", validate_push(_every_kind_body()))


@pytest.mark.parametrize("laps, runners", [(1, 1), (2, 2), (100, 7), (5000, 300)])
def test_runs_of_any_size_read_back_exactly(laps, runners):
    body = {"protocol": 1, "device_id": LAPTOP, "device_time": NOW,
            "changes": [run(1, laps, runners), run(laps + 1, 2, 1)]}
    batch = validate_columns(encode_body(body))
    assert batch == validate_push(copy.deepcopy(body)) == body
    runners_read = batch["changes"][0]["data"]["runner_id"]
    assert len({id(r) for r in runners_read}) == runners  # one string per runner, shared


def test_an_empty_batch_and_clock_jumps_travel_in_the_head():
    jumps = [{"id": "j" * 24, "at": NOW, "jump_ms": -3_600_000, "after_seq": 0}]
    for body in ({"protocol": 1, "device_id": LAPTOP, "device_time": NOW, "changes": []},
                 {"protocol": 1, "device_id": LAPTOP, "device_time": NOW, "changes": [],
                  "clock_jumps": jumps}):
        assert same_as_json(body) == ("ok", body)


def test_a_columnar_body_is_smaller_than_its_json():
    body = {"protocol": 1, "device_id": LAPTOP, "device_time": NOW, "changes": [run(1, 1000)]}
    assert len(encode_body(body)) * 2 < len(json.dumps(body))


# ---- refused as the JSON body is ------------------------------------------------------

def bad_run(column: str, at: int, value) -> dict:
    """Return a body whose run has VALUE as lap AT's COLUMN."""
    change = run(10, 5, 3)
    change["data"][column][at] = value
    return {"protocol": 1, "device_id": LAPTOP, "device_time": NOW, "changes": [change]}


@pytest.mark.parametrize("column", ["id", "runner_id", "created_by", "device_id"])
@pytest.mark.parametrize("value", ["A" * 24, "a" * 19, "a" * 33, "1" + "a" * 23, "a b" + "c" * 21,
                                   "ä" * 24, ""])
@pytest.mark.parametrize("at", [0, 4])
def test_a_bad_id_in_a_run_is_refused_naming_its_lap(column, value, at):
    status, code, message, extra = same_as_json(bad_run(column, at, value))
    assert (status, code, extra["seq"]) == (422, "invalid_change", 10 + at)


@pytest.mark.parametrize("value", [-1, 10 ** 14, 2 ** 63 - 1, -2 ** 63])
def test_a_time_out_of_range_in_a_run_is_refused_naming_its_lap(value):
    status, code, message, extra = same_as_json(bad_run("time", 3, value))
    assert (status, code, extra["seq"], extra["field"]) == (422, "invalid_change", 13, "time")


@pytest.mark.parametrize("seqs", [(0, 4), (5, 5), (5, 9), (2 ** 63 - 2, None)])
def test_seqs_of_runs_and_changes_follow_the_json_rules(seqs):
    first, second = seqs
    changes = [run(first, 3)] + ([] if second is None else [run(second, 2)])
    status, code = same_as_json({"protocol": 1, "device_id": LAPTOP, "device_time": NOW,
                                 "changes": changes})[:2]
    assert (status, code) == (422, "invalid_change")


@pytest.mark.parametrize("head", [{"protocol": 2}, {"device_id": "X"}, {"device_time": -1},
                                  {"device_time": True}, {"extra": 1},
                                  {"clock_jumps": [{"id": "j" * 24}]}])
def test_a_bad_head_is_refused_as_the_json_body_is(head):
    body = {"protocol": 1, "device_id": LAPTOP, "device_time": NOW, "changes": [run()], **head}
    assert same_as_json(body)[0] in (400, 422)


def test_too_many_changes_are_a_413_counted_as_in_json(monkeypatch):
    monkeypatch.setattr("lapsync.protocol.limits.MAX_BATCH_CHANGES", 10)
    for changes, status in [([run(1, 10)], "ok"), ([run(1, 11)], 413),
                            ([run(1, 3)] * 11, 413), ([run(1, 9), run(10, 1)], "ok")]:
        body = {"protocol": 1, "device_id": LAPTOP, "device_time": NOW,
                "changes": copy.deepcopy(changes)}
        assert same_as_json(body)[0] == status


# Near misses of a valid body of every kind (test_protocol.py's mutations): wherever the
# columnar form can say it, it is read exactly as the JSON body is, refusals included.
def _mutations(body: dict) -> list[dict]:
    """Return bodies that differ from BODY in one value, each a near miss."""
    found = []

    def walk(node, path):
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            if isinstance(value, (dict, list)):
                walk(value, path + [key])
                continue
            for other in near_misses(value):
                mutated = copy.deepcopy(body)
                target = mutated
                for step in path:
                    target = target[step]
                target[key] = other
                found.append(mutated)
    walk(body, [])
    return found


def utf8(text: str) -> bool:
    """Tell whether text can be written as UTF-8 (no lone surrogates)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def expressible(body: dict) -> bool:
    """Tell whether the columnar form can carry BODY's runs (ids one-line strings, int times)."""
    for change in body.get("changes", []):
        if isinstance(change, dict) and change.get("entity") == "laps":
            data = change.get("data")
            if not isinstance(data, dict) or set(data) != {"id", "runner_id", "created_by",
                                                          "time", "device_id"}:
                return False
            if not all(isinstance(v, list) for v in data.values()) \
                    or type(change.get("seq")) is not int or not 0 <= change["seq"] < 2 ** 64:
                return False
            if any(type(t) is not int or not -2 ** 63 <= t < 2 ** 63 for t in data["time"]):
                return False
            if any(type(v) is not str or "\n" in v or not v or not utf8(v)
                   for name in ("id", "runner_id", "created_by", "device_id") for v in data[name]):
                return False
    return isinstance(body.get("changes"), list)


MUTATIONS = [m for m in _mutations(_every_kind_body()) if expressible(m)]


@pytest.mark.parametrize("body", MUTATIONS)
def test_every_near_miss_is_read_as_the_json_body_is(body):
    same_as_json(body)


# ---- a body that breaks the layout -----------------------------------------------------------

def good_body() -> bytes:
    """Return a valid columnar body (a runner change and a run)."""
    body = _every_kind_body()
    body["changes"] = body["changes"][:2] + [dict(run(3, 4), seq=3)]
    return encode_body(body)


def head_only() -> bytes:
    """Return the magic and a valid head section."""
    return MAGIC + section(b"H", json.dumps({"protocol": 1, "device_id": LAPTOP,
                                             "device_time": NOW}).encode())


def broken_run(**fields) -> bytes:
    """Return a body whose one run section is built from FIELDS over a valid run's parts."""
    parts = {"seq": 1, "n": 2, "times": struct.pack("<2q", NOW, NOW + 1),
             "ids": "\n".join(["p" * 24, "q" * 24]).encode(), "values": RUNNER.encode(),
             "index": struct.pack("<2I", 0, 0), "tail": b"", **fields}
    dictionary = struct.pack("<I", len(parts["values"])) + parts["values"] + parts["index"]
    payload = (struct.pack("<QI", parts["seq"], parts["n"]) + parts["times"]
               + struct.pack("<I", len(parts["ids"])) + parts["ids"] + dictionary * 3 + parts["tail"])
    return head_only() + section(b"L", payload)


MALFORMED = {
    "empty": b"",
    "not columnar": b'{"protocol": 1}',
    "another layout version": b"LAPSYNC\x02" + head_only()[8:],
    "no head": MAGIC,
    "a run before the head": MAGIC + section(b"L", b""),
    "a section header cut short": head_only() + b"L\x00\x00",
    "a section longer than the body": head_only() + struct.pack("<cI", b"C", 100) + b"[]",
    "a second head": head_only() + head_only()[8:],
    "an unknown section": head_only() + section(b"X", b"[]"),
    "a run cut short": head_only() + section(b"L", struct.pack("<QI", 1, 5)),
    "bytes after a run": broken_run(tail=b"\x00"),
    "an index past the dictionary": broken_run(index=struct.pack("<2I", 0, 1)),
    "ids that are not UTF-8": broken_run(ids=b"\xff" * 24 + b"\n" + b"q" * 24),
    "more laps than times": broken_run(n=3),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_body_that_breaks_the_layout_is_a_400(case):
    with pytest.raises(ProtocolError) as refused:
        validate_columns(MALFORMED[case])
    assert refused.value.status == 400 and refused.value.code == "malformed_body"
    assert refused.value.message.startswith("The columnar body is malformed: ")


@pytest.mark.parametrize("raw, code", [(head_only()[:-1], "malformed_body"),
                                       (MAGIC + section(b"H", b"{'protocol': 1}"), "malformed_json"),
                                       (MAGIC + section(b"H", b'{"a": 1, "a": 2}'), "malformed_json"),
                                       (head_only() + section(b"C", b"[NaN]"), "malformed_json")])
def test_json_inside_is_read_as_strictly_as_a_json_body(raw, code):
    with pytest.raises(ProtocolError) as refused:
        validate_columns(raw)
    assert (refused.value.status, refused.value.code) == (400, code)


def test_a_changes_section_that_is_not_a_list_is_a_422_as_in_json():
    with pytest.raises(ProtocolError) as refused:
        validate_columns(head_only() + section(b"C", b'{"seq": 1}'))
    assert (refused.value.status, refused.value.code) == (422, "invalid_body")


def test_a_head_that_holds_changes_is_refused():
    raw = MAGIC + section(b"H", json.dumps({"protocol": 1, "device_id": LAPTOP,
                                            "device_time": NOW, "changes": []}).encode())
    with pytest.raises(ProtocolError) as refused:
        validate_columns(raw)
    assert (refused.value.status, refused.value.code, refused.value.extra) == (
        422, "invalid_body", {"field": "changes"})


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_damage_to_a_body_is_refused_as_a_4xx_and_nothing_else(data):
    raw = bytearray(good_body())
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, len(raw)))
        if action == "flip" and at < len(raw):
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del raw[at:at + data.draw(st.integers(1, 16))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        batch = validate_columns(bytes(raw))
    except ProtocolError as exc:
        assert 400 <= exc.status < 500
    else:
        assert validate_push(copy.deepcopy(batch)) == batch  # whatever passed is a valid batch


# ---- the laptop's encoder ---------------------------------------------------------------

def lap_row(seq: int, i: int, **data) -> tuple:
    """Return an outbox row of a lap exactly as record_change writes it (DATA: other values)."""
    lap = {"id": f"p{i:023d}", "runner_id": RUNNER, "created_by": USER, "time": NOW + i,
           "device_id": LAPTOP, **data}
    return seq, "lap", lap["id"], json.dumps(lap, separators=(",", ":"))


def void_row(seq: int, i: int) -> tuple:
    """Return an outbox row voiding lap i."""
    void = {"lap_id": f"p{i:023d}", "voided": True, "at": NOW, "by": USER, "reason": None,
            "hlc": "1700000000000.0000", "origin": LAPTOP}
    return seq, "lap_void", void["lap_id"], json.dumps(void, separators=(",", ":"))


def outbox() -> list[tuple]:
    """Return outbox rows of every sort: stretches of laps, a void, a gap, odd lap payloads."""
    rows = [lap_row(seq, seq) for seq in range(1, 301)]
    rows[50] = void_row(51, 7)
    rows[120] = lap_row(121, 121, extra="field")                 # another form: verbatim
    rows[121] = (122, "lap", "z" * 24, lap_row(122, 122)[3])     # id differs: verbatim
    rows[122] = lap_row(123, 123, time=1.5)                      # not an integer: verbatim
    rows[123] = (124, "lap", "p" + "0" * 23, '{"id":"p' + "0" * 23 + '","runner_id":"a\\u0062c"}')
    rows[124] = lap_row(125, 125, time=10 ** 19)                 # beyond int64: verbatim
    del rows[200]                                                # a gap in seqs
    return rows


def json_changes(rows: list[tuple]) -> list[dict]:
    """Return what the JSON encoder makes of the rows, expanded."""
    encoder = BatchEncoder(10 ** 9, compact=True)
    assert all(encoder.add(*row) for row in rows)
    return expand_changes(json.loads(encoder.batch().body(LAPTOP, NOW))["changes"])


def columnar_changes(rows: list[tuple], chunk: int, budget: int = 10 ** 9) -> list[list[dict]]:
    """Encode ROWS in chunks as columnar batches of BUDGET bytes; return each batch's changes."""
    batches, rest = [], list(rows)
    while rest:
        encoder = ColumnEncoder(budget)
        for start in range(0, len(rest), chunk):
            if not encoder.add_rows(rest[start:start + chunk]):
                break
        batch = encoder.batch()
        assert batch.seqs and list(batch.seqs) == [row[0] for row in rest[:len(batch.seqs)]]
        raw = batch.body(LAPTOP, NOW)
        assert len(raw) <= budget + 200  # the head is not part of the budget
        decoded = unchecked(raw)
        batches.append(expand_changes(decoded["changes"]))
        rest = rest[len(batch.seqs):]
    return batches


def unchecked(raw: bytes) -> dict:
    """Return a columnar body's changes without checking their values (the encoder's view)."""
    parts = columns.sections(raw)
    next(parts)  # the head
    return {"changes": [_unchecked_run(item) if isinstance(item, memoryview) else item
                        for item in columns.read_items(parts)]}


def _unchecked_run(payload: memoryview) -> dict:
    """Return a run section's run without checking its values (the encoder's view)."""
    seq, n = struct.unpack_from("<QI", payload)
    times = list(struct.unpack_from(f"<{n}q", payload, 12))
    pos = 12 + 8 * n
    (size,) = struct.unpack_from("<I", payload, pos)
    ids = bytes(payload[pos + 4:pos + 4 + size]).decode().split("\n")
    pos += 4 + size
    data = {"id": ids, "time": times}
    for name in ("runner_id", "created_by", "device_id"):
        (size,) = struct.unpack_from("<I", payload, pos)
        values = bytes(payload[pos + 4:pos + 4 + size]).decode().split("\n")
        pos += 4 + size
        data[name] = [values[i] for i in struct.unpack_from(f"<{n}I", payload, pos)]
        pos += 4 * n
    return {"seq": seq, "entity": "laps", "data": data}


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_the_encoder_sends_what_the_json_encoder_sends(chunk):
    rows = outbox()
    assert columnar_changes(rows, chunk) == [json_changes(rows)]


@pytest.mark.parametrize("budget", [300, 2_000, 9_000])
def test_a_budget_splits_the_outbox_into_batches_that_hold_every_row_once(budget):
    rows = outbox()
    batches = columnar_changes(rows, 64, budget)
    assert len(batches) > 1
    assert [c for batch in batches for c in batch] == json_changes(rows)


def test_stretches_of_canonical_laps_are_taken_apart_in_one_pass():
    rows = [lap_row(seq, seq) for seq in range(1, 101)]
    _, _, ids, payloads = zip(*rows)
    columns = split_laps(payloads, ids)
    assert columns[0] == list(ids) and columns[3] == [NOW + i for i in range(1, 101)]
    for odd in [lap_row(5, 5, extra=1), lap_row(5, 5, time=1.5), lap_row(5, 5, time=-1),
                lap_row(5, 5, time="5"), lap_row(5, 5, runner_id='a"b'),
                lap_row(5, 5, runner_id="a\\u0062"), (5, "lap", "x", lap_row(5, 5)[3]),
                lap_row(5, 5, time=10 ** 18), lap_row(5, 5, time=0)]:
        changed = list(rows)
        changed[4] = odd
        _, _, ids, payloads = zip(*changed)
        found = split_laps(payloads, ids)
        assert found is None or (odd == lap_row(5, 5, time=0) and found[3][4] == 0)


def test_strict_json_refuses_what_central_refuses():
    for raw in [b'{"a":1,"a":2}', b"[NaN]", b"[Infinity]", b"{", b"\xff"]:
        with pytest.raises(ProtocolError):
            strict_json(raw)
