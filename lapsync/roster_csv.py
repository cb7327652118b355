"""School office roster CSV: decode, parse and check a whole file, as pure functions.

The laptop (runners.py) and central both feed bytes in (through roster_file.py, which
reads an Excel workbook's rows with sheets.py and checks them here by the same rules)
and get either every runner of the file back, cleaned and numbered, or one RosterError
with a report of every bad line. Nothing here touches a database: the caller passes
the runners it already has and writes the result in one transaction.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from babel.numbers import format_decimal
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _

from .errors import InputError
from .names import class_fold

REQUIRED = ("name", "klasse", "jahrgang")
OPTIONAL = ("startnummer",)
MAX_ROWS = 10_000
MAX_BYTES = 4 * 1024 * 1024
MAX_START_DIGITS = 7  # beyond any valid start number; keeps int() cheap
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
CLASS_GRADE = re.compile(r"\s*(\d{1,2})(?!\d)")   # "9a", "10 b", "5": the grade leads the class
BIRTH_YEAR = re.compile(r"(19|20)\d\d")
DOTTED_GRADE = re.compile(r"\d{1,2}\.")


def number_text(number: int) -> str:
    """Write a large number the page's way: 10,000 in English, 10.000 in German."""
    locale = get_locale()
    return format_decimal(number, locale=locale) if locale else f"{number:,}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file: its line (header = 1) and what is wrong."""

    line: int
    message: str

    def as_dict(self) -> dict:
        """Return the problem as JSON-ready data."""
        return {"line": self.line, "message": self.message}


class RosterError(InputError):
    """A roster file that is rejected whole, with the report of every bad line."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: p.line)
        count = len(self.problems)
        super().__init__("invalid_roster", ngettext(
            "The file was not imported: %(num)s problem found. Nothing was changed.",
            "The file was not imported: %(num)s problems found. Nothing was changed.", count),
            422, problems=[p.as_dict() for p in self.problems])


@dataclass
class _Row:
    """A data row on its way through the checks."""

    line: int
    cells: dict
    start_number: int | None = None
    bad_number: bool = False


def check_size(data: bytes) -> None:
    """Refuse a file larger than MAX_BYTES (RosterError)."""
    if len(data) > MAX_BYTES:
        raise RosterError([Problem(1, _("The file is larger than %(size)s MB.",
                                        size=MAX_BYTES // (1024 * 1024)))])


def decode(data: bytes) -> str:
    """Decode UTF-8 (with or without BOM) or else Windows-1252; raise RosterError otherwise."""
    check_size(data)
    if data.startswith(UTF16_BOMS):
        raise RosterError([Problem(1, _("The file is UTF-16 text: save it as "
                                        "'CSV UTF-8' or 'CSV (semicolon separated)'."))])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise RosterError([Problem(line, _(
                "The file is neither UTF-8 nor Windows-1252 text (byte %(byte)s cannot be read).",
                byte="0x%02X" % data[exc.start]))])
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise RosterError([Problem(line, _("The file contains NUL bytes: it is not a text CSV."))])
    return text


def delimiter(header_line: str) -> str:
    """Pick `;` (German Excel) or `,` from the header line."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def check_header(cells: list[str], line: int = 1) -> list[str]:
    """Return the normalised column names, or raise RosterError for a wrong header.

    Empty cells at the end are no columns: German Excel keeps `;;` after columns that
    once held something.
    """
    names = [cell.strip().lower() for cell in cells]
    while names and not names[-1]:
        names.pop()
    unknown = [n for n in names if n not in REQUIRED + OPTIONAL]
    missing = [n for n in REQUIRED if n not in names]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if unknown or missing or doubled:
        raise RosterError([Problem(line, _(
            "Wrong header (%(details)s): expected %(expected)s.",
            details="; ".join(header_faults(unknown, missing, doubled)),
            expected=_("Name, Klasse, Jahrgang and optionally Startnummer")))])
    return names


def header_faults(unknown: list[str], missing: list[str], doubled: list[str]) -> list[str]:
    """Describe what is wrong with the header's columns, one phrase per kind of fault."""
    parts = []
    if unknown:
        parts.append(ngettext("unknown column %(columns)s", "unknown columns %(columns)s",
                              len(unknown), columns=", ".join(repr(c) for c in unknown)))
    if missing:
        parts.append(_("missing %(columns)s", columns=", ".join(m.capitalize() for m in missing)))
    if doubled:
        parts.append(ngettext("column %(columns)s twice", "columns %(columns)s twice",
                              len(doubled), columns=", ".join(d.capitalize() for d in doubled)))
    return parts


