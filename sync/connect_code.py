"""The connect code beside a new device token: one line and a QR code a laptop takes as is.

The code is `lapsync:<central's URL>#<token>` (lapsync/protocol/connect.py). Central's
URL is the PUBLIC_URL setting if set (behind a proxy, or when the admin opens central at
an address the laptops cannot use), else the address the admin's browser used. The QR
code is inline SVG made by segno: offline, no image files.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

import segno
from flask import Flask, current_app, request
from flask_babel import gettext as _
from markupsafe import Markup

from lapsync.errors import InputError
from lapsync.protocol.connect import connect_code, validate_url

LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


@dataclass(frozen=True)
class ConnectCode:
    """A connect code, its QR code as inline SVG, and whether its URL works elsewhere."""

    url: str
    code: str
    qr: Markup
    loopback: bool


def central_url() -> str:
    """Return central's URL for laptops: PUBLIC_URL if set, else the one this request used."""
    configured = current_app.config.get("PUBLIC_URL")
    return validate_url(configured or request.url_root)


def is_loopback(url: str) -> bool:
    """Tell whether a URL names this computer only (localhost, 127.0.0.1, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in LOOPBACK_NAMES or host.endswith(".localhost")


def qr_svg(text: str) -> Markup:
    """Return a QR code of text as inline SVG (black on white, 4 modules of quiet zone)."""
    qr = segno.make(text, error="m", micro=False)
    return Markup(qr.svg_inline(scale=1, border=4, omitsize=True, svgclass="qr",
                                lineclass=None, dark="#000", light="#fff",
                                title=_("QR code of the connect code")))


def device_connect_code(token: str) -> ConnectCode | None:
    """Return the connect code of a new device token with its QR code (None: no usable URL)."""
    # None rather than an error: the page shows the token this once, code or not.
    try:
        url = central_url()
        code = connect_code(url, token)
    except InputError:
        return None
    return ConnectCode(url, code, qr_svg(code), is_loopback(url))


def init_app(app: Flask) -> None:
    """Check PUBLIC_URL; offer connect_code(token) to templates (the devices page)."""
    if app.config.get("PUBLIC_URL"):
        try:
            app.config["PUBLIC_URL"] = validate_url(app.config["PUBLIC_URL"])
        except InputError as exc:
            raise ValueError(f"config PUBLIC_URL: {exc.message}") from None
    app.add_template_global(device_connect_code, "connect_code")

