"""Central security, across every route: no write without auth, the viewer role, expired
sessions, CSRF, device tokens bound to their laptop and revocable, request size limits, hostile
text stored and shown verbatim, and password hashes only in an authenticated device's pull.

Routes are enumerated from app.url_map, so a route added later is checked too.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import re
import zipfile
from urllib.parse import quote

import pytest
import requests
from markupsafe import escape
from psycopg import sql

from lapsync.protocol import MAX_BATCH_BYTES
from sync.devices import revoke_device
from sync.results import excel_safe
from tests.pg import CENTRAL_PASSWORD, Outbox, register

JSON = {"Accept": "application/json"}
OPEN_WRITES = {"auth.login", "auth.logout"}  # logging in and out; see test_sync_auth.py
HASH = re.compile(r"\$argon2(id|i|d)\$v=\d+\$")  # a hash, not the spec's pattern for one
NASTY = ["'); DROP TABLE lap;--", '" OR 1=1 --', "<script>alert(1)</script>",
         "=cmd|' /C calc'!A0", "%s %(name)s {0} {{ 7*7 }}", "Zoë 🏃 名前 عربي RTL"]
# Invisible characters (bidi overrides, zero-width joiners) no name may hold: refused, see
# tests/central/test_authority.py.


# The log of refused requests (the Logs page): a refusal writes its own line there, and
# nothing else.
REFUSAL_LOG = "sync_failure"


def snapshot(conn) -> dict:
    """Return every row of every table and every sequence: compare to show nothing changed."""
    tables = [r["table_name"] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
        "AND table_type = 'BASE TABLE' AND table_name <> %s ORDER BY table_name", [REFUSAL_LOG])]
    state = {t: sorted(map(repr, conn.execute(sql.SQL("SELECT * FROM {}").format(
        sql.Identifier(t))).fetchall())) for t in tables}
    for seq in ("change_id_seq", "lap_feed_seq"):
        state[seq] = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(
            sql.Identifier(seq))).fetchone()
    return state


def without_contact(state: dict) -> dict:
    """Drop the device columns every authenticated API call updates."""
    state = dict(state)
    state["device"] = [re.sub(r"'(last_contact|clock_offset_ms)': [^,}]+", "", row)
                       for row in state["device"]]
    return state


def routes(app, writes: bool) -> list[tuple[str, str, str]]:
    """Return (endpoint, method, rule) of every write route (or every GET route)."""
    found = []
    for rule in app.url_map.iter_rules():
        methods = rule.methods - {"GET", "HEAD", "OPTIONS"} if writes else rule.methods & {"GET"}
        found += [(rule.endpoint, method, rule.rule) for method in methods]
    return sorted(found)


def readable(body: bytes) -> str:
    """Return a response body as text to search; a workbook (a zip) unpacked."""
    if body.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            body = b"".join(archive.read(name) for name in archive.namelist())
    return body.decode("utf-8", "replace")


def url_for_rule(rule: str, ids: dict) -> str:
    """Fill a rule's arguments with real ids (so a refusal is not a 404), else a value its
    converter takes: 1 for int, the first choice of any(...), 'x' for text."""
    def value(match: re.Match) -> str:
        """Return the text for one <converter(args):name> of the rule."""
        converter, args, name = match.groups()
        if name in ids:
            return str(ids[name])
        if converter == "any":
            return args.split(",")[0].strip()
        return "1" if converter == "int" else "x"
    return re.sub(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>", value, rule)


def form_data(ids: dict, token: str | None) -> dict:
    """A form that would change something on most write routes if it were let through."""
    data = {"name": "Mallory", "start_number": "99", "class": "5a", "grade": "5",
            "event_name": "Hijacked", "min_lap_seconds": "1", "confirm": "yes",
            "lap_id": ids["lap_id"], "runner_id": ids["runner_id"],
            "file": (io.BytesIO(b"Name,Klasse,Jahrgang\nMallory,5a,5\n"), "roster.csv")}
    return {**data, "csrf_token": token} if token else data


def send(client, method: str, url: str, ids: dict, token: str | None, as_json: bool):
    """Send a write as a form post, or asking for JSON."""
    headers = {**JSON, **({"X-CSRFToken": token} if token else {})} if as_json else {}
    return client.open(url, method=method, data=form_data(ids, token), headers=headers,
                       content_type="multipart/form-data")


def page_token(client, path: str = "/login") -> str:
    """Return the CSRF token of a page."""
    return re.search(r'name="csrf-token" content="([^"]+)"',
                     client.get(path).get_data(as_text=True)).group(1)


def push(client, token: str, body: dict):
    """Push a batch through the test client with a device token."""
    return client.post("/api/v1/push", json=body, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def world(central_app, central_db, central_users, device_token) -> dict:
    """Users ada (admin) and vic (viewer), laptop A's runner, lap and user; their ids."""
    box = Outbox()
    runner = box.runner(17, "Cleo Dahl", "6b", 6)
    lap = box.lap(runner)
    box.user("tom")
    client = central_app.test_client()
    assert push(client, device_token, box.body()).status_code == 200
    device = central_db.execute("SELECT id FROM device").fetchone()["id"]
    return {"lap_id": lap, "runner_id": runner, "class_name": "6b", "device_id": device,
            "box": box, "token": device_token}


