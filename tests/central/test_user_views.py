"""Central's users page: admins create users, change roles, reset passwords, deactivate and
reactivate; every change is logged; the last active admin stays; laptops pull the result.

Logins go through central's real login form (argon2 with the test process's cheap
parameters); pulls through sync.pull.pull with a registered device, as the API serves them.
"""
from __future__ import annotations

import re

import pytest

from lapsync.authcore import check_password
from lapsync.protocol.limits import WITHHELD_HASH
from sync.devices import find_device
from sync.pull import pull
from tests.pg import CENTRAL_PASSWORD, register

DE = {"Accept-Language": "de-DE,de;q=0.9"}
JSON = {"Accept": "application/json"}


def page(response) -> str:
    """Return a response's HTML with quote entities undone."""
    return response.get_data(as_text=True).replace("&#34;", '"').replace("&#39;", "'")


def csrf(client, path: str = "/users/") -> str:
    """Return the CSRF token of a page."""
    return re.search(r'name="csrf-token" content="([^"]+)"', page(client.get(path))).group(1)


def login(client, name: str, password: str) -> int:
    """Post central's login form; return the status (302: logged in)."""
    token = re.search(r'name="csrf-token" content="([^"]+)"',
                      page(client.get("/login"))).group(1)
    return client.post("/login", data={"name": name, "password": password,
                                       "csrf_token": token}).status_code


def post(client, path: str, **data):
    """Post a users-page form with the admin's CSRF token."""
    return client.post(path, data={"csrf_token": client.csrf, **data})


def user(conn, name: str) -> dict:
    """Return a user's row at central."""
    return conn.execute("SELECT * FROM app_user WHERE name = %s", [name]).fetchone()


def log(conn) -> list[tuple[str, str, dict]]:
    """Return the decision log as (action, admin's name, details), oldest first."""
    return [(r["action"], r["name"], r["details"]) for r in conn.execute(
        "SELECT d.action, u.name, d.details FROM decision d JOIN app_user u ON u.id = d.user_id "
        "ORDER BY d.id")]


def pulled_user(conn, token: str, name: str) -> dict:
    """Return what a device pulls of a user from cursor 0."""
    changes = pull(conn, find_device(conn, token), 0, 1000)["changes"]
    return next(c["data"] for c in changes if c["entity"] == "user" and c["data"]["name"] == name)


@pytest.fixture
def admin(central_admin):
    """Central's admin ada, on the users page's CSRF token."""
    central_admin.csrf = csrf(central_admin)
    return central_admin


def test_an_admin_creates_a_teacher_who_logs_in_and_every_laptop_pulls(admin, central_app,
                                                                       central_db):
    answer = post(admin, "/users/", name=" tom ", role="teacher", password="correct-horse")
    assert answer.status_code == 302
    assert "tom can log in now as teacher" in page(admin.get("/users/"))
    tom = user(central_db, "tom")
    assert tom["role"] == "teacher" and tom["deactivated_at"] is None
    assert log(central_db) == [("create_user", "ada", {"name": "tom", "role": "teacher"})]
    listed = page(admin.get("/users/"))
    assert 'data-user="tom" data-role="teacher" data-active="yes"' in listed
    assert "Created user tom as teacher." in listed
    assert login(central_app.test_client(), "tom", "correct-horse") == 302
    token = register(central_db, "laptop-a")
    data = pulled_user(central_db, token, "tom")
    assert data["active"] is True and check_password(data["password_hash"], "correct-horse")


def test_a_password_left_empty_is_generated_and_shown_once(admin, central_app, central_db):
    answer = post(admin, "/users/", name="vera", role="viewer", password="")
    assert answer.status_code == 201 and answer.headers["Cache-Control"] == "no-store"
    password = re.search(r'<code class="token" id="new-password">([^<]+)</code>',
                         page(answer)).group(1)
    assert re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", password)
    assert password not in page(admin.get("/users/"))              # shown this once
    assert login(central_app.test_client(), "vera", password) == 302
    assert user(central_db, "vera")["last_login_at"] is not None


