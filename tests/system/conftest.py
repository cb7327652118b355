"""Fixtures of the system tests: a page kept for a module's tests and tidied after each.

A module may set KEPT_PAGE to the options of its context (tests.web.KeptPage's
arguments); by default an English one at 1280 x 900.
"""
from __future__ import annotations

import pytest

from tests.web import KeptPage

KEPT_PAGE = {"timeout_ms": 8_000, "locale": "en-US", "viewport": {"width": 1280, "height": 900}}


@pytest.fixture(scope="module")
def kept_page(browser, request):
    """The module's context and page (see tests.web.KeptPage)."""
    kept = KeptPage(browser, **getattr(request.module, "KEPT_PAGE", KEPT_PAGE))
    yield kept
    kept.close()


@pytest.fixture
def page(kept_page):
    """A page as of a fresh browser context: no cookies, no storage, blank."""
    yield kept_page.page
    kept_page.tidy()