def assert_refused(response, code: str, status: int, as_json: bool, where: str) -> None:
    """Check a refusal: the JSON error code, or the status (a page may go to login)."""
    if as_json or where.split()[-1].startswith("/api/"):
        assert response.status_code == status and response.get_json()["error"] == code, where
    elif response.status_code == 302:
        assert "/login" in response.headers["Location"], where
    else:
        assert response.status_code == status, where


# --- no write without auth, the viewer role, expired sessions, CSRF --------------------------

def test_every_write_route_is_known_here(central_app):
    endpoints = {endpoint for endpoint, _, _ in routes(central_app, writes=True)}
    assert {"api.push_view", "devices.register", "settings.save", "review.merge_runners",
            "roster.import_csv"} <= endpoints


def test_anonymous_writes_are_refused_everywhere_and_change_nothing(central_app, central_client,
                                                                     central_db, world):
    token = page_token(central_client)
    before = snapshot(central_db)
    for (endpoint, method, rule), as_json in itertools.product(routes(central_app, True),
                                                               [False, True]):
        if endpoint in OPEN_WRITES:
            continue
        response = send(central_client, method, url_for_rule(rule, world), world, token, as_json)
        code = "missing_token" if rule.startswith("/api/") else "login_required"
        assert_refused(response, code, 401, as_json, f"{method} {rule}")
    assert snapshot(central_db) == before


def test_anonymous_reads_change_nothing_and_show_no_data(central_app, central_client, central_db,
                                                        world):
    before = snapshot(central_db)
    for endpoint, _, rule in routes(central_app, writes=False):
        if endpoint in ("static", "web.static", "auth.login", "api.openapi", "index"):  # index: a redirect
            continue
        response = central_client.get(url_for_rule(rule, world))
        if endpoint == "health.healthz":  # public for load balancers: its status, no data
            assert response.status_code == 200, rule
            assert set(response.get_json()) == {"status", "database", "database_ms"}, rule
            continue
        if rule.startswith("/api/"):
            assert response.status_code == 401 and "changes" not in response.get_json(), rule
        else:
            assert response.status_code == 302 and "/login" in response.headers["Location"], rule
    assert snapshot(central_db) == before


def assert_every_session_write_refused(app, client, conn, world, code: str, status: int) -> None:
    """Send every form and JSON write (not the open ones, not the API) with the client's session
    and CSRF token: each must be refused with code and status, and nothing may change."""
    before = snapshot(conn)
    for (endpoint, method, rule), as_json in itertools.product(routes(app, True), [False, True]):
        if endpoint in OPEN_WRITES or rule.startswith("/api/"):
            continue
        response = send(client, method, url_for_rule(rule, world), world, client.csrf, as_json)
        assert_refused(response, code, status, as_json, f"{method} {rule}")
    assert snapshot(conn) == before


def test_the_viewer_cannot_write_anywhere(central_app, central_viewer, central_db, world):
    assert_every_session_write_refused(central_app, central_viewer, central_db, world,
                                       "forbidden", 403)


def test_expired_session_is_refused_on_every_write(central_app, central_admin, central_db, world):
    central_db.execute("UPDATE user_session SET valid_until = 0")
    assert_every_session_write_refused(central_app, central_admin, central_db, world,
                                       "login_required", 401)


