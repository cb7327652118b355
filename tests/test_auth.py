"""Login, sessions, roles, CSRF and the create-user command."""
from __future__ import annotations

import pytest

from lapsync.auth import create_user, session_user, start_session
from lapsync.db import now_ms
from lapsync.errors import InputError
from tests.conftest import PASSWORD, csrf_token, login

JSON = {"Accept": "application/json"}


@pytest.mark.parametrize("path", ["/", "/runners/", "/users"])
def test_anonymous_is_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_anonymous_post_is_refused_and_records_nothing(client, runners, db):
    token = csrf_token(client, "/login")
    response = client.post("/laps", data={"start_number": "1", "csrf_token": token}, headers=JSON)
    assert response.status_code == 401 and response.get_json()["error"] == "login_required"
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 0


def test_wrong_password_is_refused(client):
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"name": "tom", "password": "nope", "csrf_token": token})
    assert response.status_code == 401 and "Wrong name or password" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_viewer_cannot_record_or_void(client, runners, db):
    client.csrf = login(client, "vic")
    page = client.get("/").get_data(as_text=True)
    assert 'id="lap-form"' not in page and "viewer" in page
    response = client.post("/laps", data={"start_number": "1"},
                           headers={**JSON, "X-CSRFToken": client.csrf})
    assert response.status_code == 403 and response.get_json()["error"] == "forbidden"
    assert client.post("/laps/x/void", headers={**JSON, "X-CSRFToken": client.csrf}).status_code == 403
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 0


def test_teacher_cannot_manage_users(teacher):
    assert teacher.get("/users").status_code == 403


@pytest.mark.parametrize("headers", [{}, {"X-CSRFToken": "forged"}])
def test_posts_without_valid_csrf_token_are_refused(teacher, runners, db, headers):
    response = teacher.post("/laps", data={"start_number": "1"}, headers={**JSON, **headers})
    assert response.status_code == 400 and response.get_json()["error"] == "csrf"
    html = teacher.post("/laps", data={"start_number": "1"}, headers=headers)
    assert html.status_code == 400 and "security token" in html.get_data(as_text=True)
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 0


def test_expired_session_is_refused(teacher, runners, db):
    db.execute("UPDATE user_session SET valid_until = ?", [now_ms() - 1])
    response = teacher.post("/laps", data={"start_number": "1"},
                            headers={**JSON, "X-CSRFToken": teacher.csrf})
    assert response.status_code == 401
    assert teacher.get("/").status_code == 302
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 0


def test_session_lasts_eight_hours(db):
    session_id = start_session(db, "tom", PASSWORD)
    valid_until = db.execute("SELECT valid_until FROM user_session WHERE id = ?", [session_id]).fetchone()[0]
    assert abs(valid_until - now_ms() - 8 * 3600 * 1000) < 60_000
    assert session_user(db, session_id)["name"] == "tom"


def test_session_cookie_is_httponly_and_samesite(client):
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"name": "tom", "password": PASSWORD, "csrf_token": token})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_logout_ends_the_session(teacher, db):
    teacher.post("/logout", data={"csrf_token": teacher.csrf})
    assert db.execute("SELECT count(*) FROM user_session").fetchone()[0] == 0
    assert teacher.get("/").status_code == 302


def test_login_redirect_stays_on_this_site(client):
    token = csrf_token(client, "/login")
    response = client.post("/login?next=//evil.example/", data={"name": "tom", "password": PASSWORD,
                                                                  "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_password_is_hashed_and_user_is_in_outbox(db):
    row = next(db.query("SELECT * FROM user WHERE name = 'tom'"))
    assert row["password_hash"].startswith("$argon2") and PASSWORD not in row["password_hash"]
    assert db.execute("SELECT count(*) FROM change WHERE entity = 'user' AND entity_id = ?",
                      [row["id"]]).fetchone()[0] == 1


def test_admin_creates_user(admin, db):
    response = admin.post("/users", data={"name": "Frau Meier", "role": "teacher",
                                          "password": "lang-genug", "csrf_token": admin.csrf})
    assert response.status_code == 302
    assert db.execute("SELECT role FROM user WHERE name = 'Frau Meier'").fetchone()[0] == "teacher"


@pytest.mark.parametrize("name,role,password,status", [
    ("", "teacher", "long-enough", 422), ("x" * 51, "teacher", "long-enough", 422),
    ("new", "boss", "long-enough", 422), ("new", "teacher", "short", 422),
    ("tom", "teacher", "long-enough", 409)])
def test_admin_create_user_bad_input_changes_nothing(admin, db, name, role, password, status):
    before = db.execute("SELECT count(*) FROM user").fetchone()[0]
    response = admin.post("/users", data={"name": name, "role": role, "password": password,
                                          "csrf_token": admin.csrf})
    assert response.status_code == status
    assert 'class="flash bad"' in response.get_data(as_text=True)
    assert db.execute("SELECT count(*) FROM user").fetchone()[0] == before


def test_create_user_domain_refuses_duplicates(db):
    with pytest.raises(InputError) as caught:
        create_user(db, "ada", "viewer", "whatever-long")
    assert caught.value.status == 409


def test_create_user_command(app, db):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-user", "lena", "--role", "teacher", "--password", "pw-lena-123"])
    assert result.exit_code == 0, result.output
    assert db.execute("SELECT role FROM user WHERE name = 'lena'").fetchone()[0] == "teacher"
    bad = runner.invoke(args=["create-user", "lena", "--role", "teacher", "--password", "pw-lena-123"])
    assert bad.exit_code != 0 and "exists already" in bad.output


def test_init_db_command_is_idempotent(app, db):
    before = db.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()[0]
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0 and before in result.output
    assert db.execute("SELECT count(*) FROM user").fetchone()[0] == 3
