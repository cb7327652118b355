"""The review queue's lap pairs, each runner's last lap and the time chart's buckets, as kept
at push time, equal their from-scratch computation (sync/derived.py) after any mix of
pushes (in and out of time order, re-sent laps, voids before their lap), laptop and
central voids and restores, merges, renumbering and a new minimum lap time."""
from __future__ import annotations

import itertools
import os

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from psycopg.rows import dict_row

from lapsync.errors import InputError
from lapsync.ids import new_id
from lapsync.protocol import validate_push
from sync import clock, derived, review
from sync.db import write_transaction
from sync.devices import find_device
from sync.push import push
from sync.settings import save_settings
from tests.pg import Outbox, create_database, drop_database, register

T = 1_700_000_000_000
STEP_MS = 10_000                    # lap times on a 10 s grid: ties and close pairs are common
_databases = itertools.count(1)
# (runner index, time slot): runner 3 is unknown to central.
LAPS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60)), min_size=1, max_size=12)


def add_admin(conn) -> str:
    """Add a central admin; return the id."""
    admin = new_id()
    with write_transaction(conn):
        conn.execute("INSERT INTO app_user (id, name, password_hash, role, created_at, hlc, "
                     "origin, change_id) VALUES (%s, 'ada', 'x', 'admin', 0, %s, %s, "
                     "nextval('change_id_seq'))", [admin, clock.tick(conn), clock.node_id(conn)])
    return admin


def send(conn, token: str, box: Outbox, first: int, now: int, offset_ms: int) -> None:
    """Push an outbox's changes from seq FIRST on, the laptop's clock OFFSET_MS behind central.

    Every other batch as if sent behind another (Lapsync-Follows): its laps are counted
    before the write lock (sync/push.py count_ahead), the others' under it.
    """
    body = validate_push(box.body(first=first, device_time=now - offset_ms))
    push(conn, find_device(conn, token), body, now, follows=first if first % 2 else None)


def assert_in_step(conn) -> None:
    """The stored tables hold exactly what a computation from the laps gives."""
    assert derived.stored(conn) == derived.reference(conn)


class LapsAtCentral(RuleBasedStateMachine):
    """Two laptops push laps of four runner ids (one unknown to central); central decides."""

    server: str = ""
    template: str = ""

    def __init__(self) -> None:
        """Start from a fresh central database with two devices and three runners."""
        super().__init__()
        self.name = f"lapsync_derived_{os.getpid()}_{next(_databases)}"
        url = create_database(self.server, self.name, template=self.template)
        self.conn = psycopg.connect(url, autocommit=True, row_factory=dict_row)
        self.admin = add_admin(self.conn)
        self.tokens = [register(self.conn, "laptop-a"), register(self.conn, "laptop-b")]
        self.boxes = [Outbox(clock_ms=T), Outbox(clock_ms=T)]
        self.sent = [0, 0]
        self.now = T + 3_600_000
        self.runners = [self.boxes[0].runner(n, f"Runner {n}") for n in (1, 2, 3)] + [new_id()]
        self.laps: list[list[str]] = [[], []]   # lap ids each laptop recorded
        self.voided_first: list[list[str]] = [[], []]
        self.flush(0, 0)

    def flush(self, laptop: int, offset_ms: int) -> None:
        """Push what the laptop has not sent yet."""
        self.now += 1_000
        box = self.boxes[laptop]
        if len(box.changes) > self.sent[laptop]:
            send(self.conn, self.tokens[laptop], box, self.sent[laptop] + 1, self.now, offset_ms)
            self.sent[laptop] = len(box.changes)

    @initialize(first=LAPS, second=LAPS)
    def count_on_both_laptops(self, first, second):
        """Start with laps from both laptops (every example has laps to void and move)."""
        self.push_laps(0, 0, first, False)
        self.push_laps(1, 30, second, False)

    @rule(laptop=st.integers(0, 1), offset_s=st.sampled_from([0, 30, -45, 600]), laps=LAPS,
          again=st.booleans())
    def push_laps(self, laptop, offset_s, laps, again):
        """Push laps at grid times (any order), maybe a lap it sent before and one voided first."""
        box = self.boxes[laptop]
        for runner, slot in laps:
            lap_id = self.voided_first[laptop].pop() if self.voided_first[laptop] else None
            self.laps[laptop].append(box.lap(self.runners[runner], lap_id=lap_id,
                                             time=T + slot * STEP_MS))
        if again and len(self.laps[laptop]) > len(laps):
            old = self.laps[laptop][0]
            box.add("lap", old, next(c["data"] for c in box.changes if c["id"] == old))
        self.flush(laptop, offset_s * 1000)

    @rule(laptop=st.integers(0, 1), pick=st.integers(0, 1000), voided=st.booleans())
    def laptop_void(self, laptop, pick, voided):
        """Void or restore one of the laptop's laps (refused if central voided it)."""
        if self.laps[laptop]:
            self.boxes[laptop].void(self.laps[laptop][pick % len(self.laps[laptop])], voided)
            self.flush(laptop, 0)

    @rule(laptop=st.integers(0, 1))
    def void_before_the_lap(self, laptop):
        """Void a lap the laptop sends later (the void arrives first)."""
        lap_id = new_id()
        self.boxes[laptop].void(lap_id)
        self.voided_first[laptop].append(lap_id)
        self.flush(laptop, 0)

    def any_lap(self, pick: int) -> str | None:
        """Return one of all laps pushed, or None."""
        laps = [lap for laps in self.laps for lap in laps]
        return laps[pick % len(laps)] if laps else None

    @rule(pick=st.integers(0, 1000), restore=st.booleans())
    def central_void(self, pick, restore):
        """Void (or restore) a lap at central, as the review page does."""
        lap_id = self.any_lap(pick)
        if lap_id is None:
            return
        state = self.conn.execute("SELECT coalesce(max(change_id), 0) AS v FROM lap_void "
                                  "WHERE lap_id = %s", [lap_id]).fetchone()
        action = review.restore_lap if restore else review.void_lap
        try:
            action(self.conn, self.admin, lap_id, state["v"])
        except InputError:
            pass  # not voided at central, already voided, or the lap has not arrived

    def version(self, runner_id: str) -> int | None:
        """Return a runner's version (None: central does not have it)."""
        row = self.conn.execute("SELECT change_id FROM runner WHERE id = %s",
                                [runner_id]).fetchone()
        return row and row["change_id"]

    @rule(survivor=st.integers(0, 2), merged=st.integers(0, 2))
    def merge(self, survivor, merged):
        """Merge one runner into another: its laps move to the survivor."""
        one, other = self.runners[survivor], self.runners[merged]
        try:
            review.merge(self.conn, self.admin, one, self.version(one), other, self.version(other))
        except InputError:
            pass  # the same runner, or one merged already

    @rule(runner=st.integers(0, 2), number=st.integers(1, 6))
    def renumber(self, runner, number):
        """Give a runner another start number."""
        runner_id = self.runners[runner]
        try:
            review.renumber(self.conn, self.admin, runner_id, self.version(runner_id), number)
        except InputError:
            pass  # taken, the same, or merged

    @rule(seconds=st.sampled_from([0, 30, 60, 95]))
    def minimum_lap_time(self, seconds):
        """Change the event's minimum lap time."""
        save_settings(self.conn, {"min_lap_seconds": seconds}, self.admin)

    @invariant()
    def stored_equals_reference(self):
        """Pairs, last laps and buckets equal the from-scratch computation."""
        assert_in_step(self.conn)

    def teardown(self):
        """Drop the database."""
        self.conn.close()
        drop_database(self.server, self.name)


