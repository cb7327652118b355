"""Real-browser tests of central's admin pages with real laptops syncing to it.

Central runs on a real loopback port (live_central: a threaded werkzeug server on
the test's fresh PostgreSQL database). Each laptop is the real laptop app on its
own SQLite file, served on a loopback port of its own: laps are recorded through
its real POST /laps over HTTP, and it syncs with lapsync.client.sync_once against
central's real API, as the background job does. The browser is Debian's headless
Chromium driven by Playwright (never `playwright install`); without
/usr/bin/chromium these tests fail, never skip.
"""
from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect
from werkzeug.serving import make_server

from lapsync.devkit.browser import type_login_to
from lapsync.ids import new_id
from lapsync.laptop import create_app as create_laptop
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central, SyncResult
from lapsync.laptop.db import connect, set_meta, transaction
from lapsync.laptop.laps import lap_count
from lapsync.laptop.runners import add_runner
from sync.devices import register_device
from tests.conftest import PASSWORD
from tests.pg import CENTRAL_PASSWORD

ROSTER = [(1, "Anna Berg", "5a", 5), (2, "Ben Cruz", "5a", 5), (17, "Cleo Dahl", "6b", 6)]
JSON = {"Accept": "application/json"}


# ---- a laptop served on loopback ---------------------------------------------------

class Laptop:
    """The real laptop app on its own SQLite file, served on a loopback port, logged in as tom."""

    def __init__(self, base: Path, name: str, template: Path, central_url: str, token: str):
        """Copy the users template, give it a device id, serve it, log tom in over HTTP."""
        self.path = base / f"{name}.sqlite"
        shutil.copyfile(template, self.path)
        db = connect(self.path)
        with transaction(db):
            set_meta(db, "device_id", new_id())
        db.close()
        self.app = create_laptop({"TESTING": True, "SECRET_KEY": f"laptop-{name}",
                                  "DATABASE": str(self.path), "MIN_LAP_SECONDS": 60,
                                  "INSTANCE_CONFIG_FILE": str(base / f"{name}-config.py")})
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.central = Central(central_url, token)
        self.http = requests.Session()
        self.csrf = self.login(self.http)

    def login(self, session: requests.Session) -> str:
        """Log a requests session in as the teacher tom; return its CSRF token."""
        page = session.get(f"{self.url}/login", timeout=10).text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        answer = session.post(f"{self.url}/login", timeout=10, allow_redirects=False,
                              data={"name": "tom", "password": PASSWORD, "csrf_token": token})
        assert answer.status_code == 302, answer.text[:500]
        page = session.get(f"{self.url}/", timeout=10).text
        return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    def add_roster(self) -> dict[int, str]:
        """Add the test roster on this laptop (it reaches central at the next sync)."""
        db = connect(self.path)
        try:
            return {number: add_runner(db, number, name, class_, grade)
                    for number, name, class_, grade in ROSTER}
        finally:
            db.close()

    def record(self, number: int, confirm: bool = False) -> str:
        """Record a lap through the laptop's real POST /laps over HTTP; return its id."""
        data = {"start_number": str(number), "client_key": new_id(), **({"confirm": "1"} if confirm else {})}
        answer = self.http.post(f"{self.url}/laps", data=data, timeout=10,
                                headers={**JSON, "X-CSRFToken": self.csrf})
        assert answer.status_code == 201, answer.text[:500]
        return answer.json()["lap"]["id"]

    def void(self, lap_id: str) -> None:
        """Void a lap on the laptop through its real endpoint."""
        answer = self.http.post(f"{self.url}/laps/{lap_id}/void", data={"reason": "typo"},
                                timeout=10, headers={**JSON, "X-CSRFToken": self.csrf})
        assert answer.status_code == 200 and answer.json()["changed"], answer.text[:500]

    def sync(self) -> SyncResult:
        """Push and pull once with lapsync.client, as the background job does."""
        db = connect(self.path)
        try:
            result = sync_once(db, self.central, force=True)
        finally:
            db.close()
        assert result.error is None, result.error
        return result

    def lap_count(self, runner_id: str) -> int:
        """Return the laptop's lap count of a runner (its own laps plus pulled totals)."""
        db = connect(self.path)
        try:
            return lap_count(db, runner_id)
        finally:
            db.close()

    def close(self) -> None:
        """Stop serving."""
        self.http.close()
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def laptops(tmp_path, users_template, live_central, central_db):
    """Make served laptops connected to the live central: make("a") -> Laptop."""
    made: list[Laptop] = []

    def make(name: str) -> Laptop:
        """Register a device at central and serve a laptop with its token."""
        # Every laptop is a copy of one users file: trusted with users, its users reach
        # central once and every copy's laps name users central knows.
        token = register_device(central_db, f"laptop-{name}", manage_users=True)
        made.append(Laptop(tmp_path, name, users_template, live_central, token))
        return made[-1]

    yield make
    for laptop in made:
        laptop.close()