def read_rows(text: str) -> tuple[list[_Row], list[Problem]]:
    """Split the text into header-keyed data rows; blank lines are skipped."""
    first_line = text.split("\n", 1)[0]
    if not text.strip():
        raise RosterError([Problem(1, _("The file is empty: expected the header "
                                        "Name,Klasse,Jahrgang and one line per runner."))])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(first_line))
    try:
        columns = check_header(next(reader))
        return _data_rows(reader, columns)
    except csv.Error as exc:
        raise RosterError([Problem(reader.line_num, _("The line cannot be read as CSV "
                                                      "(%(reason)s).", reason=str(exc)))])


def _data_rows(reader, columns: list[str]) -> tuple[list[_Row], list[Problem]]:
    """Collect the data rows after the header, checking column count and row limit."""
    rows, problems, previous_end = [], [], reader.line_num
    for cells in reader:
        line, previous_end = previous_end + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) + len(problems) >= MAX_ROWS:
            raise RosterError(problems + [Problem(line, _(
                "Too many rows: at most %(max)s runners per file.", max=number_text(MAX_ROWS)))])
        if len(cells) < len(columns) or any(cell.strip() for cell in cells[len(columns):]):
            problems.append(Problem(line, _("Expected %(expected)s columns, found %(found)s.",
                                            expected=len(columns), found=len(cells))))
            continue
        rows.append(_Row(line, dict(zip(columns, cells))))  # empty cells past the header: none
    if not rows and not problems:
        raise RosterError([Problem(1, _("The file has a header but no runners."))])
    return rows, problems


def sheet_rows(lines: list[tuple[int, list[str]]]) -> tuple[list[_Row], list[Problem]]:
    """Turn a spreadsheet's non-blank rows (row number, cells), header first, into data rows.

    A spreadsheet leaves out empty cells at the end of a row: those are empty columns,
    while a filled cell beyond the header's columns is a wrong row.
    """
    if not lines:
        raise RosterError([Problem(1, _("The file is empty: expected the header "
                                        "Name,Klasse,Jahrgang and one line per runner."))])
    header_line, header = lines[0]
    columns = check_header(header, header_line)
    rows, problems = [], []
    for line, cells in lines[1:]:
        if len(rows) + len(problems) >= MAX_ROWS:
            raise RosterError(problems + [Problem(line, _(
                "Too many rows: at most %(max)s runners per file.", max=number_text(MAX_ROWS)))])
        if any(cell.strip() for cell in cells[len(columns):]):
            problems.append(Problem(line, _("Expected %(expected)s columns, found %(found)s.",
                                            expected=len(columns), found=len(cells))))
            continue
        cells = cells[:len(columns)] + [""] * (len(columns) - len(cells))
        rows.append(_Row(line, dict(zip(columns, cells))))
    if not rows and not problems:
        raise RosterError([Problem(header_line, _("The file has a header but no runners."))])
    return rows, problems


def parse_start_number(raw: str) -> int | None:
    """Return the file's start number, None when empty; ValueError when not digits."""
    text = raw.strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_START_DIGITS:
        raise ValueError(_("The start number %(text)s is not valid: use digits only, e.g. 17.",
                           text=repr(text[:20])))
    return int(text)


def _key(name: str, class_: str) -> tuple[str, str]:
    """Compare names and classes the way a person would: case and spacing ignored."""
    return (" ".join(name.split()).casefold(), class_fold(class_))


def file_grade(jahrgang: str, class_: str) -> str:
    """Return a row's grade for the validator: its Jahrgang as written, or the class's leading
    number (9 for "9a") when the Jahrgang is empty or a year of birth (what many office
    exports call Jahrgang); "9." as some exports write it is 9."""
    text = jahrgang.strip()
    leading = CLASS_GRADE.match(class_)
    if leading and (not text or BIRTH_YEAR.fullmatch(text)):
        return leading.group(1)
    return text[:-1] if DOTTED_GRADE.fullmatch(text) else jahrgang


def check_numbers(rows: list[_Row], taken: set[int]) -> list[Problem]:
    """Read given start numbers; report bad ones, doubles in the file and numbers in use."""
    problems, first_line = [], {}
    for row in rows:
        try:
            row.start_number = parse_start_number(row.cells.get("startnummer", ""))
        except ValueError as exc:
            row.bad_number = True
            problems.append(Problem(row.line, str(exc)))
            continue
        number = row.start_number
        if number is None:
            continue
        if number in first_line:
            problems.append(Problem(row.line, _("Start number %(number)s is also on line "
                                                "%(line)s.", number=number,
                                                line=first_line[number])))
        elif number in taken:
            problems.append(Problem(row.line, _("Start number %(number)s is already used "
                                                "by a runner on the roster.", number=number)))
        first_line.setdefault(number, row.line)
    return problems


