"""The lap page as the helper at the track uses it, in real Chromium (Playwright).

The real laptop app on its own SQLite file, served on loopback; typed by the
keyboard with real delays. The page's Web Audio is replaced by a spy (an init
script) that records which tone was played; everything else is the real page.
One browser for the module, a fresh context, database and server per test.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from lapsync.devkit.lappage import (
    SlowLaps,
    audit,
    counted_numbers,
    log_in,
    type_plan,
    typing_plan,
    wait_answered,
)
from lapsync.ids import new_id
from lapsync.laptop import create_app, scheduler
from lapsync.laptop.auth import start_session
from lapsync.laptop.client.pull import apply_change
from lapsync.laptop.laps import write_lap
from lapsync.laptop.db import connect, device_id, set_meta, transaction
from lapsync.laptop.runners import add_runner
from tests.conftest import PASSWORD
from tests.web import scroll_width, served

# How many numbers the fast-typing test types (bench/bench_typing.py types 1,000).
TYPING_NUMBERS = int(os.environ.get("LAPSYNC_TYPING_NUMBERS", "60"))
ROSTER = [(1, "Anna Berg", "5a"), (2, "Ben Cruz", "5a"), (3, "Carl Dorn", "6b"),
          (7, "Dana Ek", "6b"), (17, "Cleo Dahl", "6b"), (37, "Emil Fox", "7c")]
# The spy: each played sound is recorded by its first oscillator (type:frequency).
AUDIO_SPY = """
window.__tones = [];
class Param { constructor() { this.value = 0; } setValueAtTime(v) { this.value = v; }
  exponentialRampToValueAtTime() {} linearRampToValueAtTime() {} }
class Node { connect() {} disconnect() {} }
class Osc extends Node {
  constructor(ctx) { super(); this.ctx = ctx; this.type = "sine"; this.frequency = new Param(); }
  start(when) { if (!when || when <= this.ctx.currentTime) window.__tones.push(this.type + ":" + this.frequency.value); }
  stop() {} }
class Gain extends Node { constructor() { super(); this.gain = new Param(); } }
window.AudioContext = class { constructor() { this.state = "running"; this.currentTime = 0;
  this.destination = new Node(); } createOscillator() { return new Osc(this); }
  createGain() { return new Gain(); } resume() { return Promise.resolve(); } };
"""
TONES = {"sine:880": "good", "triangle:520": "warn", "square:160": "bad"}
# The module's kept context (tests/system/conftest.py): the audio spy in every page.
KEPT_PAGE = {"init_script": AUDIO_SPY, "viewport": {"width": 1280, "height": 900}}


class Laptop:
    """The laptop app on a fresh database file, served on loopback (stop() ends the server)."""

    def __init__(self, tmp_path, users_template, delay_ms: float = 0, min_lap: int = 60,
                 roster=ROSTER, config: dict | None = None):
        """Copy the users template, add the roster, serve the app behind SlowLaps."""
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.path = tmp_path / "laptop.sqlite"
        shutil.copyfile(users_template, self.path)
        db = connect(self.path)
        with transaction(db):
            set_meta(db, "device_id", new_id())
        self.runners = {number: add_runner(db, number, name, class_, 5) for number, name, class_ in roster}
        db.close()
        self.app = create_app({"TESTING": True, "SECRET_KEY": "lap-page", "DATABASE": str(self.path),
                               "MIN_LAP_SECONDS": min_lap, **(config or {})})
        self.server = served(SlowLaps(self.app, delay_ms))
        self.url = self.server.__enter__()

    def session_cookie(self, user: str) -> dict:
        """Return a browser cookie holding a new session of USER on this laptop."""
        db = connect(self.path)
        try:
            sid = start_session(db, user, PASSWORD)
        finally:
            db.close()
        value = self.app.session_interface.get_signing_serializer(self.app).dumps({"sid": sid})
        return {"name": self.app.config["SESSION_COOKIE_NAME"], "url": self.url, "value": value}

    def stop(self) -> None:
        """Shut the server down (idempotent)."""
        if self.server:
            self.server.__exit__(None, None, None)
            self.server = None

    def laps(self) -> list[str]:
        """Return the start numbers of the counting laps in recording order."""
        return counted_numbers(self.path)

    def lap_runner_ids(self) -> list[str]:
        """Return the runner ids of the counting laps in recording order."""
        db = connect(self.path)
        try:
            return [r[0] for r in db.execute("SELECT runner_id FROM lap WHERE voided_at IS NULL ORDER BY rowid")]
        finally:
            db.close()


@pytest.fixture
def laptop_factory(tmp_path, users_template):
    """Make laptops on demand; stop their servers at the end."""
    made = []

    def make(**kwargs) -> Laptop:
        made.append(Laptop(tmp_path / str(len(made)), users_template, **kwargs))
        return made[-1]

    yield make
    for laptop in made:
        laptop.stop()


@pytest.fixture
def laptop(laptop_factory) -> Laptop:
    """A laptop with the test roster and a 60 s minimum lap time."""
    return laptop_factory()


@pytest.fixture
def context(page):
    """A browser context with the audio spy, as new: no cookies, no storage, one blank page."""
    return page.context


def blank_page(context):
    """Return the context's blank page (the kept one), or a new page if there is none."""
    return context.pages[0] if context.pages else context.new_page()


def open_lap_page(context, laptop: Laptop, user: str = "tom"):
    """Open the lap page logged in as USER; return it with the number field focused.

    The session is made directly and handed to the browser as its cookie: the login
    form is typed in test_browser.py, and here it only cost two more page loads a test.
    """
    page = blank_page(context)
    context.add_cookies([laptop.session_cookie(user)])
    page.goto(f"{laptop.url}/")
    page.locator("#lap-form[data-pending]").wait_for()
    expect(page.locator("#start_number")).to_be_focused()
    return page


def number_rows(rows, number: str):
    """Return the rows whose start number cell is number (the time cell may hold its digits too)."""
    return rows.filter(has=rows.page.locator("td:nth-child(2)", has_text=re.compile(rf"^{number}$")))


def typed(page, text: str, delay: float = 40) -> None:
    """Type text and press Enter as a person does."""
    page.keyboard.type(text, delay=delay)
    page.keyboard.press("Enter")


def scan(page, number: str) -> None:
    """Type like a USB barcode scanner: digits and Enter with no pause between keys."""
    for key in [*number, "Enter"]:
        page.keyboard.press(key)


def tones(page) -> list[str]:
    """Return the kinds of the sounds played so far."""
    return [TONES[tone] for tone in page.evaluate("window.__tones")]


def feedback_is(page, kind: str, text: str | re.Pattern) -> None:
    """Wait for the feedback area in the given colour with the given text."""
    feedback = page.locator("#feedback")
    expect(feedback).to_have_class(re.compile(rf"\b{kind}\b"))
    expect(feedback).to_contain_text(text)


