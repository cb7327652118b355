"""Letters and class lists: kinds, figures (frozen or live), the payment box, e-mails queued."""
from __future__ import annotations

import re

import pytest

from lapsync.protocol import validate_push
from sync.bank_settings import save_bank_mail
from sync.devices import find_device
from sync.sponsors.freeze import decide, freeze_results
from sync.sponsors.letters import letters
from sync.sponsors.mail import due_mail
from sync.sponsors.payments import add_payment
from sync.sponsors.pledges import add_pledge
from sync.push import push
from sync.review import lap_state, void_lap
from sync.settings import set_setting
from tests.pg import Outbox, register

BANK = {"account_holder": "Förderverein Schule am Park", "iban": "DE89370400440532013000",
        "bic": "COBADEFFXXX"}


@pytest.fixture
def school(central_db, device_token, central_users):
    """Class 5a: Anna (12 laps) with four pledges, Ben (0 laps: did not run) with one per lap;
    bank details set."""
    box, device = Outbox(), find_device(central_db, device_token)
    set_setting(central_db, "metres_per_lap", 400)
    set_setting(central_db, "event_name", "Sponsorenlauf 2025")
    save_bank_mail(central_db, BANK)
    anna, ben = box.runner(7, "Anna Berg", "5a"), box.runner(8, "Ben Cruz", "5a")
    laps = [box.lap(anna) for _ in range(12)]
    push(central_db, device, validate_push(box.body()))
    admin = central_users["ada"]

    def pledge(runner, name, kind, rate, cap=None, email=None):
        return add_pledge(central_db, admin, runner, {"sponsor_name": name, "kind": kind,
                                                      "rate_cents": rate, "cap_cents": cap,
                                                      "email": email})
    ids = {"oma": pledge(anna, "Oma Berg", "per_lap", "0,50", email="oma@example.org"),
           "opa": pledge(anna, "Opa Berg", "per_km", "2", cap="5"),
           "firma": pledge(anna, "Firma Groß", "fixed", "20", email="firma@example.org"),
           "paid": pledge(anna, "Tante Eva", "per_lap", "1"),
           "ben": pledge(ben, "Nachbar", "per_lap", "1")}
    add_payment(central_db, admin, ids["paid"], {"amount_cents": "12", "paid_on": "2025-07-01",
                                                  "method": "cash"})
    add_payment(central_db, admin, ids["oma"], {"amount_cents": "2", "paid_on": "2025-07-01",
                                                 "method": "transfer"})
    return {"ids": ids, "laps": laps, "admin": admin, "ben": ben, "pledge": pledge}


def test_each_pledge_gets_its_kind_of_letter_and_the_payment_box_for_what_is_open(
        central_app, central_db, school):
    ids = school["ids"]
    with central_app.test_request_context(headers={"Accept-Language": "en"}):
        found = {letter["row"]["id"]: letter for letter in letters(central_db, class_name="5a")}
    assert {key: found[pid]["kind"] for key, pid in ids.items() if pid in found} == {
        "oma": "letter", "opa": "letter", "firma": "thanks", "paid": "thanks"}   # Ben: none
    oma = found[ids["oma"]]
    assert oma["subject"] == "Sponsorenlauf 2025: your pledge for Anna Berg"
    assert oma["paragraphs"][:3] == [
        "Anna Berg (class 5a, start number 7) ran 12 laps (4.8 km) at Sponsorenlauf 2025.",
        "You pledged €0.50 per lap. That makes €6.00.",
        "Paid so far: €2.00. Still to pay: €4.00."]
    assert oma["outstanding"] == 400 and oma["due_text"] == "€4.00"
    assert oma["girocode"]["payload"].split("\n")[5:] == [
        BANK["account_holder"], BANK["iban"], "EUR4.00", "CHAR", oma["row"]["reference"]]
    # 4.8 km x 2.00 = 9.60, capped at 5.00.
    assert "You pledged €2.00 per kilometre, at most €5.00. That makes €5.00." in \
        found[ids["opa"]]["paragraphs"]
    assert found[ids["paid"]]["girocode"] is None and found[ids["paid"]]["outstanding"] == 0
    assert "We have received €12.00. Thank you very much!" in found[ids["paid"]]["paragraphs"]
    assert found[ids["firma"]]["paragraphs"][0] == \
        "Thank you for supporting Anna Berg (class 5a) with €20.00."
    with central_app.test_request_context(headers={"Accept-Language": "en"}):
        reminders = letters(central_db, class_name="5a", kind="reminder")
        thanks = letters(central_db, class_name="5a", kind="thanks")
    assert {letter["row"]["id"] for letter in reminders} == {ids["oma"], ids["opa"], ids["firma"]}
    assert {letter["row"]["id"] for letter in thanks} == {ids["firma"], ids["paid"]}


