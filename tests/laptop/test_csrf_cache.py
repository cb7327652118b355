"""The CSRF check kept per signed token: a token checked once passes only with its own session."""
from __future__ import annotations

import pytest

from tests.conftest import login

JSON = {"Accept": "application/json"}


def post_lap(client, token: str, number: str = "1"):
    """Post a lap as laps.js does, with this CSRF token."""
    return client.post("/laps", data={"start_number": number, "confirm": "1"},
                       headers={**JSON, "X-CSRFToken": token})


def lap_total(db) -> int:
    """Return the laps in the database."""
    return db.execute("SELECT count(*) FROM lap").fetchone()[0]


def test_a_token_checked_for_one_session_is_refused_in_another(app, db, runners):
    tom, ada = app.test_client(), app.test_client()
    tom_token, ada_token = login(tom, "tom"), login(ada, "ada")
    assert post_lap(tom, tom_token).status_code == 201  # tom's token is checked and kept
    assert post_lap(tom, tom_token).status_code == 201  # and passes again from the kept check
    for client, token in ((ada, tom_token), (tom, ada_token)):
        refused = post_lap(client, token)
        assert refused.status_code == 400 and refused.get_json()["error"] == "csrf"
    assert lap_total(db) == 2


@pytest.mark.parametrize("change", [
    lambda token: token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),  # signature tampered
    lambda token: token.split(".")[0] + "." + token.split(".")[1] + ".x",
    lambda token: "",
])
def test_a_tampered_token_is_refused_after_the_real_one_was_kept(app, db, runners, change):
    tom = app.test_client()
    token = login(tom, "tom")
    assert post_lap(tom, token).status_code == 201
    refused = post_lap(tom, change(token))
    assert refused.status_code == 400 and refused.get_json()["error"] == "csrf"
    assert lap_total(db) == 1


def test_a_token_signed_with_another_secret_key_is_refused(app, db, runners):
    tom = app.test_client()
    token = login(tom, "tom")
    assert post_lap(tom, token).status_code == 201
    app.secret_key = "another key"  # every cookie and token signed before is void now
    refused = post_lap(tom, token)
    assert refused.status_code in (400, 401)
    assert lap_total(db) == 1
