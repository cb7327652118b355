"""Central's admin login: sessions, roles, CSRF, and HTML versus JSON errors."""
from __future__ import annotations

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
