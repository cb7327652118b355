"""lapsync/web (config, secret key, size message), lapsync/ids and lapsync/i18n."""
from __future__ import annotations

import builtins
import codecs
import os
import re
import stat
from pathlib import Path

import pytest
from flask import Flask, render_template_string, request
from flask_babel import force_locale

from lapsync import i18n, roster_csv, web
from lapsync.errors import too_large_message
from lapsync.i18n import select_locale
from lapsync.ids import new_id
from lapsync.protocol import MAX_BATCH_BYTES
from lapsync.web import load_config, load_secret_key
from lapsync.web.guard import SECURITY_HEADERS, body_limit
from tests.core.bare_app import bare_app

# ---- lapsync/web: load_config ------------------------------------------------

def app_at(tmp_path) -> Flask:
    """A bare app whose instance folder is tmp_path/instance (made)."""
    app = Flask(__name__, instance_path=str(tmp_path / "instance"), instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    return app


def test_shared_defaults_then_app_defaults_then_test_config(tmp_path):
    app = app_at(tmp_path)
    load_config(app, {"LOGIN_MAX_FAILURES_PER_ADDRESS": 7, "OWN": 1},
                {"OWN": 2, "SECRET_KEY": "given"})
    assert app.config["LOGIN_WINDOW_SECONDS"] == 900
    assert app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"] == 5
    assert app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"] == 7
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None
    assert app.config["OWN"] == 2 and app.config["SECRET_KEY"] == "given"
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_a_test_config_skips_config_py_and_the_environment(tmp_path, monkeypatch):
    app = app_at(tmp_path)
    (tmp_path / "instance" / "config.py").write_text("FROM_FILE = 1\n", encoding="utf-8")
    monkeypatch.setenv("FLASK_FROM_ENV", "2")
    load_config(app, {}, {})
    assert "FROM_FILE" not in app.config and "FROM_ENV" not in app.config
    assert re.fullmatch(r"[0-9a-f]{64}", app.config["SECRET_KEY"])


def test_without_test_config_config_py_then_environment(tmp_path, monkeypatch):
    app = app_at(tmp_path)
    (tmp_path / "instance" / "config.py").write_text(
        "FROM_FILE = 1\nBOTH = 'file'\nLOGIN_WINDOW_SECONDS = 60\n", encoding="utf-8")
    monkeypatch.setenv("FLASK_BOTH", '"env"')
    monkeypatch.setenv("FLASK_FROM_ENV", "3")
    monkeypatch.setenv("LAPSYNC_OTHER", "4")
    load_config(app, {"BOTH": "default"}, None)
    assert app.config["FROM_FILE"] == 1 and app.config["LOGIN_WINDOW_SECONDS"] == 60
    assert app.config["BOTH"] == "env" and app.config["FROM_ENV"] == 3
    assert "OTHER" not in app.config
    assert app.config["SECRET_KEY"] == (tmp_path / "instance" / "secret_key").read_text()


def test_without_config_py_and_with_own_env_prefixes(tmp_path, monkeypatch):
    app = app_at(tmp_path)
    monkeypatch.setenv("FLASK_A", "1")
    monkeypatch.setenv("LAPSYNC_B", "2")
    monkeypatch.setenv("CENTRAL_C", "3")
    load_config(app, {}, None, ("LAPSYNC", "CENTRAL"))
    assert (app.config.get("A"), app.config["B"], app.config["C"]) == (None, 2, 3)


def test_a_secret_key_from_the_environment_is_kept(tmp_path, monkeypatch):
    app = app_at(tmp_path)
    monkeypatch.setenv("FLASK_SECRET_KEY", '"from-env"')
    load_config(app, {}, None)
    assert app.config["SECRET_KEY"] == "from-env"
    assert not (tmp_path / "instance" / "secret_key").exists()


@pytest.mark.parametrize("empty", ["", None])
def test_an_empty_secret_key_is_replaced_by_the_file(tmp_path, empty):
    app = app_at(tmp_path)
    load_config(app, {"SECRET_KEY": "app default"}, {"SECRET_KEY": empty})
    assert app.config["SECRET_KEY"] == (tmp_path / "instance" / "secret_key").read_text()


# ---- lapsync/web: load_secret_key --------------------------------------------

def test_secret_key_is_made_once_private_and_kept(tmp_path):
    key = load_secret_key(str(tmp_path))
    path = tmp_path / "secret_key"
    assert re.fullmatch(r"[0-9a-f]{64}", key) and path.read_text(encoding="utf-8") == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret_key(str(tmp_path)) == key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]
    assert load_secret_key(str(tmp_path / ".")) == key