# ---- the browser ---------------------------------------------------------------------

@pytest.fixture
def context(browser):
    """A fresh browser context (own cookies) in English."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8_000)
    yield context
    context.close()


def central_login(context, base: str, name: str = "ada"):
    """Open central in a new page, be sent to its login form, log in; return the page."""
    page = context.new_page()
    page.goto(f"{base}/standings/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(CENTRAL_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/standings/"))
    return page


def laps_cell(page, runner_id: str):
    """Return the standings row of a runner."""
    return page.locator(f'#standings tr[data-runner="{runner_id}"]')


# ---- a. standings and live view after a laptop syncs ---------------------------------

def test_standings_and_live_view_show_a_lap_after_the_laptop_syncs(
        central_app, central_users, laptops, context, live_central):
    central_app.config["LIVE_POLL_MS"] = 200
    laptop = laptops("a")
    runners = laptop.add_roster()
    laptop.sync()                                            # the roster reaches central

    page = central_login(context, live_central)
    anna = laps_cell(page, runners[1])
    expect(anna).to_contain_text("Anna Berg")
    expect(anna).to_have_attribute("data-laps", "0")

    page.get_by_role("link", name="Live").click()
    expect(page.locator("#live-empty")).to_be_visible()
    page.evaluate("window.sameDocument = true")               # gone if the page reloaded
    lap = laptop.record(1)
    laptop.sync()
    row = page.locator(f'#live-laps tr[data-lap="{lap}"]')   # no reload: live.js polls
    expect(row).to_contain_text("Anna Berg")
    expect(row.locator("td.num")).to_have_text("1")
    expect(page.locator("#live-empty")).to_be_hidden()

    second = laptop.record(1, confirm=True)                  # within the minimum lap time
    laptop.sync()
    expect(page.locator(f'#live-laps tr[data-lap="{second}"] td.num')).to_have_text("2")
    expect(page.locator("#live-laps tbody tr")).to_have_count(2)
    expect(row).to_have_class(re.compile(r"\bnew\b"))          # put there by live.js
    assert page.evaluate("window.sameDocument") is True

    page.get_by_role("link", name="Standings").click()
    expect(anna).to_have_attribute("data-laps", "2")
    expect(anna.locator("td").nth(5)).to_have_text("2")
    expect(anna.locator("td").first).to_have_text("1")      # first place
    expect(laps_cell(page, runners[2])).to_have_attribute("data-laps", "0")


# ---- b. a double count voided in the review queue reaches the laptops ----------------

def test_voiding_a_double_count_in_the_review_queue_changes_the_laptops_totals(
        central_users, laptops, context, live_central, browser):
    a, b = laptops("a"), laptops("b")
    runners = a.add_roster()
    a.sync()
    b.sync()                                                 # b pulls the roster
    anna = runners[1]
    lap_a, lap_b = a.record(1), b.record(1)                  # the same pass typed on both
    a.sync(), b.sync(), a.sync()
    assert a.lap_count(anna) == 2 and b.lap_count(anna) == 2

    page = central_login(context, live_central)
    page.get_by_role("link", name="Review").click()
    pair = page.locator("article.pair").filter(has=page.locator(f'tr[data-lap="{lap_a}"]'))
    expect(pair).to_have_count(1)
    expect(pair).to_have_class(re.compile(r"\btwo-laptops\b"))
    expect(pair.locator(f'tr[data-lap="{lap_b}"]')).to_have_count(1)
    expect(pair).to_contain_text("Anna Berg")
    pair.locator(f'tr[data-lap="{lap_a}"]').get_by_role("button", name="Void this lap").click()
    expect(page.locator("#doubles .empty-note")).to_have_text("No suspected double counts.")
    expect(page.locator('#decision-log tr[data-action="void_lap"]')).to_contain_text("ada")
    page.get_by_role("link", name="Standings").click()
    expect(laps_cell(page, anna)).to_have_attribute("data-laps", "1")

    a.sync(), b.sync()                                       # the decision reaches both laptops
    assert a.lap_count(anna) == 1 and b.lap_count(anna) == 1

    laptop_context = browser.new_context(locale="en-US")     # the laptop's own cookies
    try:
        laptop_page = laptop_context.new_page()
        laptop_page.set_default_timeout(8_000)
        laptop_page.goto(f"{a.url}/login")
        laptop_page.get_by_label("Name").fill("tom")
        laptop_page.get_by_label("Password").fill(PASSWORD)
        laptop_page.get_by_label("Password").press("Enter")
        row = laptop_page.locator(f'#recent tr[data-lap="{lap_a}"]')
        expect(row).to_have_class(re.compile(r"\bvoided\b"))
        expect(row).to_contain_text("Anna Berg")
        expect(laptop_page.locator(f'#recent tr[data-lap="{lap_b}"]')).to_have_count(0)
        laptop_page.wait_for_load_state()                    # its stylesheets too, under load
        assert "line-through" in row.locator("td").first.evaluate(
            "el => getComputedStyle(el).textDecorationLine")
    finally:
        laptop_context.close()


# ---- c. the laps-over-time chart ---------------------------------------------------

def test_laps_over_time_chart_draws_the_pushed_laps(central_users, laptops, context,
                                                     live_central, tmp_path):
    laptop = laptops("a")
    laptop.add_roster()
    laps = [laptop.record(1), laptop.record(2), laptop.record(17),
            laptop.record(1, confirm=True), laptop.record(2, confirm=True),
            laptop.record(1, confirm=True), laptop.record(17, confirm=True)]
    laptop.void(laps[-1])                                    # voided: never counts
    laptop.sync()
    counting = len(laps) - 1

    page = central_login(context, live_central)
    page.get_by_role("link", name="Charts").click()
    chart = page.locator("svg#laps-over-time")
    expect(chart).to_be_visible()
    bars = chart.locator("rect.bar")
    values = [int(v) for v in bars.evaluate_all("els => els.map(e => e.dataset.laps)")]
    assert sum(values) == counting and max(values) > 0
    for index, value in enumerate(values):
        if value:
            box = bars.nth(index).bounding_box()
            assert box and box["width"] > 0 and box["height"] > 0, (index, box)
    titles = bars.locator("title").all_text_contents()
    assert any(f"{max(values)} laps" in t for t in titles), titles

    classes = page.locator("svg#laps-per-class rect.bar")
    per_class = dict(zip(classes.evaluate_all("els => els.map(e => e.dataset.class)"),
                         map(int, classes.evaluate_all("els => els.map(e => e.dataset.laps)"))))
    assert per_class == {"5a": 5, "6b": 1}

    shot = chart.screenshot(path=str(tmp_path / "laps-over-time.png"))
    assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 2_000
    width, height = int.from_bytes(shot[16:20], "big"), int.from_bytes(shot[20:24], "big")
    assert width > 300 and height > 100, (width, height)


def test_the_keyboard_skips_the_menu_and_the_menu_marks_the_page(live_central, central_users,
                                                                  browser):
    context = browser.new_context(locale="de-DE")
    try:
        page = context.new_page()
        type_login_to(page, live_central, "/settings/", "ada", CENTRAL_PASSWORD)
        page.keyboard.press("Tab")                          # the first stop: past the menu
        skip = page.locator("a.skip-link")
        expect(skip).to_be_focused()
        expect(skip).to_have_text("Zum Inhalt springen")
        assert skip.bounding_box()["width"] > 0             # seen when focused
        page.keyboard.press("Enter")
        expect(page.locator("main#main")).to_be_focused()
        page.keyboard.press("Tab")                          # on into the page, not the menu
        expect(page.get_by_label("Name der Veranstaltung")).to_be_focused()
        current = page.locator("nav a[aria-current=page]")
        expect(current).to_have_count(1)
        expect(current).to_have_attribute("href", "/settings/")
    finally:
        context.close()


def test_after_saving_the_focus_is_on_what_was_done_and_the_next_tab_in_the_page(
        live_central, central_users, browser):
    context = browser.new_context(locale="de-DE")
    try:
        page = context.new_page()
        type_login_to(page, live_central, "/settings/", "ada", CENTRAL_PASSWORD)
        field = page.get_by_label("Meter pro Runde")
        field.fill("")
        field.press_sequentially("400", delay=30)
        field.press("Enter")
        said = page.locator("main > .flash")
        expect(said).to_contain_text("Einstellungen gespeichert")
        expect(said).to_be_focused()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.closest('main') !== null")
    finally:
        context.close()