def idle(page) -> None:
    """Wait until every number sent has its answer."""
    wait_answered(page, 15_000)


def read_then_enter(page) -> None:
    """Press Enter on the empty field after a look at the warning (laps.js: CONFIRM_WAIT_MS)."""
    page.wait_for_timeout(400)
    page.keyboard.press("Enter")


def counted_then_warned(page, number: str, name: str) -> None:
    """Type NUMBER twice: counted the first time, a warning (too soon) the second."""
    typed(page, number)
    feedback_is(page, "good", name)
    typed(page, number)
    feedback_is(page, "warn", f"{name} ({number}) was counted")


# ---- 1. what the helper typed is never changed ------------------------------------

def test_warning_is_counted_by_enter_on_the_empty_field(context, laptop):
    page = open_lap_page(context, laptop)
    counted_then_warned(page, "1", "Anna Berg")
    expect(page.locator("#feedback")).to_contain_text("Press Enter to count it, Esc to skip.")
    expect(page.locator("#start_number")).to_have_value("")  # never refilled
    assert laptop.laps() == ["1"]
    read_then_enter(page)
    feedback_is(page, "good", "Anna Berg")
    expect(page.locator("#feedback .count")).to_have_text("2")
    assert laptop.laps() == ["1", "1"]
    assert tones(page) == ["good", "warn", "good"]


def test_a_double_enter_does_not_confirm_the_warning_it_brings(context, laptop):
    page = open_lap_page(context, laptop)
    typed(page, "1")
    feedback_is(page, "good", "Anna Berg")
    page.keyboard.type("1", delay=40)
    page.keyboard.press("Enter")
    page.wait_for_timeout(40)
    page.keyboard.press("Enter")                 # a bounce, or a habit: before it could be read
    feedback_is(page, "warn", "Anna Berg (1) was counted")
    page.wait_for_timeout(500)
    idle(page)
    assert laptop.laps() == ["1"]
    feedback_is(page, "warn", "Press Enter to count it")
    read_then_enter(page)
    feedback_is(page, "good", "Anna Berg")
    assert laptop.laps() == ["1", "1"]


def test_a_number_typed_during_a_warning_counts_as_itself(context, laptop):
    page = open_lap_page(context, laptop)
    counted_then_warned(page, "3", "Carl Dorn")
    page.keyboard.type("7", delay=40)
    expect(page.locator("#start_number")).to_have_value("7")  # not 37
    feedback_is(page, "info", "Not counted: Carl Dorn (3)")
    page.keyboard.press("Enter")
    feedback_is(page, "good", "Dana Ek")
    idle(page)
    assert laptop.laps() == ["3", "7"]  # nothing for Emil Fox (37), no second lap for 3


def test_esc_skips_the_warning(context, laptop):
    page = open_lap_page(context, laptop)
    counted_then_warned(page, "2", "Ben Cruz")
    page.keyboard.press("Escape")
    feedback_is(page, "info", "Skipped: nothing was recorded.")
    page.keyboard.press("Enter")  # the warning is gone: an empty Enter counts nothing
    idle(page)
    expect(page.locator("#feedback")).to_have_class(re.compile(r"\binfo\b"))
    assert laptop.laps() == ["2"]


def test_late_answers_never_touch_the_field(context, laptop_factory):
    laptop = laptop_factory(delay_ms=300)
    page = open_lap_page(context, laptop)
    typed(page, "1", delay=10)
    typed(page, "1", delay=10)
    page.keyboard.type("17", delay=10)  # typed while both answers are still on their way
    idle(page)
    expect(page.locator("#start_number")).to_have_value("17")
    feedback_is(page, "warn", "Not counted: Anna Berg (1)")
    page.keyboard.press("Enter")
    feedback_is(page, "good", "Cleo Dahl")
    assert laptop.laps() == ["1", "17"]


def test_fast_typing_counts_every_number_once_in_typing_order(context, laptop_factory):
    count = TYPING_NUMBERS
    runners = [(n, f"Runner {n}", "5a") for n in range(1, count + 1)]
    # Answers take 0-150 ms and a typed number about as long: many answers arrive
    # after the next numbers have been typed.
    laptop = laptop_factory(delay_ms=150, min_lap=3600, roster=runners)
    plan = typing_plan(count, count, seed=7)
    assert len(set(plan)) < count  # repeats, so that warnings happen
    page = open_lap_page(context, laptop)
    type_plan(page, plan, seed=7, max_gap_ms=30)
    wait_answered(page, count * 400 + 30_000)
    expect(page.locator("#start_number")).to_have_value("")
    result = audit(plan, laptop.laps())
    assert result["wrong_runner"] == [] and result["doubled"] == [] and result["lost"] == []
    assert result["in_typing_order"], result
    assert result["counted"] == result["expected"] == len(set(plan))


# ---- 3. a USB scanner --------------------------------------------------------------

def test_scanner_bursts_count_like_typing_and_a_rescan_gets_the_warning(context, laptop):
    page = open_lap_page(context, laptop)
    for number in ("1", "17", "2", "17"):
        scan(page, number)
    idle(page)
    feedback_is(page, "warn", "Cleo Dahl (17) was counted")
    assert laptop.laps() == ["1", "17", "2"]  # the rescan of 17 is not a silent second lap
    scan(page, "3")
    feedback_is(page, "good", "Carl Dorn")
    idle(page)
    assert laptop.laps() == ["1", "17", "2", "3"]


def test_numbers_left_uncounted_keep_a_row_that_counts_them_by_its_button(context,
                                                                         laptop_factory):
    laptop = laptop_factory(delay_ms=400)      # answers arrive after the whole burst
    page = open_lap_page(context, laptop)
    for number, name in (("1", "Anna Berg"), ("2", "Ben Cruz")):
        typed(page, number)
        feedback_is(page, "good", name)
    for number in ("1", "99", "2", "3"):
        scan(page, number)
    idle(page)
    feedback_is(page, "good", "Carl Dorn")     # the burst's last answer: its others are gone
    rows = page.locator("#recent tbody tr.not-counted")
    expect(page.locator("#recent tbody tr td:nth-child(2)")).to_have_text(
        ["3", "2", "99", "1", "2", "1"])
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="Anna Berg")).to_contain_text(
        re.compile(r"Not counted: counted \d+ s before"))
    unknown = number_rows(rows, "99")
    expect(unknown).to_contain_text("No runner has start number 99. Nothing was recorded.")
    expect(unknown.get_by_role("button")).to_have_text(["Remove"])   # nothing counts it
    assert laptop.laps() == ["1", "2", "3"]

    rows.filter(has_text="Ben Cruz").get_by_role("button", name="Count it anyway").click()
    feedback_is(page, "warn", "Ben Cruz (2) was counted")   # asked again: it is still too soon
    read_then_enter(page)
    feedback_is(page, "good", "Ben Cruz")
    expect(page.locator("#feedback .count")).to_have_text("2")
    expect(page.locator("#start_number")).to_be_focused()
    expect(rows).to_have_count(2)

    typed(page, "1")                           # a warning the helper types over
    feedback_is(page, "warn", "Press Enter to count it")
    typed(page, "7")
    feedback_is(page, "good", "Dana Ek")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Anna Berg")
    idle(page)
    assert laptop.laps() == ["1", "2", "3", "2", "7"]