@pytest.mark.parametrize("name, role, password, status, text", [
    ("аda", "teacher", "correct-horse", 409, "looks like the name of user 'ada'"),
    ("ada", "teacher", "correct-horse", 409, "exists already"),
    ("", "teacher", "correct-horse", 422, "1 to 50 characters"),
    ("tom", "root", "correct-horse", 422, "The role must be one of"),
    ("tom", "teacher", "short", 422, "8 to 200 characters"),
    ("to\u200bm", "teacher", "correct-horse", 422, "invisible characters"),
])
def test_bad_new_users_are_refused_with_the_form_kept_and_nothing_stored(
        admin, central_db, name, role, password, status, text):
    before = central_db.execute("SELECT count(*) AS n FROM app_user").fetchone()["n"]
    answer = post(admin, "/users/", name=name, role=role, password=password)
    assert answer.status_code == status and text in page(answer)
    assert 'id="user-error"' in page(answer)
    assert central_db.execute("SELECT count(*) AS n FROM app_user").fetchone()["n"] == before
    assert log(central_db) == []


def test_a_refusal_answers_json_to_json(admin, central_db):
    answer = admin.post("/users/", headers={**JSON, "X-CSRFToken": admin.csrf},
                        data={"name": "аda", "role": "teacher", "password": "correct-horse"})
    assert answer.status_code == 409 and answer.get_json()["error"] == "confusable_name"


def test_role_change_reaches_laptops_and_is_logged(admin, central_db, central_users):
    token = register(central_db, "laptop-a")
    before = pulled_user(central_db, token, "vic")
    answer = post(admin, f"/users/{central_users['vic']}/role", role="teacher")
    assert answer.status_code == 302
    assert "vic is teacher now." in page(admin.get("/users/"))
    after = pulled_user(central_db, token, "vic")
    assert after["role"] == "teacher" and after["hlc"] > before["hlc"]
    assert log(central_db)[-1] == ("change_role", "ada",
                                   {"name": "vic", "from": "viewer", "to": "teacher"})
    assert "Nothing changed" in page(admin.post(f"/users/{central_users['vic']}/role",
                                                data={"csrf_token": admin.csrf,
                                                      "role": "teacher"},
                                                follow_redirects=True))
    assert len(log(central_db)) == 1


def test_a_password_reset_ends_the_users_sessions_and_the_old_password(
        admin, central_app, central_db, central_users):
    vic = central_app.test_client()
    assert login(vic, "vic", CENTRAL_PASSWORD) == 302
    assert vic.get("/settings/").status_code == 200
    answer = post(admin, f"/users/{central_users['vic']}/password", password="")
    password = re.search(r'id="new-password">([^<]+)<', page(answer)).group(1)
    assert vic.get("/settings/").status_code == 302                # logged out
    assert login(central_app.test_client(), "vic", CENTRAL_PASSWORD) == 401
    assert login(central_app.test_client(), "vic", password) == 302
    assert log(central_db)[-1] == ("reset_password", "ada", {"name": "vic"})
    typed = post(admin, f"/users/{central_users['vic']}/password", password="a-chosen-one")
    assert typed.status_code == 302 and login(central_app.test_client(), "vic", "a-chosen-one") == 302
    assert post(admin, f"/users/{central_users['vic']}/password",
                password="short").status_code == 422


def test_deactivated_users_cannot_log_in_their_sessions_end_and_laptops_learn_it(
        admin, central_app, central_db, central_users):
    token = register(central_db, "laptop-a")
    vic = central_app.test_client()
    assert login(vic, "vic", CENTRAL_PASSWORD) == 302
    answer = post(admin, f"/users/{central_users['vic']}/active", active="no")
    assert answer.status_code == 302
    assert "vic is deactivated" in page(admin.get("/users/"))
    assert vic.get("/settings/").status_code == 302                # its session ended
    assert login(central_app.test_client(), "vic", CENTRAL_PASSWORD) == 401
    data = pulled_user(central_db, token, "vic")
    assert data["active"] is False and data["password_hash"] == WITHHELD_HASH
    assert 'data-user="vic" data-role="viewer" data-active="no"' in page(admin.get("/users/"))

    assert post(admin, f"/users/{central_users['vic']}/active", active="yes").status_code == 302
    assert login(central_app.test_client(), "vic", CENTRAL_PASSWORD) == 302
    data = pulled_user(central_db, token, "vic")
    assert data["active"] is True and check_password(data["password_hash"], CENTRAL_PASSWORD)
    assert [a for a, *_ in log(central_db)] == ["deactivate_user", "reactivate_user"]


