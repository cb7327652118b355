"""Fixtures of the system tests: one headless Chromium per browser test module."""
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