def test_a_burst_s_uncounted_row_fits_390_px_in_german(browser, laptop_factory):
    laptop = laptop_factory(delay_ms=400)
    context = browser.new_context(locale="de-DE", viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        log_in(page, laptop.url, "tom", PASSWORD)
        typed(page, "37")
        feedback_is(page, "good", "Emil Fox")
        for number in ("37", "3"):
            scan(page, number)
        feedback_is(page, "good", "Carl Dorn")
        row = page.locator("#recent tbody tr.not-counted")
        expect(row).to_contain_text(re.compile(r"Emil Fox.*Nicht gezählt: \d+ s vorher schon gezählt"))
        expect(row.get_by_role("button", name="Trotzdem zählen")).to_be_visible()
        assert scroll_width(page) <= 390
    finally:
        context.close()


# ---- 2. clashes by keyboard, and without JavaScript ---------------------------------

def clash(laptop: Laptop) -> str:
    """Give start number 17 to a second runner (as a pull from another laptop would)."""
    db = connect(laptop.path)
    db.execute("INSERT INTO runner (id, start_number, name, class, grade, hlc, origin) "
               "VALUES ('r-dora', 17, 'Dora Eck', '6b', 6, '0', 'elsewhere')")
    db.close()
    return "r-dora"


def test_a_shared_number_is_chosen_with_a_digit_and_enter(context, laptop):
    dora = clash(laptop)
    page = open_lap_page(context, laptop)
    typed(page, "17")
    feedback = page.locator("#feedback")
    feedback_is(page, "warn", "belongs to 2 runners")
    expect(feedback).to_contain_text("Type 1–2 and Enter to count for that runner, Esc to cancel")
    expect(feedback.locator("button.pick")).to_have_text(["1 Cleo Dahl (6b)", "2 Dora Eck (6b)"])
    page.wait_for_timeout(400)                   # a look at the choice, then
    page.keyboard.type("2", delay=120)
    expect(page.locator("#start_number")).to_have_value("2")  # typed, as every key
    page.keyboard.press("Backspace")             # taken back: nothing happens
    page.keyboard.type("2", delay=120)
    page.keyboard.press("Enter")
    feedback_is(page, "good", "Dora Eck")
    expect(page.locator("#start_number")).to_have_value("")
    assert laptop.lap_runner_ids() == [dora]

    typed(page, "17")
    feedback_is(page, "warn", "belongs to 2 runners")
    scan(page, "2")                              # a scanner's bib 2 is the number 2, no pick
    feedback_is(page, "good", "Ben Cruz")
    assert laptop.lap_runner_ids() == [dora, laptop.runners[2]]

    typed(page, "17")
    feedback_is(page, "warn", "belongs to 2 runners")
    page.wait_for_timeout(400)
    page.keyboard.type("3", delay=600)           # a slow typist's next number 37
    page.keyboard.type("7", delay=600)
    page.keyboard.press("Enter")
    feedback_is(page, "good", "Emil Fox")
    assert laptop.lap_runner_ids() == [dora, laptop.runners[2], laptop.runners[37]]
    left = page.locator("#recent tbody tr.not-counted")
    expect(left).to_have_count(2)
    expect(left.first).to_contain_text("Not counted: start number 17 belongs to 2 runners")
    expect(left.first.get_by_role("button")).to_have_text(["Count for Cleo Dahl",
                                                           "Count for Dora Eck", "Remove"])

    typed(page, "17")
    feedback_is(page, "warn", "belongs to 2 runners")
    page.keyboard.press("Escape")
    feedback_is(page, "info", "No runner chosen")
    typed(page, "17")
    feedback_is(page, "warn", "belongs to 2 runners")
    page.wait_for_timeout(400)
    typed(page, "1", delay=120)
    feedback_is(page, "good", "Cleo Dahl")
    chosen = [dora, laptop.runners[2], laptop.runners[37], laptop.runners[17]]
    assert laptop.lap_runner_ids() == chosen

    left.first.get_by_role("button", name="Count for Dora Eck").click()
    feedback_is(page, "warn", "Dora Eck (17) was counted")   # the list's choice, too soon
    read_then_enter(page)
    feedback_is(page, "good", "Dora Eck")
    expect(left).to_have_count(1)
    assert laptop.lap_runner_ids() == [*chosen, dora]


def test_a_runner_chosen_in_the_list_counts_after_central_gave_them_another_number(
        context, laptop):
    dora = clash(laptop)
    page = open_lap_page(context, laptop)
    typed(page, "17")
    feedback_is(page, "warn", "belongs to 2 runners")
    typed(page, "3")                             # typed over: the choice is listed
    feedback_is(page, "good", "Carl Dorn")
    renumbered_at_central(laptop, dora, 18, was=17)
    left = page.locator("#recent tbody tr.not-counted")
    left.get_by_role("button", name="Count for Dora Eck").click()
    feedback_is(page, "good", "Dora Eck (18, 6b)")
    assert laptop.lap_runner_ids() == [laptop.runners[3], dora]


def test_a_number_typed_before_the_script_runs_is_confirmed_in_the_same_panel(context, laptop):
    held = []
    context.route("**/static/laps.js", lambda route: held.append(route))  # the script arrives late
    context.add_cookies([laptop.session_cookie("tom")])
    page = blank_page(context)
    page.goto(f"{laptop.url}/", wait_until="commit")
    expect(page.locator("#start_number")).to_be_focused()
    typed(page, "17")  # the plain form posts it
    feedback_is(page, "good", re.compile(r"^\s*1 Cleo Dahl \(17, 6b\) – first lap"))
    expect(page.locator("#feedback .count")).to_have_text("1")
    expect(page.locator("#start_number")).to_have_value("")
    assert laptop.laps() == ["17"]
    for route in held:
        route.continue_()
    context.unroute("**/static/laps.js")


def test_without_javascript_a_shared_number_offers_numbered_buttons(browser, laptop):
    dora = clash(laptop)
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, laptop.url, "tom", PASSWORD, scripted=False)
        page.locator("#start_number").press_sequentially("17", delay=30)
        page.locator("#start_number").press("Enter")
        expect(page.locator("#feedback")).to_contain_text("belongs to 2 runners")
        buttons = page.locator("#feedback button.pick")
        expect(buttons).to_have_text(["1 Cleo Dahl (6b)", "2 Dora Eck (6b)"])
        buttons.nth(1).click()
        expect(page.locator("#feedback.good")).to_have_text(re.compile(r"^\s*1 Dora Eck \(17, 6b\) – first lap"))
        assert laptop.lap_runner_ids() == [dora]

        page.locator("#start_number").press_sequentially("1 2", delay=30)  # no browser bubble
        page.locator("#start_number").press("Enter")
        expect(page.locator("#feedback.bad")).to_contain_text("is not a start number")
        assert laptop.lap_runner_ids() == [dora]
    finally:
        context.close()