def test_the_last_active_admin_is_neither_demoted_nor_deactivated(admin, central_db,
                                                                  central_users):
    ada = central_users["ada"]
    for path, field in [(f"/users/{ada}/role", {"role": "teacher"}),
                        (f"/users/{ada}/active", {"active": "no"})]:
        answer = post(admin, path, **field)
        assert answer.status_code == 409, page(answer)
    assert "last active admin" in page(post(admin, f"/users/{ada}/role", role="viewer"))
    assert "deactivate yourself" in page(post(admin, f"/users/{ada}/active", active="no"))
    assert user(central_db, "ada")["role"] == "admin" and log(central_db) == []
    # With a second admin, ada may step down; the other admin is then the last one.
    post(admin, f"/users/{central_users['vic']}/role", role="admin")
    assert post(admin, f"/users/{ada}/role", role="teacher").status_code == 302
    assert admin.get("/users/").status_code == 403                  # ada is a teacher now


def test_a_deactivated_admin_does_not_count_as_the_other_admin(admin, central_db, central_users):
    post(admin, f"/users/{central_users['vic']}/role", role="admin")
    post(admin, f"/users/{central_users['vic']}/active", active="no")
    assert post(admin, f"/users/{central_users['ada']}/role", role="viewer").status_code == 409


@pytest.mark.parametrize("path, data, status", [
    ("/users/nosuchuser0000000000000/role", {"role": "teacher"}, 404),
    ("/users/nosuchuser0000000000000/active", {"active": "no"}, 404),
    ("/users/nosuchuser0000000000000/password", {"password": "correct-horse"}, 404),
    ("/users/{vic}/role", {"role": "root"}, 422),
    ("/users/{vic}/active", {"active": "maybe"}, 400),
    ("/users/{vic}/active", {}, 400),
])
def test_bad_changes_are_refused_and_change_nothing(admin, central_db, central_users, path,
                                                    data, status):
    before = user(central_db, "vic")
    answer = post(admin, path.format(vic=central_users["vic"]), **data)
    assert answer.status_code == status and 'id="user-error"' in page(answer)
    assert user(central_db, "vic") == before and log(central_db) == []


def test_viewers_get_403_and_no_menu_entry(viewer, central_users, central_db):
    assert viewer.get("/users/").status_code == 403
    menu = page(viewer.get("/settings/"))
    assert 'href="/devices/"' in menu and 'href="/users/"' not in menu
    token = csrf(viewer, "/settings/")
    for path, data in [("/users/", {"name": "eve", "role": "admin", "password": "x" * 10}),
                       (f"/users/{central_users['ada']}/role", {"role": "viewer"}),
                       (f"/users/{central_users['ada']}/active", {"active": "no"}),
                       (f"/users/{central_users['ada']}/password", {"password": "x" * 10})]:
        assert viewer.post(path, data={"csrf_token": token, **data}).status_code == 403
    assert user(central_db, "eve") is None and user(central_db, "ada")["role"] == "admin"


def test_admins_see_the_menu_entry_and_anonymous_visitors_are_sent_to_log_in(
        admin, central_app):
    assert 'href="/users/"' in page(admin.get("/settings/"))
    answer = central_app.test_client().get("/users/")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


def test_the_users_page_and_its_messages_in_german(admin, central_db, central_users):
    listed = page(admin.get("/users/", headers=DE))
    assert "Benutzer" in listed and "Neuer Benutzer" in listed
    answer = admin.post(f"/users/{central_users['ada']}/active", headers=DE,
                        data={"csrf_token": admin.csrf, "active": "no"})
    assert "Sie können sich nicht selbst deaktivieren" in page(answer)
    post(admin, f"/users/{central_users['vic']}/role", role="teacher")
    assert "Rolle von vic von Betrachter zu Lehrkraft geändert." in page(
        admin.get("/users/", headers=DE))


@pytest.mark.parametrize("who, shown", [("central_admin", True), ("central_viewer", False)])
def test_the_menu_links_the_users_and_logs_pages_for_admins_only(request, who, shown):
    client = request.getfixturevalue(who)
    menu = page(client.get("/standings/")).split("<main", 1)[0]
    assert ('href="/users/"' in menu, 'href="/logs/"' in menu) == (shown, shown)
    assert (client.get("/logs/").status_code == 200) == shown
