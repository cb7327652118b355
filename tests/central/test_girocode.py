"""GiroCode (EPC069-12): the payload field by field, and the QR code as Chromium draws it.

The code is rendered by Debian's headless Chromium at 300 dpi, 30 mm wide (the size on a
letter), and read back with zxing-cpp as a banking app's camera would.
"""
from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image

from lapsync.errors import InputError
from sync.sponsors.girocode import epc_payload, format_amount, girocode, qr_svg

BANK = {"account_holder": "Förderverein Grundschule am Park e.V.",
        "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}
REFERENCE = "RF18539007547034"


@pytest.fixture(scope="module")
def page(browser):
    """One Chromium page at 300 dpi for the module."""
    context = browser.new_context(device_scale_factor=300 / 96)
    yield context.new_page()
    context.close()


def scanned(page, svg: str) -> list:
    """Render an inline SVG 30 mm wide in Chromium; return what zxing-cpp reads."""
    page.set_content(f'<!doctype html><meta charset="utf-8"><body style="margin:0">'
                     f'<div id="qr" style="width:30mm;padding:2mm">{svg}</div>')
    image = Image.open(io.BytesIO(page.locator("#qr").screenshot()))
    return zxingcpp.read_barcodes(image.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)


def test_payload_with_a_creditor_reference_has_the_standards_ten_lines():
    payload = epc_payload(name=BANK["account_holder"], iban="DE89 3704 0044 0532 0130 00",
                          bic="cobadeffxxx", amount_cents=1250, reference="RF18 5390 0754 7034")
    assert payload.split("\n") == [
        "BCD",                      # service tag
        "002",                      # version
        "1",                        # character set: UTF-8
        "SCT",                      # SEPA credit transfer
        "COBADEFFXXX",              # BIC
        "Förderverein Grundschule am Park e.V.",  # beneficiary, <= 70
        "DE89370400440532013000",   # IBAN without spaces
        "EUR12.50",                 # amount
        "CHAR",                     # purpose: charity
        REFERENCE,                  # structured ISO 11649 reference, no remittance text
    ]


def test_payload_with_a_text_leaves_the_reference_empty_and_may_omit_the_bic():
    payload = epc_payload(name="Lauf", iban=BANK["iban"], amount_cents=1,
                          text="Sponsorenlauf  2025 Anna Berg 5a")
    assert payload.split("\n") == ["BCD", "002", "1", "SCT", "", "Lauf", BANK["iban"],
                                   "EUR0.01", "CHAR", "", "Sponsorenlauf 2025 Anna Berg 5a"]


@pytest.mark.parametrize("cents,text", [(1, "EUR0.01"), (100, "EUR1.00"), (2005, "EUR20.05"),
                                        (123456, "EUR1234.56"),
                                        (99_999_999_999, "EUR999999999.99")])
def test_amounts_are_euros_with_two_decimals(cents, text):
    assert format_amount(cents) == text


@pytest.mark.parametrize("change", [
    {"name": ""}, {"name": "x" * 71}, {"iban": "DE89370400440532013001"}, {"bic": "COBADE"},
    {"amount_cents": 0}, {"amount_cents": 100_000_000_000}, {"amount_cents": 12.5},
    {"reference": "RF18539007547035"}, {"reference": None, "text": "x" * 141},
    {"purpose": "CHARITY"}, {"name": "ä" * 70, "reference": None, "text": "€" * 140},
])
def test_what_the_standard_does_not_allow_is_refused(change):
    fields = {"name": "Lauf", "iban": BANK["iban"], "amount_cents": 100,
              "reference": REFERENCE, **change}
    with pytest.raises(InputError):
        epc_payload(**fields)


def test_no_code_without_an_amount_or_the_bank_account():
    assert girocode(BANK, 0, REFERENCE) is None
    assert girocode({**BANK, "iban": None}, 100, REFERENCE) is None
    assert girocode({"iban": BANK["iban"]}, 100, REFERENCE) is None
    # A reference that is not a creditor reference goes into the text line instead.
    code = girocode(BANK, 100, "Spende 17")
    assert code["payload"].split("\n")[9:] == ["", "Spende 17"]


@pytest.mark.parametrize("reference,text", [(REFERENCE, None), (None, "Sponsorenlauf – Jörg Ölmann 5a")])
def test_the_code_chromium_draws_reads_back_line_by_line(page, reference, text):
    code = girocode(BANK, 4711, reference, text)
    assert code["svg"].startswith("<svg") and "girocode" in code["svg"]
    found = scanned(page, code["svg"])
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode
    assert found[0].ec_level == "M"
    assert found[0].text.split("\n") == code["payload"].split("\n")
    lines = found[0].text.split("\n")
    assert lines[5] == BANK["account_holder"] and lines[6] == BANK["iban"]
    assert lines[7] == "EUR47.11"


def test_a_longest_payload_still_scans(page):
    fields = dict(name="Ä" * 70, iban="MT84MALT011000012345MTLCAST001S", bic="COBADEFFXXX",
                  amount_cents=99_999_999_999)
    room = 331 - len(epc_payload(**fields, text="ß").encode())  # bytes left for more text
    payload = epc_payload(**fields, text="ß" + "x" * room)
    assert len(payload.encode()) == 331
    with pytest.raises(InputError):
        epc_payload(**fields, text="ß" + "x" * (room + 1))
    found = scanned(page, qr_svg(payload))
    assert [code.text for code in found] == [payload]
