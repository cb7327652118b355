"""lapsync/authcore.py: passwords, user fields, the login rate limit behind FailureStore, and
the login views both apps share (on the real laptop app and on a bare app)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from flask import Blueprint, session

from lapsync import authcore
from lapsync.authcore import (
    MAX_DOUBLINGS,
    LoginLimits,
    account_key,
    add_session_views,
    check_password,
    check_unknown_user,
    claim_attempt,
    client_address,
    delay_ms,
    forget_failures,
    hash_password,
    is_local_path,
    limited_login,
    login_failed,
    login_fields,
    role_label,
    safe_next,
    too_many_logins,
    unlock_logins_command,
    use_hash_parameters,
    validate_user,
    wait_ms,
)
from lapsync.errors import InputError
from tests.conftest import PASSWORD, csrf_token, login
from tests.core.bare_app import bare_app

ROOT = Path(__file__).resolve().parents[2]
JSON = {"Accept": "application/json"}
# tests/conftest.py's cheap parameters, restored after a test changes them.
CHEAP = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


# ---- passwords ------------------------------------------------------------------

def test_the_product_hashes_with_argon2_cffis_defaults():
    # A process of its own: this one runs on tests/conftest.py's cheap parameters.
    script = "from lapsync.authcore import hash_password; print(hash_password('pw12345678'))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTANT")}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_use_hash_parameters_hashes_new_passwords_with_them():
    try:
        check_unknown_user("x")
        assert len(authcore._dummy_hash) == 1
        use_hash_parameters(time_cost=2, memory_cost=2048, parallelism=3)
        assert authcore._dummy_hash == []  # made again with the new parameters
        new = hash_password("secret-one")
        assert new.startswith("$argon2id$v=19$m=2048,t=2,p=3$")
        assert check_password(new, "secret-one")
    finally:
        use_hash_parameters(**CHEAP)
    assert hash_password("x").startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert check_password(new, "secret-one")  # a hash keeps its own parameters


def test_passwords_check_against_their_hash_only():
    stored = hash_password("correct horse")
    assert stored != hash_password("correct horse")  # salted
    assert check_password(stored, "correct horse") is True
    assert check_password(stored, "correct horsE") is False
    assert check_password(stored, "") is False
    assert check_password("not a hash", "correct horse") is False
    assert check_password(stored[:-4], "correct horse") is False


def test_an_unknown_user_costs_a_check_of_one_stored_dummy_hash(monkeypatch):
    monkeypatch.setattr(authcore, "_dummy_hash", [])
    checked = []
    real = authcore.check_password
    monkeypatch.setattr(authcore, "check_password",
                        lambda h, p: checked.append((h, p)) or real(h, p))
    assert check_unknown_user("guess") is False
    assert check_unknown_user("guess 2") is False
    [dummy] = authcore._dummy_hash
    assert dummy.startswith("$argon2id$") and checked == [(dummy, "guess"), (dummy, "guess 2")]


@pytest.mark.parametrize("role, en, de", [("admin", "admin", "Admin"),
                                          ("teacher", "teacher", "Lehrkraft"),
                                          ("viewer", "viewer", "Betrachter"),
                                          ("root", "root", "root")])
def test_role_labels(role, en, de):
    app = bare_app()
    with app.test_request_context("/"):
        assert role_label(role) == en
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert role_label(role) == de


# ---- validate_user ----------------------------------------------------------------

def refused(*fields) -> InputError:
    """Return the InputError validate_user raises."""
    with pytest.raises(InputError) as exc:
        validate_user(*fields)
    assert exc.value.status == 422 and exc.value.extra == {}
    return exc.value


NAME_RULE = "The user name must be 1 to 50 characters, without line breaks or tabs."


@pytest.mark.parametrize("name, role, password", [
    ("a", "admin", "x" * 8), ("n" * 50, "teacher", "x" * 200), (" tom ", "viewer", " pass word "),
])
def test_valid_users(name, role, password):
    assert validate_user(name, role, password) == (name.strip(), role, password)


@pytest.mark.parametrize("name", ["", "   ", None, "n" * 51, "to\nm", "tom\x00", "\x00tom",
                                  "t\tom", "tom\x7f"])
def test_user_names_refused(name):
    exc = refused(name, "admin", "x" * 8)
    assert exc.code == "invalid_name" and exc.message == NAME_RULE


@pytest.mark.parametrize("name, kept", [("\ttom\n", "tom"), ("to\u0308m", "töm")])
def test_user_names_are_stripped_and_nfc_normalised(name, kept):
    assert validate_user(name, "admin", "x" * 8)[0] == kept


@pytest.mark.parametrize("name, char", [("t\u200bom", "U+200B"), ("\u202etom", "U+202E"),
                                        ("tom\u2066", "U+2066"), ("to\u0085m", "U+0085"),
                                        ("to\u2028m", "U+2028"), ("\ufefftom", "U+FEFF")])
def test_user_names_with_invisible_characters_are_refused(name, char):
    exc = refused(name, "admin", "x" * 8)
    assert exc.code == "invalid_name"
    assert exc.message == f"The user name must not contain invisible characters such as {char}."


@pytest.mark.parametrize("role", ["", None, "Admin", "root", " admin"])
def test_roles_refused(role):
    exc = refused("tom", role, "x" * 8)
    assert exc.code == "invalid_role"
    assert exc.message == "The role must be one of: admin, teacher, viewer."


@pytest.mark.parametrize("password", ["", None, "x" * 7, "x" * 201])
def test_passwords_refused(password):
    exc = refused("tom", "admin", password)
    assert exc.code == "invalid_password"
    assert exc.message == "The password must be 8 to 200 characters."


def test_user_fields_are_checked_in_order():
    assert refused("", "x", "").code == "invalid_name"
    assert refused("a", "x", "").code == "invalid_role"


# ---- the login rate limit -----------------------------------------------------------

class MemoryFailures:
    """FailureStore in a list, as the protocol's docstrings say; logs every call."""

    def __init__(self, failures=()):
        self.rows = [dict(id=i, account=a, address=d, at=t)
                     for i, (a, d, t) in enumerate(failures, 1)]
        self.calls, self.next_id = [], 100

    def drop_failures(self, since, until):
        self.calls.append(("drop_failures", since, until))
        self.rows = [r for r in self.rows if since < r["at"] <= until]

    def recent_failures(self, address, account, since, limit):
        self.calls.append(("recent_failures", address, account, since, limit))
        times = sorted((r["at"] for r in self.rows if r["address"] == address and r["at"] > since
                        and account in (None, r["account"])), reverse=True)
        return times[:limit]

    def record_failure(self, account, address, at):
        self.calls.append(("record_failure", account, address, at))
        self.next_id += 1
        self.rows.append(dict(id=self.next_id, account=account, address=address, at=at))
        return self.next_id

    def forget(self, account, address=None):
        self.calls.append(("forget", account, address))
        before = len(self.rows)
        self.rows = [r for r in self.rows if account is not None and (
            r["account"] != account or address not in (None, r["address"]))]
        return before - len(self.rows)


