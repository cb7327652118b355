"""Renaming a class at central: the organiser re-spells a class (or names another) on the
runners page of the class, and every runner, every laptop, the class teacher's address and
the queued class list follow."""
from __future__ import annotations

import re

import pytest

from sync.clock import node_id
from sync.sponsors.money_log import money_log
from tests.central.test_class_spelling import flashes, pulled_since
from tests.central.test_roster import add, edit, pushed_runner, runners


def rename(client, old: str, new: str, **headers):
    """Post the rename form of class OLD."""
    return client.post("/runners/classes/rename", headers=headers,
                       data={"class": old, "new_name": new, "csrf_token": client.csrf})


def classes(conn) -> dict[str, str]:
    """Return {runner name: class} at central."""
    return {r["name"]: r["class"] for r in runners(conn)}


def teacher(conn, class_name: str, email: str, updated_ms: int) -> None:
    """Set a class teacher's address as the class list page stores it."""
    conn.execute("INSERT INTO class_teacher (class_name, email, updated_ms) VALUES (%s, %s, %s)",
                 [class_name, email, updated_ms])


def queued_list(conn, class_name: str) -> None:
    """Queue a class list e-mail for a class."""
    conn.execute("INSERT INTO mail_out (to_addr, subject, body_text, kind, class_name, status, "
                 "created_ms) VALUES ('t@school.example', 'List', 'x', 'class_list', %s, "
                 "'queued', 1)", [class_name])


def test_the_runners_page_of_a_class_offers_admins_the_rename(central_admin, central_db,
                                                                device_token):
    pushed_runner(central_db, device_token, 90001, "Paul Pohl", "9 a")
    page = central_admin.get("/runners/?class=9+a").get_data(as_text=True)
    assert 'action="/runners/classes/rename"' in page
    assert '<input type="hidden" name="class" value="9 a">' in page
    assert re.search(r'name="new_name"[^>]*value="9 a"', page)
    assert "/runners/classes/rename" not in central_admin.get("/runners/").get_data(as_text=True)
    assert "/runners/classes/rename" not in central_admin.get(
        "/runners/?class=9b").get_data(as_text=True)


def test_viewers_see_no_rename_and_may_not_rename(central_viewer, central_db, device_token):
    pushed_runner(central_db, device_token, 90001, "Anna Berg", "9 a")
    before = runners(central_db)
    assert "/runners/classes/rename" not in central_viewer.get(
        "/runners/?class=9+a").get_data(as_text=True)
    assert rename(central_viewer, "9 a", "9A").status_code == 403
    assert runners(central_db) == before


def test_a_class_re_spelled_reaches_every_runner_laptop_address_and_queued_list(
        central_admin, central_db, device_token):
    paul = pushed_runner(central_db, device_token, 90001, "Paul Pohl", "9 a")
    for name in ("Quirin Quast", "Rita Rot"):
        assert add(central_admin, name=name, **{"class": "9a"}, grade="9").status_code == 302
    add(central_admin, name="Anna Berg", **{"class": "8B"}, grade="8")
    before = {r["id"]: r for r in runners(central_db)}
    teacher(central_db, "9 a", "teacher@school.example", 1)
    teacher(central_db, "9A", "left@school.example", 5)  # left behind, no class has 9A
    queued_list(central_db, "9 a")
    cursor = max(r["change_id"] for r in before.values())

    answer = rename(central_admin, "9 a", "9A")
    assert answer.status_code == 302 and answer.headers["Location"] == "/runners/?class=9A"
    assert "Class 9 a is now written 9A: 3 runners." in flashes(central_admin)
    assert classes(central_db) == {"Quirin Quast": "9A", "Rita Rot": "9A", "Anna Berg": "8B",
                                   "Paul Pohl": "9A"}
    after = {r["id"]: r for r in runners(central_db) if r["class"] == "9A"}
    assert len({r["hlc"] for r in after.values()}) == 1   # one write, central's stamp
    for runner_id, runner in after.items():
        assert runner["origin"] == node_id(central_db)
        assert runner["hlc"] > before[runner_id]["hlc"]
        assert runner["change_id"] > cursor
    # The laptop that added Paul pulls the new spelling of him and the others.
    pulled = pulled_since(central_db, device_token, cursor)
    assert set(pulled) == set(after) and pulled[paul]["class"] == "9A"
    assert central_db.execute("SELECT class_name, email FROM class_teacher").fetchall() == [
        {"class_name": "9A", "email": "teacher@school.example"}]
    assert central_db.execute("SELECT class_name FROM mail_out").fetchall() == [
        {"class_name": "9A"}]
    assert money_log(central_db)[0]["text"] == \
        "Renamed class 9 a to 9A: 3 runners (joined: –)."