def test_every_form_and_json_write_without_a_valid_csrf_token_is_refused(central_app, central_admin,
                                                                          central_db, world):
    before = snapshot(central_db)
    for (endpoint, method, rule), token in itertools.product(routes(central_app, True),
                                                             [None, "forged"]):
        if rule.startswith("/api/"):
            continue  # device tokens, not cookies: see the next test
        url = url_for_rule(rule, world)
        as_json = central_admin.open(url, method=method, data={**form_data(world, None), **(
            {"csrf_token": token} if token else {})}, content_type="multipart/form-data",
            headers={**JSON, **({"X-CSRFToken": token} if token else {})})
        assert as_json.status_code == 400 and as_json.get_json()["error"] == "csrf", rule
        page = central_admin.open(url, method=method, data=form_data(world, None),
                                  content_type="multipart/form-data")
        assert page.status_code == 400 and "security token" in page.get_data(as_text=True), rule
    assert snapshot(central_db) == before
    assert central_admin.get("/standings/").status_code == 200  # logout was refused too


def test_an_admin_session_cookie_is_no_credential_for_the_sync_api(central_admin, central_db, world):
    before = snapshot(central_db)
    box = Outbox()
    box.runner(5, "Mallory")
    pushed = central_admin.post("/api/v1/push", json=box.body(),
                                headers={"X-CSRFToken": central_admin.csrf})
    assert pushed.status_code == 401 and pushed.get_json()["error"] == "missing_token"
    pulled = central_admin.get("/api/v1/pull")
    assert pulled.status_code == 401 and not HASH.search(pulled.get_data(as_text=True))
    assert snapshot(central_db) == before


# --- device tokens: bound to one laptop, revocable (real HTTP on loopback) ---------------------

def http_push(base: str, token: str, body: dict) -> requests.Response:
    """POST a push over HTTP."""
    return requests.post(f"{base}/api/v1/push", json=body, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})


