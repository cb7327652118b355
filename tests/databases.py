"""An empty PostgreSQL database for one test: for databases made the way a release or a backup made them."""
from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator

from psycopg import sql

from lapsync.devkit.postgres import admin_execute, drop_database, with_database

_names = itertools.count(1)


@contextlib.contextmanager
def empty_database(server_url: str, purpose: str) -> Iterator[str]:
    """Yield the URL of a new, empty database on the server; drop it afterwards."""
    name = f"lapsync_{purpose}_{os.getpid()}_{next(_names)}"
    admin_execute(server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        drop_database(server_url, name)
