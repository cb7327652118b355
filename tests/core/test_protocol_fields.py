"""Every field of every pushed entity (lap, lap_void, runner, user), at its limits.

Both ends run lapsync.protocol.validate_push: the laptop before it sends, central on
every push. What one end accepts the other must accept too, so each limit is pinned
here from both sides: the value exactly at the limit is accepted, the value one past
it is refused with a 422 naming the change (index, seq) and the field. The limits are
written as numbers on purpose, never imported from the code under test.
Text fields (control characters, bidi, zero-width, trimming) are in test_protocol_text.py.
"""
from __future__ import annotations

import copy

import pytest

from lapsync.protocol import ProtocolError, validate_change, validate_push
from tests.core.protocol_data import (
    DEVICE,
    HASH,
    LAP,
    NOW,
    valid_data,
)

KEY = {"lap": "id", "lap_void": "lap_id", "runner": "id", "user": "id"}  # the change's id


def change_with(entity: str, field: str, value: object, seq: int = 1) -> dict:
    """Return a change of ENTITY whose data has FIELD set to VALUE (change id follows data)."""
    data = valid_data(entity)
    data[field] = value
    return {"seq": seq, "entity": entity, "id": data[KEY[entity]], "data": data}


def valid_change(entity: str, seq: int = 1) -> dict:
    """Return a valid change of ENTITY."""
    data = valid_data(entity)
    return {"seq": seq, "entity": entity, "id": data[KEY[entity]], "data": data}


def body_of(*changes: dict) -> dict:
    """Return a push body of these changes."""
    return {"protocol": 1, "device_id": DEVICE, "device_time": NOW, "changes": list(changes)}


def accepted(entity: str, field: str, value: object) -> object:
    """Push one change with FIELD = VALUE; return the field's cleaned value."""
    change = change_with(entity, field, value)
    cleaned = validate_push(body_of(copy.deepcopy(change)))
    assert cleaned["changes"][0]["seq"] == 1 and cleaned["changes"][0]["entity"] == entity
    assert cleaned["changes"][0]["id"] == change["id"]
    if entity == "lap":  # a valid lap takes the fast path: it comes back as the object sent
        assert validate_change(change) is change
    return cleaned["changes"][0]["data"][field]


def refused(entity: str, field: str, value: object) -> str:
    """Push one change with FIELD = VALUE; assert a 422 naming index 0, seq 1 and FIELD;
    return the message without its 'changes[0] (seq 1, entity): ' prefix."""
    with pytest.raises(ProtocolError) as caught:
        validate_push(body_of(change_with(entity, field, value)))
    error = caught.value
    assert (error.status, error.code) == (422, "invalid_change")
    assert error.extra == {"index": 0, "seq": 1, "field": field}
    prefix = f"changes[0] (seq 1, {entity}): "
    assert error.message.startswith(prefix)
    return error.message[len(prefix):]


def test_valid_data_of_every_entity_comes_back_equal():
    for entity in ("lap", "lap_void", "runner", "user"):
        change = valid_change(entity)
        assert validate_push(body_of(copy.deepcopy(change)))["changes"] == [change]
        assert validate_change(copy.deepcopy(change)) == change


# ---- integers: JSON integers within a closed range -----------------------------------

INTEGERS = [  # entity, field, lowest allowed, highest allowed
    ("lap", "time", 0, 10 ** 14 - 1),
    ("lap_void", "at", 0, 10 ** 14 - 1),
    ("runner", "start_number", 1, 999_999),
    ("runner", "grade", 1, 13),
    ("user", "created_at", 0, 10 ** 14 - 1),
]


@pytest.mark.parametrize("entity, field, value", [
    (entity, field, value) for entity, field, low, high in INTEGERS
    for value in (low, low + 1, high - 1, high)])
def test_an_integer_at_its_limit_is_accepted(entity, field, value):
    assert accepted(entity, field, value) == value


@pytest.mark.parametrize("entity, field, value, low, high", [
    (entity, field, value, low, high) for entity, field, low, high in INTEGERS
    for value in (low - 1, high + 1, -1, 2 ** 63)])