def test_secret_key_file_is_read_stripped(tmp_path):
    (tmp_path / "secret_key").write_text("  abc\n", encoding="utf-8")
    assert load_secret_key(str(tmp_path)) == "abc"


def test_secret_key_of_a_process_that_won_the_race_is_taken(tmp_path, monkeypatch):
    links = []

    def lose(src, dst):
        links.append((os.fspath(src), os.fspath(dst), open(src, encoding="utf-8").read()))
        (tmp_path / "secret_key").write_text("winner\n", encoding="utf-8")
        raise FileExistsError(dst)

    monkeypatch.setattr(os, "link", lose)
    assert load_secret_key(str(tmp_path)) == "winner"
    [(src, dst, mine)] = links
    assert src == str(tmp_path / f"secret_key.{os.getpid()}.tmp")
    assert dst == str(tmp_path / "secret_key") and re.fullmatch(r"[0-9a-f]{64}", mine)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]


def test_a_failed_link_still_removes_the_temporary_file(tmp_path, monkeypatch):
    def fail(src, dst):
        raise PermissionError(dst)

    monkeypatch.setattr(os, "link", fail)
    with pytest.raises(PermissionError):
        load_secret_key(str(tmp_path))
    assert list(tmp_path.iterdir()) == []


# ---- lapsync/web: too_large_message and the shared blueprint ------------------

@pytest.mark.parametrize("limit, megabytes", [
    (0, 1), (999_999, 1), (1_000_000, 1), (1_999_999, 1), (2_000_000, 2), (17_000_000, 17),
])
def test_too_large_message_in_whole_megabytes_at_least_one(limit, megabytes):
    with bare_app().test_request_context("/"):
        assert too_large_message(limit) == (
            f"The request is too large: this server accepts at most {megabytes} MB.")


def test_too_large_message_in_german():
    with bare_app().test_request_context("/", headers={"Accept-Language": "de"}):
        assert too_large_message(5_000_000) == (
            "Die Anfrage ist zu groß: Dieser Server nimmt höchstens 5 MB an.")


def test_shared_blueprint_serves_templates_and_css():
    app = Flask(__name__)
    web.init_app(app)
    assert "web" in app.blueprints
    css = [name for name in os.listdir(os.path.join(web.bp.static_folder))
           if name.endswith(".css")]
    assert css
    response = app.test_client().get(f"/web-static/{css[0]}")
    assert response.status_code == 200
    response.close()
    assert app.jinja_env.get_template("web/login.html")


# ---- lapsync/ids ---------------------------------------------------------------

def test_new_id_is_a_24_character_cuid2_and_unique():
    ids = [new_id() for _ in range(200)]
    assert all(re.fullmatch(r"[a-z][0-9a-z]{23}", i) for i in ids)
    assert len(set(ids)) == 200


# ---- lapsync/i18n ---------------------------------------------------------------

def test_outside_a_request_english():
    assert select_locale() == "en"
    with Flask(__name__).app_context():
        assert select_locale() == "en"


@pytest.mark.parametrize("accept, expected", [
    (None, "en"), ("de", "de"), ("de-DE,de;q=0.9", "de"), ("en", "en"), ("fr", "en"),
    ("fr, de;q=0.5", "de"), ("de;q=0.5, en", "en"), ("*", "en"), ("", "en"),
])
def test_the_browsers_language_among_ours(accept, expected):
    headers = {} if accept is None else {"Accept-Language": accept}
    with Flask(__name__).test_request_context("/", headers=headers):
        assert select_locale() == expected


