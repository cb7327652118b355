"""The wire format: what a real laptop outbox holds passes validate_push; the rest does not."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from cuid2 import is_cuid
from hypothesis import given, settings
from hypothesis import strategies as st

from lapsync import protocol
from lapsync.ids import new_id
from lapsync.laptop.db import device_id
from lapsync.laptop.laps import record_lap, set_void
from lapsync.protocol import (
    ProtocolError,
    compact_changes,
    expand_changes,
    is_id,
    last_seq,
    validate_push,
)


def outbox_body(db) -> dict:
    """Build a push body from the laptop's outbox exactly as its rows stand."""
    changes = [{"seq": r["seq"], "entity": r["entity"], "id": r["entity_id"],
                "data": json.loads(r["payload"])}
               for r in db.query("SELECT * FROM change ORDER BY seq")]
    return {"protocol": 1, "device_id": device_id(db), "device_time": 1_700_000_000_000,
            "changes": changes}


def test_a_real_laptop_outbox_passes_validation_unchanged(db, runners):
    user = db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]
    lap = record_lap(db, 17, user, 0)["lap"]["id"]
    set_void(db, lap, user, True, "typo")
    set_void(db, lap, user, False)
    body = outbox_body(db)
    assert {c["entity"] for c in body["changes"]} == {"user", "runner", "lap", "lap_void"}
    assert validate_push(body) == body


@pytest.mark.parametrize("value,ok", [
    pytest.param(new_id(), True, id="a-fresh-new_id"), ("c" + "a1" * 12, True), ("a" * 20, True), ("a" * 32, True),
    ("a" * 23 + "\n", False), ("ä" * 24, False),
    ("a" * 19, False), ("a" * 33, False), ("1" + "a" * 23, False), ("A" * 24, False),
    ("a-" * 12, False), (None, False), (12345678901234567890, False),
])
def test_ids_are_cuids_of_20_to_32_characters(value, ok):
    assert is_id(value) is ok
    assert is_cuid(value, min_length=20, max_length=32) is ok  # the same rule as cuid2's


def test_changes_keep_the_origin_they_were_made_with(db, runners):
    """A laptop file copied from another keeps the other's origin on older changes."""
    body = outbox_body(db)
    origins = {c["data"].get("origin") for c in body["changes"]}
    assert len(origins - {None}) == 2  # users from the fixture's template, runners from here
    assert validate_push(body) == body


def test_a_bad_change_is_named_by_index_seq_and_field(db, runners):
    body = outbox_body(db)
    index = next(i for i, c in enumerate(body["changes"]) if c["entity"] == "runner")
    body["changes"][index]["data"]["grade"] = "5"
    with pytest.raises(ProtocolError) as refused:
        validate_push(body)
    assert refused.value.status == 422 and refused.value.code == "invalid_change"
    assert refused.value.extra == {"index": index, "seq": body["changes"][index]["seq"],
                                   "field": "grade"}
    assert "must be an integer" in refused.value.message


@pytest.mark.parametrize("mutate", [
    lambda c: c.update(extra=1), lambda c: c.pop("id"), lambda c: c.update(id=None),
    lambda c: c["data"].pop("id"), lambda c: c["data"].update(speed=1),
    lambda c: c["data"].update(time=True), lambda c: c["data"].update(time=-1),
    lambda c: c.update(seq=True), lambda c: c["data"].update(runner_id="X" * 24),
    lambda c: c.update(id=new_id()),
])
def test_the_fast_lap_check_lets_no_bad_lap_through(mutate):
    """Regression guard: laps take a fast path; every bad one must still be refused."""
    device = new_id()
    change = {"seq": 1, "entity": "lap", "id": new_id(), "data": {}}
    change["data"] = {"id": change["id"], "runner_id": new_id(), "created_by": new_id(),
                      "time": 1_700_000_000_000, "device_id": device}
    assert validate_push({"protocol": 1, "device_id": device, "device_time": 1,
                          "changes": [json.loads(json.dumps(change))]})
    mutate(change)
    with pytest.raises(ProtocolError) as refused:
        validate_push({"protocol": 1, "device_id": device, "device_time": 1, "changes": [change]})
    assert refused.value.status == 422