# ---- 8. clear errors, tab order, two-press void -----------------------------------

def test_letters_and_spaces_get_the_apps_error_panel(context, laptop):
    page = open_lap_page(context, laptop)
    for text in ("1 2", "abc", "12a"):
        typed(page, text)
        feedback_is(page, "bad", "is not a start number: digits only. Nothing was recorded.")
        expect(page.locator("#feedback")).to_contain_text(text)
    typed(page, "0")
    feedback_is(page, "bad", "Start numbers run from 1 to 999999: nothing was recorded.")
    idle(page)
    assert laptop.laps() == []
    assert tones(page) == ["bad", "bad", "bad", "bad"]


def end_sessions(laptop: Laptop) -> None:
    """End every login on the laptop, as their hours running out does."""
    db = connect(laptop.path)
    try:
        db.execute("UPDATE user_session SET valid_until = 1")
    finally:
        db.close()


def test_numbers_typed_after_the_login_ended_are_listed_and_count_after_a_new_login(context,
                                                                                   laptop):
    page = open_lap_page(context, laptop)
    typed(page, "1")
    feedback_is(page, "good", "Anna Berg")
    end_sessions(laptop)
    for number in ("2", "3", "7"):                # a burst before the page knows
        scan(page, number)
    feedback_is(page, "bad", "Not counted: 2, 3, 7.")
    expect(page.locator("#feedback")).to_contain_text("Your login has ended.")
    held = page.locator("#recent tbody tr.not-counted")
    expect(held.locator("td:nth-child(2)")).to_have_text(["7", "3", "2"])
    expect(held.first).to_contain_text("Not counted: the login ended")
    assert laptop.laps() == ["1"]
    typed_at = time.time() * 1000
    page.wait_for_timeout(2500)                   # the helper logs in a little later
    page.locator("#feedback").get_by_role("link", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    log_in_here(page)
    expect(held.locator("td:nth-child(2)")).to_have_text(["7", "3", "2"])  # kept over the login
    number_rows(held, "3").get_by_role("button", name="Count 3").click()
    feedback_is(page, "good", "Carl Dorn (3, 6b)")
    expect(held).to_have_count(2)
    page.reload()
    expect(held).to_have_count(2)                 # counted: gone for good; the others stay
    assert laptop.laps() == ["1", "3"]
    assert lap_times(laptop)[-1] < typed_at       # it counts at the time it was typed


def log_in_here(page) -> None:
    """Log in as tom on the login page the page's link opened."""
    page.locator("input[name=name]").fill("tom")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("input[name=password]").press("Enter")
    page.locator("#lap-form[data-pending]").wait_for()


def test_more_held_numbers_than_the_list_shows_are_all_kept_and_named_after_the_login(
        context, laptop):
    page = open_lap_page(context, laptop)
    end_sessions(laptop)
    numbers = [str(n) for n in range(100, 135)]            # 35: more than the list's 30 rows
    for number in numbers:
        scan(page, number)
    held = page.locator("#recent tbody tr.not-counted")
    expect(held).to_have_count(35)
    page.locator("#feedback").get_by_role("link", name="Log in").click()
    log_in_here(page)
    expect(held).to_have_count(35)
    feedback_is(page, "warn", "Typed before and not counted yet: 100, 101")   # not below the fold


def test_a_held_shared_number_counts_once_and_a_row_ends_a_warning_left_unseen(context, laptop):
    dora = clash(laptop)                                   # 17 is Cleo's and Dora's
    page = open_lap_page(context, laptop)
    typed(page, "1")
    feedback_is(page, "good", "Anna Berg")
    end_sessions(laptop)
    for number in ("17", "1", "2"):
        scan(page, number)
    page.locator("#feedback").get_by_role("link", name="Log in").click()
    log_in_here(page)
    held = page.locator("#recent tbody tr.not-counted")
    number_rows(held, "17").get_by_role("button", name="Count 17").click()
    feedback_is(page, "warn", "Type 1–2 and Enter")
    page.wait_for_timeout(400)
    typed(page, "2")                                       # Dora
    feedback_is(page, "good", "Dora Eck")
    expect(number_rows(held, "17")).to_have_count(0)   # one typed number, one lap
    number_rows(held, "1").get_by_role("button", name="Count 1").click()
    feedback_is(page, "warn", "Anna Berg (1) was counted")  # too soon: asked
    number_rows(held, "2").get_by_role("button", name="Count 2").click()
    feedback_is(page, "good", "Ben Cruz")
    expect(held.filter(has_text="Anna Berg")).to_have_count(1)   # the warning left: listed
    page.wait_for_timeout(400)
    page.keyboard.press("Enter")                           # confirms nothing unseen
    page.wait_for_timeout(500)
    idle(page)
    assert laptop.lap_runner_ids() == [laptop.runners[1], dora, laptop.runners[2]]


def test_a_held_number_shows_in_another_tab_and_counts_once_from_both(context, laptop):
    page = open_lap_page(context, laptop)
    end_sessions(laptop)
    scan(page, "2")
    page.locator("#feedback").get_by_role("link", name="Log in").click()
    log_in_here(page)
    other = context.new_page()                       # a second tab, or the tab opened again
    other.goto(f"{laptop.url}/")
    other.locator("#lap-form[data-pending]").wait_for()
    # Both press before the first answer (once it is back, the row leaves the other tab too).
    answers = []
    page.route("**/laps", lambda route: answers.append((route, route.fetch())))
    page.locator("#recent tbody tr.not-counted").get_by_role("button", name="Count 2").click()
    for _ in range(100):
        if answers:
            break
        page.wait_for_timeout(50)
    other.locator("#recent tbody tr.not-counted").get_by_role("button", name="Count 2").click()
    feedback_is(other, "good", "already recorded")   # one typed number, one lap
    route, answer = answers[0]
    route.fulfill(response=answer)
    feedback_is(page, "good", "Ben Cruz")
    assert laptop.laps() == ["2"]


def test_the_page_notices_the_ended_login_before_the_next_number(context, laptop):
    page = open_lap_page(context, laptop)
    end_sessions(laptop)
    feedback_is(page, "bad", "Log in again before the next number")   # the list's poll
    typed(page, "2")
    feedback_is(page, "bad", "Not counted: 2.")
    expect(page.locator("#recent tbody tr.not-counted")).to_have_count(1)
    assert laptop.laps() == []


def test_a_login_in_another_window_holds_the_numbers_until_a_reload(context, laptop):
    page = open_lap_page(context, laptop)
    other = context.new_page()                    # the same browser logs in again elsewhere
    log_in(other, laptop.url, "tom", PASSWORD)
    other.close()
    typed(page, "2")
    feedback_is(page, "bad", "This page's login changed")
    expect(page.locator("#feedback")).to_contain_text("Not counted: 2.")
    page.locator("#feedback").get_by_role("link", name="Reload the page").click()
    row = page.locator("#recent tbody tr.not-counted")
    row.get_by_role("button", name="Count 2").click()
    feedback_is(page, "good", "Ben Cruz (2, 5a)")
    assert laptop.laps() == ["2"]


def lap_times(laptop: Laptop) -> list[int]:
    """Return the laps' times (ms) in recording order."""
    db = connect(laptop.path)
    try:
        return [row[0] for row in db.execute("SELECT time FROM lap ORDER BY rowid")]
    finally:
        db.close()


def test_tab_from_the_field_reaches_no_void_button_within_two_presses(context, laptop):
    page = open_lap_page(context, laptop)
    typed(page, "1")
    feedback_is(page, "good", "Anna Berg")
    page.locator("#start_number").focus()
    focused = []
    for _ in range(3):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
        assert not page.evaluate("!!document.activeElement.closest('#recent')")
    assert focused[0].startswith("Count lap") and focused[1] == "sound-toggle"


def test_void_takes_a_second_press(context, laptop):
    page = open_lap_page(context, laptop)
    typed(page, "2")
    feedback_is(page, "good", "Ben Cruz")
    row = page.locator("#recent tbody tr").first
    row.get_by_role("button", name="Void").click()
    expect(row.locator("button")).to_have_text("Really void?")
    page.wait_for_timeout(400)                       # read before the second press
    assert laptop.laps() == ["2"]
    row.get_by_role("button", name="Really void?").click()
    expect(row).to_have_class(re.compile(r"\bvoided\b"))
    expect(row.locator("button")).to_have_text("Restore")
    assert laptop.laps() == []
    row.get_by_role("button", name="Restore").click()  # restoring needs one press
    expect(row).not_to_have_class(re.compile(r"\bvoided\b"))
    assert laptop.laps() == ["2"]


def test_a_lap_after_a_relay_s_night_says_hours_since_the_last(context, laptop):
    db = connect(laptop.path)
    try:
        tom = db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]
        with transaction(db):
            write_lap(db, 3, tom, 60_000, typed_ago_ms=(12 * 60 + 20) * 60_000 + 30_000)
    finally:
        db.close()
    page = open_lap_page(context, laptop)
    typed(page, "3")
    feedback_is(page, "good", "Carl Dorn (3, 6b) – 12 h 20 min since last lap")


