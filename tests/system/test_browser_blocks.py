"""Real-browser tests of start-number blocks and central's decisions: the laptop's add-runner
form and runners page, central's devices page and the review page's undo.

Headless Debian Chromium driven by Playwright (never `playwright install`), one browser for
the module and a fresh context per test. The laptop is served on 127.0.0.2, central on
127.0.0.1: cookies are per host, and both apps call their session cookie "session".
"""
from __future__ import annotations

from playwright.sync_api import expect

from lapsync.devkit.browser import type_login
from lapsync.laptop.client.pull import apply_change, apply_page
from lapsync.laptop.client.transport import SyncResult
from lapsync.laptop.db import device_id, transaction
from lapsync.protocol import validate_push
from sync.devices import find_device
from sync.push import push
from tests.conftest import PASSWORD
from tests.pg import CENTRAL_PASSWORD, Outbox, register
from tests.web import served

T = 1_700_000_000_000


def add_runner_by_form(page, url: str, name: str, number: str = "") -> None:
    """Fill the laptop's add-runner form (start number left empty unless given) and send it."""
    page.goto(f"{url}/runners/new")
    if number:
        page.get_by_label("Start number").press_sequentially(number)
    page.get_by_label("Name").press_sequentially(name)
    page.get_by_label("Class").press_sequentially("7a")
    page.get_by_label("Grade (1–13)").press_sequentially("7")
    page.get_by_role("button", name="Add runner").click()


def test_a_laptop_numbers_late_runners_from_its_block_and_asks_once_it_is_used_up(
        app, db, runners, page):
    with transaction(db):  # central's renumber of runner 17, as pulled
        apply_change(db, {"entity": "runner", "id": runners[17], "data": {
            "id": runners[17], "start_number": 18, "name": "Cleo Dahl", "class": "6b",
            "grade": 6, "hlc": "2900000000000.0000", "origin": "centralnodeeeeeeeeeee",
            "decision": {"action": "renumber", "by_name": "ada", "reason": "clash",
                         "at": T, "was_start_number": 17}}}, device_id(db))
    apply_page(db, [], 1, SyncResult(), {"first": 9000, "last": 9001})
    with served(app, "127.0.0.2") as url:
        type_login(page, url, "ada", PASSWORD)
        page.goto(f"{url}/runners/new")
        expect(page.locator("#number-source")).to_contain_text(
            "leave empty for the next free one of this laptop's block 9000–9001 from central: 9000")
        add_runner_by_form(page, url, "Eva Fink")
        expect(page.locator(".flash, .feedback").first).to_contain_text(
            "Added Eva Fink (7a) with start number 9000.")
        add_runner_by_form(page, url, "Finn Gross")
        page.goto(f"{url}/runners/new")
        expect(page.locator("#number-source")).to_contain_text(
            "The block 9000–9001 that central reserved for this laptop is used up")
        add_runner_by_form(page, url, "Gita Hahn")
        expect(page.locator("#error")).to_contain_text("are all given out: type a start number")
        add_runner_by_form(page, url, "Gita Hahn", "55")
        expect(page.locator(".flash, .feedback").first).to_contain_text("with start number 55")
        rows = page.locator("tr[data-runner]")
        expect(rows.filter(has_text="Eva Fink").locator("td").first).to_have_text("9000")
        expect(rows.filter(has_text="Finn Gross").locator("td").first).to_have_text("9001")
        expect(page.get_by_role("columnheader", name="Laps (all laptops)").first).to_be_visible()
        expect(rows.filter(has_text="Cleo Dahl")).to_contain_text(
            "Renumbered at central by ada (was 17): clash")


def test_an_admin_gives_a_laptop_more_numbers_and_a_range_on_the_devices_page(
        central_users, live_central, central_db, page):
    type_login(page, live_central, "ada", CENTRAL_PASSWORD)
    page.goto(f"{live_central}/devices/")
    page.get_by_label("Device name").press_sequentially("gym-laptop")
    page.get_by_role("button", name="Register and show its token").click()
    expect(page.locator("#token")).to_be_visible()
    row = page.locator("tr[data-device]", has_text="gym-laptop")
    expect(row.locator("td.number-block")).to_contain_text("9000–9099 (0 of 100 used)")
    row.get_by_role("button", name="Give more numbers").click()
    expect(page.locator(".flash")).to_contain_text("gym-laptop numbers late runners from "
                                                   "9000–9199 now")
    row.get_by_text("Set a range…").click()
    row.get_by_label("First start number").press_sequentially("600")
    row.get_by_label("Last start number").press_sequentially("500")
    row.get_by_role("button", name="Use this range").click()
    expect(page.locator("#device-error")).to_contain_text("A block runs from a first to a last")
    row.get_by_text("Set a range…").click()
    row.get_by_label("First start number").press_sequentially("500")
    row.get_by_label("Last start number").press_sequentially("549")
    row.get_by_role("button", name="Use this range").click()
    expect(row.locator("td.number-block")).to_contain_text("500–549 (0 of 50 used)")
    assert central_db.execute("SELECT count(*) AS n FROM number_block").fetchone()["n"] == 2


def test_an_admin_voids_a_double_count_and_undoes_it_from_the_decision_log(
        central_users, live_central, central_db, page):
    box = Outbox(clock_ms=T)
    runner = box.runner(17, "Cleo Dahl", "6b", 6)
    box.lap(runner, time=T)
    second = box.lap(runner, time=T + 5_000)
    push(central_db, find_device(central_db, register(central_db, "laptop-a")),
         validate_push(box.body()), T + 10_000)
    type_login(page, live_central, "ada", CENTRAL_PASSWORD)
    page.goto(f"{live_central}/review/")
    page.locator(f'#doubles tr[data-lap="{second}"]').get_by_role(
        "button", name="Void this lap").click()
    expect(page.locator(".flash")).to_contain_text("The lap was voided")
    undo = page.locator("#decision-log tr[data-action=void_lap]").get_by_role(
        "button", name="Undo: restore the lap")
    undo.click()
    expect(page.locator(".flash")).to_contain_text("The lap counts again")
    expect(page.locator("#decision-log tr[data-action=restore_lap]")).to_contain_text(
        "Restored a lap of 17 Cleo Dahl (6b) that central had voided.")
    expect(page.get_by_role("button", name="Undo: restore the lap")).to_have_count(0)
    assert central_db.execute("SELECT voided, central FROM lap_void").fetchone() == {
        "voided": False, "central": True}
