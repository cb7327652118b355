"""One shape for every error: JSON `{"error", "message"}` or an HTML page, in both apps.

The code is API and stays English; the message is for people and follows the
browser's language (flask_babel; English outside a request). Both apps register
these handlers with init_app; central adds its database handlers (sync/__init__.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import (
    Flask,
    Response,
    current_app,
    jsonify,
    make_response,
    render_template,
    request,
)
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


class InputError(Exception):
    """Bad input from a person or a client: becomes a 4xx, changes nothing."""

    def __init__(self, code: str, message: str, status: int = 422, **extra):
        super().__init__(message)
        self.code, self.message, self.status, self.extra = code, message, status, extra


@dataclass(frozen=True)
class ErrorRules:
    """An app's error settings: paths that always answer JSON, a 401 challenge, message style."""

    json_paths: tuple[str, ...] = ()
    challenge: str | None = None
    translate_stock: bool = True


def rules() -> ErrorRules:
    """Return the current app's error settings (the defaults before init_app)."""
    return current_app.extensions.get("lapsync.errors", ErrorRules())


def wants_json() -> bool:
    """Tell whether the client asked for JSON rather than a page (or the path is JSON-only)."""
    if request.path.startswith(rules().json_paths):  # () matches nothing
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" or request.is_json


def error_response(code: str, message: str, status: int, **extra) -> tuple[Response | str, int]:
    """Answer an error in the form the client asked for."""
    message = str(message)  # a lazy string cannot go through jsonify
    if wants_json():
        return jsonify(error=code, message=message, **extra), status
    return render_template("error.html", code=code, message=message, status=status), status


def handled_error(code: str, message: str, status: int, **extra) -> Response:
    """Answer an error from an error handler: as error_response, with the app's 401 challenge."""
    response = make_response(error_response(code, message, status, **extra))
    if status == 401 and rules().challenge:
        response.headers["WWW-Authenticate"] = rules().challenge
    return response


def too_large_message(limit: int) -> str:
    """Say that a request was larger than the limit (bytes), in the page's language."""
    return _("The request is too large: this server accepts at most %(size)s MB.",
             size=max(1, limit // 1_000_000))


def too_large_error() -> Response:
    """Answer 413: naming the request's limit when the body was above it, else the stock text."""
    # Below the limit, a form field (MAX_FORM_MEMORY_SIZE) or the form's parts were too many.
    limit, size = request.max_content_length, request.content_length
    if limit is None or size is None or size <= limit:
        return handled_error("too_large", _("The upload is too large."), 413)
    return handled_error("too_large", too_large_message(limit), 413, max_bytes=limit)


def http_message(exc: HTTPException) -> str:
    """Return the message for an HTTP error: werkzeug's stock text in the page's language.

    With translate_stock off, JSON answers keep werkzeug's English (central's API clients
    read it); a page for a person is always in the page's language.
    """
    keep_stock = not rules().translate_stock and wants_json()
    if exc.description != type(exc).description or keep_stock:
        return exc.description or exc.name  # given by our code, translated there
    stock = {
        400: _("The request was not understood."),
        401: _("Please log in first."),
        403: _("Your role may not do this."),
        404: _("This page does not exist."),
        405: _("This address does not accept that kind of request."),
        413: _("The upload is too large."),
        429: _("Too many requests: wait a moment and try again."),
    }
    return stock.get(exc.code, exc.description or exc.name)


def init_app(app: Flask, json_paths: tuple[str, ...] = (), challenge: str | None = None,
             translate_stock: bool = True) -> None:
    """Register the error handlers of both apps.

    json_paths: path prefixes whose errors are always JSON (central's API);
    challenge: the WWW-Authenticate header of a 401 from a handler;
    translate_stock: False keeps werkzeug's own English text for stock HTTP errors in JSON
    answers (pages are translated all the same).
    """
    app.extensions["lapsync.errors"] = ErrorRules(tuple(json_paths), challenge, translate_stock)

    @app.errorhandler(InputError)
    def input_error(exc: InputError) -> Response:
        """Bad input: its 4xx and code."""
        return handled_error(exc.code, exc.message, exc.status, **exc.extra)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Response:
        """A form without its token (central's API uses device tokens instead)."""
        # The page's text stays general; the operator needs the real reason (a Referer
        # that does not match the host behind a proxy looks like an expired form).
        log.warning("%s %s refused: %s", request.method, request.path, exc.description)
        return handled_error("csrf", _("The form expired or lacks its security token. "
                                       "Reload the page and try again."), 400)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        """404, 405 and the rest from werkzeug or abort(): the same shape, 405 with Allow."""
        code = (exc.name or "error").lower().replace(" ", "_")
        response = handled_error(code, http_message(exc), exc.code or 500)
        if getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        """A body above its limit (lapsync.web.guard): 413, nothing read or written."""
        return too_large_error()
