"""Real-browser test: headless Debian Chromium, driven by Playwright, against the real app.

Never `playwright install`: the browser is Debian's /usr/bin/chromium
(`python3 dev.py test` and .ci/run install it).
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from lapsync.laptop import create_app
from lapsync.laptop.auth import create_user
from lapsync.laptop.db import connect
from lapsync.laptop.runners import add_runner
from tests.web import served

PASSWORD = "correct-horse"


@pytest.fixture
def server(tmp_path):
    """Serve the real app on a free loopback port with a teacher and three runners."""
    app = create_app({"SECRET_KEY": "browser-test", "DATABASE": str(tmp_path / "laptop.sqlite"),
                      "MIN_LAP_SECONDS": 60})
    db = connect(app.config["DATABASE"])
    create_user(db, "tom", "teacher", PASSWORD)
    for number, name, class_ in [(1, "Anna Berg", "5a"), (2, "Ben Cruz", "5a"), (17, "Cleo Dahl", "6b")]:
        add_runner(db, number, name, class_, 5)
    db.close()
    with served(app) as url:
        yield app, url


@pytest.fixture
def page(browser):
    """A fresh page of its own context in headless Debian Chromium."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def type_number(page, number: str) -> None:
    """Type a start number into the entry field and press Enter, as a barcode scanner does."""
    field = page.locator("#start_number")
    expect(field).to_be_focused()
    field.press_sequentially(number)
    field.press("Enter")


def expect_counted(page, name: str, count: int) -> None:
    """Wait for the green confirmation naming the runner and showing the new lap count."""
    feedback = page.locator("#feedback")
    expect(feedback).to_contain_text(name)
    expect(feedback).to_have_class(re.compile(r"\bgood\b"))
    expect(feedback.locator(".count")).to_have_text(str(count))


def lap_count(app, number: int) -> int:
    """Count a runner's laps that count, straight from the database file."""
    db = connect(app.config["DATABASE"])
    try:
        return db.execute("SELECT count(*) FROM lap JOIN runner ON runner.id = lap.runner_id "
                          "WHERE start_number = ? AND voided_at IS NULL", [number]).fetchone()[0]
    finally:
        db.close()


def test_helper_counts_voids_and_confirms_with_the_keyboard(server, page, tmp_path):
    app, url = server
    page.goto(f"{url}/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Name").fill("tom")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.locator("#start_number")).to_be_visible()
    expect(page.locator(".empty-note")).to_be_visible()

    for number, name in [("1", "Anna Berg"), ("2", "Ben Cruz"), ("17", "Cleo Dahl")]:
        type_number(page, number)
        expect_counted(page, name, 1)
        expect(page.locator("#start_number")).to_have_value("")
    rows = page.locator("#recent tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Cleo Dahl")  # newest first
    expect(page.locator(".empty-note")).to_be_hidden()

    ben = rows.filter(has_text="Ben Cruz")
    ben.get_by_role("button", name="Void").click()
    page.wait_for_timeout(400)                              # read before the second press
    ben.get_by_role("button", name="Really void?").click()  # voiding takes a second press
    expect(ben).to_have_class(re.compile(r"\bvoided\b"))
    assert "line-through" in ben.locator("td").nth(2).evaluate(
        "el => getComputedStyle(el).textDecorationLine")
    assert lap_count(app, 2) == 0

    type_number(page, "2")  # his only lap was voided: no too-soon warning
    expect_counted(page, "Ben Cruz", 1)
    expect(rows).to_have_count(4)

    type_number(page, "1")  # Anna's lap counts: warned, nothing recorded yet
    feedback = page.locator("#feedback")
    expect(feedback).to_have_class(re.compile(r"\bwarn\b"))
    expect(feedback).to_contain_text("Anna Berg")
    expect(page.locator("#start_number")).to_have_value("")  # the app never refills the field
    assert lap_count(app, 1) == 1
    page.wait_for_timeout(400)                     # a look at the warning, then
    page.locator("#start_number").press("Enter")  # Enter on the empty field confirms
    expect_counted(page, "Anna Berg", 2)
    expect(rows).to_have_count(5)
    assert [lap_count(app, n) for n in (1, 2, 17)] == [2, 1, 1]

    shot = tmp_path / "lap-entry.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_an_admin_makes_a_teacher_account_unless_choosing_another_role(server, page):
    app, url = server
    db = connect(app.config["DATABASE"])
    create_user(db, "ada", "admin", PASSWORD)
    db.close()
    page.goto(f"{url}/login")
    page.get_by_label("Name").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page).not_to_have_url(re.compile(r"/login"))
    page.goto(f"{url}/users")
    expect(page.get_by_label("Role")).to_have_value("teacher")      # not admin by default
    page.get_by_label("Name").press_sequentially("lehrer3", delay=30)
    page.get_by_label("Password").press_sequentially("lang-genug-1", delay=30)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_text("User lehrer3 created, as Teacher.")).to_be_visible()
    db = connect(app.config["DATABASE"])
    try:
        assert db.execute("SELECT role FROM user WHERE name = 'lehrer3'").fetchone()[0] == "teacher"
    finally:
        db.close()
