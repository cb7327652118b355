"""The organiser prints a class's certificates and letters in Chromium; one child did not run.

Class 5a of the letters' fixture: Anna ran 12 laps, Ben none (he did not come). Ben has a
per-lap pledge (owes nothing) and a fixed one (owes its amount regardless). The printout
holds Anna's certificate only and says why Ben's is missing; the letters hold no letter
that states 0 laps or 0,00 €, the fixed pledge's letter thanks without claiming a lap,
and the page counts the letter left out.
"""
from __future__ import annotations

import re

from playwright.sync_api import expect

from lapsync.protocol import validate_push
from sync.devices import find_device
from sync.push import push
from sync.sponsors.pledges import add_pledge
from tests.central.test_letters import school  # noqa: F401  (the class 5a fixture)
from tests.pg import Outbox, register
from tests.system.test_browser_letters import open_letters
from tests.web import fits_width

GERMAN = ("Name", "Passwort", "Anmelden")


def pages_of(page) -> int:
    """Return how many pages the browser prints of the page as it is."""
    page.emulate_media(media="print")
    try:
        return len(re.findall(rb"/Type\s*/Page\b", page.pdf(prefer_css_page_size=True)))
    finally:
        page.emulate_media(media="screen")


def test_certificates_and_letters_of_a_class_leave_out_the_child_who_did_not_run(
        browser, live_central, central_db, school):  # noqa: F811
    ben = central_db.execute("SELECT id FROM runner WHERE name = 'Ben Cruz'").fetchone()["id"]
    add_pledge(central_db, school["admin"], ben, {"sponsor_name": "Bäckerei Korn",
                                                  "kind": "fixed", "rate_cents": "15"})
    page, context = open_letters(browser, live_central, "de-DE", GERMAN)
    try:
        page.goto(f"{live_central}/admin/results")
        page.locator('tr[data-class="5a"]').get_by_role("link", name="Urkunden").click()
        expect(page.locator("article.certificate")).to_have_count(1)
        expect(page.locator("article.certificate")).to_contain_text("Anna Berg")
        expect(page.locator("#did-not-run")).to_contain_text("Ben Cruz (8)")
        assert pages_of(page) == 1                                # Ben's page is not printed

        page.goto(f"{live_central}/admin/results/classes?class=5a")
        expect(page.locator("td.rank")).to_have_text(["1."])
        expect(page.locator(f'[data-absent="{ben}"]')).to_have_text("Ben Cruz (8)")

        page.goto(f"{live_central}/sponsors/letters")
        row = page.locator('tr[data-class="5a"]')
        expect(row.locator("td.did-not-run")).to_have_text("1")
        row.get_by_role("link", name="Alle Briefe").click()
        letters = page.locator("article.letter")
        expect(letters).to_have_count(5)                          # Anna's four, Ben's fixed one
        expect(page.locator("#letters-count")).to_contain_text("5 Briefe")
        expect(page.locator("#did-not-run")).to_contain_text("Nachbar – Ben Cruz")
        for text in (r"\b0 Runden", r"(^|[^\d.])0,00\xa0€"):        # not 20,00 €
            expect(letters.filter(has_text=re.compile(text))).to_have_count(0)
        fixed = letters.filter(has_text="Bäckerei Korn")
        expect(fixed).to_have_count(1)
        expect(fixed.locator(".due")).to_have_text("15,00\xa0€")  # the promise stands
        expect(fixed).not_to_contain_text("Runde")
        expect(fixed.locator("svg")).to_have_count(1)             # a GiroCode for it
        assert pages_of(page) == 5                                # one A4 page per letter
    finally:
        context.close()


def test_the_letters_overview_counts_the_e_mails_the_class_page_offers(
        browser, live_central, central_db, school):  # noqa: F811
    add_pledge(central_db, school["admin"], school["ben"], {
        "sponsor_name": "Onkel Km", "kind": "per_km", "rate_cents": "1",
        "email": "km@example.org"})                       # Ben did not run: no letter, no mail
    page, context = open_letters(browser, live_central, "de-DE", GERMAN)
    try:
        page.set_viewport_size({"width": 390, "height": 800})
        page.goto(f"{live_central}/sponsors/letters")
        row = page.locator('tr[data-class="5a"]')
        expect(row.locator("td.email")).to_have_text("2")         # Oma Berg, Firma Groß
        expect(row.locator("td.did-not-run")).to_have_text("2")
        row.get_by_role("link", name="Alle Briefe").click()
        expect(page.locator("#queue-form button")).to_contain_text("2")
    finally:
        context.close()


def fits(page) -> bool:
    """Tell whether the page's root does not scroll sideways."""
    return fits_width(page)