def assign_numbers(rows: list[_Row], taken: set[int], highest: int) -> None:
    """Give rows without a start number the next ones after the highest in use or in the file."""
    in_file = [r.start_number for r in rows if r.start_number and r.start_number <= highest]
    following = max([n for n in taken if n <= highest] + in_file, default=0) + 1
    for row in rows:
        if row.start_number is None and not row.bad_number:
            row.start_number, following = following, following + 1


@dataclass(frozen=True)
class NumberPool:
    """The start numbers rows without one take, lowest free first (a laptop's block).

    too_few(needed, free) says, for the report, that the rows without a number need
    more numbers than the pool has free and what to do about it.
    """

    first: int
    last: int
    too_few: Callable[[int, int], str]


def assign_from_pool(rows: list[_Row], taken: set[int], pool: NumberPool) -> list[Problem]:
    """Give rows without a start number the pool's free numbers; report when too few are free."""
    in_file = {row.start_number for row in rows}
    free = (n for n in range(pool.first, pool.last + 1) if n not in taken and n not in in_file)
    waiting = [row for row in rows if row.start_number is None and not row.bad_number]
    for row in waiting:
        row.start_number = next(free, None)
        row.bad_number = row.start_number is None  # reported once below, not per row
    left_out = [row for row in waiting if row.bad_number]
    if not left_out:
        return []
    return [Problem(left_out[0].line, pool.too_few(len(waiting), len(waiting) - len(left_out)))]


def check_names(rows: list[_Row], existing: list[tuple[int, str, str]]) -> list[Problem]:
    """Report a runner already on the roster or twice in the file (same name and class)."""
    known = {_key(name, class_): ("roster", number) for number, name, class_ in existing}
    problems = []
    for row in rows:
        key = _key(row.cells["name"], row.cells["klasse"])
        if key[0] and key in known:
            problems.append(Problem(row.line, _twice_text(row, *known[key])))
        known.setdefault(key, ("file", row.line))
    return problems


def _twice_text(row: _Row, where: str, number: int) -> str:
    """Say where the row's runner is already: on the roster (start number) or a file line."""
    names = {"name": row.cells["name"].strip(), "class_name": row.cells["klasse"].strip()}
    if where == "roster":
        return _("%(name)s (%(class_name)s) is already on the roster with start number "
                 "%(number)s.", number=number, **names)
    return _("%(name)s (%(class_name)s) is also on line %(line)s.", line=number, **names)


def parse_roster(data: bytes, existing: Iterable[tuple[int, str, str]],
                 validate: Callable[..., dict], highest: int = 999_999,
                 pool: NumberPool | None = None) -> list[dict]:
    """Check a whole roster CSV against the runners in use; return every runner or raise.

    `existing` holds (start_number, name, class) of the runners already there;
    `validate(start_number, name, class_, grade)` cleans one runner or raises
    InputError; rows without a start number continue after the highest in use up to
    `highest`, or, given a `pool`, take its free numbers (too few refuse the file).
    """
    rows, problems = read_rows(decode(data))
    return check_roster(rows, problems, existing, validate, highest, pool)


def check_roster(rows: list[_Row], problems: list[Problem],
                 existing: Iterable[tuple[int, str, str]], validate: Callable[..., dict],
                 highest: int = 999_999, pool: NumberPool | None = None) -> list[dict]:
    """Check a roster's rows (read from a CSV or a spreadsheet) as parse_roster does."""
    existing = list(existing)
    taken = {number for number, _name, _class in existing}
    problems = problems + check_numbers(rows, taken)
    if pool is None:
        assign_numbers(rows, taken, highest)
    else:
        problems += assign_from_pool(rows, taken, pool)
    problems += check_names(rows, existing)
    runners = []
    for row in rows:
        # A bad start number is reported already: check the other fields with a stand-in,
        # and so for a grade that is missing with no class to take it from.
        number = 1 if row.bad_number else row.start_number
        grade = file_grade(row.cells["jahrgang"], row.cells["klasse"])
        try:
            runners.append(validate(number, row.cells["name"], row.cells["klasse"],
                                    grade if grade.strip() else "5"))
        except InputError as exc:
            problems.append(Problem(row.line, exc.message))
        if not grade.strip():
            problems.append(Problem(row.line, _(
                "The Jahrgang is empty and the class %(class_name)s does not begin with the grade: "
                "type the grade.", class_name=repr(row.cells["klasse"].strip()))))
    if problems:
        raise RosterError(problems)
    return runners


def format_report(error: RosterError) -> str:
    """Render the report as plain text lines for the CLI."""
    lines = [_("line %(line)s: %(message)s", line=p.line, message=p.message)
             for p in error.problems]
    return "\n".join([error.message, *lines])

