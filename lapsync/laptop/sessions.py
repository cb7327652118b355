"""The laptop's session cookie: Flask's signed cookie, minus a check that a laptop's clock breaks."""
from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature


class ClockSafeSessionInterface(SecureCookieSessionInterface):
    """Signed cookie sessions whose signature time is not compared with the clock.

    Flask refuses a cookie signed "in the future" (itsdangerous: signature age < 0).
    A laptop's clock is set back often: a correction when a network appears, a
    dead CMOS battery, a restart. Every helper was then logged out, and the next
    lap typed answered "form expired". The login's lifetime is kept on the laptop's
    side instead (user_session.valid_until, 8 h; logout deletes it), so the
    cookie's own age adds nothing.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Load the session from a validly signed cookie, whatever its signing time."""
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        value = request.cookies.get(self.get_cookie_name(app))
        if not value:
            return self.session_class()
        try:
            return self.session_class(serializer.loads(value))
        except BadSignature:
            return self.session_class()


def init_app(app: Flask) -> None:
    """Use the clock-safe session cookie."""
    app.session_interface = ClockSafeSessionInterface()
