"""Helpers of the web-hardening tests of both apps: HTTP clients from chosen loopback addresses,
logins over real HTTP, the security headers every answer must carry."""
from __future__ import annotations

import json
import re
import urllib.parse

import requests
from requests.adapters import HTTPAdapter

from lapsync.web.guard import SECURITY_HEADERS

# Login targets a browser would follow to another site (or that crashed the login), each
# with what the attack was: every one must land on the app's home page instead.
HOSTILE_NEXT = {
    "/%09/evil.example/x": "a tab browsers drop: //evil.example/x",
    "/%0A/evil.example/x": "a line feed browsers drop (was a 500: a newline in Location)",
    "/%0D%0A/x": "a CR LF (header splitting)",
    "%09/x": "a tab before the slash",
    "//evil.example/x": "a scheme-relative URL",
    "/%5Cevil.example": "a backslash browsers read as a slash",
    "https://evil.example/": "an absolute URL",
    "/%20/evil.example": "a space",
    "/%00x": "a NUL",
    "javascript:alert(1)": "a script URL",
}
BIG_NAME = "x" * (16 * 1024 * 1024)  # a 16 MB login name


class FromAddress(HTTPAdapter):
    """A requests adapter whose connections leave from one local address (127.0.0.x)."""

    def __init__(self, address: str):
        """Bind every connection to address."""
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        """Make urllib3's pools bind to the address."""
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_from(address: str = "127.0.0.1") -> requests.Session:
    """Return a requests session whose connections come from address (any of 127.0.0.0/8)."""
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    return session


def page_token(session: requests.Session, url: str) -> str:
    """Fetch a page and return its CSRF token (the session keeps the cookie)."""
    page = session.get(url, timeout=10).text
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def post_login(session: requests.Session, base: str, name: str, password: str,
               query: str = "", as_json: bool = False) -> requests.Response:
    """Post the login form (or JSON) with a fresh CSRF token; never follow the redirect."""
    token = page_token(session, f"{base}/login")
    if as_json:
        return session.post(f"{base}/login{query}", json={"name": name, "password": password},
                            headers={"Accept": "application/json", "X-CSRFToken": token},
                            timeout=60, allow_redirects=False)
    return session.post(f"{base}/login{query}", timeout=60, allow_redirects=False,
                        data={"name": name, "password": password, "csrf_token": token})


def security_headers(response: requests.Response) -> dict:
    """Return the answer's values of the security headers (None where one is missing)."""
    return {name: response.headers.get(name) for name in SECURITY_HEADERS}


def post_big(session: requests.Session, url: str, token: str, body: bytes,
             content_type: str) -> requests.Response:
    """Post a large body; a server that answers before reading it all may close the socket."""
    return session.post(url, data=body, timeout=60, allow_redirects=False, headers={
        "Content-Type": content_type, "X-CSRFToken": token, "Accept": "application/json"})


def post_big_login(session: requests.Session, base: str, as_json: bool) -> requests.Response:
    """Post a 16 MB login name as JSON or as a form; a JSON answer must be the 413 error."""
    token = page_token(session, f"{base}/login")
    if as_json:
        body = json.dumps({"name": BIG_NAME, "password": "x"}).encode()
        response = post_big(session, f"{base}/login", token, body, "application/json")
        assert response.json() == {"error": "too_large", "max_bytes": 1024 * 1024, "message":
                                   "The request is too large: this server accepts at most 1 MB."}
        return response
    body = urllib.parse.urlencode({"name": BIG_NAME, "password": "x", "csrf_token": token}).encode()
    return post_big(session, f"{base}/login", token, body, "application/x-www-form-urlencoded")