def test_a_double_tap_on_void_voids_nothing_and_a_void_is_not_missed(context, laptop):
    page = open_lap_page(context, laptop)
    typed(page, "2")
    feedback_is(page, "good", "Ben Cruz")
    button = page.locator("#recent tbody tr").first.locator("button")
    button.dblclick(delay=0)                     # a finger's bounce: the second press too soon
    expect(button).to_have_text("Really void?")
    page.wait_for_timeout(400)
    assert laptop.laps() == ["2"]
    button.click()                               # pressed again once it could be read
    feedback_is(page, "warn", "Lap voided: it no longer counts.")
    assert laptop.laps() == []
    assert tones(page)[-1] == "warn"


def test_an_uncounted_row_and_the_times_survive_a_reload_in_the_browser_s_time_zone(browser,
                                                                                  laptop):
    context = browser.new_context(timezone_id="Pacific/Auckland", locale="en-US")
    try:
        page = open_lap_page(context, laptop)
        counted_then_warned(page, "1", "Anna Berg")
        typed(page, "2")                          # typed over: the warning is left uncounted
        feedback_is(page, "good", "Ben Cruz")
        # A row no button counts (an unknown number of a burst) is listed but not kept.
        page.evaluate("window.LapPage.list.uncounted({number: '99'}, 'No runner has 99', [], false)")
        expect(page.locator("#recent tbody tr.not-counted")).to_have_count(2)
        page.reload()
        page.locator("#lap-form[data-pending]").wait_for()
        row = page.locator("#recent tbody tr.not-counted")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Not counted: counted 0 s before")
        times = [int(ms) for ms in page.locator("#recent td.t").evaluate_all(
            "cells => cells.map(c => c.dataset.ms)")]
        shown = page.locator("#recent td.t").all_inner_texts()
        zone = ZoneInfo("Pacific/Auckland")
        assert shown == [datetime.fromtimestamp(ms / 1000, zone).strftime("%H:%M:%S") for ms in times]
        row.get_by_role("button", name="Count it anyway").click()
        feedback_is(page, "warn", "Anna Berg (1) was counted")   # still too soon: asked
        read_then_enter(page)
        feedback_is(page, "good", "Anna Berg")
        expect(row).to_have_count(0)
        assert laptop.laps() == ["1", "2", "1"]
    finally:
        context.close()


def test_a_scan_after_a_tap_on_void_or_sound_counts_its_lap_and_voids_nothing(context, laptop):
    page = open_lap_page(context, laptop)
    typed(page, "2")
    feedback_is(page, "good", "Ben Cruz")
    row = page.locator("#recent tbody tr").first
    row.get_by_role("button", name="Void").click()       # tapped by mistake: the button has the focus
    expect(row.locator("button")).to_have_text("Really void?")
    scan(page, "1")                                      # the next runner's bib
    feedback_is(page, "good", "Anna Berg")
    expect(page.locator("#recent tbody tr").nth(1).locator("button")).to_have_text("Void")
    page.locator("#sound-toggle").click()
    scan(page, "17")
    feedback_is(page, "good", "Cleo Dahl")
    expect(page.locator("#start_number")).to_be_focused()
    assert sorted(laptop.laps()) == ["1", "17", "2"]


