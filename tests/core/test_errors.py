"""lapsync/errors.py: one error shape, JSON {"error", "message", ...} or a page, in both apps."""
from __future__ import annotations

import io

import pytest
from flask import Flask, abort, request
from flask_babel import lazy_gettext
from werkzeug.exceptions import (
    HTTPException,
    ImATeapot,
    NotFound,
    RequestEntityTooLarge,
)

from lapsync.errors import (
    ErrorRules,
    InputError,
    error_response,
    http_message,
    rules,
    wants_json,
)
from tests.core.bare_app import bare_app

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}
DE = {"Accept-Language": "de"}


def test_input_error_carries_code_message_status_and_extra():
    exc = InputError("bad", "Bad thing.")
    assert (exc.code, exc.message, exc.status, exc.extra) == ("bad", "Bad thing.", 422, {})
    assert str(exc) == "Bad thing." and exc.args == ("Bad thing.",)
    exc = InputError("gone", "Gone.", 410, line=3, field="name")
    assert (exc.code, exc.message, exc.status, exc.extra) == ("gone", "Gone.", 410,
                                                               {"line": 3, "field": "name"})


def test_rules_default_before_init_app_and_as_given_after():
    plain = Flask(__name__)
    with plain.test_request_context("/api/x"):
        assert rules() == ErrorRules((), None, True)
        assert wants_json() is False
    app = bare_app(json_paths=["/api/", "/healthz"], challenge="Bearer x", translate_stock=False)
    with app.app_context():
        assert rules() == ErrorRules(("/api/", "/healthz"), "Bearer x", False)
        assert isinstance(rules().json_paths, tuple)


@pytest.mark.parametrize("path, headers, expected", [
    ("/x", {}, False),
    ("/x", HTML, False),
    ("/x", JSON, True),
    ("/x", {"Accept": "application/json;q=0.9, text/html"}, False),
    ("/x", {"Accept": "text/html;q=0.5, application/json"}, True),
    ("/x", {"Accept": "image/png"}, False),
    ("/x", {**HTML, "Content-Type": "application/json"}, True),
    ("/api/x", HTML, True),
    ("/healthz", {}, True),
    ("/apix", HTML, False),
    ("/x/api/", HTML, False),
])
def test_wants_json(path, headers, expected):
    app = bare_app(json_paths=("/api/", "/healthz"))
    with app.test_request_context(path, headers=headers):
        assert wants_json() is expected


def test_wants_json_without_json_paths_matches_no_path():
    app = bare_app()
    with app.test_request_context("/", headers=HTML):
        assert wants_json() is False


def test_error_response_as_json_with_extra_and_a_lazy_message():
    app = bare_app()
    with app.test_request_context("/", headers=JSON):
        response, status = error_response("too_far", lazy_gettext("Log in"), 409, line=2)
        assert status == 409
        assert response.get_json() == {"error": "too_far", "message": "Log in", "line": 2}


def test_error_response_as_a_page():
    app = bare_app(templates={"error.html": "{{ code }}|{{ message }}|{{ status }}"})
    with app.test_request_context("/", headers=HTML):
        body, status = error_response("too_far", "That is <far>.", 409, line=2)
        assert (body, status) == ("too_far|That is &lt;far&gt;.|409", 409)


def routes(app: Flask) -> Flask:
    """Add views that fail in every way the handlers know."""
    @app.route("/input")
    def input_error():
        raise InputError("bad_input", "Bad input.", 409, field="name")

    @app.route("/input-plain")
    def input_plain():
        raise InputError("bad_input", "Bad input.")

    @app.route("/abort/<int:code>")
    def aborted(code):
        abort(code)

    @app.route("/abort-said/<int:code>")
    def aborted_with_text(code):
        abort(code, "Our own words.")

    @app.route("/abort-empty")
    def aborted_empty():
        abort(404, "")

    @app.route("/teapot")
    def teapot():
        raise ImATeapot()

    @app.route("/post-only", methods=["POST", "PUT"])
    def post_only():
        return "ok"

    @app.route("/upload", methods=["POST"])
    def upload():
        return str(len(request.get_data()))
    return app


