"""Amounts: every kind with and without a cap, half up to the cent, from the laps that count
after voids (a laptop's and central's), merges and renumbering, checked against a plain
recomputation from the lap and lap_void tables."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lapsync.protocol import validate_push
from sync.sponsors.amounts import amount_cents, pledge_amounts, raised
from sync.devices import find_device
from sync.sponsors.payments import add_payment
from sync.sponsors.pledges import add_pledge
from sync.push import push
from sync.review import lap_state, merge, renumber, runners_by_id, void_lap
from sync.settings import set_setting
from tests.pg import Outbox


def plain_amount(kind: str, rate: int, cap: int | None, laps: int, metres: Fraction | None) -> int:
    """Recompute an amount with exact fractions: half up is floor(x + 1/2) for x >= 0."""
    if kind == "per_lap":
        value = Fraction(rate * laps)
    elif kind == "per_km":
        value = Fraction(rate) * laps * (metres or 0) / 1000
        value = Fraction((value + Fraction(1, 2)).__floor__())
    else:
        value = Fraction(rate)
    return int(min(value, cap) if cap is not None else value)


@pytest.mark.parametrize("kind, rate, cap, laps, metres, expected", [
    ("per_lap", 50, None, 0, 400, 0),
    ("per_lap", 50, None, 17, 400, 850),
    ("per_lap", 50, 500, 17, 400, 500),           # capped
    ("per_lap", 50, 900, 17, 400, 850),           # cap above the amount: no effect
    ("per_km", 100, None, 10, 400, 400),           # 4 km at 1.00
    ("per_km", 125, None, 3, 333, 125),            # 0.999 km x 1.25 = 1.24875 -> 1.25
    ("per_km", 1, None, 1, 500, 1),                # 0.5 cent -> 1 (half up)
    ("per_km", 1, None, 3, 500, 2),                # 1.5 cents -> 2
    ("per_km", 1, None, 1, 499, 0),                # 0.499 cents -> 0
    ("per_km", 3, None, 1, "400.5", 1),            # 1.2015 cents -> 1
    ("per_km", 7, None, 5, "100.1", 4),            # 3.5035 cents -> 4
    ("per_km", 250, 1000, 20, 400, 1000),          # 8 km x 2.50 = 20.00, capped at 10.00
    ("per_km", 100, None, 10, None, 0),            # no metres per lap: nothing yet
    ("fixed", 2000, None, 0, 400, 2000),
    ("fixed", 2000, None, 99, 400, 2000),
])
def test_amount_of_every_kind(kind, rate, cap, laps, metres, expected):
    from decimal import Decimal
    assert amount_cents(kind, rate, cap, laps, None if metres is None else Decimal(str(metres))) \
        == expected
    plain_metres = None if metres is None else Fraction(str(metres))
    assert plain_amount(kind, rate, cap, laps, plain_metres) == expected


def counted_laps(conn, runner_id: str) -> int:
    """Count a runner's laps from the lap table: not voided, merged runners' laps included."""
    return conn.execute(
        "SELECT count(*) AS n FROM lap l LEFT JOIN lap_void v ON v.lap_id = l.id "
        "WHERE v.voided IS NOT TRUE AND l.runner_id IN (SELECT id FROM runner WHERE id = %(r)s "
        "OR merged_into = %(r)s)", {"r": runner_id}).fetchone()["n"]


def recompute(conn, metres: Fraction | None) -> dict[str, int]:
    """Recompute every live pledge's amount from the lap tables, by pledge id."""
    out = {}
    for p in conn.execute("SELECT p.*, coalesce(r.merged_into, r.id) AS counted FROM pledge p "
                          "JOIN runner r ON r.id = p.runner_id WHERE p.deleted_ms IS NULL"):
        out[p["id"]] = plain_amount(p["kind"], p["rate_cents"], p["cap_cents"],
                                    counted_laps(conn, p["counted"]), metres)
    return out


@pytest.fixture
def laptop(central_db, device_token):
    """Push changes of one laptop: runners, laps and voids (returns the outbox and a pusher)."""
    box = Outbox()
    device = find_device(central_db, device_token)
    sent = {"last": 0}

    def send():
        push(central_db, device, validate_push(box.body(first=sent["last"] + 1)))
        sent["last"] = len(box.changes)
    return box, send