def test_an_integer_one_past_its_limit_is_refused(entity, field, value, low, high):
    assert refused(entity, field, value) == f"'{field}' must be between {low} and {high}"


@pytest.mark.parametrize("entity, field, value", [
    (entity, field, value) for entity, field, low, high in INTEGERS
    for value in (True, False, float(low), float(high), 5.5, str(low), str(high), None,
                  [low], {"value": low})])
def test_an_integer_field_takes_only_json_integers(entity, field, value):
    assert refused(entity, field, value) == f"'{field}' must be an integer"


# ---- ids: cuid2, a lowercase letter then lowercase letters and digits, 20..32 in all ----

IDS = [("lap", "id"), ("lap", "runner_id"), ("lap", "created_by"), ("lap", "device_id"),
       ("lap_void", "lap_id"), ("lap_void", "by"), ("lap_void", "origin"),
       ("runner", "id"), ("runner", "origin"), ("user", "id"), ("user", "origin")]
GOOD_IDS = ["a" * 20, "z" * 32, "a" + "0" * 19, "q" + "9" * 31, "c" + "a1" * 12,
            "k" + "0123456789abcdefghijklmnopqrstu"]
BAD_IDS = [
    "a" * 19, "a" * 33, "", "a",                           # too short or too long
    "A" * 24, "a" * 23 + "B", "1" + "a" * 23, "0" * 24,     # upper case; not a letter first
    "a" * 23 + "-", "a" * 23 + "_", "a" * 11 + " " + "a" * 12,
    " " + "a" * 23, "a" * 23 + " ", "a" * 23 + "\n", "\n" + "a" * 23, "a" * 24 + "\x00",
    "a" * 12 + "\n" + "a" * 12,                            # two ids' worth with a newline
    "ä" * 24, "a" * 11 + "é" + "a" * 12, "a" * 23 + "\u0661", "a" * 23 + "\uff11",  # not ASCII
    "a" * 23 + "\u200b", "\u202e" + "a" * 23,
    None, 12345678901234567890, True, 1.5, ["a" * 24], {"id": "a" * 24},
]


@pytest.mark.parametrize("value", GOOD_IDS)
def test_an_id_of_20_to_32_lowercase_letters_and_digits_is_accepted(value):
    for entity, field in IDS:   # every id field of every entity
        assert accepted(entity, field, value) == value, (entity, field)


@pytest.mark.parametrize("value", BAD_IDS)
def test_any_other_id_is_refused(value):
    for entity, field in IDS:   # every id field of every entity
        assert refused(entity, field, value) == \
            f"'{field}' must be a cuid (20-32 lowercase letters and digits)", (entity, field)


@pytest.mark.parametrize("entity", ["lap", "lap_void", "runner", "user"])
def test_the_change_id_must_equal_the_data_id(entity):
    change = valid_change(entity)
    change["id"] = "x" * 24   # a valid id, but another one
    with pytest.raises(ProtocolError) as caught:
        validate_push(body_of(change))
    assert (caught.value.status, caught.value.code) == (422, "invalid_change")
    assert caught.value.extra == {"index": 0, "seq": 1, "field": "id"}
    assert caught.value.message == \
        f"changes[0] (seq 1, {entity}): 'id' must equal data.{KEY[entity]}"


@pytest.mark.parametrize("entity", ["lap", "lap_void", "runner", "user"])
@pytest.mark.parametrize("value", [None, "X" * 24, 5])
def test_a_change_id_that_is_no_id_at_all_is_refused_as_a_mismatch(entity, value):
    change = valid_change(entity)
    change["id"] = value
    with pytest.raises(ProtocolError) as caught:
        validate_push(body_of(change))
    assert caught.value.extra == {"index": 0, "seq": 1, "field": "id"}


# ---- hlc: 13 ASCII digits, a dot, 4 ASCII digits -----------------------------------

HLC_ENTITIES = ["lap_void", "runner", "user"]


