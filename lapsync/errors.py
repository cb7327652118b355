"""One shape for every error: JSON `{"error", "message"}` or an HTML page.

The code is API and stays English; the message is for people and follows the
browser's language (flask_babel; English outside a request).
"""
from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException


class InputError(Exception):
    """Bad input from a person or a client: becomes a 4xx, changes nothing."""

    def __init__(self, code: str, message: str, status: int = 422, **extra):
        super().__init__(message)
        self.code, self.message, self.status, self.extra = code, message, status, extra


def wants_json() -> bool:
    """Tell whether the client asked for JSON rather than a page."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" or request.is_json


def error_response(code: str, message: str, status: int, **extra) -> tuple[Response | str, int]:
    """Answer an error in the form the client asked for."""
    message = str(message)  # a lazy string cannot go through jsonify
    if wants_json():
        return jsonify(error=code, message=message, **extra), status
    return render_template("error.html", code=code, message=message, status=status), status


def http_message(exc: HTTPException) -> str:
    """Return the message for an HTTP error: werkzeug's stock text in the page's language."""
    if exc.description != type(exc).description:  # given by our code, translated there
        return exc.description or exc.name
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


def init_app(app: Flask) -> None:
    """Register the error handlers."""

    @app.errorhandler(InputError)
    def handle_input_error(exc: InputError):
        return error_response(exc.code, exc.message, exc.status, **exc.extra)

    @app.errorhandler(CSRFError)
    def handle_csrf_error(exc: CSRFError):
        return error_response("csrf", _("The form expired or lacks its security token. "
                                        "Reload the page and try again."), 400)

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(code, http_message(exc), exc.code or 500)
