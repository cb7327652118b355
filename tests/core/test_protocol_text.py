"""Every text field of the wire format: its length limits, trimming, and what it does
with control, bidi and zero-width characters at the start, in the middle and at the end.

Text fields: runner name and class, user name and password_hash, a void's reason (pushed
by laptops) and the event name (a setting central sends in pulls). This pins what the
validator does today, from both sides: a one-line field (runner name and class,
password_hash, event name) refuses every C0 control character and DEL anywhere; a
free-text field (user name, reason) refuses only NUL. Every field is trimmed of Unicode
whitespace (str.strip) after that check, and its length counts characters after trimming.
Bidi overrides and zero-width characters are not whitespace and are kept as sent.
"""
from __future__ import annotations

from typing import NamedTuple

import pytest

from lapsync.protocol import ProtocolError, validate_push, validate_setting
from tests.core.protocol_data import (
    DEVICE,
    NOW,
    valid_data,
)


class Text(NamedTuple):
    """A text field: where it lives, its rules, and a valid value split in two."""
    entity: str      # a pushed entity, or "setting"
    field: str
    one_line: bool   # refuses every control character (else only NUL)
    low: int
    high: int
    head: str
    tail: str

    def __str__(self) -> str:
        return f"{self.entity}.{self.field}"


TEXTS = [
    Text("runner", "name", True, 1, 100, "Anna ", "Berg"),
    Text("runner", "class", True, 1, 20, "5", "a"),
    Text("user", "name", False, 1, 50, "to", "m"),
    Text("user", "password_hash", True, 1, 500, "$argon2id$v=19$", "c2FsdA$aGFzaA"),
    Text("lap_void", "reason", False, 0, 200, "ty", "po"),
    Text("setting", "event_name", True, 1, 100, "Sponsoren", "lauf"),
]


def clean(text: Text, value: object) -> object:
    """Send VALUE in TEXT's field (a push of one change, or a setting); return it cleaned."""
    if text.entity == "setting":
        return validate_setting(text.field, value)
    data = valid_data(text.entity)
    data[text.field] = value
    change = {"seq": 1, "entity": text.entity,
              "id": data["lap_id" if text.entity == "lap_void" else "id"], "data": data}
    body = {"protocol": 1, "device_id": DEVICE, "device_time": NOW, "changes": [change]}
    return validate_push(body)["changes"][0]["data"][text.field]


def refusal(text: Text, value: object) -> str:
    """Assert VALUE is refused in TEXT's field with a 422 naming the field; return the
    message without its prefix naming the item."""
    with pytest.raises(ProtocolError) as caught:
        clean(text, value)
    error = caught.value
    if text.entity == "setting":
        assert (error.status, error.code, error.extra) == (422, "invalid_body",
                                                           {"field": text.field})
        prefix = f"setting {text.field!r}: "
    else:
        assert (error.status, error.code) == (422, "invalid_change")
        assert error.extra == {"index": 0, "seq": 1, "field": text.field}
        prefix = f"changes[0] (seq 1, {text.entity}): "
    assert error.message.startswith(prefix)
    return error.message[len(prefix):]


def of_length(text: Text, n: int) -> str:
    """Return a valid value of exactly N characters (2 bytes each where it can)."""
    if text.field == "password_hash":
        return "$argon2" + "x" * (n - 7)
    return "ä" * n


# ---- lengths: counted in characters, after trimming ----------------------------------

@pytest.mark.parametrize("text", TEXTS, ids=str)
def test_a_text_of_exactly_its_maximum_length_is_accepted(text):
    value = of_length(text, text.high)
    assert clean(text, value) == value
    assert clean(text, value[:-1]) == value[:-1]


@pytest.mark.parametrize("text", TEXTS, ids=str)
def test_a_text_one_past_its_maximum_length_is_refused(text):
    assert refusal(text, of_length(text, text.high + 1)) == \
        f"'{text.field}' must be {text.low} to {text.high} characters"


@pytest.mark.parametrize("text", TEXTS, ids=str)
def test_whitespace_around_a_text_is_trimmed_before_its_length_counts(text):
    value = of_length(text, text.high)
    assert clean(text, "  \u00a0" + value + " \u3000") == value
    assert clean(text, " " + of_length(text, 8) + "  ") == of_length(text, 8)


