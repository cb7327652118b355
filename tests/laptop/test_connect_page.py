"""The laptop's /connect page: admins connect to central with a connect code or URL and token.

Central is tests/laptop/fake_central.py, real HTTP on a loopback port (the full flow with
the real central is tests/system/test_browser_setup.py). Nothing is saved unless central
answers to the token; then URL and token go to the instance config file, as `flask
connect` stores them, and the laptop syncs once.
"""
from __future__ import annotations

import contextlib
import re
import threading

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from lapsync.devkit.processes import free_port
from lapsync.laptop.client.connect import config_file
from lapsync.laptop.laps import record_lap
from lapsync.protocol.connect import parse_connect_code
from tests.laptop.fake_central import TOKEN, FakeCentral

DE = {"Accept-Language": "de-DE,de;q=0.9"}


@pytest.fixture
def central():
    """A fake central on a real loopback port."""
    with contextlib.closing(FakeCentral()) as server:
        yield server


@pytest.fixture
def stranger():
    """A web server on loopback that is no lapsync central (an HTML page for every path)."""
    def wsgi(environ, start_response):
        status = 200 if environ["PATH_INFO"] == "/" else 404
        return Response("<html>router login</html>", status, mimetype="text/html")(
            environ, start_response)
    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def admin_page(app, admin, tmp_path):
    """The admin's test client, with the instance config file under tmp_path."""
    app.config["INSTANCE_CONFIG_FILE"] = str(tmp_path / "instance" / "config.py")
    return admin


def page(response) -> str:
    """Return a response's HTML with quote entities undone."""
    return response.get_data(as_text=True).replace("&#34;", '"').replace("&#39;", "'")


def connect(client, headers: dict | None = None, **fields):
    """Post the connect form."""
    return client.post("/connect", data={"csrf_token": client.csrf, **fields},
                       headers=headers or {})


def saved(app) -> bool:
    """Tell whether a central URL was stored anywhere."""
    return config_file(app).exists() or bool(app.config.get("CENTRAL_URL"))


def test_a_connect_code_connects_and_syncs_a_waiting_lap(app, db, admin_page, central, runners):
    tom = db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]
    lap = record_lap(db, 1, tom, 60_000)["lap"]["id"]
    assert "Connect to central" in page(admin_page.get("/"))
    answer = connect(admin_page, code=f"  lapsync:{central.url}/#{TOKEN} ")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/connect")
    shown = page(admin_page.get("/connect"))
    assert f"Connected to central at {central.url}. First sync:" in shown
    assert f'<code id="central-url">{central.url}</code>' in shown and TOKEN[:4] + "…" in shown
    assert TOKEN not in shown
    assert app.config["CENTRAL_URL"] == central.url and app.config["CENTRAL_TOKEN"] == TOKEN
    text = config_file(app).read_text(encoding="utf-8")
    assert f"CENTRAL_URL = {central.url!r}" in text and f"CENTRAL_TOKEN = {TOKEN!r}" in text
    assert lap in [c["id"] for c in central.received if c.get("entity") == "lap"]
    assert ">Central</a>" in page(admin_page.get("/")) and "Connect to central</a>" not in page(
        admin_page.get("/"))


def test_url_and_token_connect_too_and_a_code_in_the_url_field_counts_as_a_code(
        app, admin_page, central):
    assert connect(admin_page, url=central.url, token=TOKEN).status_code == 302
    assert app.config["CENTRAL_URL"] == central.url
    other = FakeCentral(token="second-token-0123456789")
    try:
        answer = connect(admin_page, url=f"lapsync:{other.url}#second-token-0123456789")
        assert answer.status_code == 302 and app.config["CENTRAL_URL"] == other.url
    finally:
        other.close()


