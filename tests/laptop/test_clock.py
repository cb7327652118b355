"""The laptop's hybrid logical clock (lapsync/laptop/clock.py on lapsync/hlc.py)."""
from __future__ import annotations

from lapsync import hlc
from lapsync.laptop import clock
from lapsync.laptop.db import get_meta, now_ms, transaction
from lapsync.laptop.runners import add_runner
from lapsync.protocol import HLC_PATTERN


def test_ticks_increase_and_stay_ahead_of_every_stamp_seen(db):
    with transaction(db):
        first, second = clock.tick(db), clock.tick(db)
        clock.observe(db, "9999999999998.0003")
        third = clock.tick(db)
    assert first < second < third == "9999999999998.0004"


def test_observing_an_older_stamp_never_moves_the_clock_back(db):
    with transaction(db):
        clock.observe(db, "5000000000000.0007")
        clock.observe(db, "4000000000000.0009")
        assert get_meta(db, "hlc") == "5000000000000.0007"
        clock.observe(db, "5000000000000.0006")
        assert get_meta(db, "hlc") == "5000000000000.0007"
        clock.observe(db, "5000000000000.0008")
        assert get_meta(db, "hlc") == "5000000000000.0008"


def test_a_full_counter_moves_on_to_the_next_millisecond_in_the_wire_format(db):
    """Regression: behind a stamp from a laptop an hour fast, 10,000 ticks (two roster imports)
    made '….10000', which the protocol refuses and which sorts before '….9999'."""
    ahead = now_ms() + 3_600_000
    with transaction(db):
        clock.observe(db, f"{ahead:013d}.9998")
        stamps = [clock.tick(db) for _ in range(3)]
    assert stamps == [f"{ahead:013d}.9999", f"{ahead + 1:013d}.0000", f"{ahead + 1:013d}.0001"]
    runner = add_runner(db, 5, "Late Runner", "5a", 5)
    stamp = db.execute("SELECT hlc FROM runner WHERE id = ?", [runner]).fetchone()[0]
    assert HLC_PATTERN.fullmatch(stamp) and stamp > stamps[-1] and stamp == get_meta(db, "hlc")


def test_after_is_the_next_stamp_at_a_wall_clock():
    assert hlc.after(hlc.ZERO, 5) == "0000000000005.0000"
    assert hlc.after("0000000000007.0002", 5) == "0000000000007.0003"   # the clock lags
    assert hlc.after("0000000000007.9999", 5) == "0000000000008.0000"
    assert hlc.after("0000000000007.0002", 9) == "0000000000009.0000"
