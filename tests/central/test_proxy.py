"""Central behind a TLS proxy that forwards the host in X-Forwarded-Host (nginx's default
passes `Host: 127.0.0.1:8000`): the login works, and a refused form says why in the log."""
from __future__ import annotations

import logging
import re
from http.cookies import SimpleCookie

import pytest
import requests

from lapsync.devkit.browser import served
from sync import create_app
from sync.db import close_pool
from tests.pg import CENTRAL_PASSWORD

PUBLIC = "lauf.schule.example"


@pytest.fixture
def proxied(pg_url, central_users):
    """Serve central as behind one trusted TLS proxy (Secure cookies); yield its loopback URL."""
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": pg_url,
                      "TRUSTED_PROXIES": 1, "SESSION_COOKIE_SECURE": True})
    try:
        with served(app) as url:
            yield url
    finally:
        close_pool(app)


def via_proxy(method: str, url: str, path: str, cookies: dict, referer: str, **kwargs):
    """Send a request as nginx passes the browser's on (its Host is central's own address);
    keep the Secure cookies the browser would (requests sends none over plain HTTP)."""
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": PUBLIC, "Referer": referer,
               "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    response = requests.request(method, url + path, headers=headers, allow_redirects=False,
                                timeout=30, **kwargs)
    for header in response.raw.headers.getlist("Set-Cookie"):
        assert "Secure" in header  # the browser talks https to the proxy
        cookies.update({k: m.value for k, m in SimpleCookie(header).items()})
    return response


def login(url: str, referer: str) -> requests.Response:
    """Open the login page and log in as ada through the proxy, the page's Referer as given."""
    cookies: dict = {}
    page = via_proxy("GET", url, "/login", cookies, f"https://{PUBLIC}/")
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    return via_proxy("POST", url, "/login", cookies, referer,
                     data={"name": "ada", "password": CENTRAL_PASSWORD, "csrf_token": token})


def test_a_login_through_a_proxy_that_forwards_the_host_works(proxied):
    answer = login(proxied, f"https://{PUBLIC}/login")
    assert answer.status_code == 302, answer.text
    assert answer.headers["Location"].endswith("/standings/")


def test_a_refused_form_logs_the_real_reason(proxied, caplog):
    caplog.set_level(logging.WARNING)
    answer = login(proxied, "https://elsewhere.example/login")
    assert answer.status_code == 400 and "security token" in answer.text
    assert "POST /login refused: The referrer does not match the host." in caplog.text
