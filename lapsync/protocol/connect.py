"""How a laptop finds central: central's URL, a device token, and the connect code of both.

A connect code is one line, `lapsync:<central URL>#<device token>`, that central's devices
page shows (with a QR code of it) beside a new token and the laptop's /connect page takes
as it is. The URL never holds a `#` (validate_url refuses fragments), so the first `#`
ends it; the token is URL-safe base64 and never holds one either.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from lapsync.errors import InputError

CONNECT_SCHEME = "lapsync:"
MAX_TOKEN = 500
MAX_URL = 2_000
TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")      # printable ASCII: safe in a header


def validate_url(url: str) -> str:
    """Return a clean central URL (http or https) or raise InputError."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError on a bad port
    except ValueError:
        parts = None
    if not parts or len(url) > MAX_URL or parts.scheme not in ("http", "https") \
            or not parts.hostname or re.search(r"\s", url) or parts.username or parts.password \
            or parts.query or parts.fragment:
        raise InputError("invalid_url", f"{url[:80]!r} is not a central URL: use http://host:port "
                         "or https://host (no user, query or fragment).", 400)
    return url.rstrip("/")


def validate_token(token: str) -> str:
    """Return the device token or raise InputError."""
    token = (token or "").strip()
    if not token:
        raise InputError("invalid_token", "The device token is empty: copy the token that "
                         "`flask --app sync register-device NAME` printed.", 400)
    if len(token) > MAX_TOKEN or not TOKEN_RE.match(token):
        raise InputError("invalid_token", f"A device token is at most {MAX_TOKEN} visible ASCII "
                         "characters without spaces.", 400)
    return token


def connect_code(url: str, token: str) -> str:
    """Return the one-line connect code of central's URL and a device token."""
    return f"{CONNECT_SCHEME}{validate_url(url)}#{validate_token(token)}"


def is_connect_code(text: str) -> bool:
    """Tell whether text looks like a connect code (it may still be a bad one)."""
    return (text or "").strip().lower().startswith(CONNECT_SCHEME)


def parse_connect_code(text: str) -> tuple[str, str]:
    """Return (url, token) of a connect code or raise InputError (invalid_code, _url, _token)."""
    text = (text or "").strip()
    if not is_connect_code(text) or "#" not in text:
        raise InputError("invalid_code", "A connect code looks like "
                         f"{CONNECT_SCHEME}http://host:port#token, on one line.", 400)
    url, _, token = text[len(CONNECT_SCHEME):].partition("#")
    return validate_url(url), validate_token(token)
