"""Central's hybrid logical clock and node id: central edits order like laptop edits."""
from __future__ import annotations

import psycopg

from lapsync.hlc import observe_meta, tick_meta

from .db import get_meta, now_ms, set_meta


def node_id(conn: psycopg.Connection) -> str:
    """Return central's node id, the origin of edits made at central."""
    value = get_meta(conn, "node_id")
    if value is None:
        raise RuntimeError("database not initialised: run `flask --app sync init-db`")
    return value


def tick(conn: psycopg.Connection) -> str:
    """Return a new central timestamp, later than any seen (inside write_transaction)."""
    return tick_meta(conn, get_meta, set_meta, now_ms())


def observe(conn: psycopg.Connection, remote: str) -> None:
    """Move central's clock past a timestamp received from a laptop."""
    observe_meta(conn, get_meta, set_meta, remote)