def test_input_error_becomes_its_status_code_and_extra_as_json():
    client = routes(bare_app()).test_client()
    response = client.get("/input", headers=JSON)
    assert response.status_code == 409
    assert response.get_json() == {"error": "bad_input", "message": "Bad input.", "field": "name"}
    assert "WWW-Authenticate" not in response.headers
    response = client.get("/input-plain", headers=JSON)
    assert response.status_code == 422
    assert response.get_json() == {"error": "bad_input", "message": "Bad input."}


def test_input_error_as_a_page():
    client = routes(bare_app()).test_client()
    response = client.get("/input")
    assert response.status_code == 409 and "Bad input." in response.get_data(as_text=True)


STOCK = [
    (400, "bad_request", "The request was not understood."),
    (401, "unauthorized", "Please log in first."),
    (403, "forbidden", "Your role may not do this."),
    (404, "not_found", "This page does not exist."),
    (429, "too_many_requests", "Too many requests: wait a moment and try again."),
]


@pytest.mark.parametrize("status, code, message", STOCK)
def test_stock_http_errors_in_our_words(status, code, message):
    client = routes(bare_app()).test_client()
    response = client.get(f"/abort/{status}", headers=JSON)
    assert response.status_code == status
    assert response.get_json() == {"error": code, "message": message}
    page = client.get(f"/abort/{status}", headers=HTML)
    assert page.status_code == status and message in page.get_data(as_text=True)


@pytest.mark.parametrize("status, message", [
    (400, "Die Anfrage wurde nicht verstanden."),
    (404, "Diese Seite gibt es nicht."),
])
def test_stock_http_errors_in_german_keep_the_english_code(status, message):
    client = routes(bare_app()).test_client()
    response = client.get(f"/abort/{status}", headers={**JSON, **DE})
    assert response.get_json()["message"] == message


def test_405_in_our_words_with_allow():
    client = routes(bare_app()).test_client()
    response = client.get("/post-only", headers=JSON)
    assert response.status_code == 405
    assert response.get_json() == {
        "error": "method_not_allowed",
        "message": "This address does not accept that kind of request."}
    assert sorted(response.headers["Allow"].split(", ")) == ["OPTIONS", "POST", "PUT"]


def test_error_without_allow_has_no_allow_header():
    client = routes(bare_app()).test_client()
    assert "Allow" not in client.get("/abort/404", headers=JSON).headers


@pytest.mark.parametrize("status, code", [(404, "not_found"), (403, "forbidden"), (409, "conflict")])
def test_given_descriptions_are_kept(status, code):
    client = routes(bare_app()).test_client()
    response = client.get(f"/abort-said/{status}", headers=JSON)
    assert response.status_code == status
    assert response.get_json() == {"error": code, "message": "Our own words."}


def test_an_empty_description_falls_back_to_the_name():
    client = routes(bare_app()).test_client()
    assert client.get("/abort-empty", headers=JSON).get_json() == {
        "error": "not_found", "message": "Not Found"}


def test_unmapped_stock_errors_keep_werkzeugs_text():
    client = routes(bare_app()).test_client()
    response = client.get("/teapot", headers=JSON)
    assert response.status_code == 418
    assert response.get_json() == {"error": "i'm_a_teapot",
                                   "message": ImATeapot.description}


def test_translate_stock_false_keeps_werkzeugs_english_in_json_but_not_on_pages():
    client = routes(bare_app(translate_stock=False)).test_client()
    response = client.get("/abort/404", headers={**JSON, **DE})
    assert response.get_json() == {"error": "not_found", "message": NotFound.description}
    page = client.get("/abort/404", headers=DE).get_data(as_text=True)
    assert "Diese Seite gibt es nicht." in page and NotFound.description not in page


