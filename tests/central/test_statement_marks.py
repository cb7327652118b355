"""Bank statements whose amounts have no sign and a column says debit or credit: the
Volksbank/Raiffeisen export ("Umsatz" plus "Soll/Haben" of S and H, or an unnamed column),
uploaded on the statement page as the organiser does. S lines are debits (skipped, counted),
H lines credits; a mark other than S/H refuses the file with nothing recorded.
"""
from __future__ import annotations

import io
from datetime import date

import pytest

from sync.roster import import_roster
from sync.sponsors.pledges import add_pledge, format_reference

ROSTER = b"Name,Klasse,Jahrgang,Startnummer\nAnna Berg,5a,5,7\nEmil Eck,8B,8,805\n"
PREAMBLE = ('"Volksbank Musterland eG"\r\n\r\n"Umsatzanzeige"\r\n\r\n'
            '"BLZ:";"69000000";;"Datum:";"10.12.2026"\r\n'
            '"Konto:";"12345678";;"Uhrzeit:";"08:15:02"\r\n'
            '"Sortiert nach:";"Buchungstag";"absteigend"\r\n\r\n')
HEADER = ('"Buchungstag";"Valuta";"Auftraggeber/Zahlungsempfänger";"Empfänger/Zahlungspflichtiger";'
          '"Konto-Nr.";"IBAN";"BLZ";"BIC";"Vorgang/Verwendungszweck";"Kundenreferenz";"Währung";'
          '"Umsatz";"{sign}"\r\n')


@pytest.fixture
def eck(central_db):
    """Oma Berg (20,00 € fixed for Anna) and Tante Eck (10,00 € fixed for Emil): references by name."""
    import_roster(central_db, ROSTER)
    runners = {r["name"]: r["id"] for r in central_db.execute("SELECT id, name FROM runner")}
    refs = {}
    for sponsor, runner in [("Oma Berg", "Anna Berg"), ("Tante Eck", "Emil Eck")]:
        pledge_id = add_pledge(central_db, None, runners[runner],
                               {"sponsor_name": sponsor, "kind": "fixed", "rate_cents": "10"})
        refs[sponsor] = central_db.execute("SELECT reference FROM pledge WHERE id = %s",
                                           [pledge_id]).fetchone()["reference"]
    return refs


def row(day: str, payer: str, payee: str, purpose: str, amount: str, mark: str) -> str:
    """One booking as the bank writes it: every field quoted, the purpose over two lines."""
    return (f'"{day}";"{day}";"{payer}";"{payee}";"";"DE02120300000000202051";"";"BYLADEM1001";'
            f'"{purpose}";"";"EUR";"{amount}";"{mark}"\r\n')


def volksbank(refs: dict, sign: str = "Soll/Haben", marks: tuple = ("H", "S", "S", "H")) -> bytes:
    """A Volksbank export: Oma Berg's transfer, a refund to Tante Eck naming her reference,
    the account fee, a credit without a reference; then the balance lines."""
    oma, eck = (format_reference(refs[name]) for name in ("Oma Berg", "Tante Eck"))
    return (PREAMBLE + HEADER.format(sign=sign)
            + row("08.12.2026", "Erika Berg", "Förderverein", f"UEBERWEISUNGSGUTSCHR\r\nSponsorenlauf {oma}",
                  "10,00", marks[0])
            + row("09.12.2026", "Förderverein", "Tante Eck", f"Rückzahlung Überzahlung {eck}",
                  "4,00", marks[1])
            + row("10.12.2026", "Förderverein", "", "Kontoführungsentgelt", "3,50", marks[2])
            + row("10.12.2026", "K. Groß", "Förderverein", "Spende Sponsorenlauf", "1.000,00",
                  marks[3])
            + '"01.12.2026";;;;;;;;;"Anfangssaldo";"EUR";"1.176,91";"H"\r\n'
            + '"10.12.2026";;;;;;;;;"Endsaldo";"EUR";"2.179,41";"H"\r\n').encode("cp1252")


