"""Tests' helpers for real HTTP and a real browser: an app served on loopback, Debian's Chromium.

served and launch_chromium live in lapsync.devkit.browser, which bench/ shares.
"""
from __future__ import annotations

from playwright.sync_api import Error as PlaywrightError

from lapsync.devkit.browser import CHROMIUM, CHROMIUM_ARGS, launch_chromium, served

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "KeptPage", "launch_chromium", "served"]


class KeptPage:
    """A browser context and its page, kept for a module's tests and tidied after each.

    A new page costs Chromium a renderer process (~0.6 s of CPU on the 2-core machine),
    a navigation in a kept one ~0.25 s. After a test, tidy() takes off what it left:
    other pages, event listeners, routes, the page's storage and every cookie; the page
    is left blank. Each test serves its app on a new port, so its origin is new too.
    """

    def __init__(self, browser, init_script: str | None = None, timeout_ms: float = 10_000,
                 **options) -> None:
        """Open the context with options (viewport, locale, ...) and its page."""
        self.context = browser.new_context(**options)
        self.viewport = options.get("viewport")
        if init_script:
            self.context.add_init_script(init_script)
        self.context.set_default_timeout(timeout_ms)
        self.page = self.open_page()

    def open_page(self):
        """Open the kept page; note the listeners Playwright itself put on it."""
        page = self.context.new_page()
        events = page._impl_obj  # Playwright's own emitter: the test API has no listener list
        self.own_listeners = {event: list(events.listeners(event)) for event in events.event_names()}
        return page

    def tidy(self) -> None:
        """Leave the context as a new one: one blank page, no cookies, storage, routes or listeners."""
        for other in self.context.pages:
            if other is not self.page:
                other.close()
        try:
            self.empty()
        except PlaywrightError:  # closed, crashed or in a state of its own: a new page
            self.page.close()
            self.page = self.open_page()
        self.context.unroute_all(behavior="ignoreErrors")
        self.context.clear_cookies()
        if self.viewport and self.page.viewport_size != self.viewport:
            self.page.set_viewport_size(self.viewport)

    def empty(self) -> None:
        """Take the test's listeners, routes and storage off the kept page; leave it blank."""
        events = self.page._impl_obj
        for event in events.event_names():
            for listener in events.listeners(event):
                if listener not in self.own_listeners.get(event, []):
                    events.remove_listener(event, listener)
        self.page.unroute_all(behavior="ignoreErrors")
        if self.page.url.startswith("http"):
            self.page.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
        self.page.goto("about:blank")

    def close(self) -> None:
        """Close the context and its pages."""
        self.context.close()


def scroll_width(page) -> int:
    """Return the page's width with its stylesheets applied (the root's scrollWidth).

    A check right after a navigation can see the page before its CSS: it then overflows.
    """
    page.wait_for_load_state("load")
    return page.evaluate("document.documentElement.scrollWidth")


def fits_width(page) -> bool:
    """Tell whether the page, its stylesheets applied, does not scroll sideways."""
    return scroll_width(page) <= page.evaluate("window.innerWidth")


def kept_pages_by_size(browser, sizes: dict):
    """Yield a getter of one kept context and page per size (sizes: name -> (width, height,
    locale)), each made on first use; close them all after (a module fixture's body)."""
    kept: dict[str, KeptPage] = {}

    def get(size: str) -> KeptPage:
        """Return the kept page of size, made now if it is the first use."""
        if size not in kept:
            width, height, locale = sizes[size]
            kept[size] = KeptPage(browser, timeout_ms=8_000, locale=locale,
                                  viewport={"width": width, "height": height})
        return kept[size]

    yield get
    for each in kept.values():
        each.close()
