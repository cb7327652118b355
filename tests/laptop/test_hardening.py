"""Attacks on the laptop app over real HTTP (served on loopback): where a login may send the
browser, security headers, body limits, the login lockout, secrets at rest."""
from __future__ import annotations

import os
import stat
import urllib.parse

import pytest

from lapsync.laptop import create_app
from lapsync.laptop.client.connect import config_file
from lapsync.laptop.db import connect
from lapsync.web.guard import SECURITY_HEADERS
from tests.conftest import PASSWORD
from tests.hardening import (
    HOSTILE_NEXT,
    client_from,
    page_token,
    post_big_login,
    post_login,
    security_headers,
)
from tests.laptop.fake_central import TOKEN, FakeCentral
from tests.laptop.test_security import snapshot
from tests.web import served


@pytest.fixture
def url(app):
    """The laptop app (users ada, tom, vic) served on a loopback port."""
    with served(app) as base:
        yield base


def sessions(db) -> int:
    """Count the open sessions."""
    return db.execute("SELECT count(*) FROM user_session").fetchone()[0]


# ---- 1. where a login may send the browser ----------------------------------------------------

@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_a_login_never_sends_the_browser_to_another_site(url, db, target):
    before = sessions(db)
    response = post_login(client_from(), url, "tom", PASSWORD, query=f"?next={target}")
    assert response.status_code == 302, HOSTILE_NEXT[target]
    assert response.headers["Location"] == "/", HOSTILE_NEXT[target]  # the home page instead
    assert sessions(db) == before + 1  # the login itself worked


def test_a_login_follows_a_path_of_this_site(url):
    target = "/runners/?q=" + urllib.parse.quote("Jürgen")
    response = post_login(client_from(), url, "tom", PASSWORD,
                          query="?next=" + urllib.parse.quote(target))
    assert response.status_code == 302 and response.headers["Location"] == target


# ---- 2. security headers on every kind of answer ----------------------------------------------

