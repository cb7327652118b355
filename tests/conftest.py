"""Shared fixtures: a fresh laptop database file per test, users, runners, logins."""
from __future__ import annotations

pytest_plugins = ["tests.pg"]

import re

import pytest

from lapsync import create_app
from lapsync.auth import create_user
from lapsync.db import connect
from lapsync.runners import add_runner

PASSWORD = "correct-horse"


@pytest.fixture
def app(tmp_path):
    """A laptop app on its own SQLite file, with one user of each role."""
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE": str(tmp_path / "laptop.sqlite"),
                      "MIN_LAP_SECONDS": 60})
    db = connect(app.config["DATABASE"])
    for name, role in [("ada", "admin"), ("tom", "teacher"), ("vic", "viewer")]:
        create_user(db, name, role, PASSWORD)
    db.close()
    return app


@pytest.fixture
def db(app):
    """A connection to the app's database file."""
    database = connect(app.config["DATABASE"])
    yield database
    database.close()


@pytest.fixture
def client(app):
    """An anonymous test client."""
    return app.test_client()


def csrf_token(client, path: str = "/") -> str:
    """Fetch a page and return its CSRF token."""
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def login(client, name: str) -> str:
    """Log a test client in as NAME; return a CSRF token for later posts."""
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return csrf_token(client)


@pytest.fixture
def teacher(client):
    """A test client logged in as a teacher; `.csrf` holds its token."""
    client.csrf = login(client, "tom")
    return client


@pytest.fixture
def admin(client):
    """A test client logged in as an admin; `.csrf` holds its token."""
    client.csrf = login(client, "ada")
    return client


@pytest.fixture
def runners(db):
    """Three runners with start numbers 1, 2 and 17."""
    return {n: add_runner(db, n, name, cls, grade)
            for n, name, cls, grade in [(1, "Anna Berg", "5a", 5), (2, "Ben Cruz", "5a", 5),
                                        (17, "Cleo Dahl", "6b", 6)]}
