"""The lap page and the helper's login, in real Chromium (Playwright): a login lives 8 h after
the helper's last action, not 8 h after it was made; a held number typed too long ago says
that it counts when clicked; every row not counted can be removed, with a second press.

The real laptop app on its own SQLite file, served on loopback (test_lap_page.py's Laptop),
typed by the keyboard with a person's delays. An ended login, and the end of a login's
hours, are set in its user_session row, as the hours running out would leave it.
"""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from lapsync.devkit.lappage import log_in
from lapsync.laptop.auth import create_user
from lapsync.laptop.db import connect
from tests.conftest import PASSWORD
from tests.system.test_lap_page import (
    number_rows,
    AUDIO_SPY,
    Laptop,
    blank_page,
    clash,
    counted_then_warned,
    end_sessions,
    feedback_is,
    idle,
    lap_times,
    log_in_here,
    open_lap_page,
    read_then_enter,
    renumbered_at_central,
    scan,
    tones,
    typed,
)
from tests.web import scroll_width

KEPT_PAGE = {"init_script": AUDIO_SPY, "viewport": {"width": 1280, "height": 900}, "locale": "en-US"}
STORE = "() => JSON.parse(localStorage.getItem('lapsync.uncounted') || '[]').map(s => s.number)"
HELD = "#recent tbody tr.not-counted"


@pytest.fixture
def laptop(tmp_path, users_template):
    """A laptop with test_lap_page's roster and a 60 s minimum lap time."""
    made = Laptop(tmp_path / "laptop", users_template)
    yield made
    made.stop()


@pytest.fixture
def context(page):
    """The module's browser context, as new (tests/system/conftest.py)."""
    return page.context


def login_ends_in(laptop: Laptop, seconds: float) -> int:
    """Let every login on the laptop end SECONDS from now, as its 8 h running out; return the end."""
    end = int((time.time() + seconds) * 1000)
    db = connect(laptop.path)
    try:
        db.execute("UPDATE user_session SET valid_until = ?", [end])
    finally:
        db.close()
    return end


def login_end(laptop: Laptop) -> int:
    """Return the idle end of the laptop's one login."""
    db = connect(laptop.path)
    try:
        return db.execute("SELECT valid_until FROM user_session").fetchone()[0]
    finally:
        db.close()


def log_in_again(page) -> None:
    """Follow the message's "Log in" link and log in as tom there."""
    page.locator("#feedback").get_by_role("link", name="Log in").click()
    log_in_here(page)


def held_after_the_login_ended(page, laptop: Laptop, numbers: tuple[str, ...], enter=scan,
                               said: str = "Not counted") -> None:
    """End the laptop's logins, enter NUMBERS (scanned, or typed by hand) and see them refused."""
    end_sessions(laptop)
    for number in numbers:
        enter(page, number)
    feedback_is(page, "bad", f"{said}: {', '.join(numbers)}.")


# ---- a login lives 8 h after the helper's last action -------------------------------

def test_a_helper_who_goes_on_typing_is_not_logged_out_when_the_login_s_8_hours_are_over(
        context, laptop):
    page = open_lap_page(context, laptop)
    typed(page, "1")
    feedback_is(page, "good", "Anna Berg")
    login_ends_in(laptop, 6)                 # 8 h after the login, in 6 s: the helper types on
    typed(page, "2")
    feedback_is(page, "good", "Ben Cruz")
    page.wait_for_timeout(7_000)             # the login's first 8 h are over; the list polled
    typed(page, "3")
    feedback_is(page, "good", "Carl Dorn")
    expect(page.locator(HELD)).to_have_count(0)
    assert login_end(laptop) > (time.time() + 7.9 * 3600) * 1000   # 8 h after the lap
    login_ends_in(laptop, 6)                 # a page opened is an action too
    page.reload()
    page.locator("#lap-form[data-pending]").wait_for()
    page.wait_for_timeout(7_000)
    typed(page, "7")
    feedback_is(page, "good", "Dana Ek")
    idle(page)
    assert laptop.laps() == ["1", "2", "3", "7"]


