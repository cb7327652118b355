"""Request hardening both apps share: security headers on every answer, a body limit per request.

Registered by lapsync.web.init_app, which both apps call.
"""
from __future__ import annotations

from flask import Flask, Request, Response, current_app, make_response, render_template

from lapsync.protocol import API_PREFIX, limits

# No inline script may run (pages load their code from static .js files); inline
# styles stay allowed (style attributes of inline SVG barcodes, small <style> blocks).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; "
                           "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                           "object-src 'none'; base-uri 'self'; form-action 'self'; "
                           "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
PUSH_PATH = f"{API_PREFIX}/push"
UPLOAD_MIMETYPE = "multipart/form-data"


def add_security_headers(response: Response) -> Response:
    """Give an answer the security headers a view did not set itself."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def private_page(template: str, status: int = 200, **context) -> Response:
    """Render a page that no browser or proxy may keep (it shows a token or a password)."""
    response = make_response(render_template(template, **context), status)
    response.headers["Cache-Control"] = "no-store"
    return response


def body_limit(config: dict, path: str, mimetype: str) -> int | None:
    """Return the most bytes a request's body may have: a push, an upload, or anything else."""
    if path == PUSH_PATH:
        return limits.MAX_BATCH_BYTES  # the push API answers its own 413 (batch_too_large)
    if mimetype == UPLOAD_MIMETYPE and config.get("MAX_UPLOAD_BYTES"):
        # File parts go to temporary files; each text part stays under MAX_FORM_MEMORY_SIZE.
        return int(config["MAX_UPLOAD_BYTES"])
    return config.get("MAX_CONTENT_LENGTH")


class LimitedRequest(Request):
    """A request whose body limit depends on what it is (body_limit), not one size for all."""

    @property
    def max_content_length(self) -> int | None:  # type: ignore[override]
        """Return the limit a view set for this request, else body_limit's."""
        if self._max_content_length is not None or not current_app:
            return self._max_content_length
        return body_limit(current_app.config, self.path, self.mimetype)

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        """Set this request's limit (a view that knows better)."""
        self._max_content_length = value


def init_app(app: Flask) -> None:
    """Limit every request's body and put the security headers on every answer."""
    app.request_class = LimitedRequest
    app.after_request(add_security_headers)
