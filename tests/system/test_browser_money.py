"""Typing sponsor cards in real Chromium, by keyboard only, at 390 px (German) and 768 px (English).

Central runs on a loopback port on the test's fresh PostgreSQL; the organiser logs in through
the form and types as a person does: the start number with delays, Enter to the runner's
first sponsor line, each line's fields with Enter, r/k/f for the kind, Enter on an empty
name to save the card and go to the next one. What is stored is read from the database.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from sync.sponsors.amounts import pledge_amounts
from sync.sponsors.money_exports import COLUMNS
from sync.sponsors.payments import add_payment
from sync.sponsors.pledges import add_pledge
from sync.settings import set_setting
from tests.central.test_money_exports import FIGURES, PAGE_MONEY, number
from tests.central.test_results import run
from tests.pg import CENTRAL_PASSWORD
from tests.web import kept_pages_by_size, served

SIZES = {"390x844": (390, 844, "de-DE"), "768x1024": (768, 1024, "en-US")}
TEXT = {
    "de-DE": {"saved": "2 Zusagen für Cleo Dahl (6b) gespeichert.", "unknown": "Kein Läufer hat die Startnummer 99.",
              "bad_amount": "Der Betrag muss über 0 liegen"},
    "en-US": {"saved": "Saved 2 pledges for Cleo Dahl (6b).", "unknown": "No runner has start number 99.",
              "bad_amount": "The amount must be above 0"},
}


@pytest.fixture
def central(central_app, central_db, central_users, device_token):
    """Central served on loopback with three runners with laps and 400 m per lap."""
    set_setting(central_db, "metres_per_lap", 400)
    ids = run(central_db, device_token, [(1, "Anna Berg", "5a", 10), (2, "Ben Cruz", "5a", 4),
                                         (17, "Cleo Dahl", "6b", 7)])
    with served(central_app) as url:
        yield url, ids


@pytest.fixture(scope="module")
def kept_pages(browser):
    """One kept context and page per size, made on first use (see tests.web.KeptPage)."""
    yield from kept_pages_by_size(browser, SIZES)


@pytest.fixture(params=SIZES)
def page(request, kept_pages, central):
    """A logged-in admin page at one size, in that size's language, on the card entry page."""
    kept = kept_pages(request.param)
    locale = SIZES[request.param][2]
    page = kept.page
    page.goto(f"{central[0]}/login")
    page.locator("input[name=name]").press_sequentially("ada", delay=5)
    page.locator("input[name=password]").fill(CENTRAL_PASSWORD)
    page.locator("input[name=password]").press("Enter")
    expect(page).not_to_have_url(re.compile(r"/login"))
    page.goto(f"{central[0]}/sponsors/entry")
    # A person types once the cursor is in the field; Chromium may autofocus after "load".
    expect(page.locator("#start-number")).to_be_focused()
    page.text = TEXT[locale]
    yield page
    kept.tidy()


def type_line(page, *fields: str) -> None:
    """Type one sponsor line into the focused field on: each field, then Enter."""
    for text in fields:
        if text:
            page.keyboard.type(text, delay=15)
        page.keyboard.press("Enter")


def test_cards_are_typed_by_keyboard_alone(page, central, central_db):
    url, ids = central
    number = page.locator("#start-number")
    page.keyboard.type("17", delay=80)
    expect(page.locator("#runner-shown")).to_have_text("17 – Cleo Dahl (6b)")
    page.keyboard.press("Enter")
    expect(page.locator("[name=sponsor_name_0]")).to_be_focused()
    type_line(page, "Oma Berg")
    expect(page.locator("[name=kind_0]")).to_be_focused()
    type_line(page, "r", "0,50", "3", "oma@example.org")
    expect(page.locator("[name=sponsor_name_1]")).to_be_focused()
    type_line(page, "Firma Hill", "f", "20", "", "")
    expect(page.locator("[name=sponsor_name_2]")).to_be_focused()
    page.keyboard.press("Enter")                               # an empty name: save, next card
    expect(page.locator("#entry-status")).to_have_text(page.text["saved"])
    expect(number).to_be_focused()
    expect(number).to_have_value("")
    expect(page.locator("[name=sponsor_name_0]")).to_have_value("")
    # The next card: more lines than the page showed at first, added by Enter.
    page.keyboard.type("1", delay=80)
    expect(page.locator("#runner-shown")).to_have_text("1 – Anna Berg (5a)")
    page.keyboard.press("Enter")
    for index in range(6):
        type_line(page, f"Sponsor {index}", "k", "1,25", "", "")
    expect(page.locator("[name=sponsor_name_6]")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#entry-status")).to_contain_text("Anna Berg")
    stored = [(r["start_number"], r["sponsor_name"], r["kind"], r["rate_cents"], r["cap_cents"],
               r["email"], r["amount_cents"]) for r in pledge_amounts(central_db)]
    assert stored[-2:] == [(17, "Firma Hill", "fixed", 2000, None, None, 2000),
                           (17, "Oma Berg", "per_lap", 50, 300, "oma@example.org", 300)]
    assert sorted(stored[:-2]) == [(1, f"Sponsor {i}", "per_km", 125, None, None, 500)
                                   for i in range(6)]                  # 4 km x 1.25


def test_a_bad_line_saves_nothing_until_it_is_right(page, central, central_db):
    number = page.locator("#start-number")
    page.keyboard.type("99", delay=80)
    expect(page.locator("#runner-error")).to_contain_text(page.text["unknown"])
    page.keyboard.press("Enter")
    expect(number).to_be_focused()                             # no runner: stays on the number
    number.press("Backspace")
    number.press("Backspace")
    page.keyboard.type("2", delay=80)
    expect(page.locator("#runner-shown")).to_have_text("2 – Ben Cruz (5a)")
    expect(page.locator("#runner-error")).to_be_hidden()
    page.keyboard.press("Enter")
    type_line(page, "Opa", "r", "1", "", "")
    type_line(page, "Tante", "r", "zwei", "", "")
    page.keyboard.press("Enter")
    amount = page.locator("[name=rate_cents_1]")
    expect(amount).to_be_focused()                             # the bad field, marked
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".pledge-line[data-line='1'] .line-errors")).to_contain_text(page.text["bad_amount"])
    assert pledge_amounts(central_db) == []
    page.keyboard.press("Control+A")
    page.keyboard.type("2", delay=15)
    page.keyboard.press("Enter")                               # to the cap
    page.keyboard.press("Enter")                               # to the e-mail
    page.keyboard.press("Enter")                               # to the next line's empty name
    page.keyboard.press("Enter")                               # save
    expect(page.locator("#entry-status")).to_contain_text("Ben Cruz")
    assert [(r["sponsor_name"], r["amount_cents"]) for r in pledge_amounts(central_db)] == [
        ("Opa", 400), ("Tante", 800)]