# ---- compact lap runs -------------------------------------------------------------

def lap_run_body(laps: int = 4, first_seq: int = 1) -> dict:
    """Return a push body of one compact run of LAPS laps from FIRST_SEQ."""
    device = new_id()
    return {"protocol": 1, "device_id": device, "device_time": 1, "changes": [{
        "seq": first_seq, "entity": "laps", "data": {
            "id": [new_id() for _ in range(laps)], "runner_id": [new_id() for _ in range(laps)],
            "created_by": [new_id()] * laps, "time": [1_700_000_000_000 + i for i in range(laps)],
            "device_id": [device] * laps}}]}


def test_compact_lap_runs_stand_for_their_laps(db, runners):
    user = db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]
    laps = [record_lap(db, n, user, 0)["lap"]["id"] for n in (1, 2, 17)]
    set_void(db, laps[0], user, True, "typo")
    record_lap(db, 2, user, 0)
    verbose = outbox_body(db)
    compact = {**verbose, "changes": compact_changes(verbose["changes"])}
    runs = [c for c in compact["changes"] if c["entity"] == "laps"]
    assert [len(run["data"]["id"]) for run in runs] == [3, 1]
    cleaned = validate_push(json.loads(json.dumps(compact)))
    assert cleaned == compact
    assert expand_changes(cleaned["changes"]) == validate_push(verbose)["changes"]
    assert [last_seq(c) for c in cleaned["changes"]][-1] == verbose["changes"][-1]["seq"]


RUN_FIELDS = ("id", "runner_id", "created_by", "time", "device_id")


@pytest.mark.parametrize("mutate,seq,field", [
    (lambda r: r["data"]["runner_id"].__setitem__(2, "X" * 24), 12, "runner_id"),
    (lambda r: r["data"]["id"].__setitem__(3, None), 13, "id"),
    (lambda r: r["data"]["created_by"].__setitem__(1, "a" * 19), 11, "created_by"),
    (lambda r: r["data"]["device_id"].__setitem__(0, "a" * 33), 10, "device_id"),
    (lambda r: r["data"]["time"].__setitem__(1, True), 11, "time"),
    (lambda r: r["data"]["time"].__setitem__(2, 1.5), 12, "time"),
    (lambda r: r["data"]["time"].__setitem__(3, -1), 13, "time"),
    (lambda r: r["data"]["time"].__setitem__(0, 10 ** 14), 10, "time"),
    (lambda r: r["data"]["time"].__setitem__(0, "1700000000000"), 10, "time"),
    # a newline-joined pair of ids must not pass as two ids of the column
    (lambda r: r["data"]["id"].__setitem__(1, "a" * 24 + "\n" + "b" * 24), 11, "id"),
    (lambda r: r["data"]["runner_id"].pop(), 10, "runner_id"),
    (lambda r: r["data"]["time"].append(1), 10, "time"),
    (lambda r: r["data"].update(device_id="a" * 24), 10, "device_id"),
    # not lists at all: refused as bad input, never a 500 (regression)
    (lambda r: r["data"].update(runner_id=5), 10, "runner_id"),
    (lambda r: r["data"].update(id=None), 10, "id"),
    (lambda r: r["data"].update(time=1_700_000_000_000), 10, "time"),
    (lambda r: r["data"].update(created_by={"a": 1}), 10, "created_by"),
    (lambda r: r["data"].update(id=[], runner_id=[], created_by=[], time=[], device_id=[]), 10, "id"),
    (lambda r: r["data"].pop("created_by"), 10, "created_by"),
    (lambda r: r["data"].update(speed=[1, 2, 3, 4]), 10, "speed"),
    (lambda r: r.update(id=r["data"]["id"][0]), 10, "id"),
    (lambda r: r.pop("data"), 10, "data"),
    (lambda r: r.update(data=[1]), 10, None),
    (lambda r: r.update(seq=True), None, "seq"),
    (lambda r: r.update(seq=0), 0, "seq"),
])
def test_a_bad_compact_run_is_refused_naming_the_lap_and_field(mutate, seq, field):
    body = lap_run_body(4, first_seq=10)
    assert validate_push(json.loads(json.dumps(body)))
    mutate(body["changes"][0])
    with pytest.raises(ProtocolError) as refused:
        validate_push(body)
    assert refused.value.status == 422 and refused.value.code == "invalid_change"
    assert refused.value.extra.get("index") == 0 and refused.value.extra.get("field") == field
    assert refused.value.extra.get("seq") == seq


