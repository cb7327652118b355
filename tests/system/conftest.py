"""Fixtures of the system tests: an English page, kept for a module's tests and tidied after each."""
from __future__ import annotations

import pytest

from tests.web import KeptPage


@pytest.fixture(scope="module")
def kept_page(browser):
    """The module's English context and page (see tests.web.KeptPage)."""
    kept = KeptPage(browser, timeout_ms=8_000, locale="en-US", viewport={"width": 1280, "height": 900})
    yield kept
    kept.close()


@pytest.fixture
def page(kept_page):
    """A page as of a fresh browser context: no cookies, no storage, blank."""
    yield kept_page.page
    kept_page.tidy()