def upload(client, data: bytes, name: str = "Umsaetze.csv"):
    """Upload a statement on the page; return the response after its redirect."""
    return client.post("/sponsors/statement/", data={
        "csrf_token": client.csrf, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data", follow_redirects=True,
        headers={"Accept-Language": "en"})


def booked(conn) -> dict:
    """Return what the database holds: payments (sponsor, cents, day) and statement lines
    (cents, from, purpose)."""
    return {
        "payments": [tuple(r.values()) for r in conn.execute(
            "SELECT p.sponsor_name, y.amount_cents, y.paid_on FROM payment y "
            "JOIN pledge p ON p.id = y.pledge_id ORDER BY y.amount_cents")],
        "lines": [tuple(r.values()) for r in conn.execute(
            "SELECT amount_cents, counterparty, purpose FROM statement_line ORDER BY amount_cents")]}


@pytest.mark.parametrize("sign, marks", [
    ("Soll/Haben", ("H", "S", "S", "H")), ("S/H", ("H", "S", "S", "H")),
    ("Soll-Haben", ("h", "s", "S", "H")), (" ", ("H", "S", "S", "H")),
    ("Debit/Credit", ("C", "D", "D", "C"))])
def test_debits_marked_s_are_skipped_and_credits_marked_h_booked(central_admin, central_db, eck,
                                                                 sign, marks):
    response = upload(central_admin, volksbank(eck, sign, marks))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert ("Umsaetze.csv – bookings read: 4; payments recorded by their reference: 1; new credits "
            "left to assign: 1; imported before: 0; debits skipped: 2.") in page
    held = booked(central_db)
    # The refund to Tante Eck is no payment of hers, the fee no credit, the balances no bookings.
    assert held["payments"] == [("Oma Berg", 1000, date(2026, 12, 8))]
    oma = format_reference(eck["Oma Berg"])
    assert held["lines"] == [(1000, "Erika Berg", f"UEBERWEISUNGSGUTSCHR Sponsorenlauf {oma}"),
                             (100000, "K. Groß", "Spende Sponsorenlauf")]
    assert "K. Groß" in page and "Credits without a pledge: 1" in page     # the From column
    # The same file again records nothing.
    upload(central_admin, volksbank(eck, sign, marks))
    assert booked(central_db) == held


@pytest.mark.parametrize("sign, marks, line, problem", [
    # Line 12: the file's first booking spans lines 10 and 11 (its purpose has two).
    ("Soll/Haben", ("H", "X", "S", "H"), 12, "The debit/credit mark X is neither S (Soll, debit) nor H"),
    ("Soll/Haben", ("H", "S", "", "H"), 13, "The debit/credit mark – is neither S"),
    (" ", ("H", "S", "Soll?", "H"), 13, "The debit/credit mark Soll? is neither S"),
])
def test_a_mark_other_than_s_or_h_refuses_the_file(central_admin, central_db, eck, sign, marks,
                                                   line, problem):
    response = upload(central_admin, volksbank(eck, sign, marks))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"<td>{line}</td><td>{problem}" in page and "Nothing was recorded." in page
    assert booked(central_db) == {"payments": [], "lines": []}


def test_a_credit_mark_on_a_negative_amount_refuses_the_file(central_admin, central_db, eck):
    data = volksbank(eck).replace(b'"3,50";"S"', b'"-3,50";"H"')
    response = upload(central_admin, data)
    assert response.status_code == 422
    assert "The amount -3,50 has a minus sign but is marked as a credit (H)." in \
        response.get_data(as_text=True)
    assert booked(central_db) == {"payments": [], "lines": []}


@pytest.mark.parametrize("trailing", ["", "x"])
def test_without_a_mark_column_amounts_keep_their_own_sign(central_admin, central_db, eck,
                                                           trailing):
    # A header ending in ";" (an unnamed empty column) or holding text that is no mark:
    # unsigned amounts are credits, as before.
    oma = eck["Oma Berg"]
    data = ("Buchungstag;Verwendungszweck;Umsatz in EUR;\r\n"
            f"28.06.2025;Sponsorenlauf {oma};10,00;{trailing}\r\n"
            f"29.06.2025;Strom;-45,90;{trailing}\r\n").encode("cp1252")
    page = upload(central_admin, data).get_data(as_text=True)
    assert "payments recorded by their reference: 1;" in page and "debits skipped: 1." in page
    assert booked(central_db)["payments"] == [("Oma Berg", 1000, date(2025, 6, 28))]