def http_pull(base: str, token: str | None) -> requests.Response:
    """GET the first pull page over HTTP."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{base}/api/v1/pull", headers=headers, timeout=30)


def test_laptop_a_token_cannot_push_as_laptop_b(live_central, central_db, world):
    laptop_b = Outbox()
    token_b = register(central_db, "laptop-b")
    assert http_push(live_central, token_b, laptop_b.body()).status_code == 200  # binds B
    before = without_contact(snapshot(central_db))
    forged = Outbox(laptop_id=laptop_b.laptop_id)  # A's token, B's laptop id and origin
    forged.runner(5, "Mallory")
    forged.lap(world["runner_id"])
    refused = http_push(live_central, world["token"], forged.body())
    assert refused.status_code == 403 and refused.json()["error"] == "device_mismatch"
    fresh = register(central_db, "laptop-c")  # an unbound token claiming bound laptop B
    before = without_contact(snapshot(central_db))
    claimed = http_push(live_central, fresh, forged.body())
    assert claimed.status_code == 403 and claimed.json()["error"] == "laptop_registered"
    assert without_contact(snapshot(central_db)) == before


@pytest.mark.parametrize("case", ["revoked", "unknown", "missing", "not bearer"])
def test_bad_tokens_are_refused_and_get_no_data(live_central, central_db, world, case):
    token = {"revoked": world["token"], "unknown": "x" * 43, "missing": None,
             "not bearer": None}[case]
    if case == "revoked":
        assert revoke_device(central_db, "laptop-a")
    before = snapshot(central_db)
    box = Outbox(laptop_id=world["box"].laptop_id)
    box.changes = list(world["box"].changes)
    box.lap(world["runner_id"])
    headers = {"Authorization": "Basic YWRhOnB3"} if case == "not bearer" else (
        {"Authorization": f"Bearer {token}"} if token else {})
    pushed = requests.post(f"{live_central}/api/v1/push", json=box.body(), headers=headers,
                           timeout=30)
    pulled = requests.get(f"{live_central}/api/v1/pull", headers=headers, timeout=30)
    code = {"revoked": "revoked_token", "unknown": "invalid_token"}.get(case, "missing_token")
    for response in (pushed, pulled):
        assert response.status_code == 401 and response.json()["error"] == code, case
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert not HASH.search(response.text) and "changes" not in response.json()
    assert snapshot(central_db) == before


# --- password hashes: only an authenticated device's pull carries them -------------------------

def test_password_hashes_leave_central_only_in_an_authenticated_pull(central_app, live_central,
                                                                      central_db, world):
    stored = {r["name"]: r for r in central_db.execute("SELECT * FROM app_user")}
    hashes = [r["password_hash"] for r in stored.values()]
    assert len(hashes) == 3 and all(h.startswith("$argon2") for h in hashes)
    for trusted in (False, True):
        pulled = http_pull(live_central, register(central_db, f"laptop-{trusted}",
                                                  manage_users=trusted)).json()
        users = {c["data"]["name"]: c["data"]["password_hash"] for c in pulled["changes"]
                 if c["entity"] == "user"}
        # offline login needs them; an admin's only on a device trusted to manage users
        assert users == {name: "!withheld" if row["role"] == "admin" and not trusted
                         else row["password_hash"] for name, row in stored.items()}
    for name in ("ada", "vic"):
        client = central_app.test_client()
        token = page_token(client)
        assert client.post("/login", data={"name": name, "password": CENTRAL_PASSWORD,
                                           "csrf_token": token}).status_code == 302
        for endpoint, _, rule in routes(central_app, writes=False):
            if endpoint in ("static", "web.static"):
                continue
            response = client.get(url_for_rule(rule, world))
            body = readable(response.get_data())
            assert response.status_code < 500, rule
            assert not HASH.search(body) and not any(h in body for h in hashes), f"{name} {rule}"


# --- request size limits -----------------------------------------------------------------------

def test_a_push_has_its_own_body_limit_above_max_content_length(central_app, live_central,
                                                                central_db, world):
    limit = central_app.config["MAX_CONTENT_LENGTH"]
    assert limit < MAX_BATCH_BYTES  # every other request is held to the smaller limit
    body = json.dumps(world["box"].body()).encode()  # a replay: applies nothing new
    exact = body + b" " * (MAX_BATCH_BYTES - len(body))
    response = requests.post(f"{live_central}/api/v1/push", data=exact, timeout=60, headers={
        "Authorization": f"Bearer {world['token']}", "Content-Type": "application/json"})
    assert len(exact) == MAX_BATCH_BYTES and response.status_code == 200
    before = without_contact(snapshot(central_db))
    box = Outbox(laptop_id=world["box"].laptop_id)
    box.changes = list(world["box"].changes)
    box.lap(world["runner_id"])
    body = json.dumps(box.body()).encode()
    for size in (MAX_BATCH_BYTES + 1, MAX_BATCH_BYTES + limit):
        response = central_app.test_client().post(
            "/api/v1/push", data=body + b" " * (size - len(body)), content_type="application/json",
            headers={"Authorization": f"Bearer {world['token']}"})
        assert response.status_code == 413, size
        assert response.get_json()["error"] == "batch_too_large", size
    assert without_contact(snapshot(central_db)) == before


def test_an_upload_above_max_upload_bytes_is_refused_with_413(central_app, central_admin,
                                                              central_db):
    limit = central_app.config["MAX_UPLOAD_BYTES"]
    before = snapshot(central_db)
    for headers in (JSON, {}, {"Accept-Language": "de"}):
        big = io.BytesIO(b"Name,Klasse,Jahrgang\n" + b"x" * limit)
        response = central_admin.post("/runners/import", data={"file": (big, "big.csv"),
                                                                "csrf_token": central_admin.csrf},
                                      content_type="multipart/form-data", headers=headers)
        assert response.status_code == 413
        if headers is JSON:
            assert response.get_json() == {"error": "too_large", "max_bytes": limit, "message":
                                           "The request is too large: this server accepts at "
                                           f"most {limit // 1_000_000} MB."}
        else:
            text = response.get_data(as_text=True)
            assert f"{'höchstens' if headers else 'at most'} {limit // 1_000_000} MB" in text
    assert snapshot(central_db) == before


# --- hostile text: stored verbatim, escaped in HTML, unchanged in JSON and CSV ------------------

def assert_shown_escaped(html: str, text: str, where: str) -> None:
    """The text appears HTML-escaped, never raw when it holds markup."""
    assert str(escape(text)) in html, where
    if "<" in text:
        assert text not in html, where


def results_csv(client) -> list[list[str]]:
    """Return the results CSV's rows."""
    text = client.get("/admin/results.csv").get_data(as_text=True).lstrip("\ufeff")
    return list(csv.reader(io.StringIO(text)))


