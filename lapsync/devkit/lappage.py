"""A helper typing fast on the real lap page: a plan of numbers, a slow server, the check.

Shared by tests/system/test_lap_page.py and bench/bench_typing.py: the page in
Chromium (Playwright), the laptop app behind SlowLaps so that answers come late
and in random delays, and an audit of the laps the database holds afterwards.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

from lapsync.laptop.db import connect

REPEAT_SHARE = 0.2  # share of typed numbers that repeat an earlier one (a "too soon" warning)


class SlowLaps:
    """WSGI middleware: hold each POST /laps for a random 0..max_ms before the app answers."""

    def __init__(self, app, max_ms: float, seed: int = 0):
        """Wrap app; delays come from a seeded generator."""
        self.app, self.max_ms = app, max_ms
        self.random, self.lock = random.Random(seed), threading.Lock()

    def __call__(self, environ, start_response):
        """Sleep before lap posts, then call the app."""
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/laps":
            with self.lock:
                delay = self.random.uniform(0, self.max_ms) / 1000
            time.sleep(delay)
        return self.app(environ, start_response)


def typing_plan(count: int, runners: int, seed: int = 0,
                repeat_share: float = REPEAT_SHARE) -> list[str]:
    """Return count start numbers from 1..runners in random order, some repeating earlier ones."""
    rng = random.Random(seed)
    fresh = rng.sample(range(1, runners + 1), runners)
    plan: list[str] = []
    for _ in range(count):
        if plan and (rng.random() < repeat_share or not fresh):
            plan.append(rng.choice(plan))
        else:
            plan.append(str(fresh.pop()))
    return plan


def expected_laps(plan: list[str]) -> list[str]:
    """Return the laps the plan must leave: each number's first time, in typing order.

    A repeat comes within the minimum lap time, gets a warning and is left uncounted
    by typing the next number.
    """
    seen: set[str] = set()
    return [n for n in plan if not (n in seen or seen.add(n))]


def log_in(page, url: str, name: str, password: str, scripted: bool = True) -> None:
    """Log in through the real form and wait until the lap page's script handles the field.

    Keys typed before laps.js has run go to the plain form post of the page without
    JavaScript; a helper starts when the page is ready, and so do the tests. Without
    JavaScript (scripted=False) the number field is all there is to wait for.
    """
    page.goto(f"{url}/login")
    page.locator("input[name=name]").fill(name)  # by name: the labels follow the language
    page.locator("input[name=password]").fill(password)
    page.locator("input[name=password]").press("Enter")
    page.locator("#lap-form[data-pending]" if scripted else "#start_number").wait_for()


def type_plan(page, plan: list[str], seed: int = 0, max_gap_ms: float = 30) -> None:
    """Type each number and Enter on the focused field, 0..max_gap_ms between keys."""
    rng = random.Random(seed)
    for number in plan:
        for key in [*number, "Enter"]:
            page.keyboard.press(key)
            time.sleep(rng.uniform(0, max_gap_ms) / 1000)


def wait_answered(page, timeout_ms: float) -> None:
    """Wait until the page has an answer for every number it sent."""
    page.wait_for_function(
        "() => document.getElementById('lap-form').dataset.pending === '0'", timeout=timeout_ms)


def counted_numbers(database: Path) -> list[str]:
    """Return the start numbers of the counting laps in the order they were recorded."""
    db = connect(database)
    try:
        return [str(row[0]) for row in db.execute(
            "SELECT runner.start_number FROM lap JOIN runner ON runner.id = lap.runner_id "
            "WHERE lap.voided_at IS NULL ORDER BY lap.rowid")]
    finally:
        db.close()


def audit(plan: list[str], counted: list[str]) -> dict:
    """Compare the laps counted with the plan: wrong runner, doubled, lost, order."""
    expected = expected_laps(plan)
    extra = Counter(counted) - Counter(expected)
    typed = set(plan)
    return {"typed": len(plan), "expected": len(expected), "counted": len(counted),
            "wrong_runner": sorted(n for n in extra.elements() if n not in typed),
            "doubled": sorted(n for n in extra.elements() if n in typed),
            "lost": sorted((Counter(expected) - Counter(counted)).elements()),
            "in_typing_order": counted == expected}


# Time from the Enter keydown to the feedback's answer (counted, warning or error), in the page.
LATENCY_JS = """() => {
  const field = document.getElementById('start_number'), feedback = document.getElementById('feedback');
  window.__latency = []; let sent = null;
  field.addEventListener('keydown', ev => { if (ev.key === 'Enter') sent = performance.now(); }, true);
  new MutationObserver(() => {
    if (sent !== null && /\\b(good|warn|bad)\\b/.test(feedback.className)) {
      window.__latency.push(performance.now() - sent); sent = null;
    }
  }).observe(feedback, {attributes: true, attributeFilter: ['class']});
}"""


def feedback_latencies(page, numbers: list[str], pause_s: float = 0.2) -> list[float]:
    """Type each number with a pause after it; return ms from Enter to its feedback."""
    page.evaluate(LATENCY_JS)
    for number in numbers:
        page.keyboard.type(number)
        page.keyboard.press("Enter")
        time.sleep(pause_s)
    wait_answered(page, 30_000)
    return page.evaluate("window.__latency")