@pytest.mark.parametrize("entity", HLC_ENTITIES)
@pytest.mark.parametrize("value", ["0000000000000.0000", "9999999999999.9999",
                                   "1700000000000.0001", "0000000000001.9999"])
def test_an_hlc_of_13_digits_a_dot_and_4_digits_is_accepted(entity, value):
    assert accepted(entity, "hlc", value) == value


@pytest.mark.parametrize("entity", HLC_ENTITIES)
@pytest.mark.parametrize("value", [
    "170000000000.0000", "17000000000000.0000", "1700000000000.000", "1700000000000.00000",
    "1700000000000", "1700000000000.", ".0000", "1700000000000,0000", "1700000000000x0000",
    "170000000000a.0000", "1700000000000.000a", " 1700000000000.0000", "1700000000000.0000 ",
    "1700000000000.0000\n", "\n1700000000000.0000", "1700000000000.0000\x00",
    "\u0661\u0667" + "\u0660" * 11 + ".\u0660\u0660\u0660\u0660",       # Arabic-Indic digits
    "\uff11\uff17" + "\uff10" * 11 + ".\uff10\uff10\uff10\uff10",       # full-width digits
    "1700000000000.0000\u200b", "\u202e1700000000000.0000", "-700000000000.0000",
    "", None, 1700000000000.0, 17000000000000000, True, ["1700000000000.0000"],
])
def test_any_other_hlc_is_refused(entity, value):
    assert refused(entity, "hlc", value) == \
        "'hlc' must look like 1700000000000.0000 (13 digits, a dot, 4 digits)"


# ---- booleans and enumerations ------------------------------------------------------

@pytest.mark.parametrize("value", [True, False])
def test_voided_is_true_or_false(value):
    assert accepted("lap_void", "voided", value) is value


@pytest.mark.parametrize("value", [1, 0, "true", "false", None, [], [True], 1.0])
def test_voided_takes_only_json_booleans(value):
    assert refused("lap_void", "voided", value) == "'voided' must be true or false"


@pytest.mark.parametrize("value", ["admin", "teacher", "viewer"])
def test_a_role_is_admin_teacher_or_viewer(value):
    assert accepted("user", "role", value) == value


@pytest.mark.parametrize("value", ["Admin", "ADMIN", " admin", "admin ", "admin\n", "",
                                   "root", "teachers", "view", None, 1, True, ["admin"]])
def test_any_other_role_is_refused_as_sent_not_trimmed(value):
    assert refused("user", "role", value) == "'role' must be one of admin, teacher, viewer"


@pytest.mark.parametrize("value", [HASH, "$argon2i$v=19$m=16,t=2,p=1$c2FsdA$aGFzaA",
                                   "$argon2d$x", "$argon2", "$argon2" + "x" * 493])
def test_a_password_hash_is_an_argon2_hash_of_at_most_500_characters(value):
    assert accepted("user", "password_hash", value) == value


@pytest.mark.parametrize("value", ["$argon", "argon2id$v=19", "$ARGON2id$v=19", "$2b$12$abcdef",
                                   "x$argon2id$v=19", "$argon 2", "\u200b$argon2id$v=19",
                                   "\u202e$argon2id$v=19", "\u00ad$argon2id"])
def test_a_password_hash_that_is_not_argon2_is_refused(value):
    assert refused("user", "password_hash", value) == "'password_hash' must be an argon2 hash"


def test_a_password_hash_one_past_500_characters_is_refused():
    assert refused("user", "password_hash", "$argon2" + "x" * 494) == \
        "'password_hash' must be 1 to 500 characters"


# ---- every object has exactly its fields --------------------------------------------

FIELDS = {
    "lap": ["id", "runner_id", "created_by", "time", "device_id"],
    "lap_void": ["lap_id", "voided", "at", "by", "reason", "hlc", "origin"],
    "runner": ["id", "start_number", "name", "class", "grade", "hlc", "origin"],
    "user": ["id", "name", "password_hash", "role", "created_at", "hlc", "origin"],
}


