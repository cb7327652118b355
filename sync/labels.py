"""Printing helpers of the roster: start-number barcodes and A4 label sheets.

The barcode is Code 128, drawn as inline SVG by python-barcode (offline, no image files):
a USB barcode scanner at the track is usually a cheap linear (1D) reader that cannot read
QR codes, and Code 128 packs digits in pairs, so even a 6-digit number stays short.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from barcode import Code128
from barcode.charsets import code128
from barcode.writer import SVGWriter
from markupsafe import Markup

# Narrowest bar (the module), bar height and quiet zone on each side, in mm. A bib is read
# from an arm's length: 0.6 mm bars; a label's 0.4 mm (16 mil) bars are still wide for a
# handheld scanner. Either is at most 55 mm wide for 6 digits, within a cheap CCD reader's
# field. Quiet zones are 12 modules wide (Code 128 demands at least 10).
SIZES = {"sheet": {"module_width": 0.6, "module_height": 22.0, "quiet_zone": 7.2},
         "label": {"module_width": 0.4, "module_height": 12.0, "quiet_zone": 4.8}}
ORDERS = ("class", "number")


@dataclass(frozen=True)
class LabelLayout:
    """A sheet of labels: product name, grid and the label's size and offset on A4, in mm."""

    product: str
    columns: int
    rows: int
    width: float
    height: float
    top: float
    left: float = 0.0

    @property
    def per_page(self) -> int:
        """Return how many labels one A4 sheet holds."""
        return self.columns * self.rows


# Both are 3 x 8 labels edge to edge across the A4 width; they differ in height and so in
# the top margin: (297 mm - 8 x height) / 2.
LAYOUTS = {"3475": LabelLayout("Avery Zweckform 3475", 3, 8, 70, 36, 4.5),
           "3474": LabelLayout("Avery Zweckform 3474", 3, 8, 70, 37, 0.5)}


class StartNumberCode128(Code128):
    """python-barcode's Code 128 without its lost leading "99" (in 0.16.1; fixed upstream since).

    The library starts in charset C and folds "start C, switch to A or B" into one start
    code; 0.16.1 folds the data pair 99 too (its value is also "switch to C"), so 999
    would scan as 9: a lap counted for another runner.
    """

    def _try_to_optimize(self, encoded: list[int]) -> list[int]:
        """Fold a leading switch to charset A or B into the start code; keep a pair 99."""
        if encoded[0] == code128.START_CODES["C"] and encoded[1:2] in ([code128.C["TO_A"]],
                                                                       [code128.C["TO_B"]]):
            encoded[:2] = [code128.TO[encoded[1]]]
        return encoded


@lru_cache(maxsize=8192)
def code128_svg(number: int, size: str = "sheet") -> Markup:
    """Return a start number as an inline Code 128 SVG: the bars and quiet zones, no text."""
    options = {**SIZES[size], "write_text": False, "margin_top": 0, "margin_bottom": 0,
               "compress": True, "with_doctype": False}
    svg = StartNumberCode128(str(int(number)), writer=SVGWriter()).render(options).decode("utf-8")
    svg = svg[svg.index("<svg"):]  # inline in HTML: no XML declaration
    svg = svg.replace(' id="barcode_group"', "")  # the writer's fixed id: repeated on a sheet
    return Markup(svg.replace("<svg ", f'<svg class="barcode barcode-{size}" aria-hidden="true" ', 1))


def order_runners(runners: list[dict], order: str) -> list[dict]:
    """Return the runners by class and name (as listed) or by start number."""
    if order == "number":
        return sorted(runners, key=lambda runner: runner["start_number"])
    return list(runners)


def label_pages(runners: list[dict], layout: LabelLayout) -> list[list[dict]]:
    """Place runners on label sheets, row by row: pages of {runner, column, row, left, top}."""
    pages: list[list[dict]] = []
    for index, runner in enumerate(runners):
        slot = index % layout.per_page
        if slot == 0:
            pages.append([])
        row, column = divmod(slot, layout.columns)
        pages[-1].append({"runner": runner, "column": column + 1, "row": row + 1,
                          "left": round(layout.left + column * layout.width, 2),
                          "top": round(layout.top + row * layout.height, 2)})
    return pages