def test_the_name_of_another_class_makes_the_two_one_class_as_typed(
        central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 90001, "Anna Berg", "Kl. 5a")
    pushed_runner(central_db, device_token, 90002, "Ben Cruz", "Kl. 5a")
    pushed_runner(central_db, device_token, 90003, "Anna  Berg", "5a")
    teacher(central_db, "5a", "five@school.example", 1)
    answer = rename(central_admin, "Kl. 5a", "5A")
    assert answer.status_code == 302
    assert "Class Kl. 5a is now 5A, one class with 5a: 3 runners written as 5A." in \
        flashes(central_admin)
    assert set(classes(central_db).values()) == {"5A"}
    assert central_db.execute("SELECT class_name, email FROM class_teacher").fetchall() == [
        {"class_name": "5A", "email": "five@school.example"}]
    # Anna is now in one class twice: a name clash for the review.
    assert [c["kind"] for c in central_db.execute("SELECT kind FROM clash")] == ["name"]


def test_a_new_name_is_a_new_class(central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 90001, "Anna Berg", "5a")
    pushed_runner(central_db, device_token, 90002, "Ben Cruz", "5b")
    assert rename(central_admin, "5a", " 6a ").status_code == 302
    assert "Class 5a is now written 6a: 1 runner." in flashes(central_admin)
    assert classes(central_db) == {"Anna Berg": "6a", "Ben Cruz": "5b"}


def test_the_class_s_own_spelling_changes_nothing(central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 90001, "Anna Berg", "5a")
    before = runners(central_db)
    assert rename(central_admin, "5a", "5a").status_code == 302
    assert "Class 5a is written so already." in flashes(central_admin)
    assert runners(central_db) == before and money_log(central_db) == []


@pytest.mark.parametrize(("typed", "message"), [
    ("", "The class must be 1 to 20 characters on one line."),
    ("x" * 21, "The class must be 1 to 20 characters on one line."),
    ("9\u200ba", "The class must not contain invisible characters"),
])
def test_a_bad_name_is_refused_on_the_page_and_changes_nothing(central_admin, central_db,
                                                              device_token, typed, message):
    pushed_runner(central_db, device_token, 90001, "Anna Berg", "9 a")
    before = runners(central_db)
    answer = rename(central_admin, "9 a", typed)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and message in page
    assert '<details class="no-print" id="rename-class" open>' in page
    assert 'aria-invalid="true"' in page and "<td>Anna Berg</td>" in page
    assert runners(central_db) == before
    json_answer = rename(central_admin, "9 a", typed, Accept="application/json")
    assert json_answer.status_code == 422 and json_answer.get_json()["error"] == "invalid_class"


def test_an_unknown_class_is_a_404(central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 90001, "Anna Berg", "9 a")
    before = runners(central_db)
    answer = rename(central_admin, "9b", "9B")
    assert answer.status_code == 404 and "There is no class 9b." in answer.get_data(as_text=True)
    assert runners(central_db) == before


def test_an_edit_to_another_spelling_says_how_the_class_is_written_and_points_to_the_rename(
        central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 90001, "Paul Pohl", "9 a")
    pushed_runner(central_db, device_token, 90002, "Quirin Quast", "9 a")
    quirin = runners(central_db)[1]
    answer = edit(central_admin, quirin, **{"class": "9A"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/runners/?class=9+a"
    page = central_admin.get(answer.headers["Location"]).get_data(as_text=True)
    assert ("Saved Quirin Quast in class 9 a: the class is written so for all its runners. "
            "To write it 9A, use “Rename class” below.") in page
    assert 'action="/runners/classes/rename"' in page
    assert runners(central_db)[1]["class"] == "9 a"
    # As typed: the plain message, back to the list.
    answer = edit(central_admin, runners(central_db)[1], **{"class": " 9 a "}, grade="8")
    assert answer.headers["Location"] == "/runners/"
    assert flashes(central_admin) == ["Saved Quirin Quast."]
