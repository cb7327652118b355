"""Laptop security, across every route: no write without auth, roles, expired sessions, CSRF,
request size limits, hostile text stored and shown verbatim, no password hash on any page.

Routes are enumerated from app.url_map, so a route added later is checked too (and a new
write a teacher may do must be added to TEACHER_WRITES on purpose).
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import re

import pytest
from markupsafe import escape

from lapsync.laptop.db import now_ms
from lapsync.laptop.laps import record_lap
from tests.conftest import csrf_token, login

JSON = {"Accept": "application/json"}
# Writes a teacher may do (lap entry); every other write is for admins only.
TEACHER_WRITES = {"laps.create", "laps.void", "laps.restore", "laps.clock_jumps_seen",
                  "laps.event_notice_seen", "auth.logout"}
# The one write open to anyone: logging in (it records failed attempts, see test_auth.py).
OPEN_WRITES = {"auth.login"}
# Hostile text: SQL, HTML, a spreadsheet formula, format strings, unicode (RTL mark, emoji, CJK).
NASTY = ["'); DROP TABLE lap;--", '" OR 1=1 --', "<script>alert(1)</script>",
         "=cmd|' /C calc'!A0", "%s %(name)s {0} {{ 7*7 }}", "Zoë 🏃 名前 عربي RTL"]
# Invisible characters (bidi overrides, zero-width joiners) no name may hold: refused, see
# tests/core/test_runners.py and tests/central/test_authority.py.


def snapshot(db) -> dict:
    """Return every row of every table: compare to show a request changed nothing."""
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                       "ORDER BY name")]
    return {t: sorted(map(repr, db.execute(f"SELECT * FROM [{t}]").fetchall())) for t in tables}


def write_routes(app) -> list[tuple[str, str, str]]:
    """Return (endpoint, method, rule) of every route that takes a non-GET method."""
    return sorted((rule.endpoint, method, rule.rule) for rule in app.url_map.iter_rules()
                  for method in rule.methods - {"GET", "HEAD", "OPTIONS"})


def url_for_rule(rule: str, ids: dict) -> str:
    """Fill a rule's arguments with real ids (so a refusal is not a 404), else 'x'."""
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: ids.get(m.group(1), "x"), rule)


def form_data(token: str | None) -> dict:
    """A form that would change something on every write route if it were let through."""
    roster = "Name,Klasse,Jahrgang\nMallory,5a,5\n".encode()
    data = {"start_number": "1", "name": "Mallory", "class": "5a", "grade": "5", "role": "admin",
            "password": "long-enough-pw", "reason": "x", "confirm": "1",
            "file": (io.BytesIO(roster), "roster.csv")}
    if token:
        data["csrf_token"] = token
    return data


@pytest.fixture
def ids(db, runners) -> dict:
    """Real ids for route arguments: a lap of runner 1 and that runner."""
    tom = db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]
    lap = record_lap(db, 1, tom, 60_000)
    return {"lap_id": lap["lap"]["id"], "runner_id": runners[1]}


def post(client, method: str, url: str, token: str | None, as_json: bool):
    """Send a write the way a form (or a JSON client) would."""
    headers = {**JSON, "X-CSRFToken": token} if as_json and token else (JSON if as_json else {})
    return client.open(url, method=method, data=form_data(token), headers=headers,
                       content_type="multipart/form-data")


def assert_refused(response, code: str, statuses: tuple[int, ...], as_json: bool, where: str):
    """Check a refusal: the JSON error code, or the status (a redirect goes to login)."""
    if as_json:
        assert response.status_code in statuses, where
        assert response.get_json()["error"] == code, where
    elif response.status_code == 302:
        assert "/login" in response.headers["Location"], where
    else:
        assert response.status_code in statuses, where


# --- no write without auth, roles, expired sessions, CSRF ------------------------------------

def test_every_write_route_is_known_here(app):
    endpoints = {endpoint for endpoint, _, _ in write_routes(app)}
    assert {"laps.create", "auth.users", "runners.new", "runners.import_csv"} <= endpoints


@pytest.mark.parametrize("as_json", [False, True])
def test_anonymous_writes_are_refused_everywhere_and_change_nothing(app, client, db, ids, as_json):
    token = csrf_token(client, "/login")  # a valid token: it is the login that is missing
    before = snapshot(db)
    for endpoint, method, rule in write_routes(app):
        if endpoint in OPEN_WRITES or endpoint == "auth.logout":
            continue
        response = post(client, method, url_for_rule(rule, ids), token, as_json)
        assert_refused(response, "login_required", (401,), as_json, f"{method} {rule}")
    assert snapshot(db) == before


def test_anonymous_reads_change_nothing_and_show_no_data(app, client, db, ids):
    before = snapshot(db)
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in ("static", "web.static", "auth.login", "sync.status"):
            continue
        response = client.get(url_for_rule(rule.rule, ids))
        assert response.status_code == 302 and "/login" in response.headers["Location"], rule.rule
    assert snapshot(db) == before


