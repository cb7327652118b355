"""Attacks on central over real HTTP (served on loopback, a real PostgreSQL): where a login may
send the browser, security headers, body limits, the login lockout, the CSV export, secrets at
rest."""
from __future__ import annotations

import csv
import io
import os
import stat
import urllib.parse

import psycopg
import pytest

from lapsync.web import load_secret_key, make_private_folder
from sync.db import embedded_server
from lapsync.web.guard import SECURITY_HEADERS
from tests.central.test_security import snapshot
from tests.hardening import HOSTILE_NEXT, client_from, page_token, post_big_login, post_login, security_headers
from tests.pg import CENTRAL_PASSWORD


def sessions(conn) -> int:
    """Count the open sessions."""
    return conn.execute("SELECT count(*) AS n FROM user_session").fetchone()["n"]


# ---- 1. where a login may send the browser ----------------------------------------------------

@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_a_login_never_sends_the_browser_to_another_site(live_central, central_users, central_db,
                                                         target):
    response = post_login(client_from(), live_central, "vic", CENTRAL_PASSWORD,
                          query=f"?next={target}")
    assert response.status_code == 302, HOSTILE_NEXT[target]
    assert response.headers["Location"] == "/standings/", HOSTILE_NEXT[target]
    assert sessions(central_db) == 1  # the login itself worked


def test_a_login_follows_a_path_of_this_site(live_central, central_users):
    target = "/runners/?q=" + urllib.parse.quote("Jürgen")
    response = post_login(client_from(), live_central, "vic", CENTRAL_PASSWORD,
                          query="?next=" + urllib.parse.quote(target))
    assert response.status_code == 302 and response.headers["Location"] == target


# ---- 2. security headers on every kind of answer ----------------------------------------------

def test_every_kind_of_answer_carries_the_security_headers(live_central, central_users):
    url, client = live_central, client_from()
    assert post_login(client, url, "ada", CENTRAL_PASSWORD).status_code == 302
    token = page_token(client, f"{url}/standings/")
    answers = {
        "page": client.get(f"{url}/standings/", timeout=10),
        "redirect": client.get(f"{url}/", timeout=10, allow_redirects=False),
        "json": client.get(f"{url}/healthz", timeout=10),
        "openapi": client.get(f"{url}/api/v1/openapi.yaml", timeout=10),
        "app static": client.get(f"{url}/static/central.css", timeout=10),
        "shared static": client.get(f"{url}/web-static/actions.js", timeout=10),
        "csv": client.get(f"{url}/admin/results.csv", timeout=10),
        "404 page": client.get(f"{url}/no-such-page", timeout=10),
        "401 api": client.get(f"{url}/api/v1/pull", timeout=10),
        "400 csrf": client.post(f"{url}/settings/", data={"event_name": "x"}, timeout=10),
        "413": client.post(f"{url}/runners/new", data={"name": "x" * 2_000_000}, timeout=30,
                           headers={"X-CSRFToken": token}),
    }
    assert [answers[kind].status_code for kind in ("404 page", "401 api", "400 csrf", "413")] == \
        [404, 401, 400, 413]
    for kind, response in answers.items():
        assert response.status_code < 500, kind
        assert security_headers(response) == SECURITY_HEADERS, kind


# ---- 3. body limits ---------------------------------------------------------------------------

@pytest.mark.parametrize("as_json", [False, True])
def test_a_16_mb_login_name_is_refused_with_413_and_nobody_logs_in(live_central, central_users,
                                                                   central_db, as_json):
    """The limit was 17 MB for every request (the push's size), so this name was read."""
    before = snapshot(central_db)
    client = client_from()
    response = post_big_login(client, live_central, as_json)
    assert response.status_code == 413
    assert snapshot(central_db) == before  # no session, not even a failure recorded
    assert client.get(f"{live_central}/standings/", timeout=10,
                      allow_redirects=False).status_code == 302  # to the login


# ---- 4. the CSV export ------------------------------------------------------------------------