def test_without_javascript_void_asks_first_and_cancel_keeps_the_lap(browser, laptop):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, laptop.url, "tom", PASSWORD, scripted=False)
        for number in ("2", "17"):
            page.locator("#start_number").press_sequentially(number, delay=30)
            page.locator("#start_number").press("Enter")
            expect(page.locator("#feedback.good")).to_contain_text(f"({number}, ")
        rows = page.locator("#recent tbody tr")
        ben = rows.filter(has_text="Ben Cruz")
        clock = ben.locator("td.t").inner_text()
        question = page.locator("#void-confirm")

        ben.get_by_role("button", name="Void").click()  # one press: a question, no void
        expect(question).to_contain_text("Void this lap?")
        expect(question).to_contain_text(f"{clock} – Ben Cruz (2, 5a)")
        expect(ben).to_have_class(re.compile(r"\bvoid-asked\b"))
        assert laptop.laps() == ["2", "17"]
        question.get_by_role("link", name="Cancel").click()
        expect(page.locator("#start_number")).to_be_visible()
        expect(question).to_have_count(0)
        expect(ben.get_by_role("button")).to_have_text("Void")
        assert laptop.laps() == ["2", "17"]

        ben.get_by_role("button", name="Void").click()
        expect(question).to_contain_text("Ben Cruz (2, 5a)")
        question.get_by_label("Reason (optional)").press_sequentially("typed 2 for 12", delay=20)
        question.get_by_role("button", name="Yes, void it").click()
        expect(page.locator(".flash.good")).to_have_text("Lap voided.")
        expect(ben).to_have_class(re.compile(r"\bvoided\b"))
        expect(ben.get_by_role("button")).to_have_text("Restore")
        assert laptop.laps() == ["17"]
        db = connect(laptop.path)
        try:
            assert db.execute("SELECT void_reason FROM lap WHERE voided_at IS NOT NULL"
                              ).fetchall() == [("typed 2 for 12",)]
        finally:
            db.close()
        ben.get_by_role("button", name="Restore").click()  # restoring needs one press
        expect(page.locator(".flash.good")).to_have_text("Lap restored.")
        expect(ben).not_to_have_class(re.compile(r"\bvoided\b"))
        assert laptop.laps() == ["2", "17"]
    finally:
        context.close()


# ---- 4. feedback from a step away --------------------------------------------------

