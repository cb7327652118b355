"""Two hours offline at the track, in seconds: a laptop under libfaketime at x30.

The laptop app is its own process whose wall clock runs 30 times as fast (its boot clock
stays real: CLOCK_RATE tells its clock watch so); the minimum lap time is 30 s. It syncs once; central goes away; the
helper counts laps; the app is SIGKILLed and started again after a break of 110 minutes;
someone sets its clock back ten minutes while it runs; then central comes back. Checked
on the way: the badge's state at each step, no "too soon" for a lap that was not (each
runner's laps lie at least 39 s apart in laptop time), the clock jump noticed and reported, and at
the end exact delivery: the laps the app confirmed are the laps central holds.
"""
from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime

import requests

from lapsync.devkit.clocked import ClockedLaptop, clock_spec
from lapsync.devkit.faultproxy import FaultProxy
from lapsync.devkit.laptops import login, post_lap, prepare_database
from sync.devices import register_device
from tests.system.test_clock_faketime import closed_url

SPEED = 30
RUNNERS = 8
MIN_LAP_S = 30       # laptop seconds
SPACING_S = 1.3      # real seconds between two laps of one runner: 39 laptop seconds
BREAK_S = 110 * 60   # the laptop app is off this long (laptop time)


class Helper:
    """The helper's session with the laptop app: laps in rotation, every answer kept."""

    def __init__(self, laptop: ClockedLaptop):
        self.laptop, self.session = laptop, login(laptop.url)
        self.next, self.confirmed, self.too_soon, self.states = 0, [], [], []
        self.last: dict[str, float] = {}  # monotonic time of each runner's latest lap

    def count(self, laps: int) -> None:
        """Count LAPS laps, one runner after the other, each runner's SPACING_S apart."""
        for _ in range(laps):
            number = str(self.next % RUNNERS + 1)
            self.next += 1
            time.sleep(max(0.0, self.last.get(number, 0) + SPACING_S - time.monotonic()))
            self.last[number] = time.monotonic()
            answer = post_lap(self.session, self.laptop.url, number)
            if answer.status_code == 409:
                self.too_soon.append((number, answer.json().get("since_previous_ms")))
            else:
                assert answer.status_code == 201, answer.text
                self.confirmed.append(answer.json()["lap"]["id"])

    def status(self) -> requests.Response:
        """Return the answer to the badge's poll."""
        return self.session.get(f"{self.laptop.url}/sync/status", timeout=10,
                                headers={"Accept": "application/json"})

    def badge(self, state: str, pending: int | None = None, timeout: float = 8) -> dict:
        """Wait until the badge shows STATE (with PENDING changes waiting); note it; return it."""
        deadline = time.monotonic() + timeout
        while (status := self.status().json())["state"] != state \
                or pending is not None and status["pending"] != pending:
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        self.states.append(status["state"])
        return status

    def laptop_clock(self) -> float:
        """Return the laptop's wall clock (epoch s, whole seconds): its answer's Date header."""
        return parsedate_to_datetime(self.status().headers["Date"]).timestamp()


def test_two_offline_hours_with_a_kill_and_a_clock_set_back_deliver_every_lap_once(
        live_central, central_db, tmp_path):
    token = register_device(central_db, "track", manage_users=True, manage_roster=True)
    proxy = FaultProxy(live_central)
    laptop = ClockedLaptop(prepare_database(tmp_path, runners=RUNNERS), tmp_path, {
        "LAPSYNC_CENTRAL_URL": proxy.url, "LAPSYNC_CENTRAL_TOKEN": token,
        "LAPSYNC_CLOCK_RATE": str(SPEED), "LAPSYNC_MIN_LAP_SECONDS": str(MIN_LAP_S),
        # A sync every second (the monotonic clock: real seconds). Socket timeouts are
        # laptop seconds under libfaketime: they shrink 30-fold.
        "LAPSYNC_SYNC_INTERVAL": "1", "LAPSYNC_SYNC_CONNECT_TIMEOUT": "60",
        "LAPSYNC_SYNC_READ_TIMEOUT": "600"})
    try:
        laptop.set_clock(clock_spec(time.time(), SPEED))
        laptop.start()
        helper = Helper(laptop)
        helper.count(4)
        helper.badge("synced", pending=0)

        proxy.upstream = closed_url()                  # central goes away for the day
        helper.count(8)
        helper.badge("offline", pending=8)

        killed_at = helper.laptop_clock()
        laptop.kill()                                  # SIGKILL, then a break
        laptop.set_clock(clock_spec(killed_at + BREAK_S, SPEED))
        laptop.start()
        assert re.search(r"oldest 1 h 5\d min", helper.badge("offline")["text"])
        helper.count(8)

        laptop.set_clock(clock_spec(helper.laptop_clock() - 600, SPEED))  # ten minutes back
        helper.count(8)
        after_jump = helper.badge("offline", pending=24)
        assert [j["text"][:41] for j in after_jump["clock_jumps"]] == [
            "The laptop's clock was set back by 10 min"]

        proxy.upstream = live_central                  # central is back
        helper.badge("synced", pending=0, timeout=15)
        assert helper.too_soon == []
        assert helper.states == ["synced", "offline", "offline", "offline", "synced"]
        central_ids = [row["id"] for row in central_db.execute("SELECT id FROM lap")]
        assert sorted(central_ids) == sorted(helper.confirmed) and len(central_ids) == 28
        jumps = central_db.execute("SELECT jump_ms FROM clock_jump").fetchall()
        # Ten minutes, less the laptop seconds between reading its clock and writing the file.
        assert len(jumps) == 1 and -630_000 < jumps[0]["jump_ms"] <= -600_000 + 1000, jumps
    finally:
        laptop.kill()
        proxy.close()