def test_a_page_left_open_still_ends_its_login_its_poll_keeps_it_not_alive(context, laptop):
    page = open_lap_page(context, laptop)
    typed(page, "1")
    feedback_is(page, "good", "Anna Berg")
    end = login_ends_in(laptop, 3)           # nobody types: only the page's polls
    feedback_is(page, "bad", "Log in again before the next number")
    assert login_end(laptop) == end
    typed(page, "2")
    feedback_is(page, "bad", "Not counted: 2.")
    assert laptop.laps() == ["1"]


# ---- a held number typed too long ago to count at the time it was typed -------------

def test_a_held_number_typed_a_day_ago_says_it_counts_when_clicked_and_that_it_did(
        browser, laptop):
    context = browser.new_context(locale="en-US", viewport={"width": 390, "height": 844})
    try:
        context.clock.install()              # the page's clock: the helper's laptop lid
        page = open_lap_page(context, laptop)
        typed(page, "1")
        feedback_is(page, "good", "Anna Berg")
        held_after_the_login_ended(page, laptop, ("2",), enter=typed)
        log_in_again(page)
        row = page.locator(HELD)
        expect(row).to_contain_text("Not counted: the login ended")
        expect(row.locator(".too-old")).to_have_count(0)
        # The lid closed, opened the next day (a fetch in flight then may show "not answering"
        # for a moment: the feedback is not looked at until a button is pressed).
        context.clock.fast_forward("23:30:00")
        expect(row.locator(".too-old")).to_contain_text(
            re.compile(r"^Typed \w{3}, \w{3} \d+ \d\d:\d\d:\d\d: too long ago to count at the time "
                       r"it was typed\. Its button counts it at the time of the click\.$"))
        page.reload()
        page.locator("#lap-form[data-pending]").wait_for()
        expect(row.locator(".too-old")).to_contain_text("too long ago")  # kept, and says so
        assert scroll_width(page) <= 390
        clicked = time.time() * 1000
        row.get_by_role("button", name="Count 2").click()
        feedback_is(page, "good", "Ben Cruz (2, 5a)")
        expect(page.locator("#feedback .late-note")).to_have_text(re.compile(
            r"^Counted at the time of the click: it was typed \w{3}, \w{3} \d+ \d\d:\d\d:\d\d, "
            r"too long ago to count at that time\.$"))
        expect(row).to_have_count(0)
        idle(page)
        assert laptop.laps() == ["1", "2"]
        assert lap_times(laptop)[-1] >= clicked - 1000   # the app's time of the click
    finally:
        context.close()


# ---- every row not counted can be removed --------------------------------------------

def test_a_held_number_central_gave_away_is_removed_with_a_second_press(context, laptop):
    page = open_lap_page(context, laptop)
    held_after_the_login_ended(page, laptop, ("7", "2"), enter=typed)
    renumbered_at_central(laptop, laptop.runners[7], 8, was=7)   # 7 is nobody's now
    log_in_again(page)
    held = page.locator(HELD)
    seven = number_rows(held, "7")
    seven.get_by_role("button", name="Count 7").click()
    feedback_is(page, "bad", "No runner has start number 7. Nothing was recorded.")
    expect(seven).to_have_count(1)           # refused: listed as before, still kept
    assert page.evaluate(STORE) == ["2", "7"] or page.evaluate(STORE) == ["7", "2"]

    remove = seven.get_by_role("button", name="Remove")
    remove.dblclick(delay=0)                 # a finger's bounce: the second press too soon
    expect(seven.locator("button.remove-row")).to_have_text("Really remove?")
    scan(page, "1")                          # the next runner: it disarms, counts, removes nothing
    feedback_is(page, "good", "Anna Berg")
    expect(seven.locator("button.remove-row")).to_have_text("Remove")
    seven.get_by_role("button", name="Remove").click()
    expect(seven.locator("button.remove-row")).to_have_text("Really remove?")
    page.wait_for_timeout(400)               # read before the second press
    seven.get_by_role("button", name="Really remove?").click()
    feedback_is(page, "warn", "Removed from the list: 7 was not counted.")
    assert tones(page)[-1] == "warn"
    expect(seven).to_have_count(0)
    expect(page.locator("#start_number")).to_be_focused()
    assert page.evaluate(STORE) == ["2"]
    page.reload()
    page.locator("#lap-form[data-pending]").wait_for()
    expect(held.locator("td:nth-child(2)")).to_have_text(["2"])  # gone for good; 2 stays
    idle(page)
    assert laptop.laps() == ["1"]