def test_a_change_after_a_run_must_follow_its_last_lap():
    body = lap_run_body(5, first_seq=3)
    lap = expand_changes(lap_run_body(1)["changes"])[0]
    body["changes"].append({**lap, "seq": 7})          # the run ends at 7
    with pytest.raises(ProtocolError) as refused:
        validate_push(body)
    assert refused.value.extra == {"index": 1, "seq": 7, "field": "seq"}
    body["changes"][1]["seq"] = 8
    assert [last_seq(c) for c in validate_push(body)["changes"]] == [7, 8]


def test_runs_count_their_laps_towards_the_batch_limit(monkeypatch):
    monkeypatch.setattr(protocol.limits, "MAX_BATCH_CHANGES", 10)
    assert validate_push(lap_run_body(10))
    with pytest.raises(ProtocolError) as refused:
        validate_push(lap_run_body(11))
    assert refused.value.status == 413 and refused.value.code == "batch_too_large"



_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10 ** 15), st.floats(),
              st.text(max_size=30), st.just(new_id()), st.just("a" * 24 + "\n" + "b" * 24)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(RUN_FIELDS), whole_column=st.booleans(), value=_VALUES)
def test_any_value_in_a_lap_run_is_valid_or_refused_never_a_crash(field, whole_column, value):
    """Regression guard: a column that was not a list raised TypeError (a 500 at central)."""
    body = lap_run_body(3, first_seq=5)
    column = body["changes"][0]["data"][field]
    if whole_column:
        body["changes"][0]["data"][field] = value
    else:
        column[1] = value
    try:
        validate_push(body)
    except ProtocolError as refused:
        assert refused.status == 422 and refused.extra["seq"] in ((5, 6, 7) if whole_column else (6,))
        # a column of another length is named where the lengths part (at 'id' or at field)
        assert refused.extra["field"] in ((field, "runner_id") if whole_column else (field,))


# ---- fuzzing the validator ----------------------------------------------

def test_protocol_null_is_an_unsupported_protocol_not_an_absent_one():
    """Regression (schemathesis): "protocol": null was taken for an absent field and accepted."""
    body = lap_run_body(1)
    with pytest.raises(ProtocolError) as refused:
        validate_push({**body, "protocol": None})
    assert refused.value.status == 400 and refused.value.code == "unsupported_protocol"
    body.pop("protocol")
    with pytest.raises(ProtocolError) as refused:
        validate_push(body)
    assert refused.value.status == 422 and refused.value.extra == {"field": "protocol"}


@pytest.mark.parametrize("hlc", ["١٧٠٠٠٠٠٠٠٠٠٠٠.٠٠٠٠", "１７００００００００００００.００００",
                                 "1700000000000.0000\n", " 1700000000000.0000"])