def test_login_limits_from_config():
    limits = LoginLimits.from_config({"LOGIN_WINDOW_SECONDS": "900",
                                      "LOGIN_MAX_FAILURES_PER_ACCOUNT": "5",
                                      "LOGIN_MAX_FAILURES_PER_ADDRESS": 20})
    assert limits == LoginLimits(900_000, 5, 20, 60_000)
    assert (limits.window_ms, limits.per_account, limits.per_address) == (900_000, 5, 20)
    assert LoginLimits.from_config({"LOGIN_WINDOW_SECONDS": 60, "LOGIN_FIRST_DELAY_SECONDS": "5",
                                    "LOGIN_MAX_FAILURES_PER_ACCOUNT": 3,
                                    "LOGIN_MAX_FAILURES_PER_ADDRESS": 9}).first_delay_ms == 5_000


@pytest.mark.parametrize("name, key", [("tom", "tom"), ("", ""), ("n" * 100, "n" * 100),
                                       ("n" * 100 + "x", "n" * 100)])
def test_account_key_is_the_first_100_characters(name, key):
    assert account_key(name) == key


@pytest.mark.parametrize("times, limit, window, now, expected", [
    ([], 5, 1000, 10_000, 0),
    ([9_900, 9_800, 9_700, 9_600], 5, 1000, 10_000, 0),
    ([9_900, 9_800, 9_700, 9_600, 9_500], 5, 1000, 10_000, 500),
    ([9_900, 9_800, 9_700, 9_600, 9_500, 9_100], 5, 1000, 10_000, 500),
    ([9_900], 1, 1000, 10_000, 900),
    ([9_000], 1, 1000, 10_000, 1),  # never 0 while the limit is reached
    ([8_000], 1, 1000, 10_000, 1),
    ([9_900, 9_800], 0, 1000, 10_000, 0),
    ([9_900, 9_800], -1, 1000, 10_000, 0),
    ([9_900, 9_800], 2, 1000, 10_000, 800),
])
def test_wait_ms(times, limit, window, now, expected):
    assert wait_ms(times, limit, window, now) == expected


