"""Every page of both apps under their Content-Security-Policy, in real Chromium.

Both apps forbid inline script (lapsync/web/guard.py). Each page is loaded logged in as
the admin, and whatever the browser blocks (a `securitypolicyviolation` event), every
console error and every uncaught script error fails the test: inline code must live in
static .js files. The print buttons and the error page's "Go back", which were inline
script, are clicked. The apps and their data are test_small_screens.py's (one set of
servers for this module), its page lists too, so a page added there is checked here.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.system.test_small_screens import (  # noqa: F401  (sites is a fixture)
    CENTRAL_PAGES,
    LAPTOP_PAGES,
    log_in,
    sites,
)

PAGES = {"laptop": LAPTOP_PAGES, "central": CENTRAL_PAGES}
# Reports what the browser blocked, with where, before any script of the page runs.
LISTEN_JS = """document.addEventListener('securitypolicyviolation', e => window.cspViolation(
  `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} in ${e.sourceFile}:${e.lineNumber}`));"""


@pytest.fixture
def watched(browser):
    """Return (page, problems): a fresh page whose blocked content and errors are collected."""
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8_000)
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
    yield page, problems
    context.close()


@pytest.mark.parametrize("app", PAGES)
def test_no_page_runs_or_needs_inline_script(watched, sites, app):
    page, problems = watched
    log_in(page, sites[app])
    for name, path in PAGES[app].items():
        before = len(problems)
        page.goto(sites[app] + path.format(runner=sites["runner"]), wait_until="load")
        page.wait_for_timeout(50)  # let deferred scripts and their first fetch run
        problems[before:] = [f"{app} {name}: {problem}" for problem in problems[before:]]
    assert not problems, "\n".join(problems)


def test_print_buttons_and_go_back_work_without_inline_script(watched, sites):
    page, problems = watched
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
    # The policy is in force, and this test would see a page that breaks it:
    page.evaluate("""() => { const s = document.createElement('script');
                             s.textContent = 'window.ran = true'; document.body.append(s); }""")
    page.wait_for_timeout(100)  # the violation event reaches the test through a binding
    assert page.evaluate("window.ran === undefined")
    assert any(p.startswith("CSP: script-src") for p in problems), problems