def test_an_hlc_is_ascii_digits_only(hlc):
    """Regression: \\d let Arabic-Indic digits through; such a stamp sorts above every real
    one, so the runner it came with could never be edited again anywhere."""
    box = {"seq": 1, "entity": "runner", "id": "r" * 24, "data": {
        "id": "r" * 24, "start_number": 1, "name": "Anna", "class": "5a", "grade": 5,
        "hlc": "1700000000000.0000", "origin": "o" * 24}}
    body = {"protocol": 1, "device_id": "d" * 24, "device_time": 1, "changes": [box]}
    assert validate_push(json.loads(json.dumps(body)))
    box["data"]["hlc"] = hlc
    with pytest.raises(ProtocolError) as refused:
        validate_push(body)
    assert refused.value.extra == {"index": 0, "seq": 1, "field": "hlc"}


def _spec_validator(name: str) -> jsonschema.Draft202012Validator:
    """Return a validator for one schema of sync/openapi.yaml (OpenAPI 3.1 is JSON Schema)."""
    spec = yaml.safe_load((Path(protocol.__file__).parents[2] / "sync" / "openapi.yaml").read_text())
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                            "components": spec["components"]})


SPEC_PUSH = _spec_validator("PushRequest")


# A valid body with one change of every kind, fixed ids (hypothesis replays examples).
def _every_kind_body() -> dict:
    """Return a valid push body: runner, user, lap, compact run, void."""
    me, user, runner, lap = "d" * 24, "u" * 24, "r" * 24, "l" * 24
    stamp = "1700000000000.0001"
    return {"protocol": 1, "device_id": me, "device_time": 1_700_000_000_000, "changes": [
        {"seq": 1, "entity": "runner", "id": runner, "data": {
            "id": runner, "start_number": 7, "name": "Anna Berg", "class": "5a", "grade": 5,
            "hlc": stamp, "origin": me}},
        {"seq": 2, "entity": "user", "id": user, "data": {
            "id": user, "name": "tom", "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
            "role": "teacher", "created_at": 5, "hlc": stamp, "origin": me}},
        {"seq": 3, "entity": "lap", "id": lap, "data": {
            "id": lap, "runner_id": runner, "created_by": user, "time": 1_700_000_000_000,
            "device_id": me}},
        {"seq": 4, "entity": "laps", "data": {
            "id": ["m" * 24, "n" * 24], "runner_id": [runner] * 2, "created_by": [user] * 2,
            "time": [1, 2], "device_id": [me] * 2}},
        {"seq": 6, "entity": "lap_void", "id": lap, "data": {
            "lap_id": lap, "voided": True, "at": 3, "by": user, "reason": "typo",
            "hlc": "1700000000000.0002", "origin": me}},
    ]}


_TEXT = st.text(alphabet=st.characters(codec=None), max_size=40)  # lone surrogates too
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 2 ** 64), st.floats(), _TEXT,
              st.sampled_from(["", " ", "a" * 24, "A" * 24, "1700000000000.0000", "laps", "lap",
                               "runner", "user", "lap_void", "$argon2", "admin", "\x00", "\n",
                               "١٧٠٠٠٠٠٠٠٠٠٠٠.٠٠٠٠", "=cmd|' /C calc'!A0", "'; DROP TABLE lap;--"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=10)


_WIDE_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def near_misses(value: object) -> list:
    """Return values close to a valid one: the edge cases a validator gets wrong."""
    if isinstance(value, bool):
        return [not value, 0, 1, "true", None]
    if isinstance(value, int):
        return [value - 1, value + 1, -1, 0, 10 ** 14, 10 ** 14 - 1, 2 ** 63, float(value),
                str(value), True, None]
    if isinstance(value, str):
        return [value.translate(_WIDE_DIGITS), value.upper(), value + "\n", " " + value + " ",
                value[:-1], value + "a", value * 5, "", value + "\x00", value + "\ud800",
                value + "\t", value[:1] + "\t" + value[1:], value[:1] + "\x00" + value[1:], None]
    if isinstance(value, list):
        return [value[:-1], value + value[-1:], [], value[:1] * 3, None]
    return [None, [], {}, "x"]


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Return the path of every part of a JSON value below it."""
    keys = value if isinstance(value, dict) else range(len(value)) if isinstance(value, list) else ()
    return [p for k in keys for p in [prefix + (k,), *_paths(value[k], prefix + (k,))]]


@st.composite
def mutated_bodies(draw) -> object:
    """Draw a valid body with a few parts tweaked, replaced, dropped or added, or any JSON."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_JSON)
    body = _every_kind_body()
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body)
        if not paths:
            break
        *where, key = draw(st.sampled_from(paths))
        holder = body
        for step in where:
            holder = holder[step]
        action = draw(st.sampled_from(["tweak", "tweak", "tweak", "replace", "drop", "add"]))
        if action == "tweak":
            holder[key] = draw(st.sampled_from(near_misses(holder[key])))
        elif action == "replace":
            holder[key] = draw(_JSON)
        elif action == "drop":
            del holder[key]
        elif isinstance(holder, dict):
            holder[draw(_TEXT)] = draw(_JSON)
        else:
            holder.append(draw(_JSON))
    return body


