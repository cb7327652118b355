"""Login, sessions, roles, CSRF, the create-user command and the login rate limit."""
from __future__ import annotations

import pytest

from lapsync.authcore import LoginLimits, wait_ms
from lapsync.errors import InputError
from lapsync.laptop.auth import (
    claim_login_attempt,
    create_user,
    rate_limited_login,
    session_user,
    start_session,
)
from lapsync.laptop.db import connect, now_ms
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


# --- login rate limit (per name and address, per address; state in the database) -------------

LIMITS = LoginLimits(window_ms=15 * 60 * 1000, per_account=5, per_address=20)
NOW = 1_800_000_000_000


def failures(db) -> int:
    """Count the stored failed logins."""
    return db.execute("SELECT count(*) FROM login_failure").fetchone()[0]


def post_login(client, name: str, password: str, address: str = "127.0.0.1", json: bool = False):
    """Post the login form from an address (as HTML, or asking for JSON)."""
    token = csrf_token(client, "/login")
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token},
                       headers=JSON if json else {}, environ_base={"REMOTE_ADDR": address})


@pytest.mark.parametrize("times,limit,expected", [
    ([], 5, 0), ([NOW - 1] * 4, 5, 0),
    ([NOW - 1, NOW - 2, NOW - 3, NOW - 4, NOW - 600_000], 5, 300_000),
    ([NOW] * 9, 5, 900_000), ([NOW - 1] * 5, 0, 0)])
def test_wait_until_the_limit_th_newest_failure_leaves_the_window(times, limit, expected):
    assert wait_ms(times, limit, LIMITS.window_ms, NOW) == expected


def test_five_failures_of_a_name_from_one_address_make_it_wait_there_ever_longer(db):
    """Regression: five failures of a name locked it from every address for 15 minutes."""
    for i in range(5):
        attempt, wait = claim_login_attempt(db, "tom", "10.0.0.1", LIMITS, now=NOW + i * 1000)
        assert attempt is not None and wait == 0
    assert claim_login_attempt(db, "tom", "10.0.0.1", LIMITS, now=NOW + 60_000) == (None, 4_000)
    assert claim_login_attempt(db, "tom", "10.9.9.9", LIMITS, now=NOW + 60_000)[0] is not None
    assert claim_login_attempt(db, "ada", "10.0.0.1", LIMITS, now=NOW + 60_000)[0] is not None
    assert failures(db) == 7  # refused attempts are not recorded
    assert claim_login_attempt(db, "tom", "10.0.0.1", LIMITS, now=NOW + 64_000)[0] is not None
    # The sixth failure doubles the pause: 120 s, then 240 s, ...
    assert claim_login_attempt(db, "tom", "10.0.0.1", LIMITS, now=NOW + 183_999) == (None, 1)
    assert claim_login_attempt(db, "tom", "10.0.0.1", LIMITS, now=NOW + 184_000)[0] is not None
    assert claim_login_attempt(db, "tom", "10.0.0.1", LIMITS, now=NOW + 184_001) == (None, 239_999)


def test_twenty_failures_from_one_address_lock_it_for_every_name(db):
    for i in range(20):
        assert claim_login_attempt(db, f"name{i}", "10.0.0.7", LIMITS, now=NOW)[0] is not None
    assert claim_login_attempt(db, "ada", "10.0.0.7", LIMITS, now=NOW + 1) == \
        (None, LIMITS.window_ms - 1)
    assert claim_login_attempt(db, "ada", "10.0.0.8", LIMITS, now=NOW + 1)[0] is not None


def test_expired_failures_are_deleted(db):
    claim_login_attempt(db, "tom", "10.0.0.1", LIMITS, now=NOW)
    claim_login_attempt(db, "ada", "10.0.0.1", LIMITS, now=NOW + LIMITS.window_ms)
    assert db.execute("SELECT account FROM login_failure").fetchall() == [("ada",)]


def test_failures_ahead_of_a_clock_set_back_are_dropped(db):
    for _ in range(5):
        claim_login_attempt(db, "tom", "10.0.0.1", LIMITS, now=NOW)
    assert claim_login_attempt(db, "tom", "10.0.0.1", LIMITS, now=NOW - 30_000)[0] is None  # jitter
    attempt, wait = claim_login_attempt(db, "tom", "10.0.0.1", LIMITS, now=NOW - 3600_000)
    assert attempt is not None and wait == 0  # not locked for the window plus an hour


def test_success_resets_the_count_of_that_name_from_that_address_only(db):
    for _ in range(4):
        claim_login_attempt(db, "tom", "10.0.0.1", LIMITS)
    claim_login_attempt(db, "tom", "10.0.0.2", LIMITS)
    claim_login_attempt(db, "ada", "10.0.0.1", LIMITS)
    session_id, wait = rate_limited_login(db, "tom", PASSWORD, "10.0.0.1", LIMITS)
    assert session_id and wait == 0
    assert db.execute("SELECT account, address FROM login_failure ORDER BY id").fetchall() == [
        ("tom", "10.0.0.2"), ("ada", "10.0.0.1")]