def test_the_money_pages_mark_the_child_who_did_not_run(
        browser, live_central, central_db, school):  # noqa: F811
    page, context = open_letters(browser, live_central, "de-DE", GERMAN)
    try:
        page.set_viewport_size({"width": 390, "height": 800})
        page.goto(f"{live_central}/sponsors/?class=5a")
        ben = page.locator(f'tr[data-pledge="{school["ids"]["ben"]}"]')
        expect(ben.locator("td.laps")).to_have_text("nicht gelaufen")
        expect(page.locator(f'tr[data-pledge="{school["ids"]["oma"]}"] td.laps')).to_have_text("12")
        assert fits(page)
        ben.get_by_role("link", name="Nachbar").click()
        expect(page.locator("#laps .did-not-run")).to_be_visible()
        expect(page.locator("#laps")).not_to_contain_text("0 m")
        assert fits(page)
        page.goto(f"{live_central}/sponsors/letters")
        page.locator('tr[data-class="5a"]').get_by_role("link", name="Klassenliste").click()
        row = page.locator(f'tr[data-pledge="{school["ids"]["ben"]}"]')
        expect(row.locator("td.laps")).to_have_text("nicht gelaufen")
        expect(row.locator(".no-letter")).to_be_visible()
        expect(page.locator(".no-letter")).to_have_count(1)       # Anna's sponsors get letters
        assert fits(page)
    finally:
        context.close()


def test_nothing_to_print_is_said_in_words_not_as_an_empty_page(
        browser, live_central, central_db, school):  # noqa: F811
    box = Outbox()
    box.runner(30, "Carla Dorn", "5b")                     # class 5b: nobody ran
    push(central_db, find_device(central_db, register(central_db, "laptop-b")),
         validate_push(box.body()))
    page, context = open_letters(browser, live_central, "en-US", ("Name", "Password", "Log in"))
    try:
        page.set_viewport_size({"width": 768, "height": 900})
        page.goto(f"{live_central}/admin/results")
        page.locator('tr[data-class="5b"]').get_by_role("link", name="Certificates").click()
        expect(page.locator("#nobody-ran")).to_have_text("Nobody in 5b ran.")
        expect(page.locator("#did-not-run")).to_contain_text("Carla Dorn (30)")
        expect(page.get_by_role("button", name="Print")).to_have_count(0)
        expect(page.get_by_text("0 certificates")).to_have_count(0)
        page.go_back()
        page.locator('tr[data-class="5b"]').get_by_role("link", name="Ceremony list").click()
        expect(page.locator("section[data-class='5b'] .nobody-ran")).to_have_text("Nobody in 5b ran.")
        expect(page.locator("table.ranking")).to_have_count(0)
        page.goto(f"{live_central}/admin/results")
        page.get_by_label("Name or start number").press_sequentially("Ben", delay=5)
        page.get_by_role("button", name="Search").click()
        page.get_by_role("link", name="8 – Ben Cruz (5a)").click()
        expect(page.locator("#did-not-run")).to_have_text(
            "Ben Cruz did not run (no lap that counts) and gets no certificate.")
        expect(page.get_by_role("button", name="Print")).to_have_count(0)
        page.goto(f"{live_central}/sponsors/letters")
        page.locator('tr[data-class="5a"]').get_by_role("link", name="Thank-you letters").click()
        expect(page.locator("#letters-count")).to_contain_text("2 letters, one per A4 page.")
        expect(page.get_by_role("button", name="Print")).to_have_count(1)
        page.goto(f"{live_central}/sponsors/letters")
        page.locator('tr[data-class="5b"]').get_by_role("link", name="All letters").click()
        expect(page.locator("#letters-count")).to_have_text("No letters to print.")
        expect(page.get_by_role("button", name="Print")).to_have_count(0)
    finally:
        context.close()


def test_class_tables_count_who_ran_and_average_over_them(
        browser, live_central, central_db, school):  # noqa: F811
    page, context = open_letters(browser, live_central, "de-DE", GERMAN)
    try:
        page.set_viewport_size({"width": 390, "height": 800})
        page.goto(f"{live_central}/standings/")
        page.get_by_role("link", name="Klassen", exact=True).click()
        row = page.locator('tr[data-group="5a"]')             # Anna 12 laps, Ben did not run
        expect(row.locator("td")).to_contain_text(["5a", "1", "1", "12"])
        expect(row.locator("td.average")).to_have_text("12,00")   # not 6,00 over both
        assert fits(page)
        page.goto(f"{live_central}/admin/results")
        row = page.locator('tr[data-class="5a"]')
        expect(row.locator("td.runners")).to_have_text("1")
        expect(row.locator("td.did-not-run")).to_have_text("1")
        assert fits(page)
    finally:
        context.close()