def test_every_kind_of_row_not_counted_can_be_removed(context, laptop_with_delay):
    laptop = laptop_with_delay
    dora = clash(laptop)                     # 17: Cleo Dahl and Dora Eck
    assert dora
    page = open_lap_page(context, laptop)
    typed(page, "1")
    feedback_is(page, "good", "Anna Berg")
    for number in ("1", "99", "17", "3"):    # a burst: answers come after it
        scan(page, number)
    idle(page)
    feedback_is(page, "good", "Carl Dorn")
    rows = page.locator(HELD)
    expect(rows).to_have_count(3)            # too soon, an unknown number, a shared number
    for _ in range(3):
        row = rows.first
        row.get_by_role("button", name="Remove").click()
        page.wait_for_timeout(400)
        row.get_by_role("button", name="Really remove?").click()
        feedback_is(page, "warn", "Removed from the list")
    expect(rows).to_have_count(0)
    assert page.evaluate(STORE) == []
    page.reload()
    page.locator("#lap-form[data-pending]").wait_for()
    expect(rows).to_have_count(0)
    assert laptop.laps() == ["1", "3"]


@pytest.fixture
def laptop_with_delay(tmp_path, users_template):
    """A laptop whose lap answers come up to 400 ms late (after a scanner's burst)."""
    made = Laptop(tmp_path / "slow", users_template, delay_ms=400)
    yield made
    made.stop()


def test_a_held_row_with_remove_fits_390_px_in_german(browser, laptop):
    """Needs the German translations of the new texts (Entfernen, Wirklich entfernen?)."""
    context = browser.new_context(locale="de-DE", viewport={"width": 390, "height": 844})
    try:
        context.clock.install()
        page = open_lap_page(context, laptop)
        end_sessions(laptop)
        typed(page, "37")
        row = page.locator(HELD)
        expect(row).to_contain_text("Nicht gezählt: die Anmeldung ist abgelaufen")
        context.clock.fast_forward("23:30:00")
        expect(row.locator(".too-old")).to_contain_text("zu lange her")
        row.get_by_role("button", name="Entfernen").click()
        expect(row.locator("button.remove-row")).to_have_text("Wirklich entfernen?")
        assert scroll_width(page) <= 390
    finally:
        context.close()


# ---- a number on screen, not answered yet, is kept ------------------------------------

RUNNER_BUTTONS = ["Count for Cleo Dahl", "Count for Dora Eck", "Remove"]


