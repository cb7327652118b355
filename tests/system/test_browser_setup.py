"""Setting up an event in the browser, no terminal: central's users page, the connect code
and its QR code on the devices page, and a fresh laptop's /connect page.

Central runs on a real loopback port on the test's fresh PostgreSQL database; each laptop
is the real laptop app on its own SQLite file, served on a loopback port of its own. The
browser is Debian's headless Chromium driven by Playwright (one per module, a context per
page and person); the QR code is read back from a screenshot by zxing-cpp. The phone
(390 px) speaks German, the tablet (768 px) English.
"""
from __future__ import annotations

import io
import re
import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import expect

from lapsync.ids import new_id
from lapsync.laptop import create_app as create_laptop
from lapsync.laptop.client.connecting import first_sync, store_central
from lapsync.laptop.db import connect, set_meta, transaction
from lapsync.laptop.runners import add_runner
from tests.conftest import PASSWORD
from tests.pg import CENTRAL_PASSWORD, register
from tests.web import fits_width, served

PHONE = {"viewport": {"width": 390, "height": 844}, "locale": "de-DE"}
TABLET = {"viewport": {"width": 768, "height": 1024}, "locale": "en-US"}
TYPING_MS = 15


class Laptop:
    """A laptop app on a copy of the users template (ada, tom, vic), served on loopback."""

    def __init__(self, base: Path, template: Path, stack: ExitStack):
        """Copy the template with a device id of its own and serve it."""
        self.path = base / "laptop.sqlite"
        shutil.copyfile(template, self.path)
        db = connect(self.path)
        with transaction(db):
            set_meta(db, "device_id", new_id())
        self.runner = add_runner(db, 1, "Anna Berg", "5a", 5)
        db.close()
        self.app = create_laptop({"TESTING": True, "SECRET_KEY": "laptop", "DATABASE": str(self.path),
                                  "INSTANCE_CONFIG_FILE": str(base / "laptop-config.py")})
        self.url = stack.enter_context(served(self.app))

    def sync(self) -> None:
        """Sync once, as the background job does."""
        result = first_sync(self.app)
        assert result.error is None, result.error


@pytest.fixture
def stack():
    """Servers and browser contexts closed at the end of the test."""
    with ExitStack() as resources:
        yield resources


@pytest.fixture
def laptop(tmp_path, users_template, stack) -> Laptop:
    """A fresh laptop, not connected to central."""
    return Laptop(tmp_path, users_template, stack)


def new_page(browser, stack: ExitStack, device: dict, **extra):
    """Open a page in a fresh context (own cookies) of a phone or a tablet."""
    context = browser.new_context(**device, **extra)
    context.set_default_timeout(8_000)
    stack.callback(context.close)
    return context.new_page()


def log_in(page, url: str, name: str, password: str, labels: tuple[str, str, str]) -> None:
    """Type a name and password into a login form and press its button."""
    page.goto(f"{url}/login")
    page.get_by_label(labels[0]).press_sequentially(name, delay=TYPING_MS)
    page.get_by_label(labels[1]).press_sequentially(password, delay=TYPING_MS)
    page.get_by_role("button", name=labels[2]).click()


GERMAN_LOGIN = ("Name", "Passwort", "Anmelden")
ENGLISH_LOGIN = ("Name", "Password", "Log in")


def user_row(page, name: str):
    """Return a user's row on central's users page."""
    return page.locator(f'#users tr[data-user="{name}"]')


def fits(page) -> bool:
    """Tell whether the page fits its width (nothing scrolls sideways)."""
    return fits_width(page)


def test_an_admin_manages_a_teacher_whom_central_and_a_laptop_then_refuse(
        browser, stack, live_central, central_users, central_db, laptop):
    token = register(central_db, "laptop-a")
    store_central(laptop.app, live_central, token)
    admin = new_page(browser, stack, PHONE)
    log_in(admin, live_central, "ada", CENTRAL_PASSWORD, GERMAN_LOGIN)
    admin.get_by_role("banner").get_by_role("link", name="Benutzer").click()
    expect(admin).to_have_url(re.compile(r"/users/$"))

    form = admin.locator("#create-user")                     # a teacher with a typed password
    form.get_by_label("Name").press_sequentially("tina", delay=TYPING_MS)
    form.get_by_label("Rolle").select_option(label="Lehrkraft")
    form.get_by_label("Passwort").press_sequentially("tinas-first-pw", delay=TYPING_MS)
    form.get_by_role("button", name="Benutzer anlegen").click()
    expect(admin.locator(".flash")).to_contain_text("tina kann sich jetzt als Lehrkraft anmelden")
    tina = user_row(admin, "tina")
    expect(tina).to_have_attribute("data-role", "teacher")
    assert fits(admin)

    tina.get_by_text("Ändern …").click()                      # role: viewer
    tina.get_by_label("Rolle").select_option(label="Betrachter")
    tina.get_by_role("button", name="Rolle ändern").click()
    expect(user_row(admin, "tina")).to_have_attribute("data-role", "viewer")
    expect(admin.locator(".flash")).to_contain_text("tina ist jetzt Betrachter.")

    user_row(admin, "tina").get_by_text("Ändern …").click()   # a generated password
    user_row(admin, "tina").get_by_role("button", name="Passwort neu setzen").click()
    expect(admin.locator("#new-password-box")).to_contain_text("nur jetzt angezeigt")
    password = admin.locator("#new-password").inner_text().strip()
    assert re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", password)

    laptop.sync()                                              # the laptop learns tina
    on_laptop = new_page(browser, stack, PHONE)
    log_in(on_laptop, laptop.url, "tina", password, GERMAN_LOGIN)
    expect(on_laptop.get_by_role("banner")).to_contain_text("tina (Betrachter)")

    user_row(admin, "tina").get_by_text("Ändern …").click()   # deactivate
    user_row(admin, "tina").get_by_role("button", name="Deaktivieren").click()
    expect(user_row(admin, "tina")).to_have_attribute("data-active", "no")
    expect(admin.locator("#user-log tbody tr").first).to_contain_text(
        "Benutzer tina deaktiviert")
    expect(admin.locator("#user-log tbody tr")).to_have_count(4)

    refused = new_page(browser, stack, PHONE)                  # central refuses tina
    log_in(refused, live_central, "tina", password, GERMAN_LOGIN)
    expect(refused.get_by_role("alert")).to_have_text("Name oder Passwort ist falsch.")

    laptop.sync()                                              # so does the laptop, after a pull
    on_laptop.reload()
    expect(on_laptop).to_have_url(re.compile(r"/login"))        # her session there ended
    log_in(on_laptop, laptop.url, "tina", password, GERMAN_LOGIN)
    expect(on_laptop.get_by_role("alert")).to_have_text("Name oder Passwort ist falsch.")


