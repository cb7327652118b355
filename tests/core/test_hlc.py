"""The hybrid logical clock's pure core (lapsync/hlc.py): parse, format_hlc, after, latest.

A stamp is 13 digits of milliseconds, a dot and 4 digits of counter: 18 characters,
so that comparing two stamps as strings orders them in time. The limits are written
here as numbers on purpose, not imported from the code under test.
"""
from __future__ import annotations

import pytest

from lapsync import hlc


def test_zero_is_the_earliest_stamp_in_the_wire_format():
    assert hlc.ZERO == "0000000000000.0000"
    assert hlc.parse(hlc.ZERO) == (0, 0)


@pytest.mark.parametrize("stamp, parts", [
    ("0000000000005.0003", (5, 3)),
    ("1717171717171.0042", (1717171717171, 42)),
    ("9999999999999.9999", (9999999999999, 9999)),
    ("0000000000000.9999", (0, 9999)),
])
def test_parse_splits_milliseconds_and_counter(stamp, parts):
    assert hlc.parse(stamp) == parts
    assert hlc.format_hlc(*parts) == stamp


@pytest.mark.parametrize("stamp", ["", "12345", "1.2.3", "abc.0001", "0000000000005.x", ".",
                                   "0000000000005,0003"])
def test_parse_refuses_what_is_not_milliseconds_dot_counter(stamp):
    with pytest.raises(ValueError):
        hlc.parse(stamp)


@pytest.mark.parametrize("physical, counter, stamp", [
    (0, 0, "0000000000000.0000"),
    (5, 3, "0000000000005.0003"),
    (1717171717171, 9999, "1717171717171.9999"),
    (9999999999999, 1, "9999999999999.0001"),
])
def test_format_is_fixed_width_with_leading_zeros(physical, counter, stamp):
    assert hlc.format_hlc(physical, counter) == stamp
    assert len(stamp) == 18


def test_fixed_width_makes_string_order_time_order():
    pairs = [(9, 0), (10, 0), (10, 9), (10, 10), (99, 9999), (100, 0), (1717171717171, 3)]
    stamps = [hlc.format_hlc(*pair) for pair in pairs]
    assert stamps == sorted(stamps)
    assert sorted(reversed(stamps)) == stamps


def test_a_clock_ahead_of_the_last_stamp_starts_a_new_millisecond_at_counter_zero():
    assert hlc.after(hlc.ZERO, 5) == "0000000000005.0000"
    assert hlc.after("0000000000007.0002", 9) == "0000000000009.0000"
    assert hlc.after("0000000000007.9999", 8) == "0000000000008.0000"


def test_the_same_millisecond_counts_up():
    assert hlc.after("0000000000007.0002", 7) == "0000000000007.0003"
    assert hlc.after("0000000000007.0000", 7) == "0000000000007.0001"


def test_a_clock_behind_the_last_stamp_keeps_its_millisecond_and_counts_up():
    assert hlc.after("0000000000007.0002", 5) == "0000000000007.0003"
    assert hlc.after("1717171717171.0041", 0) == "1717171717171.0042"


def test_the_counter_reaches_9999_then_takes_the_next_millisecond():
    assert hlc.after("0000000000007.9998", 7) == "0000000000007.9999"
    assert hlc.after("0000000000007.9998", 3) == "0000000000007.9999"
    assert hlc.after("0000000000007.9999", 7) == "0000000000008.0000"
    assert hlc.after("0000000000007.9999", 3) == "0000000000008.0000"


def test_a_full_counter_never_becomes_five_digits_nor_sorts_backwards():
    stamp = "0000000000007.9997"
    seen = [stamp]
    for _ in range(4):
        stamp = hlc.after(stamp, 2)
        seen.append(stamp)
    assert seen == ["0000000000007.9997", "0000000000007.9998", "0000000000007.9999",
                    "0000000000008.0000", "0000000000008.0001"]
    assert all(len(s) == 18 for s in seen)