def test_parallel_guesses_cannot_pass_the_limit_together(app):
    """Check and record share one write transaction: 12 parallel claims, 5 pass."""
    from concurrent.futures import ThreadPoolExecutor

    def claim(_):
        conn = connect(app.config["DATABASE"])
        try:
            return claim_login_attempt(conn, "tom", "10.0.0.1", LIMITS)[0] is not None
        finally:
            conn.close()
    with ThreadPoolExecutor(12) as pool:
        assert sum(pool.map(claim, range(12))) == 5


def test_sixth_login_is_refused_with_429_even_with_the_right_password(client, db):
    for _ in range(5):
        assert post_login(client, "tom", "wrong-password").status_code == 401
    page = post_login(client, "tom", PASSWORD)
    assert page.status_code == 429 and page.mimetype == "text/html"
    assert "Too many failed logins" in page.get_data(as_text=True)
    assert "Try again in 1 min" in page.get_data(as_text=True)
    assert 50 <= int(page.headers["Retry-After"]) <= 60
    as_json = post_login(client, "tom", PASSWORD, json=True)
    assert as_json.status_code == 429
    body = as_json.get_json()
    assert body["error"] == "too_many_attempts" and "Try again in 1 min" in body["message"]
    assert 50 <= body["retry_after"] <= 60
    assert db.execute("SELECT count(*) FROM user_session").fetchone()[0] == 0
    assert client.get("/").status_code == 302
    assert post_login(client, "ada", PASSWORD).status_code == 302  # other names still log in
    other = post_login(client.application.test_client(), "tom", PASSWORD, address="127.0.0.2")
    assert other.status_code == 302  # and tom from another address


def test_address_limit_refuses_the_right_password_from_that_address_only(client, db):
    for i in range(20):
        claim_login_attempt(db, f"guess{i}", "10.1.1.1", LIMITS)
    assert post_login(client, "tom", PASSWORD, address="10.1.1.1").status_code == 429
    assert post_login(client, "tom", PASSWORD, address="10.1.1.2").status_code == 302


def test_limits_are_config_values(tmp_path, users_template):
    import shutil

    from lapsync.laptop import create_app
    path = tmp_path / "laptop.sqlite"
    shutil.copyfile(users_template, path)
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE": str(path),
                      "LOGIN_MAX_FAILURES_PER_ACCOUNT": 1, "LOGIN_WINDOW_SECONDS": 60})
    client = app.test_client()
    assert post_login(client, "tom", "wrong-password").status_code == 401
    refused = post_login(client, "tom", PASSWORD, json=True)
    assert refused.status_code == 429 and refused.get_json()["retry_after"] <= 60
    assert "Try again in 1 min" in refused.get_json()["message"]


def test_json_login_answers_json(client):
    token = csrf_token(client, "/login")
    wrong = client.post("/login", json={"name": "tom", "password": "nope"},
                        headers={"X-CSRFToken": token})
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "wrong_login"
    right = client.post("/login", json={"name": "tom", "password": PASSWORD},
                        headers={"X-CSRFToken": token})
    assert right.status_code == 200 and right.get_json() == {"name": "tom"}
    assert client.get("/").status_code == 200


def test_failures_are_shared_by_every_process_on_the_database(app, client, db):
    """No in-process state: failures stored by anyone count for every app on the file."""
    from lapsync.laptop import create_app
    other = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE": app.config["DATABASE"]})
    for _ in range(5):
        claim_login_attempt(db, "tom", "127.0.0.1", LIMITS)
    assert post_login(client, "tom", PASSWORD).status_code == 429
    assert post_login(other.test_client(), "tom", PASSWORD).status_code == 429


def test_unlock_logins_command(app, db):
    for name in ("tom", "tom", "ada"):
        claim_login_attempt(db, name, "10.0.0.1", LIMITS)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["unlock-logins", "tom"])
    assert result.exit_code == 0 and "Forgot 2 failed login(s) of 'tom'" in result.output
    assert runner.invoke(args=["unlock-logins"]).output.startswith("Forgot 1 failed")
    assert failures(db) == 0


def test_an_existing_database_gets_the_login_failure_table(app, db):
    db.execute("DROP TABLE login_failure")  # a laptop database from before the rate limit
    db.execute("ALTER TABLE user_session DROP COLUMN ends_at")  # and the login's cap
    db.execute("PRAGMA user_version = 0")   # and before numbered migrations
    from lapsync.laptop import create_app
    create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE": app.config["DATABASE"]})
    assert failures(db) == 0


def test_unknown_name_costs_a_password_check_too(db):
    import time

    from lapsync.laptop.auth import check_unknown_user
    assert check_unknown_user("warm-up") is False  # makes the stand-in hash once

    def fastest(name: str) -> float:
        """Return the shortest of five failed logins as NAME: a busy machine only adds time."""
        took = []
        for _ in range(5):
            started = time.perf_counter()
            assert start_session(db, name, "wrong-password") is None
            took.append(time.perf_counter() - started)
        return min(took)
    known, unknown = fastest("tom"), fastest("nobody")
    assert unknown > known / 3  # an argon2 check, not an instant answer
