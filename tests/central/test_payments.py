"""Payments (record, delete, logged), the outstanding list per class and an overpayment on the
sponsors page (the amounts exports: test_money_exports.py)."""
from __future__ import annotations

import re

import pytest

from sync.sponsors.amounts import pledge_amounts
from sync.sponsors.payments import add_payment
from sync.sponsors.pledges import add_pledge
from sync.settings import set_setting
from tests.central.test_results import run


@pytest.fixture
def pledges(central_db, device_token) -> dict:
    """Anna (5a, 10 laps), Ben (6b, 3 laps) with pledges; 400 m per lap."""
    set_setting(central_db, "metres_per_lap", 400)
    ids = run(central_db, device_token, [(1, "Anna Berg", "5a", 10), (2, "Ben Cruz", "6b", 3)])
    return {
        "oma": add_pledge(central_db, None, ids["Anna Berg"], {"sponsor_name": "Oma", "kind": "per_lap",
                                                                "rate_cents": "0,50", "email": "oma@example.org"}),
        "firma": add_pledge(central_db, None, ids["Anna Berg"], {"sponsor_name": '=HYPERLINK("x")', "kind": "per_km",
                                                                  "rate_cents": "1,25", "cap_cents": "4"}),
        "eva": add_pledge(central_db, None, ids["Ben Cruz"], {"sponsor_name": "Tante Eva; Köln", "kind": "fixed",
                                                               "rate_cents": "20"}),
    }


def post(client, path: str, **form):
    """Post a form with the client's CSRF token."""
    return client.post(path, data={"csrf_token": client.csrf, **form})