def test_anonymous_logout_only_goes_to_login(client, db):
    before = snapshot(db)
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/login")})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert snapshot(db) == before


@pytest.mark.parametrize("user,allowed", [("tom", TEACHER_WRITES), ("vic", {"auth.logout"})])
def test_teacher_and_viewer_cannot_do_admin_writes(app, client, db, ids, user, allowed):
    token = login(client, user)
    before = snapshot(db)
    for endpoint, method, rule in write_routes(app):
        if endpoint in allowed | OPEN_WRITES:
            continue
        for as_json in (True, False):
            response = post(client, method, url_for_rule(rule, ids), token, as_json)
            assert_refused(response, "forbidden", (403,), as_json, f"{user}: {method} {rule}")
    assert snapshot(db) == before


def test_expired_session_is_refused_on_every_write(app, admin, db, ids):
    db.execute("UPDATE user_session SET valid_until = ?", [now_ms() - 1])
    before = snapshot(db)
    for endpoint, method, rule in write_routes(app):
        if endpoint in OPEN_WRITES | {"auth.logout"}:
            continue
        for as_json in (True, False):
            response = post(admin, method, url_for_rule(rule, ids), admin.csrf, as_json)
            assert_refused(response, "login_required", (401,), as_json, f"{method} {rule}")
    assert snapshot(db) == before


def test_every_write_without_a_valid_csrf_token_is_refused(app, admin, db, ids):
    before = snapshot(db)
    for (endpoint, method, rule), token in itertools.product(write_routes(app), [None, "forged"]):
        url = url_for_rule(rule, ids)
        data = form_data(None) if token is None else {**form_data(None), "csrf_token": token}
        as_json = admin.open(url, method=method, data=data, content_type="multipart/form-data",
                             headers={**JSON, **({"X-CSRFToken": token} if token else {})})
        assert as_json.status_code == 400 and as_json.get_json()["error"] == "csrf", rule
        page = admin.open(url, method=method, data={**data, "file": form_data(None)["file"]},
                          content_type="multipart/form-data")
        assert page.status_code == 400 and "security token" in page.get_data(as_text=True), rule
    assert snapshot(db) == before
    assert admin.get("/").status_code == 200  # still logged in: logout was refused too


# --- request size limits ------------------------------------------------------------------------

def test_an_upload_above_max_upload_bytes_is_refused_with_413(app, admin, db, runners):
    limit = app.config["MAX_UPLOAD_BYTES"]
    before = snapshot(db)

    def send(headers: dict):
        """Upload a file just too large for the limit."""
        big = io.BytesIO(b"Name,Klasse,Jahrgang\n" + b"x" * limit)
        return admin.post("/runners/import", data={"file": (big, "big.csv"),
                                                    "csrf_token": admin.csrf},
                          content_type="multipart/form-data", headers=headers)
    as_json = send(JSON)
    assert as_json.status_code == 413 and as_json.get_json() == {
        "error": "too_large", "max_bytes": limit,
        "message": "The request is too large: this server accepts at most 5 MB."}
    page = send({})
    assert page.status_code == 413 and "accepts at most 5 MB" in page.get_data(as_text=True)
    german = send({"Accept-Language": "de"})
    assert german.status_code == 413 and "höchstens 5 MB" in german.get_data(as_text=True)
    assert snapshot(db) == before


def test_a_roster_up_to_its_own_limit_reaches_the_importer(app, admin, db, runners):
    """Regression: MAX_CONTENT_LENGTH was 2 MB while the importer takes files up to 4 MB, so a
    3 MB roster got a bare 413 instead of the importer's answer; now the importer answers."""
    assert app.config["MAX_UPLOAD_BYTES"] > 4 * 1024 * 1024 + 64 * 1024
    before = snapshot(db)
    data = b"Name,Klasse,Jahrgang\n" + b"x" * (4 * 1024 * 1024 + 1)
    response = admin.post("/runners/import", data={"csrf_token": admin.csrf, "file": (
        io.BytesIO(data), "big-school.csv")}, content_type="multipart/form-data")
    assert response.status_code == 422  # the importer's own report, not the size limit
    assert "The file is larger than 4 MB" in response.get_data(as_text=True)
    assert snapshot(db) == before


# --- hostile text: stored verbatim, shown escaped in HTML and unchanged in JSON ----------------

def assert_shown_escaped(html: str, text: str, where: str) -> None:
    """The text appears HTML-escaped, never raw when it holds markup."""
    assert str(escape(text)) in html, where
    if "<" in text:
        assert text not in html, where