def test_a_viewer_gets_403_and_no_users_link(browser, stack, live_central, central_users):
    viewer = new_page(browser, stack, TABLET)
    log_in(viewer, live_central, "vic", CENTRAL_PASSWORD, ENGLISH_LOGIN)
    expect(viewer.get_by_role("banner").get_by_role("link", name="Devices")).to_be_visible()
    expect(viewer.get_by_role("banner").get_by_role("link", name="Users")).to_have_count(0)
    answer = viewer.goto(f"{live_central}/users/")
    assert answer.status == 403
    expect(viewer.get_by_role("main")).to_contain_text("Your role may not do this.")


def read_qr(locator) -> list[str]:
    """Return the text of every QR code zxing-cpp finds in a screenshot of the element."""
    image = Image.open(io.BytesIO(locator.screenshot(animations="disabled"))).convert("L")
    found = zxingcpp.read_barcodes(image)
    assert all(code.format == zxingcpp.BarcodeFormat.QRCode for code in found), found
    return [code.text for code in found]


def test_a_connect_code_from_the_devices_page_connects_a_fresh_laptop_that_syncs_its_lap(
        browser, stack, live_central, central_users, central_db, laptop):
    admin = new_page(browser, stack, TABLET, permissions=["clipboard-read", "clipboard-write"])
    log_in(admin, live_central, "ada", CENTRAL_PASSWORD, ENGLISH_LOGIN)
    admin.get_by_role("banner").get_by_role("link", name="Devices").click()
    admin.get_by_label("Device name").press_sequentially("track-1", delay=TYPING_MS)
    admin.get_by_role("button", name="Register and show its token").click()
    code = admin.locator("#connect-code").inner_text().strip()
    token = admin.locator("#token").inner_text().strip()
    assert code == f"lapsync:{live_central}#{token}"
    assert read_qr(admin.locator("#connect-qr")) == [code]
    admin.locator("#connect").get_by_role("button", name="Copy").click()
    expect(admin.locator("#connect").get_by_role("button", name="Copied")).to_be_visible()
    assert admin.evaluate("navigator.clipboard.readText()") == code
    expect(admin.locator("#connect-loopback")).to_be_visible()  # 127.0.0.1: this computer only
    assert fits(admin)

    helper = new_page(browser, stack, TABLET)                  # a lap before the laptop connects
    log_in(helper, laptop.url, "ada", PASSWORD, ENGLISH_LOGIN)
    helper.locator("#start_number").press_sequentially("1", delay=TYPING_MS)
    helper.locator("#start_number").press("Enter")
    expect(helper.locator("#feedback")).to_contain_text("Anna Berg")
    expect(helper.locator("#sync-status")).to_have_attribute("data-state", "not_connected")

    helper.get_by_role("banner").get_by_role("link", name="Connect to central").click()
    expect(helper.locator("#connection-state")).to_contain_text("not connected to central yet")
    helper.get_by_label("Connect code").focus()
    helper.keyboard.insert_text(code)                          # pasted
    helper.get_by_role("button", name="Check and connect").click()
    expect(helper.locator(".flash")).to_contain_text(
        f"Connected to central at {live_central}. First sync: ")
    expect(helper.locator("#central-url")).to_have_text(live_central)
    expect(helper.get_by_role("banner").get_by_role("link", name="Central")).to_be_visible()
    assert fits(helper)
    laps = central_db.execute("SELECT count(*) AS n FROM lap WHERE runner_id = %s",
                              [laptop.runner]).fetchone()["n"]
    assert laps == 1


def test_a_wrong_token_is_refused_in_german_and_nothing_is_saved(
        browser, stack, live_central, central_users, laptop):
    helper = new_page(browser, stack, PHONE)
    log_in(helper, laptop.url, "ada", PASSWORD, GERMAN_LOGIN)
    helper.get_by_role("banner").get_by_role("link", name="Mit der Zentrale verbinden").click()
    helper.get_by_label("Adresse der Zentrale").press_sequentially(live_central, delay=TYPING_MS)
    helper.get_by_label("Geräte-Token").press_sequentially("not-a-token-1234", delay=TYPING_MS)
    helper.get_by_role("button", name="Prüfen und verbinden").click()
    expect(helper.locator("#connect-error")).to_contain_text(
        f"Die Zentrale unter {live_central} hat dieses Geräte-Token abgelehnt")
    expect(helper.locator("#connect-error")).to_contain_text("Nichts wurde gespeichert.")
    assert fits(helper) and not laptop.app.config.get("CENTRAL_URL")