LIMITS = LoginLimits(window_ms=1000, per_account=2, per_address=3, first_delay_ms=100)
PAIR_FETCH = 2 + MAX_DOUBLINGS + 1  # per_account + doublings + 1: enough to know the delay


def test_claim_drops_old_and_far_future_failures_then_records_the_attempt():
    store = MemoryFailures([("tom", "a1", 8_999), ("tom", "a1", 9_000), ("tom", "a1", 70_001)])
    assert claim_attempt(store, "tom", "a2", LIMITS, 10_000) == (101, 0)
    assert store.calls == [
        ("drop_failures", 9_000, 70_000),
        ("recent_failures", "a2", "tom", 9_000, PAIR_FETCH),
        ("recent_failures", "a2", None, 9_000, 3),
        ("record_failure", "tom", "a2", 10_000)]
    assert [r["at"] for r in store.rows] == [10_000]


def test_claim_keeps_failures_within_the_clock_slack():
    store = MemoryFailures([("tom", "a1", 9_500), ("tom", "a1", 70_000)])
    assert claim_attempt(store, "tom", "a1", LIMITS, 10_000) == (None, 60_100)


def test_claim_refused_for_a_name_from_one_address_records_nothing_and_locks_out_no_one_else():
    """Regression: failures of a name from one address locked that name for every address,
    so anyone could lock the admin out by typing wrong passwords for 'admin'."""
    store = MemoryFailures([("tom", "a1", 9_900), ("tom", "a1", 9_950)])
    assert claim_attempt(store, "tom", "a1", LIMITS, 10_000) == (None, 50)
    assert not any(call[0] == "record_failure" for call in store.calls)
    assert claim_attempt(store, "tom", "a2", LIMITS, 10_000) == (101, 0)  # tom elsewhere
    assert claim_attempt(store, "ann", "a1", LIMITS, 10_000) == (102, 0)  # another name
    store = MemoryFailures([("tom", "a1", 9_900), ("tom", "a1", 9_950)])
    assert claim_attempt(store, "tom", "a1", LIMITS, 10_050) == (101, 0)  # tom, delay served


