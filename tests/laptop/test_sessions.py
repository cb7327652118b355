"""The laptop's session cookie survives a clock that goes back (lapsync/sessions.py)."""
from __future__ import annotations

import time

import pytest

JSON = {"Accept": "application/json"}


@pytest.mark.parametrize("back_s", [60, 3600, 2 * 86_400])
def test_a_laptop_clock_set_back_keeps_helpers_logged_in(teacher, runners, monkeypatch, back_s):
    """Regression (found by bench/chaos.py): after the clock went back, the session cookie was
    "signed in the future" and refused; the next lap answered 400 (form expired), logged out."""
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - back_s)
    answer = teacher.post("/laps", data={"start_number": "1", "client_key": f"k{back_s}"},
                          headers={**JSON, "X-CSRFToken": teacher.csrf})
    assert answer.status_code == 201, answer.get_json()
    assert teacher.get("/").status_code == 200


def test_a_forged_or_tampered_cookie_still_logs_nobody_in(client, teacher):
    cookie = teacher.get_cookie("session")
    client.set_cookie("session", cookie.value[:-2] + ("AA" if not cookie.value.endswith("AA") else "BB"))
    assert client.get("/").status_code == 302          # to the login page
    client.set_cookie("session", "")
    assert client.get("/").status_code == 302


def test_logout_still_ends_the_login_whatever_the_clock(teacher, monkeypatch):
    cookie = teacher.get_cookie("session").value
    teacher.post("/logout", headers={"X-CSRFToken": teacher.csrf})
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    teacher.set_cookie("session", cookie)               # the old cookie, replayed
    assert teacher.get("/").status_code == 302