def test_letters_use_the_frozen_figures(central_app, central_db, school):
    freeze_results(central_db, school["admin"])
    lap = lap_state(central_db, school["laps"][0])
    void_lap(central_db, school["admin"], lap["id"], lap["version"])
    with central_app.test_request_context(headers={"Accept-Language": "en"}):
        oma = letters(central_db, pledge_ids=[school["ids"]["oma"]])[0]
    assert oma["row"]["laps"] == 12 and oma["row"]["frozen"] and oma["outstanding"] == 400


def test_the_letters_page_in_german_and_queueing_them_as_e_mails(central_admin, central_db,
                                                                  school):
    page = central_admin.get("/sponsors/letters?class=5a",
                             headers={"Accept-Language": "de-DE,de;q=0.9"}).get_data(as_text=True)
    assert page.count('class="letter"') == 4 and "DE89 3704 0044 0532 0130 00" in page
    assert f'data-left-out="{school["ids"]["ben"]}">Nachbar – Ben Cruz' in page
    assert "Guten Tag Oma Berg," in page and "4,00\xa0€" in page
    assert page.count("<svg") == 3           # a GiroCode for each letter with money open
    response = central_admin.post("/sponsors/letters/queue", data={
        "csrf_token": central_admin.csrf, "class": "5a"}, headers={"Accept-Language": "de"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/sponsors/mail/")
    mails = {m["to_addr"]: m for m in due_mail(central_db)}
    assert set(mails) == {"oma@example.org", "firma@example.org"}
    body = mails["oma@example.org"]["body_text"]
    assert body.startswith("Guten Tag Oma Berg,\n\n") and "IBAN: DE89 3704 0044 0532 0130 00" in body
    assert re.search(r"Verwendungszweck: RF\d\d", body) and "Betrag: 4,00\xa0€" in body
    assert mails["firma@example.org"]["kind"] == "thanks"


def test_class_list_and_teacher_mail(central_admin, central_db, school):
    page = central_admin.get("/sponsors/classes/5a/list").get_data(as_text=True)
    assert "Oma Berg" in page and "Nachbar" in page and "Class total" in page
    bad = central_admin.post("/sponsors/classes/5a/teacher", data={
        "csrf_token": central_admin.csrf, "email": "kein"})
    assert bad.status_code == 422
    central_admin.post("/sponsors/classes/5a/teacher", data={
        "csrf_token": central_admin.csrf, "email": "lehrerin@schule.de"})
    central_admin.post("/sponsors/classes/5a/queue", data={"csrf_token": central_admin.csrf})
    (mail,) = due_mail(central_db)
    assert mail["to_addr"] == "lehrerin@schule.de" and mail["kind"] == "class_list"
    assert "7 Anna Berg: 12 laps, 4.8 km – raised €43.00, open €29.00" in mail["body_text"]
    assert central_admin.get("/sponsors/classes/9z/list").status_code == 404


def test_a_runner_who_did_not_run_gets_no_letter_per_lap_or_km_and_no_0_laps_in_a_fixed_one(
        central_app, central_admin, central_db, school):
    pledge, ben = school["pledge"], school["ben"]
    km = pledge(ben, "Onkel Km", "per_km", "1", email="km@example.org")
    fixed = pledge(ben, "Bäckerei", "fixed", "10", email="baeckerei@example.org")
    with central_app.test_request_context(headers={"Accept-Language": "en"}):
        found = {letter["row"]["id"]: letter for letter in letters(central_db, class_name="5a")}
        reminders = {letter["row"]["id"]: letter
                     for letter in letters(central_db, class_name="5a", kind="reminder")}
    assert school["ids"]["ben"] not in found and km not in found
    for letter in (found[fixed], reminders[fixed]):      # the promise stands without a lap
        assert letter["paragraphs"][0] == "Thank you for supporting Ben Cruz (class 5a) with €10.00."
        assert letter["outstanding"] == 1000
        assert not any(" lap" in text or "That makes" in text for text in letter["paragraphs"]), \
            letter["paragraphs"]
    assert found[fixed]["kind"] == "thanks"
    page = central_admin.get("/sponsors/letters?class=5a").get_data(as_text=True)
    assert page.count('class="letter"') == 5 and "0 laps" not in page
    assert "2 letters are left out: the runner did not run (no lap that counts)" in page
    single = central_admin.get(f"/sponsors/letters?pledge={km}").get_data(as_text=True)
    assert "No letters to print." in single and "1 letter is left out" in single
    assert "0 letters" not in single and 'data-action="print"' not in single
    thanks = central_admin.get("/sponsors/letters?class=5a&kind=thanks").get_data(as_text=True)
    assert 'id="did-not-run"' not in thanks                # they would get no thank-you letter
    add_payment(central_db, school["admin"], km, {"amount_cents": "5", "paid_on": "2025-07-01",
                                                   "method": "cash"})
    for kind in ("", "&kind=reminder", "&kind=thanks"):   # whichever letters are printed
        page = central_admin.get(f"/sponsors/letters?class=5a{kind}").get_data(as_text=True)
        assert "Onkel Km has already paid €5.00 for Ben Cruz: settle that by hand." in page, kind
        assert page.count('class="paid-left-out"') == 1, kind   # the sponsor who did not pay: not named
    index = central_admin.get("/sponsors/letters").get_data(as_text=True)
    row = index[index.index('<tr data-class="5a"'):]
    assert '<td class="did-not-run">2</td>' in row[:row.index("</tr>")]
    central_admin.post("/sponsors/letters/queue", data={"csrf_token": central_admin.csrf,
                                                        "class": "5a"})
    assert {m["to_addr"] for m in due_mail(central_db)} == {
        "oma@example.org", "firma@example.org", "baeckerei@example.org"}


def test_laps_that_arrive_later_bring_the_letter_back(central_app, central_db, school):
    box = Outbox()
    box.lap(school["ben"])
    box.lap(school["ben"])
    push(central_db, find_device(central_db, register(central_db, "laptop-b")),
         validate_push(box.body()))
    with central_app.test_request_context(headers={"Accept-Language": "en"}):
        (letter,) = letters(central_db, pledge_ids=[school["ids"]["ben"]])
    assert letter["paragraphs"][:2] == [
        "Ben Cruz (class 5a, start number 8) ran 2 laps (0.8 km) at Sponsorenlauf 2025.",
        "You pledged €1.00 per lap. That makes €2.00."]


def test_a_freeze_with_0_laps_leaves_the_letter_out_until_the_new_figure_is_accepted(
        central_app, central_db, school):
    freeze_results(central_db, school["admin"])
    box = Outbox()
    box.lap(school["ben"])
    push(central_db, find_device(central_db, register(central_db, "laptop-b")),
         validate_push(box.body()))
    with central_app.test_request_context(headers={"Accept-Language": "en"}):
        assert letters(central_db, pledge_ids=[school["ids"]["ben"]]) == []   # frozen: 0 laps
        decide(central_db, school["admin"], school["ids"]["ben"], accept=True)
        (letter,) = letters(central_db, pledge_ids=[school["ids"]["ben"]])
    assert letter["row"]["laps"] == 1 and letter["outstanding"] == 100


def test_the_letters_overview_counts_only_e_mails_of_letters_that_go_out(
        central_admin, central_db, school):
    # Ben did not run: his per-lap and per-km sponsors' addresses get no letter, so no e-mail.
    school["pledge"](school["ben"], "Onkel Km", "per_km", "1", email="km@example.org")
    school["pledge"](school["ben"], "Tante Lap", "per_lap", "2", email="lap@example.org")
    index = central_admin.get("/sponsors/letters").get_data(as_text=True)
    row = index[index.index('<tr data-class="5a"'):]
    row = row[:row.index("</tr>")]
    assert '<td class="email">2</td>' in row and '<td class="did-not-run">3</td>' in row
    page = central_admin.get("/sponsors/letters?class=5a").get_data(as_text=True)
    assert "Queue 2 of them as e-mails" in page             # the class page offers the same 2
    central_admin.post("/sponsors/letters/queue", data={"csrf_token": central_admin.csrf,
                                                        "class": "5a"})
    assert {m["to_addr"] for m in due_mail(central_db)} == {"oma@example.org",
                                                             "firma@example.org"}


def test_the_money_pages_say_a_runner_did_not_run_and_that_no_letter_goes_out(
        central_admin, central_db, school):
    ben, nachbar = school["ben"], school["ids"]["ben"]       # Ben did not run: 0 laps
    fixed = school["pledge"](ben, "Bäckerei", "fixed", "10")
    listed = central_admin.get("/sponsors/?class=5a").get_data(as_text=True)
    row = listed[listed.index(f'<tr data-pledge="{nachbar}"'):]
    row = row[:row.index("</tr>")]
    assert '<td class="laps"><span class="did-not-run">did not run</span></td>' in row
    anna = listed[listed.index(f'<tr data-pledge="{school["ids"]["oma"]}"'):]
    assert '<td class="laps">12</td>' in anna[:anna.index("</tr>")]
    pledge = central_admin.get(f"/sponsors/{nachbar}").get_data(as_text=True)
    laps = pledge[pledge.index('<td id="laps">'):]
    laps = laps[:laps.index("</td>")]
    assert "did not run (no lap that counts)" in laps and "no letter goes out" in laps
    assert "0 (0 m)" not in pledge
    fixed_page = central_admin.get(f"/sponsors/{fixed}").get_data(as_text=True)
    assert "did not run" in fixed_page and "no letter goes out" not in fixed_page  # it owes 10 €
    class_list = central_admin.get("/sponsors/classes/5a/list").get_data(as_text=True)
    ben_rows = class_list[class_list.index(">8 Ben Cruz<"):class_list.index("</tbody>")]
    assert ben_rows.index('<span class="did-not-run">did not run</span>') < ben_rows.index("</tr>")
    ben_row = ben_rows[ben_rows.index(f'<tr data-pledge="{nachbar}"'):]
    assert "Nachbar <span" in ben_row and "no letter: the runner did not run" in ben_row
    bakery = class_list[class_list.index(f'<tr data-pledge="{fixed}"'):]
    assert "no letter" not in bakery[:bakery.index("</tr>")]     # a fixed pledge's letter goes
    central_admin.post("/sponsors/classes/5a/teacher", data={
        "csrf_token": central_admin.csrf, "email": "lehrerin@schule.de"})
    central_admin.post("/sponsors/classes/5a/queue", data={"csrf_token": central_admin.csrf})
    (mail,) = due_mail(central_db)
    # Only the fixed pledge owes anything: promised, not raised by running.
    assert "8 Ben Cruz: did not run (no lap that counts) – fixed pledges €10.00, open €10.00" \
        in mail["body_text"]
    assert "raised €10.00" not in mail["body_text"]
    assert "0 laps" not in mail["body_text"]
    assert "Nachbar: €1.00 per lap = €0.00, paid €0.00 (no letter: the runner did not run)" \
        in mail["body_text"]


def test_a_class_without_letters_offers_no_empty_printout(central_admin, central_db, school):
    # Every letter of class 5a is left out or of another kind: nothing to print, no button.
    page = central_admin.get("/sponsors/letters?class=5a&kind=reminder").get_data(as_text=True)
    assert 'data-action="print"' in page and "3 letters, one per A4 page." in page
    for payment in (("oma", "4"), ("opa", "5"), ("firma", "20")):
        add_payment(central_db, school["admin"], school["ids"][payment[0]], {
            "amount_cents": payment[1], "paid_on": "2025-07-01", "method": "cash"})
    page = central_admin.get("/sponsors/letters?class=5a&kind=reminder").get_data(as_text=True)
    assert "No letters to print." in page and "0 letters" not in page
    assert 'data-action="print"' not in page and 'class="letter"' not in page
