"""The laptop's session cookie: Flask's signed cookie, minus a check that a laptop's clock breaks."""
from __future__ import annotations

import copy

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature

from .kept import KeptAnswers

KEPT_COOKIES = 256     # cookies whose signature check is kept (helpers' browsers, tablets)
PLAIN = (str, int, float, bool, type(None))


class ClockSafeSessionInterface(SecureCookieSessionInterface):
    """Signed cookie sessions whose signature time is not compared with the clock.

    Flask refuses a cookie signed "in the future" (itsdangerous: signature age < 0).
    A laptop's clock is set back often: a correction when a network appears, a
    dead CMOS battery, a restart. Every helper was then logged out, and the next
    lap typed answered "form expired". The login's lifetime is kept on the laptop's
    side instead (user_session: 8 h after the last action, 7 days at most, moved with
    a clock jump: logins.py; logout deletes it), so the cookie's own age adds nothing.

    Without a time check, what a cookie says depends on the keys and the cookie alone,
    so each answer is kept (the last KEPT_COOKIES): a helper's browser sends the same
    cookie with every lap, and checking its signature each time took about a tenth of
    a lap's time on the server.
    """

    def __init__(self) -> None:
        """Start with no cookie checked."""
        self.checked = KeptAnswers(KEPT_COOKIES)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Load the session from a validly signed cookie, whatever its signing time."""
        if not app.secret_key:
            return None
        data = self.cookie_data(app, request.cookies.get(self.get_cookie_name(app)))
        if data is None:
            return self.session_class()
        # The session is the request's own to change: a copy (a deep one if it holds lists).
        plain = all(type(v) in PLAIN for v in data.values())
        return self.session_class(data if plain else copy.deepcopy(data))

    def cookie_data(self, app: Flask, value: str | None) -> dict | None:
        """Return what a session cookie says (kept, not to be changed), or None: none or not valid."""
        if not value or not app.secret_key:
            return None
        data = self.verified(app, value)
        return data if isinstance(data, dict) else None

    def verified(self, app: Flask, value: str) -> dict | None:
        """Return what a cookie says, or None for a bad signature (kept per keys and cookie)."""
        key = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()), value)
        return self.checked.get(key, lambda: self.loads(app, value))

    def loads(self, app: Flask, value: str) -> dict | None:
        """Return what a cookie says under the app's keys, or None for a bad signature."""
        try:  # the serializer (and its key derivation) only for a cookie not seen yet
            return self.get_signing_serializer(app).loads(value)
        except BadSignature:
            return None


def init_app(app: Flask) -> None:
    """Use the clock-safe session cookie."""
    app.session_interface = ClockSafeSessionInterface()
