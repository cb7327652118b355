"""Every page of both apps on a phone (390 x 844) and a tablet (768 x 1024), in real Chromium.

No page scrolls sideways (the root's scrollWidth fits the viewport; wide tables scroll
inside a wrapper of their own), buttons, inputs and navigation links are at least 44 px
high, and the lap page's number field, Count button and feedback are on the first
screen. Every page also runs under its Content-Security-Policy without a violation
(both apps forbid inline script: lapsync/web/guard.py), a console error or an uncaught
script error; the print buttons and the error page's "Go back" are clicked. The laptop app and central are served on loopback, filled as at a real event:
the laptop pushes its runners, users and laps to central; a second device (tests.pg's
Outbox) pushes a start-number clash, a double count across laptops and a refused admin.
One browser and one set of servers for the module; one context per app and size.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import psycopg
import pytest
import requests
from playwright.sync_api import expect
from psycopg import sql
from psycopg.rows import dict_row
from werkzeug.exceptions import NotFound

from lapsync.ids import new_id
from lapsync.laptop import create_app as create_laptop
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop.db import connect, set_meta
from lapsync.laptop.laps import record_lap, set_void
from lapsync.laptop.auth import create_user
from lapsync.laptop.runners import add_runner
from sync import create_app as create_central
from sync.db import close_pool, now_ms
from sync.sponsors.payments import add_payment
from sync.sponsors.pledges import add_pledge
from sync.settings import save_settings
from tests.conftest import PASSWORD
from tests.pg import Outbox, admin_execute, drop_database, register, with_database
from tests.web import served

# The phone in German (the longer words), the tablet in English: both languages, no extra runs.
SIZES = {"390x844": (390, 844, "de-DE"), "768x1024": (768, 1024, "en-US")}
TOUCH_PX = 44
# A real (and famously long) surname without a break opportunity, and a hyphenated one.
ROSTER = [(1, "Anna Berg", "5a", 5), (2, "Hubert Wolfeschlegelsteinhausenbergerdorff", "5a", 5),
          (17, "Cleo Leutheusser-Schnarrenberger", "10c", 10), (123456, "Ben Cruz", "10c", 10),
          (3, "Mia Schulze-Oberhausen", "6b", 6), (4, "Jonas Kowalczyk", "6b", 6)]
FRESH_RUNNER = {"390x844": ("3", "Mia Schulze-Oberhausen"), "768x1024": ("4", "Jonas Kowalczyk")}
EVENT = {"event_name": "Sponsorenlauf der Gesamtschule am Wiesengrund", "event_date": "2025-06-27",
         "metres_per_lap": 400, "min_lap_seconds": 60}

LAPTOP_PAGES = {
    "lap entry": "/", "runners": "/runners/", "runners search": "/runners/?q=Berg",
    "add runner": "/runners/new", "edit runner": "/runners/{runner}/edit",
    "import": "/runners/import", "users": "/users", "big screen": "/big/", "404": "/no-such-page",
    "connect to central": "/connect",
}
CENTRAL_PAGES = {
    "standings": "/standings/", "standings filtered": "/standings/?class=5a&sort=name",
    "standings by class": "/standings/classes", "standings by grade": "/standings/grades",
    "runner page": "/standings/runner/{runner}", "live": "/live/", "review": "/review/",
    "roster": "/runners/", "roster form": "/runners/new", "roster edit": "/runners/{runner}/edit",
    "roster import": "/runners/import", "start-number sheets": "/runners/sheets",
    "start-number sheets two per page": "/runners/sheets?per_page=2", "label sheets": "/runners/labels",
    "results": "/admin/results?q=a", "results by class": "/admin/results/classes",
    "certificate": "/admin/certificates/runner/{runner}",
    "certificates of a class": "/admin/certificates/class/10c", "charts": "/charts/",
    "devices": "/devices/", "users": "/users/", "sync log": "/logs/", "settings": "/settings/",
    "error page": "/no-such-page",
    "bad filter": "/standings/?grade=99", "home": "/",
    "mail": "/sponsors/mail/", "bank statement": "/sponsors/statement/",
    "freeze and changes": "/sponsors/changes", "letters": "/sponsors/letters",
    "letters of a class": "/sponsors/letters?class=10c", "class list": "/sponsors/classes/10c/list",
    "sponsors": "/sponsors/", "sponsors searched": "/sponsors/?q=a&class=5a",
    "pledge": "/sponsors/{runner}", "add pledge": "/sponsors/new",
    "edit pledge": "/sponsors/{runner}/edit", "record payment": "/sponsors/{runner}/pay",
    "type cards": "/sponsors/entry", "type a card": "/sponsors/entry?number=2",
    "import pledges": "/sponsors/import", "outstanding": "/sponsors/outstanding",
    "money log": "/sponsors/log",
}
# GET routes that answer data, not a page (JSON, CSV, YAML, files).
NOT_PAGES = {"static", "web.static", "sync.status", "big.laps", "laps.recent", "live.feed_view", "results.results_csv",
             "results.results_csv_german", "result_sheets.results_xlsx", "result_sheets.ceremony_xlsx",
             "sponsors.runner_lookup", "money_exports.csv_export", "money_exports.csv_export_german",
             "money_exports.xlsx_export",
             "api.openapi", "api.pull_view", "health.healthz"}

# What sticks out to the right, for the failure message: the deepest elements past the edge.
OVERFLOW_JS = """() => {
  const width = window.innerWidth, out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.right > width + 0.5 && ![...el.children].some(c => c.getBoundingClientRect().right > width + 0.5))
      out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${el.className} "${el.textContent.trim().slice(0, 30)}" right=${Math.round(box.right)}`);
  }
  return {scroll: document.documentElement.scrollWidth, inner: width, out: out.slice(0, 8)};
}"""
# Visible buttons, inputs, selects and navigation links lower than the touch size (a checkbox
# or radio counts by its label, which is what a finger hits).
SMALL_TARGETS_JS = """(min) => {
  const small = [];
  for (const el of document.querySelectorAll('button, input:not([type=hidden]), select, textarea, nav a')) {
    const style = getComputedStyle(el);
    let box = el.getBoundingClientRect();
    if (!box.width || !box.height || style.visibility === 'hidden') continue;
    if ((el.type === 'checkbox' || el.type === 'radio') && el.closest('label'))
      box = el.closest('label').getBoundingClientRect();
    if (box.height < min - 0.5)
      small.push(`${el.tagName.toLowerCase()}[${el.name || el.type || ''}] "${(el.textContent || el.value || '').trim().slice(0, 30)}" ${Math.round(box.height)} px`);
  }
  return small;
}"""
# Reports what the browser blocked, with where, before any script of the page runs.
LISTEN_JS = """document.addEventListener('securitypolicyviolation', e => window.cspViolation(
  `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} in ${e.sourceFile}:${e.lineNumber}`));"""
FIRST_SCREEN_JS = """(selectors) => selectors.map(s => {
  const box = document.querySelector(s).getBoundingClientRect();
  return {s, top: box.top, bottom: box.bottom, left: box.left, right: box.right,
          inside: box.top >= 0 && box.left >= 0 && box.bottom <= innerHeight && box.right <= innerWidth};
})"""


# ---- the two apps, filled once for the module ---------------------------------------

def central_database(server_url: str, template: str) -> str:
    """Create this module's central database from the schema template; return its URL."""
    name = f"lapsync_small_screens_{os.getpid()}"
    drop_database(server_url, name)
    admin_execute(server_url, sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template)))
    return with_database(server_url, name)


def fill_laptop(path: Path) -> dict:
    """Give the laptop an admin, a teacher, the roster and laps (a double count among them)."""
    db = connect(path)
    try:
        set_meta(db, "device_id", new_id())
        users = {name: create_user(db, name, role, PASSWORD)
                 for name, role in [("ada", "admin"), ("tom", "teacher")]}
        runners = {number: add_runner(db, number, name, class_, grade)
                   for number, name, class_, grade in ROSTER}
        for number in (1, 2, 17, 1, 123456):
            lap = record_lap(db, number, users["tom"], 60_000, confirm=True)
        set_void(db, lap["lap"]["id"], users["tom"], True, "typed twice")  # a Restore button
        return runners
    finally:
        db.close()


def push_second_laptop(base: str, token: str, anna: str) -> None:
    """Push, as another laptop, a clashing number 17, a lap of Anna now and an admin."""
    outbox = Outbox(clock_ms=now_ms())
    outbox.runner(17, "Dana Okonkwo-Fitzgerald", "10c", 10)
    outbox.lap(anna)
    outbox.user("eve", role="admin")  # untrusted device: refused, listed on the devices page
    answer = requests.post(f"{base}/api/v1/push", json=outbox.body(), timeout=30,
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text[:500]


@pytest.fixture(scope="module")
def sites(tmp_path_factory, pg_server_url, pg_template):
    """Serve the laptop app and central, filled; yield their URLs and a runner id."""
    base = tmp_path_factory.mktemp("small-screens")
    laptop_path = base / "laptop.sqlite"
    cached = {"SEND_FILE_MAX_AGE_DEFAULT": 3600}  # CSS and JS once per context, not per page
    laptop = create_laptop({"TESTING": True, "SECRET_KEY": "small-laptop", "DATABASE": str(laptop_path),
                            "INSTANCE_CONFIG_FILE": str(base / "laptop-config.py"), **cached})
    runners = fill_laptop(laptop_path)
    pg_url = central_database(pg_server_url, pg_template)
    central = create_central({"TESTING": True, "SECRET_KEY": "small-central", "DATABASE_URL": pg_url,
                              "DB_POOL_SIZE": 4, **cached})
    try:
        with psycopg.connect(pg_url, autocommit=True, row_factory=dict_row) as conn, \
                served(laptop) as laptop_url, served(central) as central_url:
            token = register(conn, "Laptop am Zieleinlauf", manage_users=True)
            other = register(conn, "Tablet an der Wendemarke")
            save_settings(conn, EVENT)
            db = connect(laptop_path)
            try:
                result = sync_once(db, Central(central_url, token), force=True)
            finally:
                db.close()
            assert result.error is None, result.error
            push_second_laptop(central_url, other, runners[1])
            fill_money(conn, runners)
            yield {"laptop": laptop_url, "central": central_url, "runner": runners[2],
                   "apps": {"laptop": laptop, "central": central}}
    finally:
        close_pool(central)
        drop_database(pg_server_url, pg_url.rsplit("/", 1)[-1].split("?")[0])
        shutil.rmtree(base, ignore_errors=True)


def fill_money(conn, runners: dict) -> None:
    """Give central pledges of every kind and a payment; the pledge of runners[2] has that
    runner's id as its own, so the pages' paths with {runner} show it."""
    long_name = "Bäckerei und Konditorei Wolfeschlegelsteinhausenbergerdorff GmbH & Co. KG"
    add_pledge(conn, None, runners[1], {"sponsor_name": "Oma Berg", "kind": "per_lap",
                                        "rate_cents": "0,50", "cap_cents": "30"})
    paid = add_pledge(conn, None, runners[17], {"sponsor_name": long_name, "kind": "per_km",
                                                "rate_cents": "2", "email": "info@example.org"})
    add_payment(conn, None, paid, {"amount_cents": "5", "paid_on": "2025-07-01",
                                   "method": "transfer", "reference": "RF", "note": ""})
    pledge = add_pledge(conn, None, runners[2], {"sponsor_name": long_name, "kind": "fixed",
                                                 "rate_cents": "1234,50"})
    conn.execute("UPDATE pledge SET id = %s WHERE id = %s", [runners[2], pledge])


# ---- the browser: one per module, one logged-in page per app and size -----------------

def new_context(browser, size: str):
    """Return a fresh context of the given viewport size, in that size's language."""
    width, height, locale = SIZES[size]
    context = browser.new_context(locale=locale, viewport={"width": width, "height": height})
    context.set_default_timeout(8_000)
    return context


def watched_page(context) -> tuple:
    """Return (page, problems): a new page whose blocked content and errors are collected."""
    problems: list[str] = []
    context.expose_function("cspViolation", lambda text: problems.append(f"CSP: {text}"))
    context.add_init_script(LISTEN_JS)
    page = context.new_page()

    def console(message) -> None:
        """Keep console errors, but not the 4xx of an error page on purpose or of the favicon
        the browser asks for by itself (neither app has one)."""
        where = message.location.get("url") or ""
        if message.type == "error" and where != page.url and not where.endswith("/favicon.ico"):
            problems.append(f"console: {message.text} ({where})")
    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    return page, problems


def log_in(page, url: str) -> None:
    """Log in as the admin ada through the login form, as a person does."""
    page.goto(f"{url}/login")
    page.locator("input[name=name]").press_sequentially("ada", delay=5)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("input[name=password]").press("Enter")
    expect(page).not_to_have_url(re.compile(r"/login"))


@pytest.fixture(scope="module")
def admin_page(browser, sites):
    """Return get(app, size): a page logged in as admin, one context per app and size."""
    pages, contexts = {}, []

    def get(app: str, size: str):
        """Open (once) and return the logged-in page of app at size and its problem list."""
        if (app, size) not in pages:
            contexts.append(new_context(browser, size))
            pages[app, size] = watched_page(contexts[-1])
            log_in(pages[app, size][0], sites[app])
        return pages[app, size]

    yield get
    for context in contexts:
        context.close()


def open_page(page, url: str) -> None:
    """Go to url and wait until the page has loaded."""
    page.goto(url, wait_until="load")


def open_watched(watched: tuple, url: str, where: str) -> None:
    """Go to url; assert that the page loaded without a blocked script or an error."""
    page, problems = watched
    problems.clear()
    open_page(page, url)
    page.wait_for_timeout(50)  # let deferred scripts and their first fetch run
    assert not problems, f"{where}: " + "\n".join(problems)


def assert_fits(page, where: str) -> None:
    """Assert that the page does not scroll sideways, naming what sticks out."""
    page.wait_for_load_state("load")  # every stylesheet applied
    found = page.evaluate(OVERFLOW_JS)
    assert found["scroll"] <= found["inner"], f"{where} scrolls sideways: {found}"


def assert_touch_sized(page, where: str) -> None:
    """Assert that no visible button, input or navigation link is below the touch size."""
    small = page.evaluate(SMALL_TARGETS_JS, TOUCH_PX)
    assert not small, f"{where}: below {TOUCH_PX} px: {small}"


# ---- every page, both sizes ------------------------------------------------------------

EVERY_PAGE = [(app, name) for app, pages in (("laptop", LAPTOP_PAGES), ("central", CENTRAL_PAGES))
              for name in pages]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("app, name", EVERY_PAGE)
def test_page_fits(admin_page, sites, app, name, size):
    watched = admin_page(app, size)
    where = f"{app} {name} at {size}"
    path = {"laptop": LAPTOP_PAGES, "central": CENTRAL_PAGES}[app][name]
    open_watched(watched, sites[app] + path.format(runner=sites["runner"]), where)
    assert_fits(watched[0], where)
    assert_touch_sized(watched[0], where)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("app", ["laptop", "central"])
def test_login_page_fits(browser, sites, app, size):
    context = new_context(browser, size)
    try:
        page = context.new_page()
        open_page(page, f"{sites[app]}/login")
        expect(page.locator("input[name=password]")).to_be_visible()
        assert_fits(page, f"{app} login at {size}")
        assert_touch_sized(page, f"{app} login at {size}")
    finally:
        context.close()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("app", ["laptop", "central"])
def test_import_report_fits(admin_page, sites, app, size, tmp_path):
    bad = tmp_path / "roster.csv"
    bad.write_text("Name,Klasse,Jahrgang\nAnna,5a,99\n" + "x" * 300 + ",5a\n", encoding="utf-8")
    page = admin_page(app, size)[0]
    open_page(page, f"{sites[app]}/runners/import")
    page.locator("input[name=file]").set_input_files(str(bad))
    page.locator("form.stack button[type=submit]").click()
    expect(page.locator(".report-table")).to_be_visible()
    assert_fits(page, f"{app} import report at {size}")
    assert_touch_sized(page, f"{app} import report at {size}")


@pytest.mark.parametrize("size", SIZES)
def test_central_new_token_and_revoke_question_fit(admin_page, sites, size):
    page = admin_page("central", size)[0]
    open_page(page, f"{sites['central']}/devices/")
    page.locator("#register-device input[name=name]").press_sequentially(f"Laptop-{size}", delay=5)
    page.locator("#register-device button[type=submit]").click()
    expect(page.locator("#token")).to_be_visible()
    assert_fits(page, f"central new token at {size}")
    page.locator(f'#devices tr:has-text("Laptop-{size}") form[action$="/revoke"] button').click()
    expect(page.locator("#confirm-revoke")).to_be_visible()
    assert_fits(page, f"central revoke question at {size}")
    assert_touch_sized(page, f"central revoke question at {size}")


@pytest.mark.parametrize("app, pages", [("laptop", LAPTOP_PAGES), ("central", CENTRAL_PAGES)])
def test_every_page_of_the_app_is_checked_here(sites, app, pages):
    """A page added later fails here until it is in LAPTOP_PAGES or CENTRAL_PAGES."""
    url_map = sites["apps"][app].url_map
    adapter = url_map.bind("localhost")
    checked = {"auth.login"}                     # test_login_page_fits
    for path in pages.values():
        try:
            checked.add(adapter.match(path.split("?")[0].format(runner="x"), method="GET")[0])
        except NotFound:  # the 404 page (a mistyped path leaves its page unchecked: below)
            pass
    routes = {rule.endpoint for rule in url_map.iter_rules() if "GET" in rule.methods}
    missing = routes - NOT_PAGES - checked
    assert not missing, f"add a path of each to this module's {app} pages (or NOT_PAGES): {missing}"


# ---- the lap page: the entry and its answer on the first screen ------------------------

@pytest.mark.parametrize("size", SIZES)
def test_lap_entry_and_feedback_are_on_the_first_screen(admin_page, sites, size):
    page = admin_page("laptop", size)[0]
    open_page(page, f"{sites['laptop']}/")
    field = page.locator("#start_number")
    expect(field).to_be_focused()
    number, name = FRESH_RUNNER[size]            # no lap yet: it counts at once
    field.press_sequentially(number, delay=10)
    field.press("Enter")
    feedback = page.locator("#feedback")
    expect(feedback).to_contain_text(name)
    expect(feedback).to_have_class(re.compile(r"\bgood\b"))
    parts = ["#start_number", "#lap-form button[type=submit]", "#feedback"]
    boxes = page.evaluate(FIRST_SCREEN_JS, parts)
    assert all(box["inside"] for box in boxes), f"not on the first screen at {size}: {boxes}"
    assert page.evaluate("window.scrollY") == 0

    field.press_sequentially(number, delay=10)   # again at once: the warning asks to confirm
    field.press("Enter")
    expect(feedback).to_have_class(re.compile(r"\bwarn\b"))
    boxes = page.evaluate(FIRST_SCREEN_JS, parts)
    assert all(box["inside"] for box in boxes), f"warning not on the first screen at {size}: {boxes}"
    assert_fits(page, f"lap page with a warning at {size}")
    assert_touch_sized(page, f"lap page with a warning at {size}")


# ---- script only from files: the print buttons and "Go back" ---------------------------

def test_print_buttons_and_go_back_work_without_inline_script(browser, sites):
    context = new_context(browser, "768x1024")
    try:
        page, problems = watched_page(context)
        url = sites["central"]
        log_in(page, url)
        for path in ("/admin/certificates/runner/{runner}", "/admin/results/classes",
                     "/runners/sheets", "/runners/labels"):
            page.goto(url + path.format(runner=sites["runner"]), wait_until="load")
            page.evaluate("() => { window.printed = 0; window.print = () => { window.printed += 1; }; }")
            page.locator("button[data-action=print]").click()
            assert page.evaluate("window.printed") == 1, path
        page.goto(f"{url}/standings/", wait_until="load")
        page.goto(f"{url}/no-such-page", wait_until="load")
        page.get_by_role("link", name="Go back").click()
        expect(page).to_have_url(re.compile(r"/standings/$"))
        assert not problems, "\n".join(problems)
        # The policy is in force, and these tests would see a page that breaks it:
        page.evaluate("""() => { const s = document.createElement('script');
                                 s.textContent = 'window.ran = true'; document.body.append(s); }""")
        page.wait_for_timeout(100)  # the violation event reaches the test through a binding
        assert page.evaluate("window.ran === undefined")
        assert any(p.startswith("CSP: script-src") for p in problems), problems
    finally:
        context.close()