@pytest.mark.parametrize("failures, wait", [
    (0, 0), (1, 0), (2, 100), (3, 200), (4, 400), (5, 800), (6, 1_600), (8, 6_400),
    (9, 10_000), (40, 10_000),  # at most the window
])
def test_the_delay_of_a_name_from_one_address_doubles_after_each_failure(failures, wait):
    limits = LoginLimits(window_ms=10_000, per_account=2, per_address=100, first_delay_ms=100)
    store = MemoryFailures([("tom", "ip", 9_999 - i) for i in range(failures - 1)]
                           + [("tom", "ip", 10_000)] * min(failures, 1))
    assert claim_attempt(store, "tom", "ip", limits, 10_000) == ((None, wait) if wait else (101, 0))
    if wait:  # counted from the newest failure (a whole window: the older ones expire)
        assert claim_attempt(store, "tom", "ip", limits, 10_000 + wait // 2)[1] > 0
        assert claim_attempt(store, "tom", "ip", limits, 10_000 + wait)[1] == 0


@pytest.mark.parametrize("failures, delay", [(0, 0), (1, 0), (2, 100), (3, 200), (4, 400),
                                             (12, 1000), (10 ** 6, 1000)])
def test_delay_ms(failures, delay):
    assert delay_ms(failures, LIMITS) == delay
    assert delay_ms(failures, LoginLimits(1000, 0, 3, 100)) == 0  # 0: no limit


def test_claim_refused_by_the_address_limit_the_longer_wait_wins():
    store = MemoryFailures([("a", "ip", 9_100), ("b", "ip", 9_200), ("c", "ip", 9_300)])
    assert claim_attempt(store, "d", "ip", LIMITS, 10_000) == (None, 100)
    assert claim_attempt(store, "d", "ip2", LIMITS, 10_000) == (101, 0)
    store = MemoryFailures([("a", "ip", 9_990), ("a", "ip", 9_980), ("b", "ip", 9_050)])
    assert claim_attempt(store, "a", "ip", LIMITS, 10_000) == (None, 90)  # the pair's 90 > 50
    store = MemoryFailures([("a", "ip", 9_910), ("a", "ip", 9_900), ("b", "ip", 9_200)])
    assert claim_attempt(store, "a", "ip", LIMITS, 10_000) == (None, 200)  # the address's


def test_claim_counts_a_long_name_under_its_account_key():
    long_name = "n" * 150
    store = MemoryFailures([("n" * 100, "a1", 9_950), ("n" * 100, "a1", 9_960)])
    assert claim_attempt(store, long_name, "a1", LIMITS, 10_000) == (None, 60)
    store = MemoryFailures()
    claim_attempt(store, long_name, "a2", LIMITS, 10_000)
    assert store.calls[-1] == ("record_failure", "n" * 100, "a2", 10_000)


def test_a_limit_of_zero_is_no_limit_but_still_asks_for_one_failure():
    store = MemoryFailures([("tom", "ip", 9_900)] * 5)
    limits = LoginLimits(window_ms=1000, per_account=0, per_address=0)
    assert claim_attempt(store, "tom", "ip", limits, 10_000) == (101, 0)
    assert store.calls[1][-1] == MAX_DOUBLINGS + 1 and store.calls[2][-1] == 1


def test_forget_failures_of_one_name_from_one_address_of_one_name_or_all():
    store = MemoryFailures([("tom", "a", 1), ("tom", "b", 2), ("ann", "a", 3),
                            ("n" * 100, "a", 4), ("ann", "b", 5)])
    assert forget_failures(store, "ann", "b") == 1
    assert forget_failures(store, "tom") == 2
    assert forget_failures(store, "") == 0
    assert forget_failures(store, "n" * 120, "a") == 1
    assert forget_failures(store, None) == 1
    assert store.calls == [("forget", "ann", "b"), ("forget", "tom", None), ("forget", "", None),
                           ("forget", "n" * 100, "a"), ("forget", None, None)]


def test_limited_login_refused_never_checks_the_password():
    calls = []
    assert limited_login(lambda: (None, 1234), lambda: calls.append("start"),
                         lambda: calls.append("forget")) == (None, 1234)
    assert calls == []


def test_limited_login_wrong_password_keeps_the_failure():
    calls = []
    assert limited_login(lambda: (7, 0), lambda: calls.append("start") or None,
                         lambda: calls.append("forget")) == (None, 0)
    assert calls == ["start"]


def test_limited_login_success_forgets_the_names_failures():
    calls = []
    assert limited_login(lambda: (7, 0), lambda: calls.append("start") or "sid-1",
                         lambda: calls.append("forget") or 3) == ("sid-1", 0)
    assert calls == ["start", "forget"]


# ---- request helpers on a bare app -----------------------------------------------------

@pytest.mark.parametrize("target, expected", [
    ("/runners/", "/runners/"), ("/runners/?q=a//b", "/runners/?q=a//b"), ("/", "/"),
    (None, "/home"), ("", "/home"), ("//evil.example/x", "/home"), ("/\\evil.example", "/home"),
    ("/a\\b", "/home"), ("https://evil.example/", "/home"), ("runners", "/home"),
    ("javascript:alert(1)", "/home"),
    # Browsers drop tabs and line breaks: "/\t/evil.example" is "//evil.example" to them.
    ("/\t/evil.example/x", "/home"), ("/\n/x", "/home"), ("/x\r", "/home"), ("\t/x", "/home"),
    ("/ /evil.example", "/home"), ("/x\x00", "/home"), ("/x\x7f", "/home"), ("/x\x85", "/home"),
    ("/x\u2028", "/home"), ("/x\u3000y", "/home"), ("/\\/evil.example", "/home"),
    ("/%09/evil.example/x", "/%09/evil.example/x"),  # stays a path here: no browser decodes it
    ("/runners/?q=J%C3%BCrgen", "/runners/?q=J%C3%BCrgen"), ("/standings/class/5a", "/standings/class/5a"),
])
def test_safe_next_stays_on_this_site(target, expected):
    app = bare_app()
    app.add_url_rule("/home", "home", lambda: "")
    app.add_url_rule("/", "laps.index", lambda: "")
    with app.test_request_context("/"):
        assert safe_next(target, "home") == expected
        assert safe_next("//x") == "/"
    assert is_local_path(target) is (target == expected)


@pytest.mark.parametrize("kwargs, expected", [
    ({"data": {"name": " tom ", "password": " pw "}}, ("tom", " pw ")),
    ({"data": {}}, ("", "")),
    ({"json": {"name": "\ttom\n", "password": "pw"}}, ("tom", "pw")),
    ({"json": {"name": 5, "password": ["pw"]}}, ("", "")),
    ({"json": {"name": None}}, ("", "")),
    ({"json": ["tom", "pw"]}, ("", "")),
    ({"json": "tom"}, ("", "")),
    ({"data": '{"name": "tom"', "content_type": "application/json"}, ("", "")),
    ({"data": '{"name": "tom", "password": "pw"}', "content_type": "text/plain"}, ("", "")),
])
def test_login_fields_from_a_form_or_json(kwargs, expected):
    with bare_app().test_request_context("/", method="POST", **kwargs):
        assert login_fields() == expected


@pytest.mark.parametrize("address, expected", [
    ("10.0.0.1", "10.0.0.1"), ("", "unknown"), (None, "unknown"),
    ("a" * 100, "a" * 100), ("a" * 101, "a" * 100), ("1.2\x00.3", "1.2.3"),
    ("a" * 99 + "\x00b", "a" * 99),
])
def test_client_address(address, expected):
    with bare_app().test_request_context("/", environ_overrides={"REMOTE_ADDR": address}):
        assert client_address() == expected


@pytest.mark.parametrize("wait, seconds", [(1, "1"), (1000, "1"), (1001, "2"), (61_000, "61")])
def test_login_failed_with_a_wait_as_json_and_as_a_page(wait, seconds):
    app = bare_app(templates={"login.html": "login|{{ error }}"})
    with app.test_request_context("/", headers=JSON):
        response = login_failed("too_many_attempts", "Slow down.", 429, wait)
        assert response.status_code == 429 and response.headers["Retry-After"] == seconds
        assert response.get_json() == {"error": "too_many_attempts", "message": "Slow down.",
                                       "retry_after": int(seconds)}
    with app.test_request_context("/"):
        response = login_failed("too_many_attempts", "Slow down.", 429, wait)
        assert response.status_code == 429 and response.headers["Retry-After"] == seconds
        assert response.get_data(as_text=True) == "login|Slow down."


def test_login_failed_without_a_wait():
    app = bare_app(templates={"login.html": "login|{{ error }}"})
    with app.test_request_context("/", headers=JSON):
        response = login_failed("wrong_login", "No.", 401)
        assert response.get_json() == {"error": "wrong_login", "message": "No."}
        assert response.status_code == 401 and "Retry-After" not in response.headers


@pytest.mark.parametrize("wait, text, seconds", [
    (1, "1 min", 1), (60_000, "1 min", 60), (60_001, "2 min", 61), (900_000, "15 min", 900),
    (3_600_001, "1 h 1 min", 3601),
])
def test_too_many_logins_says_when_in_whole_minutes(wait, text, seconds):
    with bare_app().test_request_context("/", headers=JSON):
        response = too_many_logins(wait)
        assert response.status_code == 429
        assert response.get_json() == {
            "error": "too_many_attempts", "retry_after": seconds,
            "message": "Too many failed logins for this name or from this address. "
                       f"Try again in {text}."}


# ---- add_session_views on a bare app, with an attempt and an end of the test -----------

def session_app(results):
    """A bare app with add_session_views on an auth blueprint; logs attempt and end calls."""
    app = bare_app(templates={"login.html": "login|{{ error }}"},
                   config={"LOGIN_WINDOW_SECONDS": 60, "LOGIN_MAX_FAILURES_PER_ACCOUNT": "3",
                           "LOGIN_MAX_FAILURES_PER_ADDRESS": 9})
    calls = []
    bp = Blueprint("auth", __name__)
    add_session_views(bp, lambda *args: calls.append(("attempt", *args)) or results.pop(0),
                      lambda sid: calls.append(("end", sid)), "home")
    app.register_blueprint(bp)
    app.add_url_rule("/home", "home", lambda: "home")
    app.add_url_rule("/sid", "sid", lambda: repr(dict(session)))
    app.calls = calls
    return app


def test_login_page_on_get():
    client = session_app([]).test_client()
    response = client.get("/login")
    assert response.status_code == 200 and response.get_data(as_text=True) == "login|"


def test_login_passes_name_password_address_and_the_configured_limits():
    app = session_app([("sid-1", 0)])
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["stale"] = 1
    response = client.post("/login", data={"name": " tom ", "password": "pw "},
                           environ_overrides={"REMOTE_ADDR": "10.1.1.1"})
    assert response.status_code == 302 and response.headers["Location"] == "/home"
    assert app.calls == [("attempt", "tom", "pw ", "10.1.1.1", LoginLimits(60_000, 3, 9))]
    assert client.get("/sid").get_data(as_text=True) == "{'sid': 'sid-1'}"


@pytest.mark.parametrize("target, location", [("/sid?x=1", "/sid?x=1"), ("//evil", "/home")])
def test_login_goes_to_a_local_next_only(target, location):
    client = session_app([("sid-1", 0)]).test_client()
    response = client.post("/login", query_string={"next": target},
                           data={"name": "tom", "password": "pw"})
    assert response.headers["Location"] == location


def test_json_login_answers_the_name():
    client = session_app([("sid-1", 0)]).test_client()
    response = client.post("/login", json={"name": "tom", "password": "pw"}, headers=JSON)
    assert response.status_code == 200 and response.get_json() == {"name": "tom"}
    assert client.get("/sid").get_data(as_text=True) == "{'sid': 'sid-1'}"


def test_wrong_login_is_401_and_starts_no_session():
    client = session_app([(None, 0), (None, 0)]).test_client()
    response = client.post("/login", data={"name": "tom", "password": "pw"})
    assert response.status_code == 401
    assert response.get_data(as_text=True) == "login|Wrong name or password."
    response = client.post("/login", json={"name": "tom", "password": "pw"}, headers=JSON)
    assert response.status_code == 401 and "Retry-After" not in response.headers
    assert response.get_json() == {"error": "wrong_login", "message": "Wrong name or password."}
    assert client.get("/sid").get_data(as_text=True) == "{}"


def test_refused_login_is_429_even_with_a_session_id():
    client = session_app([("sid-1", 90_000)]).test_client()
    response = client.post("/login", json={"name": "tom", "password": "pw"}, headers=JSON)
    assert response.status_code == 429 and response.headers["Retry-After"] == "90"
    assert response.get_json()["retry_after"] == 90
    assert client.get("/sid").get_data(as_text=True) == "{}"


def test_logout_ends_the_session_and_goes_to_login():
    app = session_app([("sid-1", 0)])
    client = app.test_client()
    client.post("/login", data={"name": "tom", "password": "pw"})
    response = client.post("/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert app.calls[-1] == ("end", "sid-1")
    assert client.get("/sid").get_data(as_text=True) == "{}"
    with client.session_transaction() as sess:
        sess["other"] = 1
    client.post("/logout")
    assert app.calls[-1] == ("end", "sid-1") and len(app.calls) == 2
    assert client.get("/sid").get_data(as_text=True) == "{}"
    assert client.get("/logout").status_code == 405


def test_unlock_logins_command():
    asked = []
    command = unlock_logins_command(lambda name: asked.append(name) or 3)
    assert command.name == "unlock-logins"
    runner = bare_app().test_cli_runner()
    result = runner.invoke(command, ["tom"])
    assert result.exit_code == 0 and result.output == "Forgot 3 failed login(s) of 'tom'.\n"
    result = runner.invoke(command, [])
    assert result.exit_code == 0 and result.output == "Forgot 3 failed login(s).\n"
    assert asked == ["tom", None]


# ---- role_required and the login on the real laptop app ----------------------------------

def test_anonymous_get_is_sent_to_login_with_the_way_back(client):
    response = client.get("/runners/?q=An", headers={"Accept": "text/html"})
    assert response.status_code == 302
    location = urlparse(response.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query) == {"next": ["/runners/?q=An"]}


def test_an_anonymous_get_that_asks_for_json_is_told_to_log_in_not_redirected(client):
    # a page's poll (the lap list, the big screen) learns that the login ended
    response = client.get("/runners/?q=An", headers=JSON)
    assert response.status_code == 401
    assert response.get_json() == {"error": "login_required", "message": "Please log in first."}


def test_anonymous_json_or_post_is_401(client):
    response = client.get("/runners/", json={})
    assert response.status_code == 401
    assert response.get_json() == {"error": "login_required", "message": "Please log in first."}
    token = csrf_token(client, "/login")
    response = client.post("/runners/new", data={"csrf_token": token})
    assert response.status_code == 401 and "Please log in first." in response.get_data(as_text=True)


def test_a_role_not_listed_is_403_and_no_roles_means_any_user(client):
    login(client, "vic")
    assert client.get("/").status_code == 200
    assert client.get("/runners/").status_code == 200
    response = client.get("/users", headers=JSON)
    assert response.status_code == 403
    assert response.get_json() == {"error": "forbidden", "message": "Your role may not do this."}


def test_listed_roles_pass(teacher, admin):
    assert admin.get("/users").status_code == 200


def test_laptop_login_and_rate_limit_end_to_end(app, client):
    app.config.update(LOGIN_MAX_FAILURES_PER_ACCOUNT=2)
    token = csrf_token(client, "/login")
    headers = {**JSON, "X-CSRFToken": token}
    for _ in range(2):
        response = client.post("/login", json={"name": "tom", "password": "wrong"}, headers=headers)
        assert response.status_code == 401
    response = client.post("/login", json={"name": "tom", "password": PASSWORD}, headers=headers)
    assert response.status_code == 429 and response.get_json()["retry_after"] == 60
    response = client.post("/login", json={"name": "ada", "password": PASSWORD}, headers=headers)
    assert response.status_code == 200 and response.get_json() == {"name": "ada"}
    assert client.get("/users").status_code == 200