def test_results_csv_keeps_each_name_in_one_neutralised_cell(live_central, central_users):
    client = client_from()
    assert post_login(client, live_central, "ada", CENTRAL_PASSWORD).status_code == 302
    names = {1: "x;=1+1;", 2: '=HYPERLINK("http://x")', 3: "Anna, Berg", 4: "-5;@SUM(A1)"}
    for number, name in names.items():
        token = page_token(client, f"{live_central}/runners/new")
        response = client.post(f"{live_central}/runners/new", timeout=10, allow_redirects=False,
                               data={"start_number": str(number), "name": name, "class": "5a",
                                     "grade": "5", "csrf_token": token})
        assert response.status_code == 302, response.text[:300]
    text = client.get(f"{live_central}/admin/results.csv", timeout=10).content.decode("utf-8-sig")
    rows = {row[0]: row for row in csv.reader(io.StringIO(text, newline=""))}
    assert rows["start_number"] == ["start_number", "name", "class", "grade", "laps", "distance_m",
                                    "did_not_run"]
    assert {number: rows[str(number)][1:5] for number in names} == {
        1: ["x;'=1+1;", "5a", "5", "0"], 2: ['\'=HYPERLINK("http://x")', "5a", "5", "0"],
        3: ["Anna, Berg", "5a", "5", "0"], 4: ["'-5;'@SUM(A1)", "5a", "5", "0"]}
    assert '1,"x;\'=1+1;","5a",5,0,""' in text  # text quoted, numbers not
    # German Excel splits the file on ";": no piece may start a formula there either.
    pieces = [piece.strip('"') for line in text.splitlines() for piece in line.split(";")]
    assert not [piece for piece in pieces if piece.startswith(("=", "+", "-", "@"))]


# ---- 5. the login lockout ---------------------------------------------------------------------

def test_wrong_passwords_from_one_address_do_not_lock_the_admin_out_of_another(live_central,
                                                                               central_users,
                                                                               central_db):
    """Five wrong passwords for a name locked it for everyone for 15 minutes: anyone could keep
    central's admin out. Now they delay that name from that address only."""
    attacker, admin = client_from("127.0.0.2"), client_from("127.0.0.1")
    for _ in range(5):
        assert post_login(attacker, live_central, "ada", "wrong-one").status_code == 401
    refused = post_login(attacker, live_central, "ada", CENTRAL_PASSWORD, as_json=True)
    assert refused.status_code == 429 and refused.json()["error"] == "too_many_attempts"
    assert 50 <= refused.json()["retry_after"] <= 60 and sessions(central_db) == 0
    assert post_login(admin, live_central, "ada", CENTRAL_PASSWORD).status_code == 302
    assert admin.get(f"{live_central}/settings/", timeout=10).status_code == 200
    assert post_login(attacker, live_central, "ada", CENTRAL_PASSWORD).status_code == 429
    failures = central_db.execute("SELECT account, address FROM login_failure").fetchall()
    assert failures == [{"account": "ada", "address": "127.0.0.2"}] * 5
    assert sessions(central_db) == 1


# ---- 6. secrets at rest -----------------------------------------------------------------------

def test_centrals_instance_folder_and_secret_key_are_owner_only(central_app, tmp_path,
                                                                monkeypatch):
    # Nobody else reads or writes it; a search bit the embedded PostgreSQL's user needs may stay.
    assert stat.S_IMODE(os.stat(central_app.instance_path).st_mode) & 0o766 == 0o700
    modes = []
    link = os.link

    def spy_link(source, target):
        """Note the key file's mode when it is linked into place."""
        modes.append(stat.S_IMODE(os.stat(source).st_mode))
        return link(source, target)
    monkeypatch.setattr(os, "link", spy_link)
    key = load_secret_key(str(tmp_path))
    assert len(key) == 64 and modes == [0o600]  # owner-only from its first byte
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600
    assert load_secret_key(str(tmp_path)) == key


def test_the_embedded_database_survives_the_app_making_its_instance_folder_private(tmp_path):
    """Run as root (as on CI), the embedded PostgreSQL runs as a user of its own, which
    must still reach its data folder in the instance folder after the app starts."""
    instance = tmp_path / "central"
    server = embedded_server(instance / "pgdata")
    try:
        make_private_folder(instance)                  # what every start of central does
        assert stat.S_IMODE(os.stat(instance).st_mode) & 0o066 == 0   # nobody else lists it
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("CHECKPOINT")                 # opens global/pg_control by its full path
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone()[0] == 0
    finally:
        server.stop()  # embedded_server outlives its process, as central's does


def test_the_embedded_server_leaves_the_folders_above_its_data_unlisted(tmp_path):
    """pgserver opens every folder above its data to everyone (g+rx,o+rx): the laptop's
    and central's instance folders keep only the search bit its own user needs."""
    laptop_instance = tmp_path / "instance"
    make_private_folder(laptop_instance)
    central_instance = laptop_instance / "central"
    make_private_folder(central_instance)
    server = embedded_server(central_instance / "pgdata")
    try:
        for folder in (laptop_instance, central_instance):
            assert stat.S_IMODE(os.stat(folder).st_mode) & 0o066 == 0, oct(os.stat(folder).st_mode)
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")                 # its user still reaches the data
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()


def test_an_existing_instance_folder_loses_others_read_and_write_but_not_search(tmp_path):
    folder = tmp_path / "instance"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    make_private_folder(folder)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o711
    made = tmp_path / "new"
    make_private_folder(made)
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
