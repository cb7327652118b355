"""What central's log tells an operator: syncs that did something, refused tokens and logins,
the CLI's revoke-device, create-user and restore, and which database a migration ran on."""
from __future__ import annotations

import logging
import re

import psycopg
import pytest

from sync import backup, migrate
from sync.db import SCHEMA, SCHEMA_LOCK
from tests.databases import empty_database
from tests.pg import CENTRAL_PASSWORD, Outbox, register
from tests.release import release_file


@pytest.fixture
def info_log(caplog):
    """Capture central's INFO lines and up."""
    caplog.set_level(logging.INFO)
    return caplog


def lines(caplog, text: str) -> list[str]:
    """Return the captured log lines that contain TEXT."""
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def bearer(token: str) -> dict:
    """Return the Authorization header of a device token."""
    return {"Authorization": f"Bearer {token}"}


def test_a_push_and_a_pull_that_did_something_log_one_line_each_and_idle_ones_none(
        central_client, central_db, info_log):
    token = register(central_db, "lap-a")
    outbox = Outbox()
    runner = outbox.runner(7, "Anna Berg")
    for _ in range(3):
        outbox.lap(runner)
    assert central_client.post("/api/v1/push", json=outbox.body(), headers=bearer(token)).status_code == 200
    assert lines(info_log, "push from device") == [
        "push from device 'lap-a' applied seq 1..4: 4 change(s), 3 new lap(s), 0 refused"]
    info_log.clear()
    assert central_client.post("/api/v1/push", json=outbox.body(), headers=bearer(token)).status_code == 200
    assert lines(info_log, "push from") == []  # a replay applies nothing
    page = central_client.get("/api/v1/pull?cursor=0", headers=bearer(token)).get_json()
    assert page["changes"]
    [line] = lines(info_log, "pull by device")
    assert re.fullmatch(rf"pull by device 'lap-a' sent {len(page['changes'])} change\(s\), "
                        rf"cursor 0\.\.{page['next_cursor']}", line)
    info_log.clear()
    cursor = page["next_cursor"]
    assert central_client.get(f"/api/v1/pull?cursor={cursor}", headers=bearer(token)).status_code == 200
    assert central_client.post("/api/v1/push", json=outbox.body(5), headers=bearer(token)).status_code == 200
    assert info_log.records == []  # an empty sync is the normal idle tick: no line


@pytest.mark.parametrize("header", [{"Authorization": "Bearer not-a-token-0123456789"}, {}],
                         ids=["unknown-token", "no-token"])
def test_a_pull_or_push_with_an_unknown_or_missing_token_is_logged_without_the_token(
        central_client, central_db, info_log, header):
    assert central_client.get("/api/v1/pull", headers=header).status_code == 401
    assert central_client.post("/api/v1/push", json={}, headers=header).status_code == 401
    code = "invalid_token" if header else "missing_token"
    assert lines(info_log, "refused") == [f"pull refused (401 {code}) from 127.0.0.1",
                                          f"push refused (401 {code}) from 127.0.0.1"]
    assert "not-a-token" not in info_log.text


def test_a_failed_login_is_logged_with_the_name_not_the_password(central_client, central_users,
                                                                 info_log):
    page = central_client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    answer = central_client.post("/login", data={"name": "ada", "password": "wrong-secret-1",
                                                 "csrf_token": token})
    assert answer.status_code == 401
    assert lines(info_log, "failed login") == ["failed login as 'ada' from 127.0.0.1"]
    assert "wrong-secret-1" not in info_log.text and CENTRAL_PASSWORD not in info_log.text


def test_revoke_device_and_create_user_on_the_command_line_are_logged(central_app, central_db,
                                                                      info_log):
    register(central_db, "lap-b")
    cli = central_app.test_cli_runner()
    assert cli.invoke(args=["revoke-device", "lap-b"]).exit_code == 0
    assert cli.invoke(args=["create-user", "anna", "--role", "teacher", "--password",
                            "anna-pass-1"]).exit_code == 0
    assert lines(info_log, "command line") == ["command line: revoke_device of device 'lap-b'",
                                               "command line: create_user 'anna' (teacher)"]
    assert "anna-pass-1" not in info_log.text


def test_a_restore_is_logged_when_asked_for_and_when_done(central_app, central_users, pg_url,
                                                          tmp_path, info_log):
    file = backup.dump(pg_url, tmp_path / "central.dump")
    result = central_app.test_cli_runner().invoke(args=["restore", str(file), "--yes"])
    assert result.exit_code == 0, result.output
    assert lines(info_log, "command line") == [
        f"command line: restore of central's database from {file} asked for",
        f"command line: central's database replaced from {file} (schema version "
        f"{migrate.latest()})"]


def test_a_migration_line_names_the_database_it_ran_on(pg_server_url, info_log):
    with empty_database(pg_server_url, "named") as url, \
            psycopg.connect(url, autocommit=True) as conn:
        conn.execute(release_file("sync/schema.sql"))  # the release of 2026-12-06
        conn.execute("INSERT INTO meta (key, value) VALUES ('node_id', 'releasenode0000000000000')")
        migrate.upgrade(conn, SCHEMA, SCHEMA_LOCK)
        name = conn.info.dbname
    applied = lines(info_log, "applied migration")
    assert len(applied) == migrate.latest() and f"central database {name!r} on " in applied[0]