def test_a_shared_number_s_choice_left_unanswered_is_listed_after_a_reload(browser, laptop):
    dora = clash(laptop)                     # 17: Cleo Dahl and Dora Eck
    context = browser.new_context(locale="en-US", viewport={"width": 390, "height": 844})
    try:
        page = open_lap_page(context, laptop)
        scan(page, "17")
        feedback_is(page, "warn", "Type 1–2 and Enter")
        held = page.locator(HELD)
        expect(held).to_have_count(0)        # on screen: the panel asks, no row yet
        page.reload()                        # the helper was looking at the runners
        page.locator("#lap-form[data-pending]").wait_for()
        expect(held).to_contain_text("Not counted: start number 17 belongs to 2 runners")
        expect(held.get_by_role("button")).to_have_text(RUNNER_BUTTONS)
        assert scroll_width(page) <= 390
        held.get_by_role("button", name="Count for Dora Eck").click()
        feedback_is(page, "good", "Dora Eck (17, 6b)")
        expect(held).to_have_count(0)
        assert page.evaluate(STORE) == []

        held_after_the_login_ended(page, laptop, ("17",))  # counted from its row after a login
        log_in_again(page)
        held.get_by_role("button", name="Count 17").click()
        feedback_is(page, "warn", "Type 1–2 and Enter")       # asked which runner
        page.reload()                        # before a digit is typed
        page.locator("#lap-form[data-pending]").wait_for()
        expect(held.get_by_role("button")).to_have_text(RUNNER_BUTTONS)
        held.get_by_role("button", name="Count for Cleo Dahl").click()
        feedback_is(page, "good", "Cleo Dahl (17, 6b)")
        expect(held).to_have_count(0)
        idle(page)
        assert laptop.lap_runner_ids() == [dora, laptop.runners[17]]
    finally:
        context.close()


def test_a_choice_on_screen_when_the_login_ends_is_listed_and_named_in_german(browser, laptop):
    dora = clash(laptop)
    context = browser.new_context(locale="de-DE", viewport={"width": 768, "height": 1024})
    try:
        page = open_lap_page(context, laptop)
        typed(page, "17")
        feedback_is(page, "warn", "1–2")
        end_sessions(laptop)                 # the login ends before the helper answers
        feedback_is(page, "bad", "Nicht gezählt: 17.")         # the list's poll noticed
        expect(page.locator("#feedback")).to_contain_text("Ihre Anmeldung ist abgelaufen.")
        held = page.locator(HELD)
        expect(held).to_contain_text("Nicht gezählt: Startnummer 17 gehört 2 Läufern")
        expect(held.get_by_role("button")).to_have_text(
            ["Für Cleo Dahl zählen", "Für Dora Eck zählen", "Entfernen"])
        assert page.evaluate(STORE) == ["17"]
        page.keyboard.press("Enter")         # nothing left on screen to count by Enter
        page.locator("#feedback").get_by_role("link", name="Anmelden").click()
        log_in_here(page)
        held.get_by_role("button", name="Für Dora Eck zählen").click()
        feedback_is(page, "good", "Dora Eck (17, 6b)")
        assert scroll_width(page) <= 768
        idle(page)
        assert laptop.lap_runner_ids() == [dora]
    finally:
        context.close()


def test_a_row_s_count_still_on_its_way_at_a_reload_stays_listed_and_counts_once(context,
                                                                                  laptop):
    page = open_lap_page(context, laptop)
    held_after_the_login_ended(page, laptop, ("2", "3"))
    log_in_again(page)
    held = page.locator(HELD)
    numbers = held.locator("td:nth-child(2)")
    posts = []
    # 3's post is recorded by the app; its answer never comes back to the page.
    page.route("**/laps", lambda route: posts.append(route.fetch()))
    held.get_by_role("button", name="Count 3").click()
    expect(numbers).to_have_text(["2"])
    for _ in range(50):
        if posts:
            break
        page.wait_for_timeout(100)
    assert laptop.laps() == ["3"]
    page.reload()                            # before the answer
    page.locator("#lap-form[data-pending]").wait_for()
    page.unroute("**/laps")
    expect(numbers).to_have_text(["3", "2"])
    held.get_by_role("button", name="Count 3").click()
    feedback_is(page, "good", "Carl Dorn (3, 6b) – already recorded")   # its key: once
    held.get_by_role("button", name="Count 2").click()
    feedback_is(page, "good", "Ben Cruz (2, 5a)")
    expect(held).to_have_count(0)
    assert page.evaluate(STORE) == []
    idle(page)
    assert laptop.laps() == ["3", "2"]