def test_each_outcome_flashes_and_sounds_and_mute_is_remembered(context, laptop):
    page = open_lap_page(context, laptop)
    feedback = page.locator("#feedback")
    typed(page, "1")
    feedback_is(page, "good", "Anna Berg")
    expect(feedback).to_have_class(re.compile(r"\bflash-good\b"))
    typed(page, "1")
    expect(feedback).to_have_class(re.compile(r"\bflash-warn\b"))
    typed(page, "999")
    feedback_is(page, "bad", "No runner has start number 999")
    expect(feedback).to_have_class(re.compile(r"\bflash-bad\b"))
    widths = page.evaluate("""() => { const main = document.querySelector('main'), s = getComputedStyle(main);
        return [document.getElementById('feedback').getBoundingClientRect().width,
                main.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight)]; }""")
    assert widths[0] >= widths[1] - 1  # the whole width of the page's column
    assert tones(page) == ["good", "warn", "bad"]

    toggle = page.locator("#sound-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "true")     # pressed: the sound is on
    expect(toggle).to_contain_text("Sound on")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(toggle).to_contain_text("Sound off")
    page.reload()
    expect(page.locator("#sound-toggle")).to_have_attribute("aria-pressed", "false")
    page.locator("#start_number").focus()
    typed(page, "2")
    feedback_is(page, "good", "Ben Cruz")
    expect(page.locator("#feedback")).to_have_class(re.compile(r"\bflash-good\b"))
    assert tones(page) == []  # muted, and it stayed muted after the reload


CONTRAST_JS = """() => {
  const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = c => { const v = rgb(c).map(x => { x /= 255;
      return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const el = document.getElementById("feedback"), style = getComputedStyle(el);
  const a = lum(style.color), b = lum(style.backgroundColor);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""
# The contrast at each 50 ms of the feedback's flash, the animation held at that moment.
FLASH_CONTRASTS_JS = """async () => {
  const el = document.getElementById("feedback"), out = [];
  const [flash] = el.getAnimations();
  if (!flash) return out;
  flash.pause();
  for (let t = 0; t < flash.effect.getTiming().duration; t += 50) {
    flash.currentTime = t;
    out.push((%s)());
  }
  flash.finish();
  return out;
}""" % CONTRAST_JS


def test_each_outcome_has_a_shape_and_its_flash_stays_readable(context, laptop):
    page = open_lap_page(context, laptop)
    feedback = page.locator("#feedback")
    shapes = {}
    for number, kind in (("1", "good"), ("1", "warn"), ("99", "bad")):
        typed(page, number)
        feedback_is(page, kind, "Anna Berg" if number == "1" else "No runner")
        contrasts = page.evaluate(FLASH_CONTRASTS_JS)
        assert contrasts and min(contrasts) >= 3, (kind, contrasts)  # large bold text: AA
        shapes[kind] = feedback.evaluate("el => getComputedStyle(el, '::before').content")
        size = feedback.evaluate("el => getComputedStyle(el).fontSize")
        assert size == "28.8px", (kind, size)                    # one size for every outcome
    assert shapes == {"good": '"\u2713"', "warn": '"\u26a0"', "bad": '"\u2717"'}


def test_the_sync_badge_speaks_when_its_state_changes_not_at_every_poll(context, laptop):
    page = open_lap_page(context, laptop)
    badge, said = page.locator("#sync-status"), page.locator("#sync-said")
    assert badge.get_attribute("aria-live") is None and badge.get_attribute("role") is None
    expect(said).to_have_attribute("aria-live", "polite")
    page.evaluate("""() => { window.__said = 0; new MutationObserver(() => window.__said++)
        .observe(document.getElementById('sync-said'), {childList: true, characterData: true,
                                                         subtree: true}); }""")
    page.wait_for_timeout(4_500)                  # two polls of the badge, the state the same
    assert page.evaluate("window.__said") == 0
    laptop.stop()
    expect(said).to_have_text("The laptop app is not answering", timeout=5_000)


def test_big_screen_shows_a_lap_typed_on_the_lap_page(context, laptop):
    page = open_lap_page(context, laptop)
    big = context.new_page()
    big.goto(f"{laptop.url}/big/")
    expect(big.locator("#big-empty")).to_be_visible()
    typed(page, "17")
    feedback_is(page, "good", "Cleo Dahl")
    first = big.locator("#big-laps tbody tr").first
    expect(first).to_have_text(re.compile(r"1\s*17\s*Cleo Dahl\s*6b"), timeout=4_000)
    typed(page, "17")
    feedback_is(page, "warn", "Cleo Dahl")
    read_then_enter(page)
    feedback_is(page, "good", "Cleo Dahl")
    expect(first).to_have_text(re.compile(r"2\s*17\s*Cleo Dahl\s*6b"), timeout=4_000)
    expect(big.locator("#big-laps tbody tr")).to_have_count(2)
    assert float(first.locator("td.name").evaluate("el => parseFloat(getComputedStyle(el).fontSize)")) >= 60
    db = connect(laptop.path)
    try:
        db.execute("UPDATE user_session SET valid_until = 1")   # the login's hours are over
    finally:
        db.close()
    expect(big.locator("#big-state")).to_have_text(
        "The login has ended: log in again on this screen to see new laps.", timeout=4_000)


def test_a_second_helper_on_the_laptop_sees_the_first_ones_laps_and_voids_unreloaded(
        browser, context, laptop):
    tom = open_lap_page(context, laptop)
    other = browser.new_context(locale="de-DE", viewport={"width": 390, "height": 844})
    try:
        ada = other.new_page()
        other.add_cookies([laptop.session_cookie("ada")])
        ada.goto(f"{laptop.url}/")
        ada.locator("#lap-form[data-pending]").wait_for()
        typed(tom, "1")
        feedback_is(tom, "good", "Anna Berg")
        typed(ada, "2")
        feedback_is(ada, "good", "Ben Cruz")
        ada_rows, tom_rows = ada.locator("#recent tbody tr"), tom.locator("#recent tbody tr")
        expect(ada_rows.locator("td:nth-child(2)")).to_have_text(["2", "1"], timeout=8_000)
        expect(tom_rows.locator("td:nth-child(2)")).to_have_text(["2", "1"], timeout=8_000)
        anna = ada_rows.filter(has_text="Anna Berg")
        anna.get_by_role("button", name="Streichen").click()
        ada.wait_for_timeout(400)                    # read before the second press
        anna.get_by_role("button", name="Wirklich streichen?").click()
        expect(anna).to_have_class(re.compile(r"\bvoided\b"))
        expect(tom_rows.filter(has_text="Anna Berg")).to_have_class(re.compile(r"\bvoided\b"),
                                                                    timeout=8_000)
        expect(tom_rows.filter(has_text="Anna Berg").get_by_role("button")).to_have_text("Restore")
        expect(tom.locator("#start_number")).to_be_focused()   # the helper types on
        typed(tom, "3")
        feedback_is(tom, "good", "Carl Dorn")
        expect(ada_rows.locator("td:nth-child(2)")).to_have_text(["3", "2", "1"], timeout=8_000)
        assert laptop.laps() == ["2", "3"]
    finally:
        other.close()


def test_the_big_screen_shows_the_newest_runners_whole_name(context, laptop_factory):
    long_name = "Emma Weißenbürger-Rodríguez de la Fuente"
    laptop = laptop_factory(roster=[*ROSTER, (5, long_name, "5a")])
    page = open_lap_page(context, laptop)
    big = context.new_page()
    big.set_viewport_size({"width": 768, "height": 1024})
    big.goto(f"{laptop.url}/big/")
    typed(page, "5")
    feedback_is(page, "good", long_name)
    name = big.locator("#big-laps tbody tr").first.locator("td.name")
    expect(name).to_have_text(long_name, timeout=4_000)
    assert name.evaluate("el => el.scrollWidth <= el.clientWidth")   # nothing cut off
    typed(page, "1")
    feedback_is(page, "good", "Anna Berg")
    expect(big.locator("#big-laps tbody tr").first.locator("td.name")).to_have_text("Anna Berg",
                                                                                   timeout=4_000)


# ---- 8. an honest badge ---------------------------------------------------------------

def test_badge_follows_each_lap_and_offline_is_calm(context, laptop_factory):
    laptop = laptop_factory(config={"CENTRAL_URL": "http://127.0.0.1:9", "CENTRAL_TOKEN": "t"})
    db = connect(laptop.path)
    with transaction(db):  # the roster reached central; the last sync attempt failed: offline
        db.execute("UPDATE change SET pushed_at = 1")
        set_meta(db, "last_error_ms", str(int(time.time() * 1000)))
        set_meta(db, "last_error", "connection refused")
    db.close()
    page = open_lap_page(context, laptop)
    badge = page.locator("#sync-status")
    expect(badge).to_have_attribute("data-state", "offline")
    expect(badge).to_have_class(re.compile(r"\bsync-calm\b"))
    colour = badge.evaluate("el => getComputedStyle(el).backgroundColor")
    assert colour == "rgb(216, 216, 216)", colour  # grey, not alarm red
    # Stamped as Playwright delivers the events, in the browser's order: the lap's answer,
    # then the status fetch it triggers.
    polls, answers = [], []
    page.on("request", lambda request: polls.append(time.monotonic())
            if "/sync/status" in request.url else None)
    page.on("response", lambda response: answers.append(time.monotonic())
            if response.url.endswith("/laps") else None)
    with page.expect_response(re.compile(r"/laps$")) as answer:
        typed(page, "1")
    assert answer.value.status == 201
    expect(badge).to_have_text(re.compile(r"^offline – 1 lap waiting \(oldest \d+ s\)$"))
    answered = answers[0]
    assert any(0 <= at - answered < 0.5 for at in polls)  # fetched right after the lap, not at the next poll
    expect(badge).to_have_class(re.compile(r"\bsync-calm\b"))


def closed_port() -> int:
    """Return a loopback port nothing listens on (bound for a moment, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def badge_colour(page) -> tuple[int, ...]:
    """Return the sync badge's computed background colour as (r, g, b)."""
    colour = page.locator("#sync-status").evaluate("el => getComputedStyle(el).backgroundColor")
    return tuple(int(part) for part in re.findall(r"\d+", colour)[:3])


def test_offline_badge_names_the_laps_waiting_and_the_oldest_age_calmly(browser, context,
                                                                       laptop_factory):
    laptop = laptop_factory(config={"CENTRAL_URL": f"http://127.0.0.1:{closed_port()}",
                                    "CENTRAL_TOKEN": "t", "SYNC_INTERVAL": 1})
    db = connect(laptop.path)
    with transaction(db):  # the roster came from central: only laps wait
        db.execute("UPDATE change SET pushed_at = 1")
    scheduler.start(laptop.app)  # the real background sync, trying the closed port
    try:
        page = open_lap_page(context, laptop)
        for number in ("1", "2", "3"):
            typed(page, number)
        idle(page)
        badge = page.locator("#sync-status")
        expect(badge).to_have_text(re.compile(r"^offline – 3 laps waiting \(oldest \d+ s\)$"))
        with transaction(db):  # as if the first of them was typed 14 minutes ago
            db.execute("UPDATE change SET created_at = created_at - 14 * 60000 "
                       "WHERE seq = (SELECT min(seq) FROM change WHERE pushed_at IS NULL)")
        typed(page, "7")
        expect(badge).to_have_text("offline – 4 laps waiting (oldest 14 min)")
        red, green, blue = badge_colour(page)
        assert max(red, green, blue) - min(red, green, blue) < 30 and red > 150, \
            (red, green, blue)  # a light grey: calm, not the alarm red of a failure

        german = browser.new_context(locale="de-DE")
        try:
            page = german.new_page()
            log_in(page, laptop.url, "tom", PASSWORD)
            expect(page.locator("#sync-status")).to_have_text(
                "offline – 4 Runden warten (älteste seit 14 min)")
            assert badge_colour(page) == (red, green, blue)
        finally:
            german.close()
    finally:
        scheduler.stop(laptop.app)
        db.close()


def test_the_page_says_when_the_laptop_app_stops_answering(context, laptop):
    page = open_lap_page(context, laptop)
    typed(page, "1")
    feedback_is(page, "good", "Anna Berg")
    laptop.stop()
    stopped = time.monotonic()
    badge = page.locator("#sync-status")
    expect(badge).to_have_text("The laptop app is not answering", timeout=5_000)
    expect(badge).to_have_class(re.compile(r"\bsync-bad\b"))
    feedback_is(page, "bad", "The laptop app is not answering")
    assert time.monotonic() - stopped < 5


# ---- 5. central's decisions --------------------------------------------------------

def test_a_void_decided_at_central_shows_who_and_why_and_has_no_restore(context, laptop):
    page = open_lap_page(context, laptop)
    for number in ("1", "2"):
        typed(page, number)
        feedback_is(page, "good", "Ben Cruz" if number == "2" else "Anna Berg")
    rows = page.locator("#recent tbody tr")
    ben, anna = rows.nth(0), rows.nth(1)
    anna.get_by_role("button", name="Void").click()  # the teacher's own void
    page.wait_for_timeout(400)                       # read before the second press
    anna.get_by_role("button", name="Really void?").click()
    expect(anna.get_by_role("button", name="Restore")).to_be_visible()
    db = connect(laptop.path)
    with transaction(db):  # as a pulled void of central's admin leaves it
        lap_id = ben.get_attribute("data-lap")
        db.execute("UPDATE lap SET voided_at = 1, void_reason = 'double count', void_hlc = '1' "
                   "WHERE id = ?", [lap_id])
        db.execute("INSERT INTO central_decision (entity, entity_id, action, by_name, reason, at) "
                   "VALUES ('lap', ?, 'void_lap', 'Petra Admin', 'double count', 1)", [lap_id])
    db.close()
    page.reload()
    expect(ben).to_have_class(re.compile(r"\bvoided\b"))
    expect(ben).to_contain_text("voided at central by Petra Admin: double count")
    expect(ben.get_by_role("button")).to_have_count(0)
    anna.get_by_role("button", name="Restore").click()
    expect(anna).not_to_have_class(re.compile(r"\bvoided\b"))
    assert laptop.laps() == ["1"]


def renumbered_at_central(laptop: Laptop, runner_id: str, number: int, was: int) -> None:
    """Apply central's renumber of RUNNER_ID from WAS to NUMBER, as a pull brings it."""
    db = connect(laptop.path)
    try:
        runner = db.execute("SELECT name, class, grade FROM runner WHERE id = ?", [runner_id]).fetchone()
        with transaction(db):
            apply_change(db, {"entity": "runner", "id": runner_id, "data": {
                "id": runner_id, "start_number": number, "name": runner[0], "class": runner[1],
                "grade": runner[2], "hlc": "2900000000000.0000", "origin": "centralnodeeeeeeeeeee",
                "decision": {"action": "renumber", "by_name": "ada", "reason": "clash",
                             "at": 1, "was_start_number": was}}}, device_id(db))
    finally:
        db.close()


def test_a_number_central_gave_another_runner_counts_for_its_holder_and_names_the_other(
        context, laptop):
    dora = clash(laptop)                       # 17: Cleo Dahl and Dora Eck
    renumbered_at_central(laptop, dora, 18, was=17)
    page = open_lap_page(context, laptop)
    typed(page, "17")                          # Dora may still wear 17
    feedback_is(page, "warn", "1 Cleo Dahl (17, 6b)")
    expect(page.locator("#feedback .renumber-note")).to_have_text(
        "Start number 17 was also Dora Eck's until central gave them number 18: "
        "if Dora Eck passed, void this lap and type 18.")
    assert tones(page) == ["warn"]
    typed(page, "18")
    feedback_is(page, "good", "1 Dora Eck (18, 6b)")
    expect(page.locator("#feedback .renumber-note")).to_have_count(0)
    assert laptop.lap_runner_ids() == [laptop.runners[17], dora]


def test_without_javascript_the_renumber_note_shows_in_german_at_390_px(browser, laptop):
    renumbered_at_central(laptop, clash(laptop), 18, was=17)
    context = browser.new_context(java_script_enabled=False, locale="de-DE",
                                  viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        log_in(page, laptop.url, "tom", PASSWORD, scripted=False)
        page.locator("#start_number").press_sequentially("17", delay=30)
        page.locator("#start_number").press("Enter")
        feedback = page.locator("#feedback.warn")
        expect(feedback).to_contain_text("Cleo Dahl (17, 6b)")
        expect(feedback.locator(".renumber-note")).to_have_text(
            "Startnummer 17 hatte auch Dora Eck, bis die Zentrale Dora Eck die Nummer 18 gab: "
            "Ist Dora Eck gelaufen, diese Runde streichen und 18 eingeben.")
        assert scroll_width(page) <= 390
        assert laptop.laps() == ["17"]
    finally:
        context.close()


# ---- a clock jump the laptop noticed ---------------------------------------------------

def test_a_clock_jump_is_shown_until_the_helper_presses_ok(context, laptop):
    page = open_lap_page(context, laptop)
    notice = page.locator("#clock-notice")
    expect(notice).to_be_hidden()
    db = connect(laptop.path)
    try:
        with transaction(db):  # as the clock watch keeps one (tests/laptop/test_clock_change.py)
            db.execute("INSERT INTO clock_jump (id, at, jump_ms, after_lap, after_seq) "
                       "VALUES (?, ?, -600000, 0, 0)", [new_id(), int(time.time() * 1000)])
        typed(page, "1")  # the status the lap's answer fetches brings the notice
        feedback_is(page, "good", "Anna Berg")
        expect(notice).to_contain_text("The laptop's clock was set back by 10 min")
        with page.expect_response(re.compile(r"/clock-jumps/seen$")) as seen:
            notice.get_by_role("button", name="OK").click()
        assert seen.value.status == 200
        expect(notice).to_be_hidden()
        expect(page.locator("#start_number")).to_be_focused()
        assert db.execute("SELECT shown_at IS NOT NULL FROM clock_jump").fetchone()[0] == 1
        with page.expect_response(re.compile(r"/sync/status$")):
            typed(page, "2")  # the next status: it stays away
        feedback_is(page, "good", "Ben Cruz")
        expect(notice).to_be_hidden()
        page.reload()
        expect(notice).to_be_hidden()
    finally:
        db.close()
