"""A WSGI app served on loopback and Debian's headless Chromium, for tests/ and bench/."""
from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import expect
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def served(app, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve a WSGI app on a free port of host by a threaded werkzeug server; yield its base URL."""
    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def launch_chromium(playwright):
    """Launch headless Debian Chromium; fail (never skip) where it is missing."""
    assert os.path.exists(CHROMIUM), (
        f"{CHROMIUM} is missing: the browser tests need Debian's Chromium. Run `python3 dev.py test` "
        "as root or `sudo apt-get install chromium` (never `playwright install`).")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def type_login_to(page, url: str, path: str, name: str, password: str) -> None:
    """Log in by typing on the login form in any language and land on PATH."""
    page.goto(f"{url}/login?next={path}")
    page.locator("input[name=name]").press_sequentially(name, delay=20)
    page.locator("input[name=password]").press_sequentially(password, delay=20)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))


def type_login(page, url: str, name: str, password: str) -> None:
    """Log in on an app's English login form by typing, as a person does."""
    page.goto(f"{url}/login")
    page.get_by_label("Name").press_sequentially(name)
    page.get_by_label("Password").press_sequentially(password)
    page.get_by_label("Password").press("Enter")
    expect(page).not_to_have_url(re.compile(r"/login"))