def test_kept_tables_equal_a_computation_from_scratch(pg_server_url, pg_template):
    LapsAtCentral.server, LapsAtCentral.template = pg_server_url, pg_template
    run_state_machine_as_test(LapsAtCentral, settings=settings(
        max_examples=25, stateful_step_count=10, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow]))


# ---- cases by hand ------------------------------------------------------------------------

@pytest.fixture
def laptop(central_db):
    """A registered laptop's token and outbox, with runner 1 at central."""
    token, box = register(central_db, "laptop-a"), Outbox(clock_ms=T)
    runner = box.runner(1, "Ada")
    send(central_db, token, box, 1, T + 1_000, 0)
    return token, box, runner


def test_laps_of_a_laptop_back_online_pair_between_laps_central_has(central_db, laptop):
    token, box, runner = laptop
    other, late = register(central_db, "laptop-b"), Outbox(clock_ms=T)
    for minute in (0, 2, 4, 6):
        box.lap(runner, time=T + minute * 60_000)
    send(central_db, token, box, 2, T + 400_000, 0)
    assert derived.stored(central_db)["pairs"] == {}
    # Laptop B was offline: its laps fall between A's, 10-30 s after each.
    ids = [late.lap(runner, time=T + minute * 60_000 + 10_000 * (1 + minute % 3))
           for minute in (0, 2, 6)]
    send(central_db, other, late, 1, T + 900_000, 0)
    assert set(derived.stored(central_db)["pairs"]) == set(ids)
    assert_in_step(central_db)


def test_rebuild_review_repairs_the_tables_and_says_what_differed(central_app, central_db,
                                                                  laptop):
    token, box, runner = laptop
    for second in (0, 20, 200, 230):   # T is 200 s into a bucket: two buckets
        box.lap(runner, time=T + second * 1000)
    send(central_db, token, box, 2, T + 300_000, 0)
    assert len(derived.stored(central_db)["pairs"]) == 2
    central_db.execute("DELETE FROM close_lap_pair WHERE first_time = %s", [T])
    central_db.execute("UPDATE lap_bucket SET laps = laps + 5")
    central_db.execute("DELETE FROM runner_last_lap")
    result = central_app.test_cli_runner().invoke(args=["rebuild-review"])
    assert result.exit_code == 0, result.output
    assert result.output == ("Rebuilt: 2 close lap pairs, 1 runners' last laps, 2 time buckets; "
                             "rows that differed: 1, 1, 2.\n")
    assert_in_step(central_db)


def test_laps_out_of_order_in_one_push_leave_the_runners_last_lap_right_without_a_minimum(
        central_db, laptop):
    token, box, runner = laptop
    save_settings(central_db, {"min_lap_seconds": 0})
    first, latest = sorted([new_id(), new_id()])
    box.lap(runner, lap_id=latest, time=T + 50_000)   # the same time: the greater id is later
    box.lap(runner, lap_id=first, time=T + 50_000)
    send(central_db, token, box, 2, T + 100_000, 0)
    assert derived.stored(central_db)["last"] == {runner: (latest, T + 50_000, box.laptop_id)}
    assert_in_step(central_db)