def test_after_never_goes_backwards_whatever_the_wall_clock_does():
    walls = [100, 100, 100, 99, 50, 101, 101, 0, 102, 5000, 4000, 4000, 5000, 5001]
    stamp, stamps = hlc.ZERO, []
    for now in walls:
        stamp = hlc.after(stamp, now)
        stamps.append(stamp)
    assert stamps == [
        "0000000000100.0000", "0000000000100.0001", "0000000000100.0002",
        "0000000000100.0003", "0000000000100.0004", "0000000000101.0000",
        "0000000000101.0001", "0000000000101.0002", "0000000000102.0000",
        "0000000005000.0000", "0000000005000.0001", "0000000005000.0002",
        "0000000005000.0003", "0000000005001.0000",
    ]
    assert all(a < b for a, b in zip(stamps, stamps[1:]))


def test_ten_thousand_stamps_in_one_millisecond_stay_ordered_and_unique():
    stamp, stamps = "0000000000050.0000", []
    for _ in range(10_001):
        stamp = hlc.after(stamp, 50)
        stamps.append(stamp)
    assert stamps[9_998] == "0000000000050.9999"
    assert stamps[9_999] == "0000000000051.0000"
    assert stamps[10_000] == "0000000000051.0001"
    assert stamps == sorted(set(stamps))


def test_latest_moves_forward_to_a_later_remote_stamp():
    assert hlc.latest("0000000000007.0002", "0000000000007.0003") == "0000000000007.0003"
    assert hlc.latest("0000000000007.9999", "0000000000008.0000") == "0000000000008.0000"
    assert hlc.latest(hlc.ZERO, "1717171717171.0000") == "1717171717171.0000"


def test_latest_never_moves_back_to_an_earlier_remote_stamp():
    assert hlc.latest("0000000000007.0003", "0000000000007.0002") == "0000000000007.0003"
    assert hlc.latest("0000000000008.0000", "0000000000007.9999") == "0000000000008.0000"
    assert hlc.latest("1717171717171.0000", hlc.ZERO) == "1717171717171.0000"


def test_latest_of_equal_stamps_is_that_stamp():
    assert hlc.latest("0000000000007.0003", "0000000000007.0003") == "0000000000007.0003"


def test_after_latest_is_later_than_both_clocks():
    local, remote = "0000000000010.0004", "0000000000020.0007"
    assert hlc.after(hlc.latest(local, remote), 15) == "0000000000020.0008"
    assert hlc.after(hlc.latest(remote, local), 15) == "0000000000020.0008"
    assert hlc.after(hlc.latest(local, remote), 25) == "0000000000025.0000"


class MetaTable:
    """A meta table in memory: the get_meta/set_meta pair both apps give the clock."""

    def __init__(self, **rows: str):
        self.rows, self.writes = dict(rows), []

    def get(self, db: object, key: str, default: str) -> str:
        assert db is self
        return self.rows.get(key, default)

    def set(self, db: object, key: str, value: str) -> None:
        assert db is self
        self.rows[key] = value
        self.writes.append((key, value))


def test_tick_meta_starts_from_zero_and_stores_each_stamp_under_hlc():
    meta = MetaTable()
    first = hlc.tick_meta(meta, meta.get, meta.set, 5)
    second = hlc.tick_meta(meta, meta.get, meta.set, 5)
    third = hlc.tick_meta(meta, meta.get, meta.set, 9)
    assert (first, second, third) == ("0000000000005.0000", "0000000000005.0001",
                                      "0000000000009.0000")
    assert meta.writes == [("hlc", first), ("hlc", second), ("hlc", third)]


def test_tick_meta_stays_ahead_of_a_stored_stamp_when_the_clock_lags():
    meta = MetaTable(hlc="0000000000100.0041")
    assert hlc.tick_meta(meta, meta.get, meta.set, 7) == "0000000000100.0042"
    assert meta.rows == {"hlc": "0000000000100.0042"}


def test_observe_meta_stores_a_later_remote_stamp():
    meta = MetaTable(hlc="0000000000100.0041")
    hlc.observe_meta(meta, meta.get, meta.set, "0000000000100.0042")
    assert meta.writes == [("hlc", "0000000000100.0042")]
    fresh = MetaTable()
    hlc.observe_meta(fresh, fresh.get, fresh.set, "0000000000001.0000")
    assert fresh.rows == {"hlc": "0000000000001.0000"}