# ---- a bib scanned on the login page is kept for the lap page ---------------------------

def scanner(page, number: str) -> None:
    """Type like a USB barcode scanner: digits and Enter, 10 ms a key in one burst.

    The keys carry their own times, as the OS stamps a scanner's: sent one by one by
    Playwright they could reach the page more than 50 ms apart on a busy machine.
    """
    cdp = page.context.new_cdp_session(page)
    start = time.time()
    for n, key in enumerate([*number, "Enter"]):
        code, text, vk = ("Enter", "\r", 13) if key == "Enter" else (f"Digit{key}", key, ord(key))
        event = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "timestamp": start + n / 100}
        cdp.send("Input.dispatchKeyEvent", {**event, "type": "keyDown", "text": text})
        cdp.send("Input.dispatchKeyEvent", {**event, "type": "keyUp", "timestamp": start + n / 100 + .002})
    cdp.detach()


def by_hand(page, text: str) -> None:
    """Type text as a person does, 100-150 ms a key."""
    page.keyboard.type(text, delay=120)


def test_a_bib_scanned_on_the_login_page_is_kept_and_counts_after_the_login(browser, laptop):
    context = browser.new_context(locale="en-US", viewport={"width": 390, "height": 844})
    try:
        page = open_lap_page(context, laptop)
        typed(page, "1")
        feedback_is(page, "good", "Anna Berg")
        end_sessions(laptop)
        feedback_is(page, "bad", "Log in again before the next number")
        page.locator("#feedback").get_by_role("link", name="Log in").click()
        name = page.locator("input[name=name]")
        expect(name).to_be_focused()
        scanner(page, "7")                   # a runner passes
        kept = page.locator("#kept-numbers")
        expect(kept).to_have_text("Number 7 is kept: log in to count it.")
        expect(name).to_be_focused()
        expect(name).to_have_value("")
        by_hand(page, "to")
        scanner(page, "17")                  # another, while the name is half typed
        expect(kept).to_have_text("Numbers 7, 17 are kept: log in to count them.")
        expect(name).to_be_focused()
        expect(name).to_have_value("to")
        assert scroll_width(page) <= 390
        by_hand(page, "m")
        page.keyboard.press("Tab")
        by_hand(page, PASSWORD)
        logged_in = time.time() * 1000
        page.keyboard.press("Enter")
        page.locator("#lap-form[data-pending]").wait_for()
        held = page.locator(HELD)
        expect(held.locator("td:nth-child(2)")).to_have_text(["17", "7"])
        expect(held.first).to_contain_text("Not counted: scanned on the login page")
        feedback_is(page, "warn", "Typed before and not counted yet: 7, 17.")
        held.get_by_role("button", name="Count 7").click()
        feedback_is(page, "good", "Dana Ek (7, 6b)")
        held.get_by_role("button", name="Count 17").click()
        feedback_is(page, "good", "Cleo Dahl (17, 6b)")
        expect(held).to_have_count(0)
        idle(page)
        assert laptop.laps() == ["1", "7", "17"]
        assert all(at < logged_in for at in lap_times(laptop)[1:])   # at the time of the scan
    finally:
        context.close()


def test_a_user_name_of_digits_typed_by_hand_logs_in_as_before(context, laptop):
    db = connect(laptop.path)
    try:
        create_user(db, "4711", "teacher", PASSWORD)
    finally:
        db.close()
    page = blank_page(context)
    page.goto(f"{laptop.url}/login")
    name, password = page.locator("input[name=name]"), page.locator("input[name=password]")
    expect(name).to_be_focused()
    by_hand(page, "4711")
    page.keyboard.press("Enter")             # the form asks for the password, as ever
    expect(password).to_be_focused()
    expect(name).to_have_value("4711")
    expect(page.locator("#kept-numbers")).to_have_count(0)
    by_hand(page, PASSWORD)
    page.keyboard.press("Enter")
    page.locator("#lap-form[data-pending]").wait_for()
    expect(page.locator(".who")).to_contain_text("4711")
    assert page.evaluate(STORE) == []