@pytest.mark.parametrize("entity, field", [(e, f) for e, names in FIELDS.items() for f in names])
def test_a_missing_data_field_is_refused_by_name(entity, field):
    change = valid_change(entity)
    del change["data"][field]
    with pytest.raises(ProtocolError) as caught:
        validate_push(body_of(change))
    assert caught.value.extra == {"index": 0, "seq": 1, "field": field}
    assert caught.value.message == f"changes[0] (seq 1, {entity}): missing field '{field}'"


@pytest.mark.parametrize("entity", list(FIELDS))
@pytest.mark.parametrize("extra", ["speed", "ID", "id ", "merged_into", ""])
def test_an_unknown_data_field_is_refused_by_name(entity, extra):
    change = valid_change(entity)
    change["data"][extra] = valid_data(entity)[KEY[entity]]
    with pytest.raises(ProtocolError) as caught:
        validate_push(body_of(change))
    # (a field named "" is refused too, but the error carries no "field": "" is falsy)
    assert caught.value.extra == {"index": 0, "seq": 1, **({"field": extra} if extra else {})}
    assert caught.value.message == f"changes[0] (seq 1, {entity}): unknown field {extra!r}"


@pytest.mark.parametrize("entity", list(FIELDS))
def test_a_renamed_field_is_named_as_unknown_before_the_missing_one(entity):
    change = valid_change(entity)
    last = FIELDS[entity][-1]
    change["data"]["zz_" + last] = change["data"].pop(last)   # as many fields, one renamed
    change["data"]["aa_" + last] = 1
    with pytest.raises(ProtocolError) as caught:
        validate_push(body_of(change))
    assert caught.value.extra == {"index": 0, "seq": 1, "field": "aa_" + last}  # sorted first


@pytest.mark.parametrize("entity", list(FIELDS))
@pytest.mark.parametrize("data", [None, [], "data", 5, True, [["id", LAP]]])
def test_data_that_is_not_an_object_is_refused_without_a_field(entity, data):
    change = valid_change(entity)
    change["data"] = data
    with pytest.raises(ProtocolError) as caught:
        validate_push(body_of(change))
    assert (caught.value.status, caught.value.code) == (422, "invalid_change")
    assert caught.value.extra == {"index": 0, "seq": 1}
    assert caught.value.message == f"changes[0] (seq 1, {entity}): must be a JSON object"


# ---- which field is named when several are bad --------------------------------------

@pytest.mark.parametrize("entity, bad, named", [
    ("lap", {"time": -1, "device_id": None}, "time"),
    ("lap", {"runner_id": None, "created_by": None}, "runner_id"),
    ("lap_void", {"voided": None, "lap_id": None, "reason": 5}, "voided"),
    ("lap_void", {"reason": 5, "lap_id": None}, "reason"),
    ("lap_void", {"lap_id": None, "at": -1}, "lap_id"),
    ("lap_void", {"at": -1, "by": None, "hlc": None, "origin": None}, "at"),
    ("lap_void", {"hlc": None, "origin": None}, "hlc"),
    ("runner", {"start_number": 0, "name": "", "grade": 0}, "start_number"),
    ("runner", {"name": "", "class": "", "grade": 0}, "name"),
    ("runner", {"class": "", "grade": 0, "hlc": None}, "class"),
    ("runner", {"grade": 0, "hlc": None, "origin": None}, "grade"),
    ("user", {"role": "root", "password_hash": "x", "name": ""}, "role"),
    ("user", {"password_hash": "x", "name": "", "id": None}, "password_hash"),
    ("user", {"id": None, "name": ""}, "id"),
    ("user", {"name": "", "created_at": -1}, "name"),
    ("user", {"created_at": -1, "hlc": None}, "created_at"),
])
def test_of_several_bad_fields_the_first_checked_is_named(entity, bad, named):
    change = valid_change(entity)
    change["data"].update(bad)
    with pytest.raises(ProtocolError) as caught:
        validate_push(body_of(change))
    assert caught.value.extra["field"] == named
