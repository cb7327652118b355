"""`flask --app app set-password NAME`: a laptop's user gets a new password from a shell
(the app's own hasher), synced like any user change; their sessions on the laptop end."""
from __future__ import annotations

import json
import logging

import pytest

from lapsync.authcore import check_password, has_own_parameters
from tests.conftest import PASSWORD

NEW = "new-pass-2026"


@pytest.mark.parametrize("how", ["prompted", "environment"])
def test_set_password_hashes_the_new_one_queues_it_and_ends_the_users_sessions(app, db, teacher,
                                                                             caplog, how):
    caplog.set_level(logging.INFO)
    assert teacher.get("/").status_code == 200
    cli = app.test_cli_runner()
    if how == "prompted":
        result = cli.invoke(args=["set-password", "tom"], input=f"{NEW}\n{NEW}\n")
    else:
        result = cli.invoke(args=["set-password", "tom"], env={"FLASK_SET_PASSWORD_PASSWORD": NEW},
                            auto_envvar_prefix="FLASK")
    assert result.exit_code == 0, result.output
    user_id, password_hash, hlc = db.execute(
        "SELECT id, password_hash, hlc FROM user WHERE name = 'tom'").fetchone()
    assert check_password(password_hash, NEW) and not check_password(password_hash, PASSWORD)
    assert has_own_parameters(password_hash)
    entity, payload = db.execute("SELECT entity, payload FROM change ORDER BY seq DESC").fetchone()
    change = json.loads(payload)  # pushed like any user change
    assert entity == "user" and change["id"] == user_id
    assert (change["password_hash"], change["hlc"]) == (password_hash, hlc)
    assert teacher.get("/").status_code == 302  # the old session ended
    assert db.execute("SELECT count(*) FROM user_session WHERE user_id = ?",
                      [user_id]).fetchone()[0] == 0
    assert "command line: set_password of user 'tom' (their sessions ended)" in caplog.text


def test_set_password_refuses_an_unknown_user_and_a_short_password(app, db):
    cli = app.test_cli_runner()
    before = db.execute("SELECT max(seq) FROM change").fetchone()
    unknown = cli.invoke(args=["set-password", "nobody", "--password", NEW])
    assert unknown.exit_code == 1 and "There is no user called 'nobody'." in unknown.output
    short = cli.invoke(args=["set-password", "tom", "--password", "short"])
    assert short.exit_code == 1 and "8" in short.output
    assert db.execute("SELECT max(seq) FROM change").fetchone() == before


def test_create_user_on_a_name_that_exists_points_to_set_password(app):
    result = app.test_cli_runner().invoke(
        args=["create-user", "tom", "--role", "teacher", "--password", NEW])
    assert result.exit_code == 1
    assert ("A user called 'tom' exists already. To give it a new password: "
            "flask --app app set-password tom") in result.output