def test_hostile_runner_names_are_verbatim_in_every_view(central_app, central_admin, central_db,
                                                         world):
    ids = {}
    for number, text in enumerate(NASTY, start=100):
        class_ = text[:20].strip()
        response = central_admin.post("/runners/new", data={
            "start_number": str(number), "name": text, "class": class_, "grade": "7",
            "csrf_token": central_admin.csrf})
        assert response.status_code == 302, text
        row = central_db.execute("SELECT id, name, class FROM runner WHERE start_number = %s",
                                 [number]).fetchone()
        assert (row["name"], row["class"]) == (text, class_), text
        ids[text] = row["id"]
        world["box"].lap(row["id"])
    assert push(central_app.test_client(), world["token"], world["box"].body()).status_code == 200
    for text, runner_id in ids.items():
        for path, args in [("/standings/", None), ("/standings/", {"q": text}),
                           (f"/standings/runner/{runner_id}", None), ("/runners/", None),
                           ("/runners/", {"q": text}), ("/runners/sheets", None),
                           ("/admin/results/classes", None),
                           (f"/admin/certificates/runner/{runner_id}", None), ("/live/", None),
                           (f"/runners/{runner_id}/edit", None)]:
            page = central_admin.get(path, query_string=args)
            assert page.status_code == 200, path
            assert_shown_escaped(page.get_data(as_text=True), text, f"{path} {args} {text}")
    cells = {row[0]: row for row in results_csv(central_admin)[1:]}
    for number, text in enumerate(NASTY, start=100):
        # unchanged, apart from the formula neutralisation documented in sync/results.py
        assert cells[str(number)][1:3] == [excel_safe(text), excel_safe(text[:20].strip())], text
    feed = central_admin.get("/live/feed").get_json()
    assert set(NASTY) <= {lap["name"] for lap in feed["laps"]}
    assert set(NASTY) <= push_and_pull_names(central_app, central_db)
    assert central_db.execute("SELECT count(*) AS n FROM lap").fetchone()["n"] == 1 + len(NASTY)


def push_and_pull_names(central_app, central_db) -> set[str]:
    """Return the runner names a new laptop pulls."""
    token = register(central_db, "laptop-pull")
    client = central_app.test_client()
    assert push(client, token, Outbox().body()).status_code == 200
    page = client.get("/api/v1/pull", headers={"Authorization": f"Bearer {token}"}).get_json()
    return {c["data"]["name"] for c in page["changes"] if c["entity"] == "runner"}


def test_hostile_text_pushed_by_a_laptop_is_stored_and_pulled_verbatim(central_app, central_admin,
                                                                        central_db, world):
    box = world["box"]
    central_db.execute("UPDATE device SET manage_users = true")  # its users may reach central
    for number, text in enumerate(NASTY, start=200):
        runner = box.runner(number, text, text[:20].strip(), 7)
        box.void(box.lap(runner))["data"]["reason"] = text
        box.user(text)
    answer = push(central_app.test_client(), world["token"], box.body(4)).get_json()
    assert answer["rejected"] == []
    names = {r["name"] for r in central_db.execute("SELECT name FROM app_user")}
    reasons = {r["reason"] for r in central_db.execute("SELECT reason FROM lap_void")}
    assert set(NASTY) <= names and set(NASTY) <= reasons
    token = register(central_db, "laptop-b")
    client = central_app.test_client()
    push(client, token, Outbox().body())
    page = client.get("/api/v1/pull", headers={"Authorization": f"Bearer {token}"}).get_json()
    pulled = {(c["entity"], c["data"].get("name") or c["data"].get("reason"))
              for c in page["changes"]}
    for text in NASTY:
        assert {("runner", text), ("user", text), ("lap_void", text)} <= pulled, text
    assert_shown_escaped(central_admin.get("/standings/").get_data(as_text=True), NASTY[2], "standings")


