"""The laptop app over real HTTP, as the dev.py run tests use it: log in, add a runner, count a lap."""
from __future__ import annotations

import re

import requests


def csrf(html: str) -> str:
    """Return the CSRF token of a laptop page."""
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def log_in(base: str, password: str, name: str = "admin") -> requests.Session:
    """Log in to the laptop app at BASE; return the session."""
    session = requests.Session()
    session.trust_env = False  # loopback: never through a proxy
    response = session.post(f"{base}login", allow_redirects=False, data={
        "name": name, "password": password, "csrf_token": csrf(session.get(f"{base}login").text)})
    assert response.status_code == 302, response.text
    return session


def count_a_lap(session: requests.Session, base: str, name: str) -> requests.Response:
    """Add runner 17 called NAME through the runner form, count a lap for it; return the JSON answer."""
    token = csrf(session.get(base).text)
    session.post(f"{base}runners/new", data={"start_number": "17", "name": name, "class": "5a",
                                             "grade": "5", "csrf_token": token})
    lap = session.post(f"{base}laps", data={"start_number": "17", "csrf_token": token},
                       headers={"Accept": "application/json"})
    assert lap.status_code == 201, lap.text
    return lap
