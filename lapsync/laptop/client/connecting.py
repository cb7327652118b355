"""Connecting a laptop to central, as `flask connect` and the /connect page both do it.

The steps: read URL and token (or one connect code), check that central answers to the
token (the page does this before it saves anything), store both in the instance config
file, forget earlier failures, sync once.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlite_utils
from flask import Flask

from lapsync.protocol.connect import (
    is_connect_code,
    parse_connect_code,
    validate_token,
    validate_url,
)

from ..db import connect
from .connect import config_file, write_central_config
from .pull import check_page
from .state import reset_state, sync_once
from .transport import PROTOCOL, Central, SyncError, SyncResult, central_from_config

CHECK_READ_TIMEOUT = 10.0  # a person waits for the check: a short answer or none


def central_and_token(url: str, token: str | None) -> tuple[str, str]:
    """Return (url, token) from a URL and token, or from a connect code in either field."""
    for text in (url, token):
        if is_connect_code(text or ""):
            return parse_connect_code(text)
    return validate_url(url), validate_token(token or "")


def check_central(url: str, token: str, config: dict) -> None:
    """Ask central for one pull item with the token; raise SyncError unless it answers as central."""
    central = Central(url, token, float(config.get("SYNC_CONNECT_TIMEOUT", 3)),
                      min(float(config.get("SYNC_READ_TIMEOUT", 30)), CHECK_READ_TIMEOUT))
    try:
        status, page = central.pull(0, 1)
        if status != 200:
            raise SyncError(PROTOCOL, f"central answered {status} to a first pull", status)
        check_page(page, 0)
    finally:
        central.session.close()


def store_central(app: Flask, url: str, token: str) -> Path:
    """Keep URL and token in the instance config file and the running app; return the file."""
    path = config_file(app)
    write_central_config(path, url, token)
    app.config.update(CENTRAL_URL=url, CENTRAL_TOKEN=token)
    return path


def sync_now(db: sqlite_utils.Database, central: Central) -> SyncResult:
    """Sync once now, whatever the backoff says."""
    return sync_once(db, central, force=True)


def first_sync(app: Flask, run: Callable[[sqlite_utils.Database, Central], SyncResult]
               = sync_now) -> SyncResult:
    """Forget earlier auth failures and backoff, then sync once with the stored central."""
    db = connect(app.config["DATABASE"])
    try:
        reset_state(db)
        return run(db, central_from_config(app.config))
    finally:
        db.close()