def test_hostile_device_names_and_settings_are_stored_and_shown_verbatim(central_admin, central_db,
                                                                          central_app, world):
    for text in NASTY:
        response = central_admin.post("/devices/register", data={"name": text,
                                                                 "csrf_token": central_admin.csrf})
        assert response.status_code == 201, text
        assert central_db.execute("SELECT count(*) AS n FROM device WHERE name = %s",
                                  [text]).fetchone()["n"] == 1, text
        assert_shown_escaped(central_admin.get("/devices/").get_data(as_text=True), text, text)
        saved = central_admin.post("/settings/", data={"event_name": text, "min_lap_seconds": "60",
                                                       "csrf_token": central_admin.csrf})
        assert saved.status_code == 302, text
        value = central_db.execute("SELECT value FROM setting WHERE key = 'event_name'").fetchone()
        assert value["value"] == text, text
        for path in ("/settings/", "/admin/results", f"/admin/certificates/runner/{world['runner_id']}"):
            assert_shown_escaped(central_admin.get(path).get_data(as_text=True), text, path)
        disposition = central_admin.get("/admin/results.csv").headers["Content-Disposition"]
        assert re.fullmatch(r'attachment; filename="results(-[A-Za-z0-9-]+)?\.csv"', disposition)
    pulled = client_pull(central_app, central_db)
    assert pulled["event_name"] == NASTY[-1]


def client_pull(central_app, central_db) -> dict:
    """Return the settings a new laptop pulls."""
    token = register(central_db, "laptop-settings")
    client = central_app.test_client()
    push(client, token, Outbox().body())
    page = client.get("/api/v1/pull", headers={"Authorization": f"Bearer {token}"}).get_json()
    return {c["data"]["key"]: c["data"]["value"] for c in page["changes"] if c["entity"] == "setting"}


def test_hostile_text_in_review_forms_and_queries_is_refused_or_echoed_escaped(central_app,
                                                                                central_admin,
                                                                                central_db, world):
    before = snapshot(central_db)
    for (endpoint, method, rule), text in itertools.product(routes(central_app, True), NASTY):
        if not endpoint.startswith("review."):
            continue
        form = {field: text for field in ("lap_id", "other_id", "version", "first_id", "second_id",
                                          "first_version", "second_version", "runner_id",
                                          "start_number", "survivor_id", "survivor_version",
                                          "merged_id", "merged_version", "clash_id", "version_a",
                                          "version_b")}
        response = central_admin.post(rule, data=form, headers={**JSON,
                                                                "X-CSRFToken": central_admin.csrf})
        assert 400 <= response.status_code < 500 and response.get_json()["error"], (rule, text)
    assert snapshot(central_db) == before
    for text in NASTY:
        for path, args in [("/runners/", {"q": text, "class": text}),
                           ("/admin/results/classes", {"class": text}),
                           (f"/admin/certificates/class/{quote(text, safe='')}", None),
                           ("/standings/classes", {"q": text})]:
            response = central_admin.get(path, query_string=args)
            assert response.status_code in (200, 404), (path, text)
            assert "<script>alert" not in response.get_data(as_text=True), (path, text)


def test_a_hostile_login_name_is_recorded_verbatim(central_client, central_db):
    token = page_token(central_client)
    response = central_client.post("/login", data={"name": NASTY[0], "password": "x",
                                                   "csrf_token": token})
    assert response.status_code == 401
    assert central_db.execute("SELECT account FROM login_failure").fetchone()["account"] == NASTY[0]


NUL_CASES = [  # (method, path, query): each answered 500 before
    ("GET", "/runners/", {"q": "a\x00b"}), ("GET", "/runners/sheets", {"class": "a\x00b"}),
    ("GET", "/admin/results", {"q": "a\x00b"}), ("GET", "/admin/results/classes", {"class": "a\x00b"}),
    ("GET", "/admin/certificates/class/a%00b", None), ("GET", "/admin/certificates/runner/a%00b", None),
    ("GET", "/runners/a%00b/edit", None), ("POST", "/runners/a%00b/edit", None),
    ("POST", "/login", None)]


def test_nul_characters_that_reach_a_query_are_a_400_not_a_500(central_admin, central_db, world):
    """Regression: PostgreSQL text cannot hold NUL; each of NUL_CASES answered 500."""
    before = snapshot(central_db)
    form = {"name": "a\x00b", "password": "x", "start_number": "5", "class": "5a", "grade": "5",
            "csrf_token": central_admin.csrf}
    for (method, path, args), headers in itertools.product(NUL_CASES, ({}, JSON)):
        response = central_admin.open(path, method=method, query_string=args, headers=headers,
                                      data=form if method == "POST" else None)
        assert response.status_code == 400, (method, path, response.get_data(as_text=True)[:300])
        if headers:
            assert response.get_json()["error"] == "invalid_text", (method, path)
        else:
            assert "NUL character" in response.get_data(as_text=True), (method, path)
    assert snapshot(central_db) == before


