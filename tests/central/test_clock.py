"""Central's hybrid logical clock: later than anything seen, so central edits win."""
from __future__ import annotations

from sync import clock
from sync.db import write_transaction


def test_ticks_increase_and_pass_a_laptop_clock_from_the_future(central_db):
    with write_transaction(central_db):
        first, second = clock.tick(central_db), clock.tick(central_db)
        assert second > first
        clock.observe(central_db, "9999999999999.0003")
        assert clock.tick(central_db) == "9999999999999.0004"
        clock.observe(central_db, "0000000000001.0000")  # an older stamp changes nothing
        assert clock.tick(central_db) == "9999999999999.0005"


def test_a_full_counter_moves_on_to_the_next_millisecond(central_db):
    """Regression: central behind a laptop an hour fast made '….10000' after 10,000 edits
    (two roster imports), a stamp the protocol refuses and that sorts before '….9999'."""
    with write_transaction(central_db):
        clock.observe(central_db, "5000000000000.9998")
        stamps = [clock.tick(central_db) for _ in range(3)]
    assert stamps == ["5000000000000.9999", "5000000000001.0000", "5000000000001.0001"]


def test_node_id_is_a_cuid(central_db):
    from lapsync.protocol import is_id

    assert is_id(clock.node_id(central_db))
