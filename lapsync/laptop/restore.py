"""Put a snapshot back as the laptop's database, and the backup and restore commands.

A snapshot is older than the laptop it came from: central may hold changes this
laptop made after it (seqs the snapshot never saw). The restored database therefore
remembers the snapshot's last seq (meta restored_seq), and the next push first asks
central which seq it applied last, then carries on after it (client/realign.py;
docs/PROTOCOL.md, "Restoring a laptop's backup"): no lap counts twice, none that
central has is lost, and the laps typed since the restore get seqs central has not seen.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from lapsync.commands import as_restore_command, refuse_existing, reporting_write_errors

from . import backup, migrate
from .db import PENDING, SCHEMA, connect, get_meta, init_schema, set_meta, transaction

RESTORED = "restored_seq"


class RestoreRefused(click.ClickException):
    """The snapshot cannot replace this laptop's database (nothing was changed)."""


def last_seq(conn: sqlite3.Connection) -> int:
    """Return the highest outbox seq the database ever gave out."""
    given = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'change'").fetchone()
    highest = conn.execute("SELECT max(seq) FROM change").fetchone()[0]
    return max(given[0] if given else 0, highest or 0)


COUNTS = {"device_id": "SELECT (SELECT value FROM meta WHERE key = 'device_id')",
          "laps": "SELECT count(*) FROM lap", "changes": "SELECT count(*) FROM change",
          "pending": f"SELECT count(*) FROM change WHERE {PENDING}"}
# A snapshot from before the outbox mark (migration 0005) has pushed_at on each pushed change.
PENDING_BEFORE_MARK = "SELECT count(*) FROM change WHERE pushed_at IS NULL"


def describe(conn: sqlite3.Connection) -> dict:
    """Return what a laptop database holds: device, laps, outbox, pending, version."""
    marked = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox_mark'").fetchone()
    queries = COUNTS if marked else {**COUNTS, "pending": PENDING_BEFORE_MARK}
    info = {key: conn.execute(query).fetchone()[0] for key, query in queries.items()}
    return {**info, "last_seq": last_seq(conn), "version": migrate.version(conn)}


def check_snapshot(path: Path) -> dict:
    """Read a snapshot without changing it; refuse one that is damaged, foreign or too new."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise RestoreRefused(f"{path} is damaged (PRAGMA quick_check failed).")
            migrate.check_not_newer(conn, str(path))
            info = describe(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise RestoreRefused(f"{path} is not a lapsync laptop database ({exc}).") from None
    if not info["device_id"]:
        raise RestoreRefused(f"{path} has no device id: not a lapsync laptop database.")
    return info


def check_same_laptop(snapshot: dict, current: dict) -> None:
    """Refuse another laptop's snapshot over a database that holds changes of its own."""
    if snapshot["device_id"] != current["device_id"] and current["changes"]:
        raise RestoreRefused(
            f"The backup is of laptop {snapshot['device_id']}, but this database is laptop "
            f"{current['device_id']} with {current['changes']} changes of its own. Restore it on "
            "an empty database (move the database file away first), never over another laptop's.")


def stage(source: Path, staged: Path) -> None:
    """Copy the snapshot to STAGED, bring it to this version and mark it restored."""
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        backup.snapshot(conn, staged)
    finally:
        conn.close()
    db = connect(staged)
    try:
        migrate.upgrade(db.conn, SCHEMA, str(staged))
        with transaction(db):
            # A snapshot restored before and not synced since keeps its earlier mark:
            # its changes after that mark may still collide with central's seqs.
            if get_meta(db, RESTORED) is None:
                set_meta(db, RESTORED, str(last_seq(db.conn)))
        db.execute("PRAGMA journal_mode=DELETE")
    finally:
        db.close()


def restore(app: Flask, source: Path) -> Path:
    """Replace the app's database with the snapshot SOURCE; return the copy kept of the old one."""
    check_snapshot(source)
    keep = backup.take(app, "before restore")
    staged = Path(f"{app.config['DATABASE']}.restoring")
    with contextlib.suppress(FileNotFoundError):
        staged.unlink()
    stage(source, staged)
    live = connect(app.config["DATABASE"], app.config["SQLITE_SYNCHRONOUS"])
    try:
        copy = sqlite3.connect(staged)
        try:
            copy.backup(live.conn)  # one step, one transaction of the live database: all or nothing
        finally:
            copy.close()
        init_schema(live)
    finally:
        live.close()
        os.unlink(staged)
    return keep


def summary(info: dict) -> str:
    """Describe a laptop database in one line."""
    return (f"laptop {info['device_id']}, laps: {info['laps']}, changes: {info['changes']} "
            f"({info['pending']} not yet at central), schema version {info['version']}")


@click.command("backup")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup_command(file: Path | None) -> None:
    """Copy the laptop database into FILE (default: a new file in instance/backups/), also while it runs."""
    app = current_app._get_current_object()
    if file is None:
        with reporting_write_errors(backup.folder_path(app)):
            click.echo(f"Backed up to {backup.take(app, 'by hand')}.")
        return
    refuse_existing(file)
    db = connect(app.config["DATABASE"])
    try:
        with reporting_write_errors(file):
            backup.snapshot(db.conn, file)
    finally:
        db.close()
    click.echo(f"Backed up to {file}.")


@as_restore_command
def restore_command(file: Path, yes: bool) -> None:
    """Replace the laptop database with the backup FILE (stop the app first; the current one is kept).

    Laps central already has are not sent again, and laps typed after the backup that
    central has stay counted there: the next sync asks central where this laptop stopped.
    """
    app = current_app._get_current_object()
    if backup.serving(app):
        raise RestoreRefused("The laptop app is running (serve): stop it first, then restore.")
    snapshot = check_snapshot(file)
    db = connect(app.config["DATABASE"])
    try:
        current = describe(db.conn)
    finally:
        db.close()
    check_same_laptop(snapshot, current)
    click.echo(f"Now:    {summary(current)}\nBackup: {summary(snapshot)}")
    if not yes:
        click.confirm(f"Replace {app.config['DATABASE']} with {file}?", abort=True)
    kept = restore(app, file)
    click.echo(f"Restored {file}. The database as it was is kept in {kept}. The next sync asks "
               "central which changes it has and carries on after them.")


def init_app(app: Flask) -> None:
    """Register the backup and restore commands."""
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
