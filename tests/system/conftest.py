"""Fixtures of the system tests: one headless Chromium per browser test module, a page."""
from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from tests.web import launch_chromium


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium for this module; fails (never skips) without it."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    """A page of a fresh browser context (own cookies) in English."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8_000)
    yield context.new_page()
    context.close()
