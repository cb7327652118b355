"""The laptop keeps each session cookie's signature check (lapsync/laptop/sessions.py): a kept
answer never lets a cookie in that the keys would refuse, and each request gets its own
session to change."""
from __future__ import annotations

JSON = {"Accept": "application/json"}


def test_a_cookie_checked_once_is_answered_the_same_and_a_tampered_one_is_not(app, client, teacher):
    cookie = teacher.get_cookie("session").value
    interface = app.session_interface
    for _ in range(3):
        assert teacher.get("/").status_code == 200
    assert sum(1 for key in interface.checked if key[-1] == cookie) == 1   # checked once, kept
    client.set_cookie("session", cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))
    assert client.get("/").status_code == 302                             # to the login page


def test_a_kept_cookie_stops_working_with_another_secret_key(app, teacher):
    assert teacher.get("/").status_code == 200
    app.secret_key = "another-secret-key-for-this-test"
    assert teacher.get("/").status_code == 302


def test_each_request_changes_its_own_session_never_the_kept_one(app, teacher):
    cookie = teacher.get_cookie("session").value
    interface = app.session_interface

    def opened():
        """Open the session of a request carrying the cookie."""
        with app.test_request_context("/", headers={"Cookie": f"session={cookie}"}) as ctx:
            return interface.open_session(app, ctx.request)
    mine = opened()
    mine["extra"] = 1
    mine.setdefault("_flashes", []).append(("message", "only mine"))
    again = opened()
    assert "extra" not in again and "_flashes" not in again and again is not mine
    assert again["sid"] == mine["sid"]


def test_laps_go_on_counting_with_the_kept_cookie(teacher, runners):
    for number in (1, 2, 17):
        answer = teacher.post("/laps", data={"start_number": str(number), "client_key": f"k{number}"},
                              headers={**JSON, "X-CSRFToken": teacher.csrf})
        assert answer.status_code == 201, answer.get_json()
