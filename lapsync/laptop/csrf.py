"""CSRF protection with the check of each signed token kept (flask-wtf's, same refusals)."""
from __future__ import annotations

import hmac

from flask import current_app, g, request, session
from flask_wtf.csrf import CSRFProtect
from itsdangerous import BadData, URLSafeTimedSerializer

from .kept import KeptAnswers

KEPT_TOKENS = 256  # signed tokens whose check is kept (a page's token is sent with every lap)
SALT = "wtf-csrf-token"  # flask-wtf's


class KeptCSRFProtect(CSRFProtect):
    """flask-wtf's CSRFProtect, minus the signature check of a token already checked.

    Without a time limit (WTF_CSRF_TIME_LIMIT None: the session's 8 h expiry limits the
    token), what a signed token says depends on the key and the token alone, so each
    answer is kept. A request passes here only when the kept answer equals the
    session's own token; everything else (no token, a bad or foreign one, another
    session's, HTTPS with its referrer check, a time limit) goes through flask-wtf's
    protect unchanged, which refuses it with its own message.
    """

    def __init__(self, app=None) -> None:
        """Start with no token checked."""
        self.kept = KeptAnswers(KEPT_TOKENS)
        super().__init__(app)

    def protect(self, apply_exemptions: bool = False):
        """Pass a post whose kept token matches the session's; else flask-wtf decides."""
        config = current_app.config
        # Exempt views need no check; passing them here as well changes nothing.
        if request.method in config["WTF_CSRF_METHODS"] and self.kept_pass(
                current_app, request.is_secure, signed_token(config, request.form, request.headers),
                session):
            g.csrf_valid = True
            return None
        return super().protect(apply_exemptions)

    def kept_pass(self, app, secure: bool, signed: str | None, session_data) -> bool:
        """Tell whether a signed token is its session's own, by the kept check.

        Only without a time limit and over plain HTTP (HTTPS adds flask-wtf's referrer
        check); False sends a request to flask-wtf, which passes or refuses it.
        """
        config = app.config
        if config.get("WTF_CSRF_TIME_LIMIT") is not None or secure:
            return False
        raw = self.raw_token(config.get("WTF_CSRF_SECRET_KEY") or app.secret_key, signed)
        expected = session_data.get(config.get("WTF_CSRF_FIELD_NAME") or "csrf_token")
        return bool(raw) and isinstance(expected, str) and hmac.compare_digest(expected, raw)

    def raw_token(self, secret_key, signed: str | None) -> str | None:
        """Return what a signed token says under this key (kept), or None."""
        if not signed or not secret_key:
            return None
        return self.kept.get((secret_key, signed), lambda: unsigned(secret_key, signed))


def checks_by_default(config) -> bool:
    """Tell whether flask-wtf checks every post (not switched off, as some tests do)."""
    return bool(config["WTF_CSRF_ENABLED"] and config["WTF_CSRF_CHECK_DEFAULT"])


def signed_token(config, form, headers) -> str | None:
    """Return a post's signed token where flask-wtf looks: the form field, a prefixed one, a header."""
    field = config["WTF_CSRF_FIELD_NAME"]
    if form.get(field):
        return form.get(field)
    for key in form:
        if key.endswith(field) and form[key]:
            return form[key]
    for name in config["WTF_CSRF_HEADERS"]:
        if headers.get(name):
            return headers.get(name)
    return None


def unsigned(secret_key, signed: str) -> str | None:
    """Return the raw token a signed one holds under this key, or None."""
    try:
        raw = URLSafeTimedSerializer(secret_key, salt=SALT).loads(signed)
    except BadData:
        return None
    return raw if isinstance(raw, str) else None
