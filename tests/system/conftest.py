"""Fixtures of the system tests: an English page of a fresh browser context."""
from __future__ import annotations

import pytest


@pytest.fixture
def page(browser):
    """A page of a fresh browser context (own cookies) in English."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8_000)
    yield context.new_page()
    context.close()
