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
        if (request.method in config["WTF_CSRF_METHODS"]
                and config.get("WTF_CSRF_TIME_LIMIT") is None and not request.is_secure):
            field = config.get("WTF_CSRF_FIELD_NAME") or "csrf_token"
            raw = self.raw_token(config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key)
            expected = session.get(field)
            if raw and isinstance(expected, str) and hmac.compare_digest(expected, raw):
                g.csrf_valid = True
                return None
        return super().protect(apply_exemptions)

    def raw_token(self, secret_key) -> str | None:
        """Return what the request's signed token says under this key (kept), or None."""
        signed = self._get_csrf_token()
        if not signed or not secret_key:
            return None
        return self.kept.get((secret_key, signed), lambda: unsigned(secret_key, signed))


def unsigned(secret_key, signed: str) -> str | None:
    """Return the raw token a signed one holds under this key, or None."""
    try:
        raw = URLSafeTimedSerializer(secret_key, salt=SALT).loads(signed)
    except BadData:
        return None
    return raw if isinstance(raw, str) else None
