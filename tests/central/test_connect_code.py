"""The connect code beside a new device token on central's devices page (sync/connect_code.py).

The QR code itself is read back from the page in Chromium by tests/system/test_browser_setup.py.
"""
from __future__ import annotations

import html
import re

import pytest

from lapsync.protocol.connect import parse_connect_code
from sync import create_app
from sync.connect_code import device_connect_code, is_loopback


def register(client, name: str = "track-1", **headers) -> str:
    """Register a device on the devices page; return the page."""
    page = client.get("/devices/").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    answer = client.post("/devices/register", data={"csrf_token": token, "name": name},
                         headers=headers)
    assert answer.status_code == 201, answer.get_data(as_text=True)[:500]
    return answer.get_data(as_text=True)


def shown(page: str) -> tuple[str, str]:
    """Return (connect code, token) as the page shows them."""
    code = re.search(r'id="connect-code">([^<]+)<', page).group(1)
    token = re.search(r'id="token">([^<]+)<', page).group(1)
    return html.unescape(code), html.unescape(token)


def test_the_code_names_the_address_the_admin_uses_and_warns_about_loopback(central_admin):
    page = register(central_admin)
    code, token = shown(page)
    assert parse_connect_code(code) == ("http://localhost", token)
    assert 'id="connect-loopback"' in page and '<svg viewBox="0 0' in page
    assert 'class="qr"' in page and "<title>QR code of the connect code</title>" in page


def test_public_url_is_used_when_set_and_then_nothing_warns(central_app, central_admin):
    central_app.config["PUBLIC_URL"] = "https://lauf.schule.example/zentrale"
    page = register(central_admin)
    code, token = shown(page)
    assert code == f"lapsync:https://lauf.schule.example/zentrale#{token}"
    assert 'id="connect-loopback"' not in page


def test_the_code_follows_the_host_the_browser_asked_for(central_app):
    with central_app.test_request_context("/devices/register",
                                          base_url="http://192.168.1.20:8000"):
        made = device_connect_code("a-token")
    assert made.code == "lapsync:http://192.168.1.20:8000#a-token" and not made.loopback
    with central_app.test_request_context("/devices/register", base_url="https://x.example/lauf/"):
        assert device_connect_code("a-token").code == "lapsync:https://x.example/lauf#a-token"


def test_a_bad_public_url_stops_central_at_start(pg_url):
    with pytest.raises(ValueError, match="PUBLIC_URL"):
        create_app({"TESTING": True, "SECRET_KEY": "t", "DATABASE_URL": pg_url,
                    "PUBLIC_URL": "central.example:8000"})


@pytest.mark.parametrize("url, loopback", [
    ("http://localhost:8000", True), ("http://127.0.0.1:5000", True), ("http://127.1.2.3", True),
    ("http://[::1]:8000", True), ("http://app.localhost", True), ("http://192.168.1.20:8000", False),
    ("https://central.example.org", False), ("http://[fe80::1]:8000", False),
])
def test_loopback_addresses_are_told_apart(url, loopback):
    assert is_loopback(url) is loopback


def test_the_code_and_its_labels_in_german(central_admin):
    page = register(central_admin, **{"Accept-Language": "de-DE"})
    assert "Verbindungscode" in page and "nur auf diesem Computer" in page
    assert "QR-Code des Verbindungscodes" in page and ">Kopieren</button>" in page
