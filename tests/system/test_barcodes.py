"""Barcodes on printed start-number sheets and label sheets, read back as a scanner would.

Central runs on a real loopback port; Debian's headless Chromium (Playwright, never
`playwright install`) renders the pages with their print styles at 3.125 device pixels
per CSS pixel, which is 300 dpi (96 CSS pixels to the inch), and zxing-cpp reads the
screenshots. There is no print preview headless; the print styles place everything in
mm, so the screenshot is the paper.
"""
from __future__ import annotations

import io
import re

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import expect

from sync.roster import import_roster
from tests.pg import CENTRAL_PASSWORD

DPI_SCALE = 300 / 96
PX_PER_MM = 96 / 25.4          # CSS pixels per mm
# 26 runners: more than one sheet of 24 labels. A 1-digit and a 6-digit number, classes
# whose natural order (5a, 6b, 10a) is not their text order.
ROSTER = ([(7, "Anna Berg", "6b"), (123456, "Ben Cruz", "6b"), (999999, "Cleo Dahl", "10a"),
           (10, "Dora Ek", "5a")]
          + [(200 + i, f"Runner {chr(65 + i)}{chr(97 + i)} Langername-Doppelname", "5a" if i % 2 else "6b")
             for i in range(22)])


@pytest.fixture
def page(browser, live_central, central_users, central_db):
    """A 300 dpi page logged in to central as ada, with ROSTER imported."""
    csv = "Name,Klasse,Jahrgang,Startnummer\n" + "".join(
        f"{name},{class_},{re.match(r'[0-9]+', class_).group()},{number}\n"
        for number, name, class_ in ROSTER)
    assert import_roster(central_db, csv.encode()).count == len(ROSTER)
    context = browser.new_context(locale="en-US", viewport={"width": 1000, "height": 900},
                                  device_scale_factor=DPI_SCALE)
    context.set_default_timeout(8_000)
    page = context.new_page()
    page.goto(f"{live_central}/login")
    page.get_by_label("Name").fill("ada")
    page.get_by_label("Password").fill(CENTRAL_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/standings/"))
    yield page
    context.close()


def shot(locator) -> Image.Image:
    """Return a screenshot of one element as a PIL image."""
    return Image.open(io.BytesIO(locator.screenshot(animations="disabled")))


def read(image: Image.Image) -> list[str]:
    """Return the text of every barcode zxing-cpp finds in an image, checking it is Code 128."""
    # Upright bars, as printed: no need to search rotated images (halves the time).
    found = zxingcpp.read_barcodes(image.convert("L"), try_rotate=False)
    assert all(code.format == zxingcpp.BarcodeFormat.Code128 for code in found), found
    return sorted(code.text for code in found)


def box(locator, origin: dict | None = None) -> dict:
    """Return an element's box in mm, relative to origin's box (in CSS pixels) or the page."""
    rect = locator.bounding_box()
    left, top = (origin["x"], origin["y"]) if origin else (0, 0)
    return {"left": (rect["x"] - left) / PX_PER_MM, "top": (rect["y"] - top) / PX_PER_MM,
            "width": rect["width"] / PX_PER_MM, "height": rect["height"] / PX_PER_MM}


def test_every_start_number_sheet_scans_as_its_runners_number(page, central_db):
    central_db.execute("INSERT INTO setting (key, value, change_id) VALUES "
                       "('event_name', '\"Sponsorenlauf 2025\"', 1)")
    page.get_by_role("banner").get_by_role("link", name="Runners").click()
    page.get_by_label("Class").select_option("6b")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Two per page").click()
    expect(page.locator(".bib-sheet")).to_have_count(13)
    page.emulate_media(media="print")
    # The viewport is as wide as the paper inside its margins: A4 portrait without margins
    # for two per page, A4 landscape within 10 mm margins for one per page.
    for per_page, width, height in (("2", 210, 148), ("1", 277, 185)):
        page.set_viewport_size({"width": round(width * PX_PER_MM), "height": 900})
        if per_page == "1":
            page.goto(page.url.replace("per_page=2", "per_page=1"))
        sheets = page.locator(".bib-sheet")
        for index, number in enumerate(("7", "123456")):     # Anna Berg, Ben Cruz
            sheet = sheets.nth(index)
            expect(sheet.locator(".bib-number")).to_have_text(number)
            expect(sheet.locator(".bib-digits")).to_have_text(number)
            assert read(shot(sheet)) == [number]
            origin = sheet.bounding_box()
            code, digits = box(sheet.locator(".barcode"), origin), box(sheet.locator(".bib-digits"), origin)
            assert box(sheet)["height"] == pytest.approx(height, abs=0.1)
            assert code["height"] == pytest.approx(22, abs=0.1) and code["width"] > 40
            assert code["top"] + code["height"] <= digits["top"]              # digits under it
            assert digits["top"] + digits["height"] < height - 2, per_page   # all on the page


# Each label's box relative to its A4 page (CSS pixels) and its printed texts, in one call.
LABELS = """labels => labels.map(label => {
  const page = label.closest('.label-page').getBoundingClientRect(), box = label.getBoundingClientRect();
  const text = part => label.querySelector(part).innerText;
  return {left: box.left - page.left, top: box.top - page.top, width: box.width, height: box.height,
          texts: [text('.label-number'), text('.label-name'), text('.label-class')]};
})"""


# What sticks out right of the viewport inside the page's content, apart from the preview's pages.
FITS = """() => [...document.querySelectorAll('main *')]
  .filter(el => !el.closest('.label-page') && el.getBoundingClientRect().right > innerWidth + 0.5)
  .map(el => el.outerHTML.slice(0, 80))"""


def printed_labels(sheet) -> list[dict]:
    """Return the labels of one A4 page: box in mm from the page's corner, printed texts."""
    return [{**{key: label[key] / PX_PER_MM for key in ("left", "top", "width", "height")},
             "texts": tuple(label["texts"])} for label in sheet.locator(".label").evaluate_all(LABELS)]


def test_every_label_scans_as_its_runners_number_from_its_place_on_the_sheet(page):
    page.get_by_role("banner").get_by_role("link", name="Runners").click()
    page.get_by_role("link", name="Label sheets of all runners").click()
    expect(page.locator("#label-layout")).to_contain_text(
        "Avery Zweckform 3475: 3 × 8 labels of 70 × 36 mm per A4 page. 26 labels on 2 pages.")
    page.get_by_label("Order").select_option(label="By start number")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"order=number"))
    page.emulate_media(media="print")
    by_number = sorted(ROSTER)
    pages = page.locator(".label-page")
    expect(pages).to_have_count(2)
    for sheet_index, expected in enumerate((by_number[:24], by_number[24:])):
        sheet = pages.nth(sheet_index)
        image, labels = shot(sheet), printed_labels(sheet)
        assert box(sheet)["width"] == pytest.approx(210, abs=0.1)
        assert box(sheet)["height"] == pytest.approx(297, abs=0.1)
        assert read(image) == sorted(str(number) for number, _name, _class in expected)
        assert [label["texts"] for label in labels] == [
            (str(number), name, f"Class {class_}") for number, name, class_ in expected]
        pixels_per_mm = image.width / 210
        for slot, (label, (number, _name, _class)) in enumerate(zip(labels, expected)):
            row, column = divmod(slot, 3)
            place = {key: label[key] for key in ("left", "top", "width", "height")}
            assert place == pytest.approx({"left": 70 * column, "top": 4.5 + 36 * row,
                                           "width": 70, "height": 36}, abs=0.1)
            crop = image.crop(tuple(round(mm * pixels_per_mm) for mm in (
                place["left"], place["top"], place["left"] + 70, place["top"] + 36)))
            assert read(crop) == [str(number)], (slot, number)