@pytest.fixture
def admin_id(central_users):
    """The central admin ada's id."""
    return central_users["ada"]


def test_amounts_follow_voids_merges_and_renumbering(central_db, laptop, admin_id):
    box, send = laptop
    set_setting(central_db, "metres_per_lap", 400)
    anna, ben, cem = box.runner(1, "Anna", "5a"), box.runner(2, "Ben", "5a"), box.runner(3, "Cem", "6b", 6)
    laps = {r: [box.lap(r) for _ in range(n)] for r, n in ((anna, 10), (ben, 4), (cem, 7))}
    box.void(laps[anna][0])
    send()
    pledges = {
        "anna_lap": add_pledge(central_db, admin_id, anna, {"sponsor_name": "Oma", "kind": "pro Runde", "rate_cents": "0,50"}),
        "anna_km": add_pledge(central_db, admin_id, anna, {"sponsor_name": "Opa", "kind": "per_km", "rate_cents": "1.25", "cap_cents": "4"}),
        "ben_lap": add_pledge(central_db, admin_id, ben, {"sponsor_name": "Tante", "kind": "per_lap", "rate_cents": "1"}),
        "cem_fixed": add_pledge(central_db, admin_id, cem, {"sponsor_name": "Firma", "kind": "fest", "rate_cents": "20"}),
        "cem_km": add_pledge(central_db, admin_id, cem, {"sponsor_name": "Onkel", "kind": "pro km", "rate_cents": "0,33"}),
    }

    def amounts():
        return {r["id"]: r["amount_cents"] for r in pledge_amounts(central_db)}
    assert amounts() == {pledges["anna_lap"]: 450, pledges["anna_km"]: 400,   # 9 laps, 3.6 km x 1.25 = 4.50 capped
                         pledges["ben_lap"]: 400, pledges["cem_fixed"]: 2000,
                         pledges["cem_km"]: 92}                                # 2.8 km x 0.33 = 0.924
    assert amounts() == recompute(central_db, Fraction(400))

    # Central voids one of Cem's laps: 2.4 km x 0.33 = 0.792 -> 0.79.
    lap = lap_state(central_db, laps[cem][0])
    void_lap(central_db, admin_id, lap["id"], lap["version"])
    assert amounts()[pledges["cem_km"]] == 79
    # Ben is merged into Anna: Ben's laps move to Anna, Ben's pledge follows them.
    rows = runners_by_id(central_db, [anna, ben])
    merge(central_db, admin_id, anna, rows[anna]["version"], ben, rows[ben]["version"])
    assert amounts()[pledges["ben_lap"]] == 1300                              # 13 laps x 1.00
    assert amounts()[pledges["anna_lap"]] == 650
    by_id = {r["id"]: r for r in pledge_amounts(central_db)}
    assert (by_id[pledges["ben_lap"]]["start_number"], by_id[pledges["ben_lap"]]["name"]) == (1, "Anna")
    # Cem gets a new start number: same laps and amounts, the new number shown.
    renumber(central_db, admin_id, cem, runners_by_id(central_db, [cem])[cem]["version"], 33)
    assert pledge_amounts(central_db, runner_id=cem)[0]["start_number"] == 33
    assert amounts()[pledges["cem_km"]] == 79
    # A laptop's later void and a restore count too.
    box.void(laps[anna][1])
    box.void(laps[anna][0], voided=False)
    send()
    assert amounts() == recompute(central_db, Fraction(400))
    # Metres per lap changed: per km pledges follow.
    set_setting(central_db, "metres_per_lap", 400.5)
    assert amounts() == recompute(central_db, Fraction("400.5"))