@pytest.mark.parametrize("fields, text", [
    ({"code": "http://host:8000#token"}, "That is not a connect code"),
    ({"code": "lapsync:http://host:8000"}, "That is not a connect code"),
    ({"code": "lapsync:ftp://host#token"}, "That is not an address of central"),
    ({"code": "lapsync:http://host:8000#with space"}, "The device token is missing"),
    ({"url": "host:8000", "token": TOKEN}, "That is not an address of central"),
    ({"url": "http://host:8000/?x=1", "token": TOKEN}, "That is not an address of central"),
    ({"url": "http://host:8000", "token": ""}, "The device token is missing"),
    ({}, "That is not an address of central"),
])
def test_malformed_input_is_refused_and_nothing_is_saved(app, admin_page, fields, text):
    answer = connect(admin_page, **fields)
    assert answer.status_code == 400 and text in page(answer)
    assert "Nothing was saved." in page(answer) and not saved(app)


def test_an_unreachable_central_is_refused_and_nothing_is_saved(app, admin_page):
    url = f"http://127.0.0.1:{free_port()}"
    answer = connect(admin_page, code=f"lapsync:{url}#{TOKEN}")
    assert answer.status_code == 422
    assert f"Central does not answer at {url}." in page(answer) and not saved(app)
    assert f'value="lapsync:{url}#{TOKEN}"' in page(answer)  # kept for a second try


def test_a_refused_token_is_refused_and_nothing_is_saved(app, admin_page, central):
    answer = connect(admin_page, url=central.url, token="wrong-token-0123456789")
    assert answer.status_code == 422 and "refused this device token" in page(answer)
    assert not saved(app) and central.pushed() == []


def test_a_server_that_is_no_central_is_refused(app, admin_page, stranger):
    answer = connect(admin_page, url=stranger, token=TOKEN)
    assert answer.status_code == 422 and "but not as lapsync central" in page(answer)
    assert not saved(app)


def test_a_busy_central_is_told_apart_from_an_absent_one(app, admin_page, central):
    central.fault("pull", 503)
    answer = connect(admin_page, url=central.url, token=TOKEN)
    assert answer.status_code == 422 and "answered with an error" in page(answer)
    assert not saved(app)


def test_a_failed_first_sync_keeps_the_connection_and_says_so(app, admin_page, central):
    central.fault("push", 500)          # the check pulls; the first sync's push fails
    answer = connect(admin_page, url=central.url, token=TOKEN)
    assert answer.status_code == 302 and app.config["CENTRAL_URL"] == central.url
    assert "but the first sync failed" in page(admin_page.get("/connect"))


def test_only_admins_reach_the_page_and_see_the_menu_entry(app, client, teacher):
    assert teacher.get("/connect").status_code == 403
    assert "Connect to central" not in page(teacher.get("/"))
    token = re.search(r'name="csrf-token" content="([^"]+)"', page(teacher.get("/"))).group(1)
    answer = teacher.post("/connect", data={"csrf_token": token, "url": "http://h:1",
                                            "token": TOKEN})
    assert answer.status_code == 403 and not app.config.get("CENTRAL_URL")
    teacher.post("/logout", data={"csrf_token": token})
    answer = client.get("/connect")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


def test_the_page_and_its_errors_in_german(app, admin_page, central):
    shown = page(admin_page.get("/connect", headers=DE))
    assert "Mit der Zentrale verbinden" in shown and "Verbindungscode" in shown
    answer = connect(admin_page, headers=DE, url=central.url, token="wrong-token-0123456789")
    assert "hat dieses Geräte-Token abgelehnt" in page(answer)
    assert "Nichts wurde gespeichert." in page(answer)
    answer = connect(admin_page, headers=DE, code="nonsense")
    assert "Das ist kein Verbindungscode" in page(answer)


def test_the_command_and_the_page_store_alike(app, admin_page, central, tmp_path):
    connect(admin_page, code=f"lapsync:{central.url}#{TOKEN}")
    by_page = config_file(app).read_text(encoding="utf-8")
    config_file(app).unlink()
    result = app.test_cli_runner().invoke(args=["connect", central.url, TOKEN])
    assert result.exit_code == 0, result.output
    assert config_file(app).read_text(encoding="utf-8") == by_page
    assert parse_connect_code(f"lapsync:{central.url}#{TOKEN}") == (central.url, TOKEN)