def test_labels_of_one_class_by_name_on_the_other_sheet_layout(page):
    page.get_by_role("banner").get_by_role("link", name="Runners").click()
    page.get_by_label("Class").select_option("10a")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Label sheets of class 10a").click()
    page.get_by_label("Label sheet").select_option("3474")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#label-layout")).to_contain_text(
        "Avery Zweckform 3474: 3 × 8 labels of 70 × 37 mm per A4 page. 1 label on 1 page.")
    page.set_viewport_size({"width": 390, "height": 844})    # a phone: the A4 preview scrolls in
    assert page.evaluate(FITS) == []                         # its own box, all else fits the width
    page.emulate_media(media="print")
    sheet = page.locator(".label-page")
    [label] = printed_labels(sheet)
    assert label.pop("texts") == ("999999", "Cleo Dahl", "Class 10a")
    assert label == pytest.approx({"left": 0, "top": 0.5, "width": 70, "height": 37}, abs=0.1)
    assert read(shot(sheet.locator(".label"))) == ["999999"]


# What is cut off: text wider than its element, text taller than an element that hides its
# overflow (a clamped name), or an element beyond its label's or sheet's edges.
CUT = """(boxes) => boxes.flatMap(box => {
  const edge = box.getBoundingClientRect();
  return [...box.querySelectorAll('p, svg')].filter(el => {
    const r = el.getBoundingClientRect(), hides = getComputedStyle(el).overflow !== 'visible';
    return el.scrollWidth > el.clientWidth + 1 || (hides && el.scrollHeight > el.clientHeight + 1)
      || r.left < edge.left - 0.5 || r.right > edge.right + 0.5
      || r.top < edge.top - 0.5 || r.bottom > edge.bottom + 0.5;
  }).map(el => el.className.baseVal ?? el.className);
})"""
LONGEST = [(31, ("Maximilian-Alexander Schönhausen-Württemberg von und zu Hohenlohe-Langenburg-"
                 "Ingelfingen Friedrich-Wilhelm")[:100], "Vorbereitungsklasse1"),  # 100 and 20 long
           (32, "Ann-Kathrin Schmidt", "Förderklasse 10/11b")]


def test_the_longest_names_and_classes_fit_their_labels_and_sheets(page, central_db):
    csv = "Name,Klasse,Jahrgang,Startnummer\n" + "".join(
        f"{name},{class_},5,{number}\n" for number, name, class_ in LONGEST)
    assert import_roster(central_db, csv.encode()).count == 2
    assert max(len(name) for _n, name, _c in LONGEST) == 100
    url = page.url.split("/standings")[0]
    for class_ in ("Vorbereitungsklasse1", "Förderklasse 10/11b"):
        page.goto(f"{url}/runners/labels?class={class_}")
        page.emulate_media(media="print")
        labels = page.locator(".label")
        expect(labels).to_have_count(1)
        assert labels.evaluate_all(CUT) == []
        assert read(shot(labels.first)) == [str(next(n for n, _m, c in LONGEST if c == class_))]
        page.emulate_media(media="screen")
    page.goto(f"{url}/runners/sheets?class=Vorbereitungsklasse1&per_page=2")
    page.emulate_media(media="print")
    sheet = page.locator(".bib-sheet")
    assert sheet.evaluate_all(CUT) == []
    assert read(shot(sheet)) == ["31"]