def test_a_bib_scanned_on_the_login_page_is_named_in_german_at_768_px(browser, laptop):
    """Needs the German translations of the login page's new texts."""
    context = browser.new_context(locale="de-DE", viewport={"width": 768, "height": 1024})
    try:
        page = context.new_page()
        page.goto(f"{laptop.url}/login?next=%2F")
        name = page.locator("input[name=name]")
        expect(name).to_be_focused()
        scanner(page, "37")
        expect(page.locator("#kept-numbers")).to_have_text(
            "Nummer 37 ist vorgemerkt: Melden Sie sich an, um sie zu zählen.")
        expect(name).to_be_focused()
        expect(name).to_have_value("")
        log_in_here(page)
        held = page.locator(HELD)
        expect(held).to_contain_text("Nicht gezählt: auf der Anmeldeseite gescannt")
        held.get_by_role("button", name="37 zählen").click()
        feedback_is(page, "good", "Emil Fox (37, 7c)")
        assert scroll_width(page) <= 768
    finally:
        context.close()


# ---- while numbers are held --------------------------------------------------------------

def remove_first_row(page) -> None:
    """Remove the list's first row not counted: a press, a look, the second press."""
    row = page.locator(HELD).first
    row.get_by_role("button", name="Remove").click()
    expect(row.locator("button.remove-row")).to_have_text("Really remove?")
    page.wait_for_timeout(400)
    row.get_by_role("button", name="Really remove?").click()


def test_a_row_removed_after_the_login_ended_leaves_the_login_message_on_screen(context, laptop):
    page = open_lap_page(context, laptop)
    held_after_the_login_ended(page, laptop, ("2", "3", "7"))
    held = page.locator(HELD)
    expect(held.locator("td:nth-child(2)")).to_have_text(["7", "3", "2"])
    remove_first_row(page)
    feedback_is(page, "warn", "Removed from the list: 7 was not counted.")
    feedback = page.locator("#feedback")
    expect(feedback).to_contain_text("Your login has ended.")
    page.wait_for_timeout(3_500)             # the list's poll found the login ended again
    expect(feedback).to_contain_text("Removed from the list: 7 was not counted.")
    feedback.get_by_role("link", name="Log in").click()
    log_in_here(page)
    expect(held.locator("td:nth-child(2)")).to_have_text(["3", "2"])


def test_a_held_number_removed_is_no_longer_named_in_german_at_390_px(browser, laptop):
    context = browser.new_context(locale="de-DE", viewport={"width": 390, "height": 844})
    try:
        page = open_lap_page(context, laptop)
        held_after_the_login_ended(page, laptop, ("2", "3", "7"), said="Nicht gezählt")
        row = page.locator(HELD).first
        row.get_by_role("button", name="Entfernen").click()
        page.wait_for_timeout(400)
        row.get_by_role("button", name="Wirklich entfernen?").click()
        feedback_is(page, "warn", "Aus der Liste entfernt: 7 wurde nicht gezählt. "
                                  "Nicht gezählt: 2, 3. Sie stehen unten in der Liste")
        scan(page, "1")
        feedback_is(page, "bad", "Nicht gezählt: 2, 3, 1. Sie stehen unten in der Liste")
        expect(page.locator(HELD).locator("td:nth-child(2)")).to_have_text(["1", "3", "2"])
        assert scroll_width(page) <= 390
    finally:
        context.close()


