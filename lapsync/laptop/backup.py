"""Snapshots of the laptop's database: every few minutes while laps come in, at shutdown, by hand.

A snapshot is SQLite's online backup (one consistent read; lap entry goes on
meanwhile), written to a temporary file and renamed into place, so a snapshot file
is always whole. Snapshots go to backups/ beside the database (instance/backups/;
config BACKUP_DIR), numbered, the newest BACKUP_KEEP kept. The background job (on the
sync thread, while the app serves) takes one when BACKUP_INTERVAL seconds have passed
on the monotonic clock and something changed (a local change or a pull), and one at
shutdown; meanwhile it holds a lock on DATABASE.serving, so restore can tell.

Restoring is restore.py's job; this module only makes and finds snapshots.
"""
from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from pathlib import Path

from flask import Flask

try:
    import fcntl
except ImportError:  # Windows: its own byte-range locks
    fcntl = None
    import msvcrt

from . import scheduler
from .db import connect, snapshot

DEFAULTS = {"BACKUP_KEEP": 12, "BACKUP_INTERVAL": 300}  # 12 snapshots, 5 minutes apart
FILE_NAME = re.compile(r"^lapsync-(\d{6})-[0-9T]+\.sqlite$")
EXTENSION = "lapsync_backup"
log = logging.getLogger(__name__)


def mark(conn: sqlite3.Connection) -> str:
    """Return what changes whenever the data does: the outbox's last seq and the pull cursor."""
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'change'").fetchone()
    cursor = conn.execute("SELECT value FROM meta WHERE key = 'pull_cursor'").fetchone()
    return f"{seq[0] if seq else 0}:{cursor[0] if cursor else 0}"


def folder_path(app: Flask) -> Path:
    """Return where the backup folder is (config BACKUP_DIR; default backups/ beside the database)."""
    return Path(app.config.get("BACKUP_DIR") or Path(app.config["DATABASE"]).parent / "backups")


def folder(app: Flask) -> Path:
    """Return the backup folder, made owner-only if missing."""
    path = folder_path(app)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def numbered(path: Path) -> list[tuple[int, Path]]:
    """Return the snapshots in a folder as (number, path), oldest first."""
    found = [(int(m[1]), p) for p in path.iterdir() if (m := FILE_NAME.match(p.name))]
    return sorted(found)


def next_name(path: Path) -> Path:
    """Return the next snapshot's file name: numbered after the last, with the local time."""
    last = numbered(path)[-1][0] if numbered(path) else 0
    # Ordered by number, never by the clock, which a teacher may have set back.
    return path / f"lapsync-{last + 1:06d}-{time.strftime('%Y%m%dT%H%M%S')}.sqlite"


def prune(path: Path, keep: int) -> list[Path]:
    """Delete all but the newest KEEP snapshots; return the deleted."""
    old = [p for _, p in numbered(path)[:-keep]] if keep > 0 else []
    for snap in old:
        snap.unlink()
    return old


def take(app: Flask, reason: str = "") -> Path:
    """Snapshot the app's database into its backup folder and prune old snapshots; return the file."""
    path = folder(app)
    db = connect(app.config["DATABASE"], app.config["SQLITE_SYNCHRONOUS"])
    try:
        target = snapshot(db.conn, next_name(path))
        state(app).last_mark = mark(db.conn)
    finally:
        db.close()
    prune(path, int(app.config["BACKUP_KEEP"]))
    log.info("backup %s%s", target, f" ({reason})" if reason else "")
    return target


class BackupState:
    """When the last snapshot was taken (monotonic), what the data was then, the serving lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_taken = time.monotonic()
        self.last_mark: str | None = None
        self.serving = None  # the open lock file while this process serves the database


def state(app: Flask) -> BackupState:
    """Return the app's backup state."""
    return app.extensions[EXTENSION]


def newest_mark(app: Flask) -> str | None:
    """Return the mark of the newest snapshot in the folder, if one can be read."""
    found = numbered(folder(app))
    if not found:
        return None
    try:
        conn = sqlite3.connect(f"file:{found[-1][1]}?mode=ro", uri=True)
        try:
            return mark(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def changed(app: Flask) -> bool:
    """Tell whether the data changed since the last snapshot (this run's or the newest on disk)."""
    backup = state(app)
    if backup.last_mark is None:
        backup.last_mark = newest_mark(app)
    db = connect(app.config["DATABASE"], app.config["SQLITE_SYNCHRONOUS"])
    try:
        return mark(db.conn) != backup.last_mark
    finally:
        db.close()


def lock_path(app: Flask) -> Path:
    """Return the file a serving process keeps locked beside the database."""
    return Path(f"{app.config['DATABASE']}.serving")


def try_lock(handle) -> bool:
    """Take an exclusive lock on an open file without waiting; tell whether it was free."""
    try:
        handle.seek(0)  # Windows locks bytes from the position: always the first one
        if fcntl is None:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def hold_serving_lock(app: Flask) -> None:
    """Lock the database's serving file while this process runs the app (restore checks it)."""
    backup = state(app)
    if backup.serving is None:
        handle = open(lock_path(app), "a+b")  # held until at_stop
        if try_lock(handle):
            backup.serving = handle
        else:  # another process serves it: restore sees that one's lock
            handle.close()


def serving(app: Flask) -> bool:
    """Tell whether a process (this one or another) serves the app's database right now."""
    if state(app).serving is not None:
        return True
    if not lock_path(app).exists():
        return False
    with open(lock_path(app), "a+b") as handle:
        return not try_lock(handle)  # closing the file ends a lock taken here


def tick(app: Flask) -> None:
    """Take a snapshot when BACKUP_INTERVAL seconds have passed and the data changed."""
    hold_serving_lock(app)
    backup = state(app)
    if time.monotonic() - backup.last_taken < float(app.config["BACKUP_INTERVAL"]):
        return
    with backup.lock:
        backup.last_taken = time.monotonic()
        if changed(app):
            take(app, "every few minutes")


def at_stop(app: Flask) -> None:
    """Take a last snapshot at shutdown if the data changed since the last one; free the lock."""
    backup = state(app)
    with backup.lock:
        if changed(app):
            take(app, "at shutdown")
        if backup.serving is not None:
            backup.serving.close()
            backup.serving = None


def init_app(app: Flask) -> None:
    """Set the backup defaults and run the periodic snapshot on the background sync's thread."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    app.extensions[EXTENSION] = BackupState()
    scheduler.add_hook(app, tick, at_stop)
