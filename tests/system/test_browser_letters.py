"""Letters to sponsors in Chromium: a class's letters printed at A4, every GiroCode read back.

Central runs on a real loopback port; Debian's headless Chromium renders the letters page
with its print styles at 200 dpi and zxing-cpp reads each whole letter as a banking app's
camera would: the code must hold the organiser's IBAN and name, the letter's open amount
and the pledge's RF reference. Once in German, once in English (the browser's language).
"""
from __future__ import annotations

import io
import re

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import expect

from sync.sponsors.amounts import pledge_amounts
from tests.central.test_letters import BANK, school  # noqa: F401  (the class 5a fixture)
from tests.pg import CENTRAL_PASSWORD

DPI_SCALE = 200 / 96     # 200 dpi: a 34 mm GiroCode is ~6 pixels per module
PX_PER_MM = 96 / 25.4


def open_letters(browser, live_central, locale: str, login: tuple[str, str, str]):
    """Log in as ada in a browser of the given language; return the page and its context."""
    context = browser.new_context(locale=locale, viewport={"width": 900, "height": 1000},
                                  device_scale_factor=DPI_SCALE)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"{live_central}/login")
    name, password, button = login
    page.get_by_label(name).press_sequentially("ada", delay=5)
    page.get_by_label(password, exact=True).press_sequentially(CENTRAL_PASSWORD, delay=5)
    page.get_by_role("button", name=button).click()
    expect(page).to_have_url(re.compile(r"/standings/"))
    return page, context


def codes_of(letter) -> list[str]:
    """Return the text of every QR code zxing-cpp reads on a letter's screenshot."""
    image = Image.open(io.BytesIO(letter.screenshot(animations="disabled"))).convert("L")
    return [code.text for code in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def check_letters(page, central_db, greeting: str) -> None:
    """Check each printed letter: A4, its greeting, and its GiroCode against the pledge."""
    rows = {row["id"]: row for row in pledge_amounts(central_db, class_name="5a")
            if row["kind"] == "fixed" or row["laps"]}        # did not run: no letter per lap
    letters = page.locator("article.letter")
    expect(letters).to_have_count(len(rows))
    for index in range(len(rows)):
        letter = letters.nth(index)
        row = rows[letter.get_attribute("data-pledge")]
        box = letter.bounding_box()
        assert (box["width"] / PX_PER_MM, box["height"] / PX_PER_MM) == \
            (pytest.approx(210, abs=0.1), pytest.approx(297, abs=0.1))
        expect(letter).to_contain_text(greeting + " " + row["sponsor_name"])
        codes, due = codes_of(letter), max(row["outstanding_cents"], 0)
        if not due:
            assert codes == [], row["sponsor_name"]
            continue
        (payload,) = codes
        lines = payload.split("\n")
        assert lines[:5] == ["BCD", "002", "1", "SCT", BANK["bic"]]
        assert lines[5:] == [BANK["account_holder"], BANK["iban"],
                             f"EUR{due // 100}.{due % 100:02d}", "CHAR", row["reference"]]


def test_a_class_letters_print_at_a4_in_german_with_codes_a_bank_app_reads(
        browser, live_central, central_db, school):  # noqa: F811
    page, context = open_letters(browser, live_central, "de-DE", ("Name", "Passwort", "Anmelden"))
    try:
        page.goto(f"{live_central}/sponsors/letters")
        page.locator('tr[data-class="5a"]').get_by_role("link", name="Alle Briefe").click()
        expect(page.locator("#letters-count")).to_contain_text("4 Briefe, einer pro A4-Seite.")
        page.emulate_media(media="print")
        check_letters(page, central_db, "Guten Tag")
        expect(page.locator("article.letter").first).to_contain_text("Mit freundlichen Grüßen")
        pdf = page.pdf(prefer_css_page_size=True)
        assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 4        # one A4 page per letter
        sizes = {tuple(round(float(v)) for v in m) for m in
                 re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)}
        assert sizes == {(595, 842)}                                  # A4 in points
    finally:
        context.close()


def test_reminders_in_english_carry_the_open_amount(browser, live_central, central_db,
                                                    school):  # noqa: F811
    page, context = open_letters(browser, live_central, "en-GB", ("Name", "Password", "Log in"))
    try:
        page.goto(f"{live_central}/sponsors/letters")
        # Each class's links say which class in their names (a screen reader's list of links).
        expect(page.get_by_role("link", name="Reminders (Class 5a)", exact=True)).to_have_count(1)
        page.get_by_role("link", name="Reminders (Class 5a)", exact=True).click()
        letters = page.locator("article.letter")
        expect(letters).to_have_count(3)
        page.emulate_media(media="print")
        for index in range(3):
            letter = letters.nth(index)
            expect(letter).to_contain_text("Reminder –")
            expect(letter).to_contain_text("please ignore this reminder")
            row = pledge_amounts(central_db, pledge_ids=[letter.get_attribute("data-pledge")])[0]
            due = row["outstanding_cents"]
            expect(letter.locator(".due")).to_have_text(f"€{due // 100}.{due % 100:02d}")
            (payload,) = codes_of(letter)
            assert payload.split("\n")[7:] == [f"EUR{due // 100}.{due % 100:02d}", "CHAR",
                                               row["reference"]]
    finally:
        context.close()


def test_bank_details_typed_on_the_settings_page_reach_the_letters(browser, live_central,
                                                                   central_db, school):  # noqa: F811
    central_db.execute("DELETE FROM central_setting")
    page, context = open_letters(browser, live_central, "de-DE", ("Name", "Passwort", "Anmelden"))
    try:
        page.goto(f"{live_central}/sponsors/letters?class=5a")
        expect(page.locator("#no-bank")).to_be_visible()
        expect(page.locator("article.letter svg")).to_have_count(0)
        page.goto(f"{live_central}/settings/")
        form = page.locator("#central-form")
        form.get_by_label("Kontoinhaber").press_sequentially(BANK["account_holder"], delay=5)
        form.get_by_label("IBAN").press_sequentially("DE89 3704 0044 0532 0130 01", delay=5)
        form.get_by_label("Passwort").press_sequentially("geheim-123", delay=5)
        form.get_by_role("button", name="Bank- und Mail-Einstellungen speichern").click()
        expect(page.locator("#iban-error")).to_have_text(
            "Das ist keine gültige IBAN (bitte die Ziffern prüfen).")
        expect(form.get_by_label("Passwort")).to_have_value("")     # never shown back
        iban = form.get_by_label("IBAN")
        iban.fill("")
        iban.press_sequentially("de89 3704 0044 0532 0130 00", delay=5)
        form.get_by_label("Passwort").press_sequentially("geheim-123", delay=5)
        form.get_by_label("Passwort").press("Enter")
        expect(page.locator("#central-form #iban")).to_have_value("DE89370400440532013000")
        assert "geheim-123" not in page.content()
        page.goto(f"{live_central}/sponsors/letters?class=5a")
        expect(page.locator("#no-bank")).to_have_count(0)
        expect(page.locator("article.letter .iban").first).to_have_text("DE89 3704 0044 0532 0130 00")
        expect(page.locator("article.letter svg")).to_have_count(3)
    finally:
        context.close()
