"""The connect code both ends share (lapsync/protocol/connect.py) and the pulled `active` flag."""
from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lapsync.errors import InputError
from lapsync.protocol.connect import connect_code, is_connect_code, parse_connect_code
from lapsync.protocol.pull import pulled_flag


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "https://central.example.org",
                                 "http://192.168.1.20:8000/lapsync", "http://[::1]:5000"])
def test_a_code_reads_back_as_its_url_and_token(url):
    token = secrets.token_urlsafe(32)
    code = connect_code(url + "/", token)
    assert code == f"lapsync:{url}#{token}" and "\n" not in code
    assert parse_connect_code(f"  {code}\n") == (url, token)


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1,
               max_size=80))
def test_any_valid_token_survives_the_round_trip(token):
    assert parse_connect_code(connect_code("http://h:1", token)) == ("http://h:1", token)


def test_the_scheme_is_case_blind_as_url_schemes_are():
    assert is_connect_code("LAPSYNC:http://h:1#t") and not is_connect_code("http://h:1#t")
    assert parse_connect_code("LapSync:http://h:1#tok") == ("http://h:1", "tok")


@pytest.mark.parametrize("text, code", [
    ("", "invalid_code"), ("http://h:1#tok", "invalid_code"), ("lapsync:http://h:1", "invalid_code"),
    ("lapsync:#tok", "invalid_url"), ("lapsync:ftp://h#tok", "invalid_url"),
    ("lapsync:http://user:pw@h#tok", "invalid_url"), ("lapsync:http://h:1?q=1#tok", "invalid_url"),
    ("lapsync:http://h:1#", "invalid_token"), ("lapsync:http://h:1#to ken", "invalid_token"),
    ("lapsync:http://h:1#" + "x" * 501, "invalid_token"), ("lapsync:http://h:1#tökén", "invalid_token"),
])
def test_a_bad_code_is_refused_with_what_is_wrong(text, code):
    with pytest.raises(InputError) as refused:
        parse_connect_code(text)
    assert refused.value.code == code and refused.value.status == 400


def test_connect_code_refuses_to_make_a_code_of_a_bad_url_or_token():
    with pytest.raises(InputError):
        connect_code("http://h:1/#x", "tok")
    with pytest.raises(InputError):
        connect_code("http://h:1", "")


@pytest.mark.parametrize("data, expected", [({"active": True}, True), ({"active": False}, False),
                                            ({}, True)])
def test_pulled_flag_reads_true_false_or_the_default(data, expected):
    assert pulled_flag(data, "active", True) is expected


@pytest.mark.parametrize("value", [None, 0, 1, "false", [], {}])
def test_pulled_flag_refuses_anything_but_true_or_false(value):
    with pytest.raises(ValueError):
        pulled_flag({"active": value}, "active", True)