def test_http_message_directly():
    app = bare_app()
    with app.test_request_context("/"):
        assert http_message(NotFound()) == "This page does not exist."
        assert http_message(NotFound("Mine.")) == "Mine."
        # Unreachable through init_app's handlers: a 413 goes to too_large (naming the limit).
        assert http_message(RequestEntityTooLarge()) == "The upload is too large."
        unnamed = HTTPException()
        unnamed.code = 499
        assert http_message(unnamed) == "Unknown Error"
    with bare_app(translate_stock=False).test_request_context("/", headers=JSON):
        assert http_message(NotFound()) == NotFound.description
        blank = NotFound()
        blank.description = None
        assert http_message(blank) == "Not Found"
    with bare_app(translate_stock=False).test_request_context("/"):  # a page: translated
        assert http_message(NotFound()) == "This page does not exist."
    with app.test_request_context("/"):
        blank = ImATeapot()
        blank.description = ""
        assert http_message(blank) == "I'm a teapot"


def test_401_from_a_handler_carries_the_challenge_only_when_one_is_set():
    client = routes(bare_app(challenge='Bearer realm="lapsync"')).test_client()
    response = client.get("/abort/401", headers=JSON)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="lapsync"'
    assert "WWW-Authenticate" not in client.get("/abort/403", headers=JSON).headers
    plain = routes(bare_app()).test_client()
    assert "WWW-Authenticate" not in plain.get("/abort/401", headers=JSON).headers


def test_json_paths_answer_json_even_to_a_browser():
    client = routes(bare_app(json_paths=("/abort/",))).test_client()
    response = client.get("/abort/404", headers=HTML)
    assert response.get_json() == {"error": "not_found", "message": "This page does not exist."}


def test_csrf_error_is_400_csrf():
    app = routes(bare_app(config={"WTF_CSRF_ENABLED": True}))
    client = app.test_client()
    response = client.post("/post-only", headers=JSON)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "csrf", "message": "The form expired or lacks its security token. "
                                    "Reload the page and try again."}


@pytest.mark.parametrize("limit, size, megabytes", [
    (2_000_000, 2_000_000, None), (2_000_000, 2_000_001, 2),
    (2_999_999, 3_000_000, 2), (500_000, 500_001, 1),
])
def test_a_body_above_max_content_length_is_413_naming_the_limit(limit, size, megabytes):
    client = routes(bare_app(config={"MAX_CONTENT_LENGTH": limit})).test_client()
    response = client.post("/upload", data=b"x" * size, headers=JSON)
    if megabytes is None:
        assert response.status_code == 200 and response.get_data(as_text=True) == str(size)
        return
    assert response.status_code == 413
    assert response.get_json() == {
        "error": "too_large", "max_bytes": limit,
        "message": f"The request is too large: this server accepts at most {megabytes} MB."}



@pytest.mark.parametrize("unset", [True, False])
def test_a_413_without_a_configured_limit_answers_the_stock_text(unset):
    """Regression: the 413 handler read MAX_CONTENT_LENGTH and crashed (None // 1_000_000)
    when it was unset, answering 500 instead of 413."""
    app = routes(bare_app())
    if unset:
        del app.config["MAX_CONTENT_LENGTH"]
    else:
        app.config["MAX_CONTENT_LENGTH"] = None
    client = app.test_client()
    response = client.post("/upload", data=b"x" * 3_000_000, headers=JSON)
    assert response.status_code == 200  # no limit: the body is read
    response = client.get("/abort/413", headers=JSON)
    assert response.status_code == 413
    assert response.get_json() == {"error": "too_large", "message": "The upload is too large."}
    page = client.get("/abort/413", headers={**HTML, **DE})
    assert page.status_code == 413 and "Die gesendeten Daten sind zu groß." in page.get_data(
        as_text=True)


def test_a_form_field_above_max_form_memory_size_is_413_without_naming_the_body_limit():
    app = routes(bare_app(config={"MAX_CONTENT_LENGTH": 1_000_000, "MAX_FORM_MEMORY_SIZE": 200_000}))

    @app.post("/form")
    def form():
        return str(len(request.form["name"]))

    client = app.test_client()
    ok = client.post("/form", data={"name": "x" * 190_000, "f": (io.BytesIO(b"y"), "f.csv")},
                     content_type="multipart/form-data")
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "190000"
    response = client.post("/form", data={"name": "x" * 200_001, "f": (io.BytesIO(b"y"), "f.csv")},
                           content_type="multipart/form-data", headers=JSON)
    assert response.status_code == 413
    assert response.get_json() == {"error": "too_large", "message": "The upload is too large."}