@pytest.mark.parametrize("text", [t for t in TEXTS if t.low == 1], ids=str)
@pytest.mark.parametrize("value", ["", " ", "   ", "\u3000", "\u00a0 \u2028"])
def test_an_empty_or_blank_text_is_refused_where_one_character_is_the_minimum(text, value):
    assert refusal(text, value) == f"'{text.field}' must be 1 to {text.high} characters"


@pytest.mark.parametrize("text", [t for t in TEXTS if t.low == 1 and t.field != "password_hash"],
                         ids=str)
@pytest.mark.parametrize("value", ["a", "ä", "7", " a ", "\u4e00"])
def test_one_character_is_enough(text, value):
    assert clean(text, value) == value.strip()


@pytest.mark.parametrize("value, cleaned", [
    (None, None), ("", None), (" ", None), ("  \u3000 ", None), ("\n\t", None),
    ("typo", "typo"), (" typo ", "typo"), ("a", "a"), ("doppelt\ngetippt", "doppelt\ngetippt"),
])
def test_a_void_reason_may_be_null_and_a_blank_one_becomes_null(value, cleaned):
    assert clean(TEXTS[4], value) == cleaned


@pytest.mark.parametrize("text", TEXTS, ids=str)
@pytest.mark.parametrize("value", [5, 1.5, True, False, ["Anna"], {"name": "Anna"}, b"x", None])
def test_a_text_field_takes_only_strings(text, value):
    if value is None and text.field == "reason":
        assert clean(text, value) is None
        return
    assert refusal(text, value) == f"'{text.field}' must be a string"


# ---- characters: control, NUL, lone surrogates, bidi, zero-width --------------------

class Char(NamedTuple):
    """A character and how the validator treats it."""
    char: str
    name: str
    kind: str  # nul | surrogate | control | control-space | space | invisible

    def __str__(self) -> str:
        return self.name


CHARS = [
    Char("\x00", "NUL", "nul"),
    Char("\ud800", "lone-high-surrogate", "surrogate"),
    Char("\udfff", "lone-low-surrogate", "surrogate"),
    # C0 controls and DEL that str.strip() does not remove
    Char("\x01", "SOH", "control"), Char("\x07", "BEL", "control"),
    Char("\x08", "BS", "control"), Char("\x1b", "ESC", "control"),
    Char("\x7f", "DEL", "control"),
    # C0 controls that are whitespace to str.strip()
    Char("\t", "TAB", "control-space"), Char("\n", "LF", "control-space"),
    Char("\x0b", "VT", "control-space"), Char("\x0c", "FF", "control-space"),
    Char("\r", "CR", "control-space"), Char("\x1c", "FS", "control-space"),
    Char("\x1f", "US", "control-space"),
    # not control characters to the protocol, but whitespace to str.strip()
    Char(" ", "SPACE", "space"), Char("\x85", "NEL", "space"), Char("\xa0", "NBSP", "space"),
    Char("\u1680", "OGHAM-SPACE", "space"), Char("\u2007", "FIGURE-SPACE", "space"),
    Char("\u2028", "LINE-SEPARATOR", "space"), Char("\u2029", "PARAGRAPH-SEPARATOR", "space"),
    Char("\u3000", "IDEOGRAPHIC-SPACE", "space"),
    # neither: C1 controls, bidi controls, zero-width and other invisible characters
    Char("\x80", "C1-PAD", "invisible"), Char("\x9b", "C1-CSI", "invisible"),
    Char("\u00ad", "SOFT-HYPHEN", "invisible"), Char("\u061c", "ALM", "invisible"),
    Char("\u180e", "MONGOLIAN-VOWEL-SEPARATOR", "invisible"),
    Char("\u200b", "ZWSP", "invisible"), Char("\u200c", "ZWNJ", "invisible"),
    Char("\u200d", "ZWJ", "invisible"), Char("\u200e", "LRM", "invisible"),
    Char("\u200f", "RLM", "invisible"), Char("\u202a", "LRE", "invisible"),
    Char("\u202b", "RLE", "invisible"), Char("\u202c", "PDF", "invisible"),
    Char("\u202d", "LRO", "invisible"), Char("\u202e", "RLO", "invisible"),
    Char("\u2060", "WORD-JOINER", "invisible"), Char("\u2066", "LRI", "invisible"),
    Char("\u2067", "RLI", "invisible"), Char("\u2068", "FSI", "invisible"),
    Char("\u2069", "PDI", "invisible"), Char("\ufeff", "BOM", "invisible"),
    Char("\U000e0001", "LANGUAGE-TAG", "invisible"),
]
POSITIONS = ["start", "middle", "end", "alone"]