@pytest.mark.parametrize("remote", ["0000000000100.0041", "0000000000100.0040",
                                    "0000000000099.9999", hlc.ZERO])
def test_observe_meta_never_writes_an_equal_or_older_stamp(remote):
    meta = MetaTable(hlc="0000000000100.0041")
    hlc.observe_meta(meta, meta.get, meta.set, remote)
    assert meta.writes == [] and meta.rows == {"hlc": "0000000000100.0041"}


# ---- bounds: the fixed width is never left, and stamps far ahead are told apart ----------

@pytest.mark.parametrize("stamp", ["10000000000000.0000", "9999999999999.10000", "١٢٣٤٥٦٧٨٩٠١٢٣.0000",
                                   "0000000000005.0003\n", " 0000000000005.0003", None, 5])
def test_parse_refuses_stamps_outside_the_fixed_width_with_a_clock_error(stamp):
    with pytest.raises(hlc.ClockError, match="13 digits, a dot and 4 digits"):
        hlc.parse(stamp)
    assert issubclass(hlc.ClockError, ValueError)  # callers that catch ValueError still do
    assert not hlc.is_stamp(stamp)


@pytest.mark.parametrize("physical, counter", [(10 ** 13, 0), (-1, 0), (5, 10_000), (5, -1)])
def test_format_refuses_what_the_fixed_width_cannot_hold(physical, counter):
    with pytest.raises(hlc.ClockError, match="fixed width"):
        hlc.format_hlc(physical, counter)


def test_the_last_stamp_has_no_successor_and_says_so():
    assert hlc.after("9999999999999.9998", 0) == "9999999999999.9999"
    with pytest.raises(hlc.ClockError, match="last stamp 9999999999999.9999"):
        hlc.after("9999999999999.9999", 0)
    with pytest.raises(hlc.ClockError):  # nor does a wall clock beyond the width make one
        hlc.after(hlc.ZERO, 10 ** 13)


def test_tick_meta_at_the_last_stamp_stores_nothing():
    meta = MetaTable(hlc="9999999999999.9999")
    with pytest.raises(hlc.ClockError):
        hlc.tick_meta(meta, meta.get, meta.set, 5)
    assert meta.writes == []


@pytest.mark.parametrize("remote", ["10000000000000.0000", "0000000000100.10000", "x"])
def test_observe_meta_refuses_a_stamp_outside_the_width_and_keeps_the_clock(remote):
    meta = MetaTable(hlc="0000000000100.0041")
    with pytest.raises(hlc.ClockError):
        hlc.observe_meta(meta, meta.get, meta.set, remote)
    assert meta.writes == []


def test_a_stamp_up_to_the_bound_ahead_is_taken_and_one_millisecond_more_is_not():
    clock, bound = 1_700_000_000_000, 300_000
    assert hlc.ceiling(clock, bound) == "1700000300000.9999"
    assert not hlc.too_far_ahead("1700000300000.9999", clock, bound)
    assert not hlc.too_far_ahead("1600000000000.0000", clock, bound)  # behind: always taken
    assert hlc.too_far_ahead("1700000300001.0000", clock, bound)
    assert hlc.too_far_ahead("9999999999999.9999", clock, bound)
    assert hlc.too_far_ahead("10000000000000.0000", clock, bound)  # outside the width
    assert hlc.ahead_ms("1700000300001.0000", clock) == 300_001


def test_the_ceiling_stays_inside_the_width():
    assert hlc.ceiling(hlc.MAX_PHYSICAL, 300_000) == "9999999999999.9999"
    assert hlc.ceiling(-10 ** 6, 1000) == hlc.ZERO[:-4] + "9999"


@pytest.mark.parametrize("ms, text", [(0, "0 s"), (90_000, "90 s"), (840_000, "14 min"),
                                      (5 * 3_600_000, "5 h"), (365 * 86_400_000, "365 days")])
def test_durations_in_messages_read_plainly(ms, text):
    assert hlc.span(ms) == text


def test_the_message_names_the_stamp_how_far_ahead_and_the_bound():
    message = hlc.ahead_message("1731536000000.0000", 1_700_000_000_000, 300_000, "central's")
    assert message == ("stamp 1731536000000.0000 lies 365 days ahead of central's clock "
                       "(at most 5 min are taken)")