def test_nul_characters_anywhere_in_a_page_request_never_answer_500(central_app, central_admin,
                                                                     central_db, world):
    before = snapshot(central_db)
    nul = "a\x00b"
    for endpoint, method, rule in routes(central_app, False) + routes(central_app, True):
        if endpoint in ("static", "web.static", "auth.logout"):
            continue
        for url in {url_for_rule(rule, world), re.sub(r"<(path:)?(runner_id|class_name)>", "a%00b",
                                                      url_for_rule(rule, {"device_id": world["device_id"]}))}:
            if method == "GET":
                response = central_admin.get(url, query_string={"q": nul, "class": nul})
            else:
                response = central_admin.post(url, data={"name": nul, "class": nul, "event_name": nul,
                                                         "reason": nul, "csrf_token": central_admin.csrf})
            assert response.status_code < 500, (method, url)
    roster = central_admin.post("/runners/import", data={"csrf_token": central_admin.csrf, "file": (
        io.BytesIO(b"Name,Klasse,Jahrgang\nA\x00B,5a,5\n"), "nul.csv")},
        content_type="multipart/form-data")
    assert roster.status_code == 422  # the importer's report: the name holds a control character
    assert snapshot(central_db) == before


# --- a device token cannot make anyone an admin ----------------------------------------

def test_a_laptop_database_edited_to_make_its_user_an_admin_changes_nothing_at_central(
        app, live_central, central_app, central_db, device_token):
    import sqlite3

    from lapsync.laptop.db import now_ms
    from tests.conftest import PASSWORD
    cli = app.test_cli_runner()                         # laptop: ada (admin), tom, vic; untrusted
    assert cli.invoke(args=["connect", live_central, device_token]).exit_code == 0
    before = snapshot(central_db)["app_user"]           # the laptop's users stayed there
    assert not central_db.execute("SELECT 1 FROM app_user WHERE name IN ('ada', 'tom', 'vic')"
                                  ).fetchone()
    laptop = sqlite3.connect(app.config["DATABASE"])    # Mallory edits the laptop's file
    with laptop:
        origin = laptop.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()[0]
        laptop.execute("UPDATE user SET role = 'admin', hlc = ? WHERE name = 'tom'",
                       [f"{now_ms() + 60_000:013d}.0000"])
        row = laptop.execute("SELECT id, name, password_hash, role, created_at, hlc FROM user "
                             "WHERE name = 'tom'").fetchone()
        data = {**dict(zip(("id", "name", "password_hash", "role", "created_at", "hlc"), row)),
                "origin": origin}
        laptop.execute("INSERT INTO change (entity, entity_id, payload, created_at) "
                       "VALUES ('user', ?, ?, ?)", [row[0], json.dumps(data), now_ms()])
    laptop.close()
    tom = row[0]
    synced = cli.invoke(args=["sync"])
    assert synced.exit_code == 0 and "central rejected 1" in synced.output, synced.output
    assert snapshot(central_db)["app_user"] == before
    refused = central_db.execute("SELECT entity_id, error FROM rejected_change ORDER BY seq")
    assert [(r["entity_id"] == tom, r["error"]) for r in refused] == [
        (False, "users_only_at_central"), (True, "users_only_at_central"),
        (False, "users_only_at_central"), (True, "users_only_at_central")]  # ada, tom, vic, tom
    status = cli.invoke(args=["sync-status"]).output    # the laptop sees why, and moved on
    assert "pending:       0 changes" in status and "rejected:      4" in status
    assert re.search(rf"user {tom}: users_only_at_central Only central, or a device it trusts to "
                     r"manage users, creates or changes users: 'tom' \(admin\)", status), status
    assert "4 changes refused" in app.test_client().get("/sync/status").get_json()["text"]
    central = central_app.test_client()                 # tom is no user at central at all
    assert central.post("/login", data={"name": "tom", "password": PASSWORD,
                                        "csrf_token": page_token(central)}).status_code == 401
    assert central_db.execute("SELECT count(*) AS n FROM device").fetchone()["n"] == 1
