"""lappost: the plain lap post answered ahead of Flask, everything else by Flask as before."""
from __future__ import annotations

import pytest
from flask_babel import gettext

from lapsync.laptop.laps import in_this_language
from tests.conftest import csrf_token, login

JSON = {"Accept": "application/json"}
ALSO_HTML = {"Accept": "application/json, text/html;q=0.5"}  # JSON too, but Flask answers


@pytest.fixture
def flask_calls(app):
    """Count the requests that reach Flask's own wsgi_app behind lappost."""
    calls, inner = [], app.wsgi_app.wsgi_app

    def counted(environ, start_response):
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)
    app.wsgi_app.wsgi_app = counted
    return calls


def post(client, data: dict, headers: dict = JSON, token: str | None = None, **kwargs):
    """Post a lap form with the client's CSRF token in the header, as laps.js does."""
    return client.post("/laps", data=data, **kwargs,
                       headers={**headers, "X-CSRFToken": token or client.csrf})


def lap_total(db) -> int:
    """Return the laps in the database."""
    return db.execute("SELECT count(*) FROM lap").fetchone()[0]


def test_a_plain_post_is_answered_without_flask_in_flasks_words(teacher, runners, flask_calls):
    plain = post(teacher, {"start_number": "1", "client_key": "page-1"})
    assert flask_calls == []
    through_flask = post(teacher, {"start_number": "2", "client_key": "page-2"}, ALSO_HTML)
    assert flask_calls == ["/laps"]
    assert plain.status == through_flask.status == "201 CREATED"
    assert {**plain.headers, "Content-Length": ""} == {**through_flask.headers, "Content-Length": ""}
    one, two = plain.get_json(), through_flask.get_json()
    assert one.keys() == two.keys() and one["runner"]["name"] == "Anna Berg" and one["count"] == 1
    again = post(teacher, {"start_number": "1", "client_key": "page-1"})  # a retried request
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert again.get_json()["lap"] == one["lap"] and flask_calls == ["/laps"]


def test_a_field_sent_twice_counts_its_first_value_as_flask_reads_it(teacher, db, runners,
                                                                      flask_calls):
    twice = post(teacher, "start_number=1&start_number=2&client_key=page-1&client_key=page-2",
                 headers={**JSON, "Content-Type": "application/x-www-form-urlencoded"})
    assert twice.status_code == 201 and flask_calls == []
    assert twice.get_json()["runner"]["start_number"] == 1
    assert db.execute("SELECT client_key FROM lap").fetchall() == [("page-1",)]


@pytest.mark.parametrize("form, headers, status, error", [
    ({"start_number": "abc"}, JSON, 400, "invalid_start_number"),
    ({"start_number": "999"}, JSON, 404, "unknown_runner"),
    ({"start_number": "1"}, {**JSON, "Accept-Language": "de"}, 409, "too_soon"),
])
def test_a_refused_lap_is_answered_by_flask_and_nothing_is_written(
        teacher, db, runners, flask_calls, form, headers, status, error):
    assert post(teacher, {"start_number": "1"}).status_code == 201
    refused = post(teacher, form, headers)
    assert refused.status_code == status and refused.get_json()["error"] == error
    assert flask_calls == ["/laps"] and lap_total(db) == 1
    if error == "too_soon":
        assert "wurde vor 0 s gezählt" in refused.get_json()["message"]


@pytest.mark.parametrize("who, token, status, error", [
    (None, None, 401, "login_required"),
    ("vic", None, 403, "forbidden"),
    ("tom", "not-a-token", 400, "csrf"),
])
def test_a_post_that_fails_a_check_gets_flasks_refusal(app, db, runners, flask_calls,
                                                       who, token, status, error):
    client = app.test_client()
    client.csrf = login(client, who) if who else csrf_token(client, "/login")
    flask_calls.clear()  # the logins' pages
    refused = post(client, {"start_number": "1"}, token=token)
    assert refused.status_code == status and refused.get_json()["error"] == error
    assert flask_calls == ["/laps"] and lap_total(db) == 0


def test_a_multipart_post_is_counted_by_flask(teacher, db, runners, flask_calls):
    counted = post(teacher, {"start_number": "17"}, content_type="multipart/form-data")
    assert counted.status_code == 201 and counted.get_json()["runner"]["name"] == "Cleo Dahl"
    assert flask_calls == ["/laps"] and lap_total(db) == 1


def test_a_refusal_run_by_a_leader_without_a_request_is_worded_for_its_poster(app):
    with app.test_request_context(headers={"Accept-Language": "de"}):
        work = in_this_language(lambda db: gettext("Type a start number."))
    assert work(None) == "Bitte geben Sie eine Startnummer ein."  # as lappost leads: no context