def test_totals_per_runner_class_grade_and_school(central_db, laptop, admin_id):
    box, send = laptop
    set_setting(central_db, "metres_per_lap", 500)
    a, b, c = box.runner(1, "A", "5a", 5), box.runner(2, "B", "5b", 5), box.runner(3, "C", "6a", 6)
    for runner, n in ((a, 2), (b, 3), (c, 4)):
        for _ in range(n):
            box.lap(runner)
    send()
    for runner in (a, b, c):
        add_pledge(central_db, admin_id, runner, {"sponsor_name": "S", "kind": "per_lap", "rate_cents": "1"})
    add_pledge(central_db, admin_id, c, {"sponsor_name": "T", "kind": "fixed", "rate_cents": "5"})
    totals = raised(pledge_amounts(central_db))
    assert {k: v["amount_cents"] for k, v in totals["runner"].items()} == {a: 200, b: 300, c: 900}
    assert {k: v["amount_cents"] for k, v in totals["class"].items()} == {"5a": 200, "5b": 300, "6a": 900}
    assert {k: v["amount_cents"] for k, v in totals["grade"].items()} == {5: 500, 6: 900}
    assert totals["school"] == {"pledges": 4, "amount_cents": 1400, "paid_cents": 0,
                                "outstanding_cents": 1400, "overpaid_cents": 0}
    # One sponsor paying too much pays nothing of what the others owe.
    pledge_of_a = next(p["id"] for p in pledge_amounts(central_db) if p["counted_runner_id"] == a)
    add_payment(central_db, admin_id, pledge_of_a, {"amount_cents": "5", "paid_on": "2025-07-01",
                                                    "method": "cash"})
    totals = raised(pledge_amounts(central_db))
    assert totals["school"] == {"pledges": 4, "amount_cents": 1400, "paid_cents": 500,
                                "outstanding_cents": 1200, "overpaid_cents": 300}
    assert totals["class"]["5a"]["outstanding_cents"] == 0
    assert totals["class"]["5a"]["overpaid_cents"] == 300


def test_filters_and_deleted_pledges(central_db, laptop, admin_id):
    from sync.sponsors.pledges import delete_pledge
    box, send = laptop
    a, b = box.runner(1, "A", "5a"), box.runner(2, "B", "6b", 6)
    box.lap(a)
    send()
    one = add_pledge(central_db, admin_id, a, {"sponsor_name": "S", "kind": "per_lap", "rate_cents": "1"})
    two = add_pledge(central_db, admin_id, b, {"sponsor_name": "T", "kind": "fixed", "rate_cents": "5"})
    assert [r["id"] for r in pledge_amounts(central_db, class_name="6b")] == [two]
    assert [r["id"] for r in pledge_amounts(central_db, runner_id=a)] == [one]
    assert [r["id"] for r in pledge_amounts(central_db, pledge_ids=[two])] == [two]
    delete_pledge(central_db, admin_id, two)
    assert [r["id"] for r in pledge_amounts(central_db)] == [one]
    assert raised(pledge_amounts(central_db))["school"]["amount_cents"] == 100


PLEDGE = st.tuples(st.sampled_from(["per_lap", "per_km", "fixed"]), st.integers(1, 5000),
                   st.one_of(st.none(), st.integers(1, 20000)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), metres=st.sampled_from(["400", "333", "400.5", "250.25", "1"]))
def test_amounts_match_a_plain_recomputation(central_db, laptop, admin_id, data, metres):
    box, send = laptop
    set_setting(central_db, "metres_per_lap", float(metres) if "." in metres else int(metres))
    central_db.execute("UPDATE pledge SET deleted_ms = 1")  # earlier examples' pledges
    base = len(box.changes) + 1
    runners = [box.runner(base * 10 + i, f"R{base}-{i}", "5a") for i in range(3)]
    for runner in runners:
        ids = [box.lap(runner) for _ in range(data.draw(st.integers(0, 30)))]
        for lap_id in ids[:data.draw(st.integers(0, len(ids)))]:
            box.void(lap_id)
    send()
    for runner in runners:
        for kind, rate, cap in data.draw(st.lists(PLEDGE, max_size=3)):
            cap = None if kind == "fixed" else cap
            add_pledge(central_db, admin_id, runner, {"sponsor_name": "S", "kind": kind,
                                                      "rate_cents": f"{rate / 100:.2f}",
                                                      "cap_cents": "" if cap is None else f"{cap / 100:.2f}"})
    got = {r["id"]: r["amount_cents"] for r in pledge_amounts(central_db)}
    assert got == recompute(central_db, Fraction(metres))