def test_init_app_uses_the_shared_catalog_and_offers_get_locale():
    app = Flask(__name__)
    i18n.init_app(app)
    assert app.config["BABEL_TRANSLATION_DIRECTORIES"] == str(i18n.TRANSLATIONS)
    assert (i18n.TRANSLATIONS / "de" / "LC_MESSAGES" / "messages.mo").is_file()
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert render_template_string("{{ get_locale() }}|{{ _('Log in') }}") == "de|Anmelden"
    with app.test_request_context("/", headers={"Accept-Language": "fr"}):
        assert render_template_string("{{ get_locale() }}|{{ _('Log in') }}") == "en|Log in"


def test_init_app_keeps_a_given_catalog_folder(tmp_path):
    app = Flask(__name__)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(tmp_path)
    i18n.init_app(app)
    assert app.config["BABEL_TRANSLATION_DIRECTORIES"] == str(tmp_path)
    with app.test_request_context("/", headers={"Accept-Language": "de"}), force_locale("de"):
        assert render_template_string("{{ _('Log in') }}") == "Log in"


def test_secret_key_file_is_written_and_read_as_utf_8_whatever_the_locale(tmp_path, monkeypatch):
    encodings = []
    real_open, read = builtins.open, Path.read_text

    def spy_open(file, mode="r", *args, encoding=None, **kwargs):
        encodings.append(("write" if "w" in mode else "open", encoding))
        return real_open(file, mode, *args, encoding="utf-8", **kwargs)

    def spy_read(self, encoding=None, errors=None):
        encodings.append(("read", encoding))
        return read(self, encoding="utf-8")

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(Path, "read_text", spy_read)
    load_secret_key(str(tmp_path))
    assert [op for op, _ in encodings] == ["write", "read"]
    assert all(enc is not None and codecs.lookup(enc).name == "utf-8" for _, enc in encodings)


# ---- lapsync/web/guard: body limits and security headers ---------------------------

def test_body_limits_for_a_push_an_upload_and_everything_else():
    config = dict(web.SHARED_DEFAULTS)
    assert body_limit(config, "/api/v1/push", "application/json") == MAX_BATCH_BYTES
    assert body_limit(config, "/runners/import", "multipart/form-data") == \
        config["MAX_UPLOAD_BYTES"] > roster_csv.MAX_BYTES + 64 * 1024  # a roster and its form
    for path, mimetype in (("/login", "application/x-www-form-urlencoded"),
                           ("/login", "application/json"), ("/api/v1/pull", ""),
                           ("/api/v1/push/", "application/json")):
        assert body_limit(config, path, mimetype) == config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    assert body_limit({"MAX_CONTENT_LENGTH": None}, "/x", "multipart/form-data") is None
    assert config["MAX_FORM_MEMORY_SIZE"] == 200_000


def test_a_view_may_set_its_own_body_limit():
    app = bare_app(config={"MAX_CONTENT_LENGTH": 10})

    @app.post("/big")
    def big():
        request.max_content_length = 100
        return str(len(request.get_data()))

    client = app.test_client()
    assert client.post("/big", data=b"x" * 100).get_data(as_text=True) == "100"
    assert client.post("/big", data=b"x" * 101).status_code == 413


def test_every_answer_carries_the_security_headers_a_view_may_override_one():
    app = bare_app()

    @app.get("/framed")
    def framed():
        return "", 200, {"X-Frame-Options": "SAMEORIGIN"}

    client = app.test_client()
    for path in ("/web-static/lapsync.css", "/web-static/actions.js", "/missing"):
        response = client.get(path)
        assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == \
            SECURITY_HEADERS, path
    assert client.get("/framed").headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "script-src 'self';" in SECURITY_HEADERS["Content-Security-Policy"]
    assert "unsafe-inline" not in SECURITY_HEADERS["Content-Security-Policy"].split("style-src")[0]
