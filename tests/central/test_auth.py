"""Central's admin login: sessions, roles, CSRF, HTML versus JSON errors, the login rate limit."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg.rows import dict_row

from lapsync.authcore import LoginLimits
from sync import create_app
from sync.auth import claim_login_attempt, rate_limited_login
from sync.db import close_pool
from tests.pg import CENTRAL_PASSWORD, central_login


def test_anonymous_is_sent_to_login(central_client):
    response = central_client.get("/standings/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert central_client.get("/").headers["Location"].endswith("/standings/")


def test_admin_logs_in_and_sees_standings(central_admin):
    page = central_admin.get("/standings/")
    assert page.status_code == 200 and "ada (admin)" in page.get_data(as_text=True)


def test_wrong_password_is_refused(central_client, central_users):
    token_page = central_client.get("/login").get_data(as_text=True)
    token = token_page.split('name="csrf-token" content="')[1].split('"')[0]
    response = central_client.post("/login", data={"name": "ada", "password": "wrong-one",
                                                   "csrf_token": token})
    assert response.status_code == 401 and "Wrong name or password" in response.get_data(as_text=True)
    assert central_client.get("/standings/").status_code == 302


def test_login_without_csrf_token_is_refused(central_client, central_users):
    response = central_client.post("/login", data={"name": "ada", "password": CENTRAL_PASSWORD})
    assert response.status_code == 400 and "security token" in response.get_data(as_text=True)


def test_expired_session_is_refused(central_admin, central_db):
    central_db.execute("UPDATE user_session SET valid_until = 0")
    assert central_admin.get("/standings/").status_code == 302


def test_logout_ends_the_session(central_admin, central_db):
    central_admin.post("/logout", data={"csrf_token": central_admin.csrf})
    assert central_db.execute("SELECT count(*) AS n FROM user_session").fetchone()["n"] == 0
    assert central_admin.get("/standings/").status_code == 302


def test_session_cookie_is_httponly(central_client, central_users):
    central_login(central_client, "vic")
    cookie = central_client.get_cookie("session")
    assert cookie.http_only and cookie.same_site == "Lax"


def test_pages_answer_html_errors_and_the_api_json(central_admin):
    page = central_admin.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"
    api = central_admin.get("/api/v1/no-such")
    assert api.status_code == 404 and api.get_json()["error"] == "not_found"


def test_api_needs_no_csrf_but_a_device_token(central_client):
    response = central_client.post("/api/v1/push", json={})
    assert response.status_code == 401 and response.get_json()["error"]


def test_login_page_and_errors_in_german(central_client, central_viewer):
    german = {"Accept-Language": "de-DE,de;q=0.9"}
    assert "Bei der Zentrale anmelden" in central_client.get("/login", headers=german).get_data(as_text=True)
    page = central_viewer.get("/no-such-page", headers=german).get_data(as_text=True)
    assert "zur Wertung" in page and "Betrachter" in page


# --- login rate limit: per name and address, per address; state in PostgreSQL ---------------

LIMITS = LoginLimits(window_ms=15 * 60 * 1000, per_account=5, per_address=20)
NOW = 1_800_000_000_000


def post_login(client, name: str, password: str, address: str = "127.0.0.1", json: bool = False):
    """Post central's login form from an address (as HTML, or asking for JSON)."""
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token},
                       headers={"Accept": "application/json"} if json else {},
                       environ_base={"REMOTE_ADDR": address})


def failures(conn) -> list[str]:
    """Return the accounts of the stored failed logins."""
    return [r["account"] for r in conn.execute("SELECT account FROM login_failure ORDER BY id")]


def test_five_failures_delay_a_name_from_one_address_and_twenty_lock_an_address(central_db):
    """Regression: five failures of a name locked it from every address for 15 minutes."""
    for i in range(5):
        assert claim_login_attempt(central_db, "ada", "10.0.0.0", LIMITS, now=NOW)[0]
    assert claim_login_attempt(central_db, "ada", "10.0.0.0", LIMITS, now=NOW + 1000) == \
        (None, 59_000)
    assert claim_login_attempt(central_db, "ada", "10.9.9.9", LIMITS, now=NOW)[0]  # elsewhere
    assert claim_login_attempt(central_db, "ada", "10.0.0.1", LIMITS, now=NOW)[0]
    for i in range(18):  # 10.0.0.1 had one of ada's already
        assert claim_login_attempt(central_db, f"n{i}", "10.0.0.1", LIMITS, now=NOW)[0]
    assert claim_login_attempt(central_db, "vic", "10.0.0.1", LIMITS, now=NOW)[0]  # 20th
    assert claim_login_attempt(central_db, "vic", "10.0.0.1", LIMITS, now=NOW)[0] is None
    assert claim_login_attempt(central_db, "vic", "10.0.0.2", LIMITS, now=NOW)[0]
    assert claim_login_attempt(central_db, "ada", "10.0.0.1", LIMITS,
                               now=NOW + LIMITS.window_ms)[0]  # the window passed
    assert failures(central_db) == ["ada"]  # and the old failures were deleted


