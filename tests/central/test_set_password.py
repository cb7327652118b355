"""`flask --app sync set-password NAME`: a new password from a shell (web login broken, an
admin who forgot theirs), with the app's own hasher; that user's sessions end."""
from __future__ import annotations

import logging

import pytest

from lapsync.authcore import check_password, has_own_parameters
from tests.pg import CENTRAL_PASSWORD

NEW = "new-pass-2026"


def stored(conn, name: str) -> dict:
    """Return a central user's hash and change id."""
    return conn.execute("SELECT id, password_hash, change_id FROM app_user WHERE name = %s",
                        [name]).fetchone()


@pytest.mark.parametrize("how", ["prompted", "environment"])
def test_set_password_hashes_the_new_one_and_ends_that_users_sessions(central_app, central_admin,
                                                                      central_db, caplog, how):
    caplog.set_level(logging.INFO)
    before = stored(central_db, "ada")
    assert central_admin.get("/standings/").status_code == 200
    cli = central_app.test_cli_runner()
    if how == "prompted":  # asked twice, as create-user asks
        result = cli.invoke(args=["set-password", "ada"], input=f"{NEW}\n{NEW}\n")
    else:  # kept out of the command line (and ps), as dev.py does with create-user
        result = cli.invoke(args=["set-password", "ada"], env={"FLASK_SET_PASSWORD_PASSWORD": NEW},
                            auto_envvar_prefix="FLASK")
    assert result.exit_code == 0, result.output
    assert "New password set for 'ada'" in result.output and NEW not in result.output
    after = stored(central_db, "ada")
    assert check_password(after["password_hash"], NEW)
    assert not check_password(after["password_hash"], CENTRAL_PASSWORD)
    assert has_own_parameters(after["password_hash"])
    assert after["change_id"] > before["change_id"]  # laptops pull the new hash
    assert central_admin.get("/standings/").status_code == 302  # the old session ended
    assert "command line: set_password of user 'ada' (their sessions ended)" in caplog.text
    assert NEW not in caplog.text


def test_set_password_refuses_an_unknown_user_a_short_password_and_a_mistyped_one(
        central_app, central_users, central_db):
    cli = central_app.test_cli_runner()
    before = stored(central_db, "ada")
    unknown = cli.invoke(args=["set-password", "nobody", "--password", NEW])
    assert unknown.exit_code == 1 and "There is no user called 'nobody'." in unknown.output
    short = cli.invoke(args=["set-password", "ada", "--password", "short"])
    assert short.exit_code == 1 and "8" in short.output
    mistyped = cli.invoke(args=["set-password", "ada"], input=f"{NEW}\nother-one-1\n\n\n")
    assert mistyped.exit_code != 0
    assert stored(central_db, "ada") == before


def test_create_user_on_a_name_that_exists_points_to_set_password(central_app, central_users):
    result = central_app.test_cli_runner().invoke(
        args=["create-user", "ada", "--role", "admin", "--password", NEW])
    assert result.exit_code == 1
    assert ("A user called 'ada' exists already. To give it a new password: "
            "flask --app sync set-password ada") in result.output