def test_after_a_new_login_every_number_not_counted_is_named_in_german_at_768_px(browser,
                                                                                laptop):
    clash(laptop)                            # 17: Cleo Dahl and Dora Eck
    context = browser.new_context(locale="de-DE", viewport={"width": 768, "height": 1024})
    try:
        page = open_lap_page(context, laptop)
        typed(page, "1")
        feedback_is(page, "good", "Anna Berg")
        typed(page, "1")
        feedback_is(page, "warn", "Anna Berg (1)")
        typed(page, "17")                    # the warning typed over: a row
        feedback_is(page, "warn", "1–2")
        typed(page, "3")                     # the choice typed over: a row
        feedback_is(page, "good", "Carl Dorn")
        held_after_the_login_ended(page, laptop, ("2",), said="Nicht gezählt")
        page.locator("#feedback").get_by_role("link", name="Anmelden").click()
        log_in_here(page)
        feedback_is(page, "warn", "Vorher getippt und noch nicht gezählt: 1, 17, 2. Zählen Sie sie "
                                  "mit ihren Knöpfen in der Liste")
        expect(page.locator(HELD).locator("td:nth-child(2)")).to_have_text(["2", "17", "1"])
    finally:
        context.close()


# ---- a lone Enter is for the number field ---------------------------------------------

def test_after_a_first_remove_or_void_press_or_sound_a_lone_enter_counts_the_warning(context,
                                                                                     laptop):
    page = open_lap_page(context, laptop)
    field, toggle = page.locator("#start_number"), page.locator("#sound-toggle")
    counted_then_warned(page, "1", "Anna Berg")
    typed(page, "2")                         # the warning typed over: a row with Remove
    feedback_is(page, "good", "Ben Cruz")
    typed(page, "2")
    feedback_is(page, "warn", "Ben Cruz (2) was counted")
    row = page.locator(HELD)
    row.get_by_role("button", name="Remove").click()      # tapped by mistake
    expect(row.locator("button.remove-row")).to_have_text("Really remove?")
    expect(field).to_be_focused()
    read_then_enter(page)                    # "Enter counts it", as the warning says
    feedback_is(page, "good", "Ben Cruz")
    expect(row).to_have_count(1)             # not removed

    typed(page, "2")
    feedback_is(page, "warn", "Ben Cruz (2) was counted")
    lap = page.locator("#recent tbody tr[data-lap]").first
    lap.get_by_role("button", name="Void").click()
    expect(lap.locator("button")).to_have_text("Really void?")
    expect(field).to_be_focused()
    read_then_enter(page)
    feedback_is(page, "good", "Ben Cruz")

    typed(page, "2")
    feedback_is(page, "warn", "Ben Cruz (2) was counted")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(field).to_be_focused()
    read_then_enter(page)
    feedback_is(page, "good", "Ben Cruz")
    expect(toggle).to_have_attribute("aria-pressed", "false")   # not toggled back
    idle(page)
    assert laptop.laps() == ["1", "2", "2", "2", "2"]


def test_a_held_enter_on_remove_arms_it_and_only_a_fresh_press_removes(context, laptop):
    page = open_lap_page(context, laptop)
    counted_then_warned(page, "1", "Anna Berg")
    typed(page, "2")
    feedback_is(page, "good", "Ben Cruz")
    row = page.locator(HELD)
    remove = row.locator("button.remove-row")
    remove.focus()                           # Tab, Tab, ... as by keyboard
    page.keyboard.down("Enter")              # arms it
    for _ in range(8):                       # the key held: the keyboard repeats it, 0.5 s
        page.wait_for_timeout(60)
        page.keyboard.down("Enter")
    page.keyboard.up("Enter")
    expect(remove).to_have_text("Really remove?")
    expect(remove).to_be_focused()           # by keyboard: the second press comes here
    expect(row).to_have_count(1)
    page.keyboard.press("Enter")             # a fresh press
    feedback_is(page, "warn", "Removed from the list: 1 was not counted.")
    expect(row).to_have_count(0)
    expect(page.locator("#start_number")).to_be_focused()