def place(text: Text, char: str, position: str) -> str:
    """Return TEXT's valid value with CHAR at POSITION (or CHAR alone)."""
    return {"start": char + text.head + text.tail, "middle": text.head + char + text.tail,
            "end": text.head + text.tail + char, "alone": char}[position]


def outcome(text: Text, char: Char, position: str) -> tuple[str, object]:
    """Return ("accepted", cleaned value) or ("refused", message) as the rules above say."""
    if char.kind == "nul":
        return "refused", f"'{text.field}' must not contain control characters"
    if char.kind == "surrogate":
        return "refused", f"'{text.field}' is not valid Unicode"
    if char.kind in ("control", "control-space") and text.one_line:
        return "refused", f"'{text.field}' must not contain control characters"
    trimmed = char.kind in ("control-space", "space") and position != "middle"
    cleaned = place(text, "" if trimmed else char.char, position)
    if len(cleaned) < text.low:
        return "refused", f"'{text.field}' must be {text.low} to {text.high} characters"
    if text.field == "password_hash" and not cleaned.startswith("$argon2"):
        return "refused", "'password_hash' must be an argon2 hash"
    if text.field == "reason" and cleaned == "":
        return "accepted", None
    return "accepted", cleaned


@pytest.mark.parametrize("char", CHARS, ids=str)
@pytest.mark.parametrize("text", TEXTS, ids=str)
def test_every_character_at_every_place_of_every_text_field(text, char):
    for position in POSITIONS:   # start, middle, end, alone
        verdict, expected = outcome(text, char, position)
        value = place(text, char.char, position)
        if verdict == "accepted":
            assert clean(text, value) == expected, position
        else:
            assert refusal(text, value) == expected, position


# The cases the table above decides, spelled out where they matter most.

@pytest.mark.parametrize("value", ["Anna\tBerg", "Anna\nBerg", "Anna\x1bBerg", "\x1bAnna",
                                   "Anna\x00", "\x00Anna", "Anna\x7f", "Anna Berg\t"])
def test_a_runner_name_refuses_control_characters_anywhere(value):
    assert refusal(TEXTS[0], value) == "'name' must not contain control characters"


@pytest.mark.parametrize("text", [TEXTS[2], TEXTS[4]], ids=str)
@pytest.mark.parametrize("value", ["ab\x00cd", "\x00abcd", "abcd\x00", "\x00"])
def test_user_names_and_reasons_refuse_nul_anywhere(text, value):
    assert refusal(text, value) == f"'{text.field}' must not contain control characters"


@pytest.mark.parametrize("text", [TEXTS[2], TEXTS[4]], ids=str)
@pytest.mark.parametrize("value", ["ab\tcd", "ab\ncd", "ab\x1bcd", "ab\x7fcd", "ab\rcd"])
def test_user_names_and_reasons_keep_other_control_characters_inside(text, value):
    """The spec forbids only NUL here (the laptop's own user form is stricter)."""
    assert clean(text, value) == value


@pytest.mark.parametrize("text", TEXTS, ids=str)
@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\ufeff", "\u2066"])
def test_an_invisible_character_alone_is_a_text_of_one_character(text, char):
    """Bidi and zero-width characters are not whitespace: alone they still pass the
    minimum length (except as a password hash, which must start with $argon2)."""
    if text.field == "password_hash":
        assert refusal(text, char) == "'password_hash' must be an argon2 hash"
    else:
        assert clean(text, char) == char