TRIMMED = {"name", "class", "reason", "password_hash"}  # the spec's limits count after trimming


def trimmed(body: dict) -> dict:
    """Return body with the text fields the protocol trims trimmed (a copy)."""
    body = json.loads(json.dumps(body))
    for change in body["changes"]:
        data = change["data"]
        for name in TRIMMED & set(data) if change["entity"] != "laps" else ():
            data[name] = data[name].strip() if isinstance(data[name], str) else data[name]
    return body


def check_outcome(body: object) -> None:
    """Assert validate_push cleans what the spec allows or refuses it with a 4xx, no crash."""
    try:
        cleaned = validate_push(body)
    except ProtocolError as refused:
        assert refused.status in (400, 413, 422)
        assert refused.code and refused.message and isinstance(refused.message, str)
        if refused.code == "invalid_change":
            assert 0 <= refused.extra["index"] < len(body["changes"])
        return
    SPEC_PUSH.validate(trimmed(body))                 # accepted only what the spec allows
    assert validate_push(json.loads(json.dumps(cleaned))) == cleaned  # clean stays clean
    seqs = [c["seq"] for c in expand_changes(cleaned["changes"])]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True
    for change in expand_changes(cleaned["changes"]):
        for name, value in change["data"].items():   # the values: json.dumps writes NUL as \u0000
            if isinstance(value, str):
                assert "\x00" not in value
                value.encode("utf-8")                             # no lone surrogates
                if change["entity"] == "runner" and name in ("name", "class"):
                    assert not any(c < " " or c == "\x7f" for c in value)  # spec: no controls


def test_every_near_miss_in_every_place_is_refused_unless_the_spec_allows_it():
    """Each part of a valid body, in turn, set to each of its near misses (about 800 bodies)."""
    tried = 0
    for *where, key in _paths(_every_kind_body()):
        for value in near_misses(_locate(_every_kind_body(), where)[key]):
            body = _every_kind_body()
            _locate(body, where)[key] = value
            check_outcome(body)
            tried += 1
    assert tried > 500


def _locate(body: object, where: list) -> object:
    """Return the part of body at path where."""
    for step in where:
        body = body[step]
    return body


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(body=mutated_bodies())
def test_any_json_body_is_cleaned_or_refused_with_a_4xx_never_a_crash(body):
    """Whatever JSON arrives, the validator returns a clean batch or a ProtocolError."""
    check_outcome(body)


@pytest.mark.parametrize("encoding", [None, "", "identity", " Identity "])
def test_a_body_without_a_content_encoding_is_taken_as_it_is(encoding):
    raw = b'{"protocol": 1}'
    assert protocol.decode_body(raw, encoding) is raw


def test_a_gzip_body_unpacks_to_exactly_its_json():
    import gzip
    raw = json.dumps({"protocol": 1, "changes": ["x" * 1000] * 50}).encode()
    assert protocol.decode_body(gzip.compress(raw, 1), "gzip") == raw