def test_failures_ahead_of_a_clock_set_back_are_dropped(central_db):
    for _ in range(5):
        claim_login_attempt(central_db, "ada", "10.0.0.1", LIMITS, now=NOW)
    assert claim_login_attempt(central_db, "ada", "10.0.0.1", LIMITS, now=NOW - 30_000)[0] is None
    attempt, wait = claim_login_attempt(central_db, "ada", "10.0.0.1", LIMITS, now=NOW - 3600_000)
    assert attempt is not None and wait == 0  # not locked for the window plus an hour


def test_success_resets_the_names_count_from_that_address(central_app, central_users, central_db):
    from sync.db import connection
    for name, address in (("ada", "10.0.0.1"), ("ada", "10.0.0.1"), ("vic", "10.0.0.1"),
                          ("ada", "10.0.0.2")):
        claim_login_attempt(central_db, name, address, LIMITS)
    with connection(central_app) as conn:
        session_id, wait = rate_limited_login(conn, "ada", CENTRAL_PASSWORD, "10.0.0.1", LIMITS)
    assert session_id and wait == 0 and failures(central_db) == ["vic", "ada"]


def test_parallel_guesses_cannot_pass_the_limit_together(pg_url):
    def claim(_):
        with psycopg.connect(pg_url, autocommit=True, row_factory=dict_row) as conn:
            return claim_login_attempt(conn, "ada", "10.0.0.1", LIMITS)[0] is not None
    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(claim, range(8))) == 5


def test_sixth_login_is_refused_with_429_even_with_the_right_password(central_client, central_users,
                                                                      central_db):
    for _ in range(5):
        assert post_login(central_client, "ada", "wrong-one").status_code == 401
    page = post_login(central_client, "ada", CENTRAL_PASSWORD)
    assert page.status_code == 429 and page.mimetype == "text/html"
    assert "Try again in 1 min" in page.get_data(as_text=True)
    assert 50 <= int(page.headers["Retry-After"]) <= 60
    body = post_login(central_client, "ada", CENTRAL_PASSWORD, json=True).get_json()
    assert body["error"] == "too_many_attempts" and 50 <= body["retry_after"] <= 60
    assert central_db.execute("SELECT count(*) AS n FROM user_session").fetchone()["n"] == 0
    assert post_login(central_client, "vic", CENTRAL_PASSWORD).status_code == 302


def test_every_worker_counts_the_same_failures(central_app, central_users, central_db, pg_url):
    """Two apps with pools of their own (two gunicorn workers) share the count."""
    other = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": pg_url})
    try:
        for _ in range(5):
            claim_login_attempt(central_db, "ada", "127.0.0.1", LIMITS)
        for app in (central_app, other):
            assert post_login(app.test_client(), "ada", CENTRAL_PASSWORD).status_code == 429
    finally:
        close_pool(other)


def test_a_trusted_proxy_counts_the_forwarded_address(pg_url, central_users, central_db):
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": pg_url,
                      "TRUSTED_PROXIES": 1})
    try:
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        client.post("/login", data={"name": "ada", "password": "wrong-one", "csrf_token": token},
                    headers={"X-Forwarded-For": "203.0.113.9"})
    finally:
        close_pool(app)
    assert central_db.execute("SELECT address FROM login_failure").fetchone()["address"] == \
        "203.0.113.9"


def test_forwarded_addresses_are_ignored_without_a_trusted_proxy(central_client, central_users,
                                                                 central_db):
    page = central_client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    central_client.post("/login", data={"name": "ada", "password": "wrong-one", "csrf_token": token},
                        headers={"X-Forwarded-For": "203.0.113.9"})
    assert central_db.execute("SELECT address FROM login_failure").fetchone()["address"] == \
        "127.0.0.1"


def test_a_database_from_before_the_rate_limit_gets_its_table(central_client, central_users,
                                                              central_db):
    central_db.execute("DROP TABLE login_failure")
    central_db.execute("DROP TABLE schema_migration")  # made before numbered migrations
    assert post_login(central_client, "ada", "wrong-one").status_code == 401
    assert failures(central_db) == ["ada"]


def test_unlock_logins_command(central_app, central_db):
    for name in ("ada", "ada", "vic"):
        claim_login_attempt(central_db, name, "10.0.0.1", LIMITS)
    result = central_app.test_cli_runner().invoke(args=["unlock-logins", "ada"])
    assert result.exit_code == 0 and "Forgot 2 failed login(s) of 'ada'" in result.output
    assert failures(central_db) == ["vic"]


@pytest.mark.parametrize("german", [False, True])
def test_rate_limit_message_in_both_languages(central_client, central_db, german):
    for _ in range(5):
        claim_login_attempt(central_db, "ada", "127.0.0.1", LIMITS)
    headers = {"Accept-Language": "de-DE,de;q=0.9"} if german else {}
    page = central_client.get("/login", headers=headers).get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    text = central_client.post("/login", data={"name": "ada", "password": "x", "csrf_token": token},
                               headers=headers).get_data(as_text=True)
    assert ("Versuchen Sie es in 1 min wieder" if german else "Try again in 1 min") in text