def test_an_admin_records_and_deletes_payments(central_admin, central_db, pledges):
    form = central_admin.get(f"/sponsors/{pledges['oma']}/pay").get_data(as_text=True)
    reference = pledge_amounts(central_db, pledge_ids=[pledges["oma"]])[0]["reference"]
    assert f'value="{reference}"' in form                       # the pledge's reference offered
    response = post(central_admin, f"/sponsors/{pledges['oma']}/pay", amount_cents="3,00",
                    paid_on="2025-07-01", method="transfer", reference=reference, note="")
    assert response.status_code == 302
    post(central_admin, f"/sponsors/{pledges['oma']}/pay", amount_cents="1", paid_on="02.07.2025",
         method="cash", reference="", note="in der Klasse")
    [row] = pledge_amounts(central_db, pledge_ids=[pledges["oma"]])
    assert (row["amount_cents"], row["paid_cents"], row["outstanding_cents"]) == (500, 400, 100)
    page = central_admin.get(f"/sponsors/{pledges['oma']}").get_data(as_text=True)
    assert "in der Klasse" in page and "cash" in page
    # Dates as the reader writes them, not ISO.
    assert re.findall(r"<tr><td[^>]*>([^<]*)</td><td[^>]*>€", page) == ["Jul 1, 2025", "Jul 2, 2025"]
    german = central_admin.get(f"/sponsors/{pledges['oma']}", headers={"Accept-Language": "de"})
    assert re.findall(r"<tr><td[^>]*>([^<]*)</td><td[^>]*>\d", german.get_data(as_text=True)) == [
        "01.07.2025", "02.07.2025"]
    payment = central_db.execute("SELECT id FROM payment WHERE method = 'cash'").fetchone()["id"]
    assert re.search(rf'action="/sponsors/payments/{payment}/delete" class="inline delete-payment">'
                     r'\s*<input type="hidden" name="csrf_token"[^>]*>\s*<label><input type="checkbox" '
                     r'name="confirm" value="1" required>\s*Yes, delete this payment of €1.00</label>',
                     page)
    # The button alone (a mis-tap) deletes nothing.
    refused = post(central_admin, f"/sponsors/payments/{payment}/delete")
    assert refused.status_code == 400 and "Tick the box to confirm that the payment is to be " \
        "deleted. Nothing was deleted." in refused.get_data(as_text=True)
    assert pledge_amounts(central_db, pledge_ids=[pledges["oma"]])[0]["paid_cents"] == 400
    assert post(central_admin, f"/sponsors/payments/{payment}/delete", confirm="1").status_code == 302
    assert pledge_amounts(central_db, pledge_ids=[pledges["oma"]])[0]["paid_cents"] == 300
    log = [(r["action"], r["by_name"], r["payment_id"] is not None)
           for r in central_db.execute("SELECT * FROM money_log WHERE action LIKE 'payment%%' ORDER BY id")]
    assert log == [("payment_add", "ada", True), ("payment_add", "ada", True),
                   ("payment_delete", "ada", True)]
    text = central_admin.get("/sponsors/log").get_data(as_text=True)
    assert "Recorded a payment of €3.00 from Oma." in text and "Deleted a payment of €1.00 from Oma." in text
    german = central_admin.get("/sponsors/log", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "3,00\xa0€" in german and "Cent" not in german


@pytest.mark.parametrize("typed, cents", [("1.000,00", 100000), ("1,000.50", 100050)])
def test_the_payment_form_takes_a_thousands_separator(central_admin, central_db, pledges, typed,
                                                      cents):
    response = post(central_admin, f"/sponsors/{pledges['eva']}/pay", amount_cents=typed,
                    paid_on="2025-07-01", method="transfer", reference="", note="")
    assert response.status_code == 302
    assert central_db.execute("SELECT amount_cents FROM payment").fetchone()["amount_cents"] == cents


@pytest.mark.parametrize("field, value, message", [
    ("amount_cents", "0", "The amount must be above 0"), ("amount_cents", "x", "The amount must be above 0"),
    ("amount_cents", "1.000", "The amount must be above 0"),    # 1,00 € or 1000,00 €?
    ("paid_on", "2025-02-30", "The date must be a real date"), ("paid_on", "", "The date must be a real date"),
    ("method", "cheque", "The method must be transfer, cash or other."),
    ("reference", "x" * 201, "The reference must be one line"),
])
def test_a_bad_payment_records_nothing(central_admin, central_db, pledges, field, value, message):
    form = {"amount_cents": "5", "paid_on": "2025-07-01", "method": "cash", "reference": "", "note": "",
            field: value}
    response = post(central_admin, f"/sponsors/{pledges['oma']}/pay", **form)
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert central_db.execute("SELECT count(*) AS n FROM payment").fetchone()["n"] == 0


def test_no_payment_for_a_deleted_or_unknown_pledge(central_admin, central_db, pledges):
    from sync.sponsors.pledges import delete_pledge
    delete_pledge(central_db, None, pledges["eva"])
    form = {"amount_cents": "5", "paid_on": "2025-07-01", "method": "cash", "reference": "", "note": ""}
    assert post(central_admin, f"/sponsors/{pledges['eva']}/pay", **form).status_code == 404
    assert post(central_admin, "/sponsors/nosuchpledge/pay", **form).status_code == 404
    assert post(central_admin, "/sponsors/payments/nosuch/delete", confirm="1").status_code == 404
    assert central_db.execute("SELECT count(*) AS n FROM payment").fetchone()["n"] == 0


def test_the_outstanding_list_per_class(central_viewer, central_db, pledges):
    add_payment(central_db, None, pledges["eva"], {"amount_cents": "20", "paid_on": "2025-07-01",
                                                   "method": "transfer", "reference": "", "note": ""})
    page = central_viewer.get("/sponsors/outstanding").get_data(as_text=True)
    assert "Oma" in page and "Tante Eva" not in page                      # paid in full
    assert "2 pledges with money due: €9.00" in page                      # 5.00 + 4.00 (capped)
    page = central_viewer.get("/sponsors/outstanding?class=6b").get_data(as_text=True)
    assert "Nothing is outstanding." in page


def test_an_overpayment_is_shown_and_covers_no_other_pledge(central_viewer, central_db, pledges):
    add_payment(central_db, None, pledges["eva"], {"amount_cents": "25", "paid_on": "2025-07-01",
                                                   "method": "transfer", "reference": "", "note": ""})
    page = central_viewer.get("/sponsors/").get_data(as_text=True)
    assert "3 pledges:" in page and "raised €29.00, paid €25.00, outstanding €9.00." in page
    assert "Paid more than pledged: €5.00." in page and "overpaid by €5.00" in page
    assert "2 pledges with money due: €9.00" in central_viewer.get(
        "/sponsors/outstanding").get_data(as_text=True)               # the same €9.00 as above