def test_the_runner_shown_is_the_number_typed_last(page, central):
    """Answers to earlier numbers never replace the runner of the number in the field."""
    for text in ("1", "17", "2"):
        page.locator("#start-number").fill("")
        page.keyboard.type(text, delay=0)
    expect(page.locator("#runner-shown")).to_have_text("2 – Ben Cruz (5a)")
    page.wait_for_timeout(300)
    expect(page.locator("#runner-shown")).to_have_text("2 – Ben Cruz (5a)")


def test_an_enter_on_an_unknown_number_does_not_carry_over_to_the_next(page, central):
    """The lookup that Enter on 99 started answers late, after 2 was typed: the cursor stays."""
    number = page.locator("#start-number")
    # The lookup typing started has answered before Enter: Chromium joins a request for the
    # same URL to one still on its way, which the route below would then never see.
    with page.expect_response(re.compile(r"number=99$")):
        page.keyboard.type("99", delay=40)
    expect(page.locator("#runner-error")).to_contain_text(page.text["unknown"])
    held = []
    page.route(re.compile(r"number=99$"), lambda route: held.append(route))
    page.keyboard.press("Enter")                               # looks 99 up again: held
    for _ in range(250):
        if held:
            break
        page.wait_for_timeout(20)
    assert held, "Enter did not look the number up again"
    number.press("Backspace")
    number.press("Backspace")
    page.keyboard.type("2", delay=40)
    expect(page.locator("#runner-shown")).to_have_text("2 – Ben Cruz (5a)")
    held[0].continue_()
    page.wait_for_timeout(200)
    expect(number).to_be_focused()                             # not moved to a sponsor line
    page.keyboard.press("Enter")
    expect(page.locator("[name=sponsor_name_0]")).to_be_focused()


def test_the_pledge_form_gives_a_phone_the_number_keys_and_keeps_the_name_short(page, central):
    url, _ = central
    page.goto(f"{url}/sponsors/new")
    number = page.locator("#start_number")
    expect(number).to_be_focused()
    expect(number).to_have_attribute("inputmode", "numeric")   # a phone shows its number keys
    expect(page.locator("#rate_cents")).to_have_attribute("inputmode", "decimal")
    expect(page.locator("#cap_cents")).to_have_attribute("inputmode", "decimal")
    page.keyboard.type("17", delay=40)
    page.keyboard.press("Tab")
    page.keyboard.type("B" * 120)
    expect(page.locator("#sponsor_name")).to_have_value("B" * 100)   # the browser stops at 100


def test_the_organiser_downloads_the_amounts_for_german_excel(page, central, central_db):
    """The file for German Excel, taken from the sponsors page, adds up to what the page says."""
    url, ids = central
    add_pledge(central_db, None, ids["Anna Berg"], {"sponsor_name": "Oma", "kind": "per_lap",
                                                    "rate_cents": "0,50", "address": "Gartenweg 3\n12345 Musterstadt"})
    eva = add_pledge(central_db, None, ids["Cleo Dahl"], {"sponsor_name": "Tante Eva", "kind": "fixed",
                                                          "rate_cents": "20"})
    add_payment(central_db, None, eva, {"amount_cents": "25", "paid_on": "2025-07-01", "method": "transfer",
                                        "reference": "", "note": ""})      # 5 € more than pledged
    page.goto(f"{url}/sponsors/")
    lang = page.evaluate("document.documentElement.lang")[:2]
    links = page.locator("#sponsor-links a").evaluate_all("links => links.map(a => a.id)")
    csv_links = [link for link in links if link in ("amounts-de-link", "amounts-csv-link")]
    assert csv_links == {"de": ["amounts-de-link", "amounts-csv-link"],
                         "en": ["amounts-csv-link", "amounts-de-link"]}[lang]   # German Excel's first in German
    summary = page.locator("#money-total").inner_text()
    shown = dict(zip(FIGURES, (number(text, lang) for text in PAGE_MONEY[lang].findall(summary))))
    assert shown == {"amount": 25, "paid": 25, "outstanding": 5, "overpaid": 5}, summary
    with page.expect_download() as download:
        page.locator("#amounts-de-link").click()
    assert download.value.suggested_filename == "betraege.csv"
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    header, *rows = list(csv.reader(text.splitlines(keepends=True), delimiter=";"))
    assert header[:4] == ["Sponsor", "E-Mail", "Startnummer", "Name"]          # German either way
    assert {key: sum(number(row[COLUMNS.index(key)], "de") for row in rows) for key in FIGURES} == shown
    assert [row[COLUMNS.index("address")] for row in rows] == ["Gartenweg 3\n12345 Musterstadt", ""]