def test_every_kind_of_answer_carries_the_security_headers(url):
    client = client_from()
    answers = {
        "page": client.get(f"{url}/login", timeout=10),
        "redirect": client.get(f"{url}/", timeout=10, allow_redirects=False),
        "json": client.get(f"{url}/sync/status", headers={"Accept": "application/json"},
                           timeout=10),
        "app static": client.get(f"{url}/static/laps.js", timeout=10),
        "shared static": client.get(f"{url}/web-static/lapsync.css", timeout=10),
        "404 page": client.get(f"{url}/no-such-page", timeout=10),
        "401 json": client.post(f"{url}/laps", json={"start_number": 1}, timeout=10,
                                headers={"X-CSRFToken": page_token(client, f"{url}/login")}),
        "400 csrf": client.post(f"{url}/login", data={"name": "tom"}, timeout=10),
        "413": client.post(f"{url}/login", data={"name": "x" * 2_000_000}, timeout=30),
    }
    assert [answers[kind].status_code for kind in ("404 page", "401 json", "400 csrf", "413")] == \
        [404, 401, 400, 413]
    for kind, response in answers.items():
        assert security_headers(response) == SECURITY_HEADERS, kind
    policy = SECURITY_HEADERS["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy


# ---- 3. body limits ---------------------------------------------------------------------------

@pytest.mark.parametrize("as_json", [False, True])
def test_a_16_mb_login_name_is_refused_with_413_and_nobody_logs_in(app, url, db, as_json):
    before = snapshot(db)
    client = client_from()
    response = post_big_login(client, url, as_json)
    assert response.status_code == 413
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    assert snapshot(db) == before  # no session, not even a failure recorded
    assert client.get(f"{url}/", timeout=10, allow_redirects=False).status_code == 302  # to login


def test_a_form_over_the_limit_is_refused_but_a_roster_upload_keeps_its_own(url, db, admin):
    """A 2 MB form was read (the limit was 5 MB for every request); uploads still take 5 MB."""
    client = client_from()
    assert post_login(client, url, "ada", PASSWORD).status_code == 302
    token = page_token(client, f"{url}/runners/import")
    before = snapshot(db)
    form = client.post(f"{url}/runners/new", timeout=30, headers={"X-CSRFToken": token}, data={
        "start_number": "5", "name": "x" * 2_000_000, "class": "5a", "grade": "5"})
    assert form.status_code == 413 and "at most 1 MB" in form.text
    roster = "Name,Klasse,Jahrgang\n" + "".join(f"Runner {i:07d},5a,5\n" for i in range(100_000))
    upload = client.post(f"{url}/runners/import", timeout=60, data={"csrf_token": token},
                         files={"file": ("big.csv", roster.encode())})
    assert len(roster) > 2_000_000 and upload.status_code == 422  # the importer's own answer
    assert "Too many rows" in upload.text
    assert snapshot(db) == before


# ---- 5. the login lockout ---------------------------------------------------------------------

def test_wrong_passwords_from_one_address_do_not_lock_the_admin_out_of_another(url, db):
    """Five wrong passwords for a name locked it for everyone for 15 minutes: an attacker could
    keep the admin out. Now they delay that name from that address only."""
    attacker, admin = client_from("127.0.0.2"), client_from("127.0.0.1")
    for _ in range(5):
        assert post_login(attacker, url, "ada", "wrong-password").status_code == 401
    refused = post_login(attacker, url, "ada", PASSWORD)
    assert refused.status_code == 429 and 50 <= int(refused.headers["Retry-After"]) <= 60
    failures = db.execute("SELECT account, address FROM login_failure").fetchall()
    assert failures == [("ada", "127.0.0.2")] * 5 and sessions(db) == 0
    assert post_login(admin, url, "ada", PASSWORD).status_code == 302  # the admin gets in
    assert admin.get(f"{url}/users", timeout=10).status_code == 200
    assert post_login(attacker, url, "ada", PASSWORD).status_code == 429  # still waits
    assert db.execute("SELECT count(*) FROM login_failure").fetchone()[0] == 5
    assert sessions(db) == 1


# ---- 6. secrets at rest -----------------------------------------------------------------------

def mode(path) -> int:
    """Return a file's permission bits."""
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_database_and_its_wal_and_shm_are_owner_only(tmp_path, users_template):
    path = tmp_path / "new.sqlite"
    app = create_app({"TESTING": True, "SECRET_KEY": "t", "DATABASE": str(path)})
    db = connect(path)
    db.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")  # WAL and SHM now exist
    assert {suffix: mode(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")} == \
        {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    db.close()
    assert mode(app.instance_path) & 0o766 == 0o700   # a search bit others had may stay
    old = tmp_path / "old.sqlite"  # a database made before: world-readable
    old.write_bytes(users_template.read_bytes())
    os.chmod(old, 0o644)
    create_app({"TESTING": True, "SECRET_KEY": "t", "DATABASE": str(old)})
    assert mode(old) == 0o600


@pytest.fixture
def central():
    """A fake central on a real loopback port that accepts TOKEN."""
    server = FakeCentral()
    yield server
    server.close()


@pytest.mark.parametrize("args, env, stdin", [
    (["-"], {}, "TOKEN\n"),                                    # "-": standard input
    ([], {}, "TOKEN\n"),                                       # left out: standard input
    ([], {"LAPSYNC_TOKEN": "TOKEN"}, ""),                       # left out: the environment
    (["-"], {"LAPSYNC_TOKEN": "not-this-one"}, "TOKEN\n"),     # "-" reads stdin, not env
    (["TOKEN"], {"LAPSYNC_TOKEN": "not-this-one"}, ""),        # the old form still works
])
def test_connect_takes_the_token_from_stdin_or_the_environment(app, tmp_path, central, monkeypatch,
                                                               args, env, stdin):
    monkeypatch.delenv("LAPSYNC_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value.replace("TOKEN", TOKEN))
    app.config["INSTANCE_CONFIG_FILE"] = str(tmp_path / "instance" / "config.py")
    args = [TOKEN if arg == "TOKEN" else arg for arg in args]
    result = app.test_cli_runner().invoke(args=["connect", central.url, *args],
                                          input=stdin.replace("TOKEN", TOKEN))
    assert result.exit_code == 0, result.output
    path = config_file(app)
    assert f"CENTRAL_TOKEN = {TOKEN!r}" in path.read_text(encoding="utf-8")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


def test_connect_without_a_token_anywhere_refuses_and_writes_nothing(app, tmp_path, central,
                                                                     monkeypatch):
    monkeypatch.delenv("LAPSYNC_TOKEN", raising=False)
    app.config["INSTANCE_CONFIG_FILE"] = str(tmp_path / "instance" / "config.py")
    result = app.test_cli_runner().invoke(args=["connect", central.url], input="")
    assert result.exit_code == 2 and "token is empty" in result.output
    assert not config_file(app).exists()
