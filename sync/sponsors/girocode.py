"""GiroCode: the EPC QR code (EPC069-12, version 002) that a banking app turns into a transfer.

The payload is twelve lines at most, joined by LF, in UTF-8 (character set 1):

    BCD / 002 / 1 / SCT / BIC (may be empty) / name of the beneficiary (<= 70) /
    IBAN / EUR amount (EUR12.50, 0.01 to 999999999.99) / purpose code (4 letters or empty) /
    structured reference (ISO 11649 RF.., <= 35) or empty / remittance text (<= 140)

A structured reference and a text are exclusive; trailing empty lines are left out, as
the standard allows. The whole payload is at most 331 bytes. The code itself is drawn
by segno at error correction level M (what the standard asks for) as inline SVG.
"""
from __future__ import annotations

import functools

import segno
from markupsafe import Markup
from stdnum import iban as stdnum_iban
from stdnum import iso11649

from lapsync.errors import InputError

MAX_BYTES = 331
MAX_CENTS = 99_999_999_999
# ExternalPurpose1Code "CHAR": a charity payment, which a sponsored run's donation is.
PURPOSE = "CHAR"


def format_amount(cents: int) -> str:
    """Return an EPC amount: EUR, the euros, a point and two digits of cents (EUR12.50)."""
    return f"EUR{cents // 100}.{cents % 100:02d}"


def _refuse(message: str) -> InputError:
    """Return the error of a GiroCode that cannot be made."""
    return InputError("invalid_girocode", message, 422)


def epc_payload(*, name: str, iban: str, amount_cents: int, bic: str = "",
                reference: str | None = None, text: str | None = None,
                purpose: str = PURPOSE) -> str:
    """Return the EPC069-12 payload of a SEPA credit transfer, or raise InputError."""
    name, bic = " ".join(name.split()), (bic or "").strip().upper()
    if not 0 < len(name) <= 70:
        raise _refuse("The beneficiary's name must be 1 to 70 characters.")
    if not stdnum_iban.is_valid(iban):
        raise _refuse("The IBAN is not valid.")
    if bic and len(bic) not in (8, 11):
        raise _refuse("A BIC has 8 or 11 characters.")
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) \
            or not 0 < amount_cents <= MAX_CENTS:
        raise _refuse("The amount must be from 0.01 to 999999999.99 euros.")
    if purpose and not (len(purpose) == 4 and purpose.isascii() and purpose.isalnum()):
        raise _refuse("A purpose code has 4 letters.")
    lines = ["BCD", "002", "1", "SCT", bic, name, stdnum_iban.compact(iban),
             format_amount(amount_cents), purpose or ""]
    if reference:
        if not iso11649.is_valid(reference):
            raise _refuse("The reference is not an ISO 11649 creditor reference (RF..).")
        lines.append(iso11649.compact(reference))
    elif text:
        text = " ".join(text.split())
        if len(text) > 140:
            raise _refuse("The remittance text must be at most 140 characters.")
        lines += ["", text]
    payload = "\n".join(lines)
    if len(payload.encode("utf-8")) > MAX_BYTES:
        raise _refuse("The GiroCode's text is longer than 331 bytes.")
    return payload


# One mask for every code: scoring all eight to pick one makes drawing a class's letters
# about four times slower, and every mask is valid (a reader takes it from the code's
# format information). A class printed again reuses the drawings: a payload fixes its
# drawing completely.
MASK = 0


@functools.lru_cache(maxsize=2048)
def qr_svg(payload: str) -> Markup:
    """Return the payload as an inline SVG QR code (level M, sized by CSS, 4-module margin)."""
    code = segno.make_qr(payload.encode("utf-8"), error="m", boost_error=False, mode="byte",
                         mask=MASK)
    return Markup(code.svg_inline(scale=1, border=4, omitsize=True,
                                  svgclass="girocode", lineclass=None))


def girocode(bank: dict, amount_cents: int, reference: str | None = None,
             text: str | None = None) -> dict | None:
    """Return {payload, svg} for a transfer to the organiser's account, or None.

    None when there is nothing to pay or the bank settings (account holder, IBAN) are
    not set: a letter then shows the bank details without a code.
    """
    if amount_cents <= 0 or not bank.get("iban") or not bank.get("account_holder"):
        return None
    if reference and not iso11649.is_valid(reference):
        reference, text = None, text or reference
    payload = epc_payload(name=bank["account_holder"], iban=bank["iban"],
                          bic=bank.get("bic", ""), amount_cents=amount_cents,
                          reference=reference, text=text)
    return {"payload": payload, "svg": qr_svg(payload)}