def test_hostile_runner_names_and_classes_are_stored_and_shown_verbatim(admin, db, runners):
    for number, text in enumerate(NASTY, start=100):
        class_ = text[:20].strip()
        response = admin.post("/runners/new", data={"start_number": str(number), "name": text,
                                                     "class": class_, "grade": "7",
                                                     "csrf_token": admin.csrf})
        assert response.status_code == 302, text
        row = db.execute("SELECT id, name, class FROM runner WHERE start_number = ?",
                         [number]).fetchone()
        assert row[1:] == (text, class_), text
        assert_shown_escaped(admin.get("/runners/").get_data(as_text=True), text, text)
        assert_shown_escaped(admin.get("/runners/", query_string={"q": text}).get_data(as_text=True),
                             text, text)
        assert_shown_escaped(admin.get(f"/runners/{row[0]}/edit").get_data(as_text=True), text, text)
        lap = admin.post("/laps", data={"start_number": str(number)},
                         headers={**JSON, "X-CSRFToken": admin.csrf}).get_json()
        assert (lap["runner"]["name"], lap["runner"]["class"]) == (text, class_), text
        assert_shown_escaped(admin.get("/").get_data(as_text=True), text, text)
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == len(NASTY)  # lap survived


def test_hostile_names_in_a_roster_csv_are_imported_verbatim(admin, db, runners):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Name", "Klasse", "Jahrgang"])
    writer.writerows([text, text[:20].strip(), 7] for text in NASTY)
    response = admin.post("/runners/import", data={"csrf_token": admin.csrf, "file": (
        io.BytesIO(out.getvalue().encode()), "<b>roster</b>.csv")}, content_type="multipart/form-data",
        follow_redirects=True)
    assert response.status_code == 200
    assert_shown_escaped(response.get_data(as_text=True), "<b>roster</b>.csv", "file name")
    stored = {r[0]: r[1] for r in db.execute("SELECT name, class FROM runner")}
    for text in NASTY:  # a formula is kept as typed: only central's results CSV neutralises it
        assert stored[text] == text[:20].strip(), text


def test_hostile_user_names_are_stored_verbatim_and_can_log_in(app, admin, db):
    for text in NASTY[:2]:  # argon2 hashing is slow on purpose: two are enough here
        response = admin.post("/users", data={"name": text, "role": "teacher",
                                              "password": "long-enough-pw", "csrf_token": admin.csrf})
        assert response.status_code == 302, text
        assert db.execute("SELECT count(*) FROM user WHERE name = ?", [text]).fetchone()[0] == 1
        assert_shown_escaped(admin.get("/users").get_data(as_text=True), text, text)
    other = app.test_client()
    token = csrf_token(other, "/login")
    response = other.post("/login", data={"name": NASTY[0], "password": "long-enough-pw",
                                          "csrf_token": token})
    assert response.status_code == 302 and other.get("/").status_code == 200


def test_hostile_void_reasons_and_client_keys_are_stored_verbatim(teacher, db, runners):
    for text in NASTY:
        lap = teacher.post("/laps", data={"start_number": "1", "client_key": text, "confirm": "1"},
                           headers={**JSON, "X-CSRFToken": teacher.csrf}).get_json()
        lap = lap["lap"]
        assert db.execute("SELECT client_key FROM lap WHERE id = ?", [lap["id"]]).fetchone()[0] == text
        response = teacher.post(f"/laps/{lap['id']}/void", data={"reason": text},
                                headers={**JSON, "X-CSRFToken": teacher.csrf})
        assert response.status_code == 200, text
        assert db.execute("SELECT void_reason FROM lap WHERE id = ?", [lap["id"]]).fetchone()[0] == text
        payload = db.execute("SELECT payload FROM change WHERE entity = 'lap_void' AND entity_id = ?",
                             [lap["id"]]).fetchone()[0]
        assert json.loads(payload)["reason"] == text


def test_hostile_text_in_lap_fields_is_refused_and_records_nothing(teacher, db, runners):
    before = snapshot(db)
    for text, field in itertools.product(NASTY, ["start_number", "runner_id"]):
        data = {"start_number": text} if field == "start_number" else {"start_number": "1",
                                                                       "runner_id": text}
        response = teacher.post("/laps", data=data, headers={**JSON, "X-CSRFToken": teacher.csrf})
        assert 400 <= response.status_code < 500, text
        assert response.get_json()["error"] and response.get_json()["message"], text
    assert snapshot(db) == before


def test_hostile_login_names_are_recorded_verbatim(client, db):
    for text in NASTY[:3]:  # each costs an argon2 check (unknown names too)
        token = csrf_token(client, "/login")
        response = client.post("/login", data={"name": text, "password": "x", "csrf_token": token})
        assert response.status_code == 401
    assert sorted(r[0] for r in db.execute("SELECT account FROM login_failure")) == \
        sorted(NASTY[:3])


# --- password hashes never leave the laptop through a page --------------------------------------

def test_no_page_shows_a_password_hash(app, admin, db, ids):
    hashes = [r[0] for r in db.execute("SELECT password_hash FROM user")]
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in ("static", "web.static"):
            continue
        response = admin.get(url_for_rule(rule.rule, ids))
        assert response.status_code < 500, rule.rule
        body = response.get_data(as_text=True)
        assert "$argon2" not in body and not any(h in body for h in hashes), rule.rule