@pytest.mark.parametrize(("locale", "width", "why"), [
    ("en-US", 390, "Not counted: this page's login changed in another window"),
    # Needs the German translation of the new row text.
    ("de-DE", 768, "Nicht gezählt: Die Anmeldung dieser Seite hat sich in einem anderen Fenster "
                   "geändert"),
])
def test_a_number_held_after_a_login_in_another_window_says_so_in_its_row(browser, laptop,
                                                                          locale, width, why):
    context = browser.new_context(locale=locale, viewport={"width": width, "height": 900})
    try:
        page = open_lap_page(context, laptop)
        other = context.new_page()           # the same browser logs in again elsewhere
        log_in(other, laptop.url, "tom", PASSWORD)
        other.close()
        typed(page, "2")
        feedback_is(page, "bad", re.compile(r"(Not counted|Nicht gezählt): 2\."))
        held = page.locator(HELD)
        expect(held.locator(".why")).to_have_text(why)
        assert scroll_width(page) <= width
        assert laptop.laps() == []
    finally:
        context.close()


def test_a_row_removed_or_counted_in_one_tab_leaves_the_other_tabs(context, laptop):
    page = open_lap_page(context, laptop)
    held_after_the_login_ended(page, laptop, ("2", "3"))
    log_in_again(page)
    other = context.new_page()               # a second tab of the lap page
    other.goto(f"{laptop.url}/")
    other.locator("#lap-form[data-pending]").wait_for()
    numbers = page.locator(HELD).locator("td:nth-child(2)")
    expect(other.locator(HELD).locator("td:nth-child(2)")).to_have_text(["3", "2"])
    expect(numbers).to_have_text(["3", "2"])
    remove_first_row(other)                  # 3 is wrong: removed in the other tab
    feedback_is(other, "warn", "Removed from the list: 3 was not counted.")
    expect(numbers).to_have_text(["2"])      # and gone from this one, unreloaded
    other.locator(HELD).get_by_role("button", name="Count 2").click()
    feedback_is(other, "good", "Ben Cruz (2, 5a)")
    expect(numbers).to_have_count(0)
    idle(other)
    assert laptop.laps() == ["2"]


# ---- the list at a tablet's width -------------------------------------------------------

BROKEN_WORDS = """() => [...document.querySelectorAll('#recent tbody td:nth-child(3)')].flatMap(td => {
  const node = td.firstChild, broken = [];
  if (!node || node.nodeType !== Node.TEXT_NODE) return broken;
  let at = 0;
  for (const word of node.textContent.split(' ')) {
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + word.length);
    if (word && range.getClientRects().length > 1) broken.push(word);
    at += word.length + 1;
  }
  return broken;
})"""


@pytest.fixture
def laptop_with_longer_names(tmp_path, users_template):
    """A laptop whose runners have the names of a real class list."""
    made = Laptop(tmp_path / "names", users_template, roster=[
        (1, "Anna Bauer", "5a"), (3, "Clara Schmidt", "5b"), (6, "Felix Hoffmann", "6b"),
        (9, "Jonas Richter", "7b")])
    yield made
    made.stop()


def test_at_768_px_the_list_breaks_no_name_mid_word_in_german(browser, laptop_with_longer_names):
    laptop = laptop_with_longer_names
    context = browser.new_context(locale="de-DE", viewport={"width": 768, "height": 1024})
    try:
        page = open_lap_page(context, laptop)
        for number in ("6", "9", "3", "1"):
            typed(page, number)
            feedback_is(page, "good", "(" + number + ",")
        typed(page, "1")                     # too soon, typed over: a row with its buttons
        feedback_is(page, "warn", "Anna Bauer (1)")
        typed(page, "3")
        feedback_is(page, "warn", "Clara Schmidt (3)")
        expect(page.locator(HELD)).to_have_count(1)
        expect(page.locator("#recent tbody td:nth-child(3)").last).to_have_text("Felix Hoffmann")
        assert page.evaluate(BROKEN_WORDS) == []
        assert scroll_width(page) <= 768
    finally:
        context.close()
