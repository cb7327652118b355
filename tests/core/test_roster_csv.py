"""Roster CSV parsing: encodings, delimiters, numbering and the per-line report."""
from __future__ import annotations

import pytest

from lapsync.laptop.numbers import import_pool
from lapsync.laptop.runners import MAX_START_NUMBER, validate_runner
from lapsync.roster_csv import (
    MAX_ROWS,
    NumberPool,
    RosterError,
    decode,
    format_report,
    parse_roster,
)

HEADER = "Name,Klasse,Jahrgang"


def parse(text: str | bytes, existing=(), validate=validate_runner,
          highest: int = MAX_START_NUMBER, pool: NumberPool | None = None) -> list[dict]:
    """Parse a roster with validate_runner (or an app's validator, highest number and pool)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_roster(data, existing, validate, highest, pool)


def problems(text: str | bytes, existing=()) -> list[tuple[int, str]]:
    """Return the report of a rejected roster as (line, message) pairs."""
    with pytest.raises(RosterError) as caught:
        parse(text, existing)
    return [(p.line, p.message) for p in caught.value.problems]


def test_plain_utf8_file_numbers_runners_from_one():
    runners = parse(f"{HEADER}\nAnna Berg,5a,5\nBen Cruz,5b,5\n")
    assert runners == [
        {"start_number": 1, "name": "Anna Berg", "class": "5a", "grade": 5},
        {"start_number": 2, "name": "Ben Cruz", "class": "5b", "grade": 5},
    ]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_umlauts_read_right_in_every_encoding(encoding):
    data = f"{HEADER}\nJürgen Öztürk,7c,7\nZoë Weiß,7c,7\n".encode(encoding)
    names = [r["name"] for r in parse(data)]
    assert names == ["Jürgen Öztürk", "Zoë Weiß"]


def test_bom_does_not_spoil_the_first_column_name():
    runners = parse("\ufeffStartnummer;Name;Klasse;Jahrgang\r\n5;Anna;5a;5\r\n".encode("utf-8"))
    assert runners[0]["start_number"] == 5


def test_semicolon_file_from_german_excel_with_crlf():
    data = "Name;Klasse;Jahrgang\r\nMüller, Anna;5a;5\r\nÖzil;6b;6\r\n".encode("cp1252")
    runners = parse(data)
    assert [r["name"] for r in runners] == ["Müller, Anna", "Özil"]
    assert [r["class"] for r in runners] == ["5a", "6b"]


def test_header_is_case_insensitive_trimmed_and_in_any_order():
    runners = parse(" JAHRGANG , klasse ,Name , StartNummer\n5,5a,Anna,42\n")
    assert runners == [{"start_number": 42, "name": "Anna", "class": "5a", "grade": 5}]


def test_quoted_fields_and_blank_lines():
    runners = parse(f'{HEADER}\n"Berg, Anna",5a,5\n\n"Cruz ""Benny"" Ben",5a,5\n\n')
    assert [r["name"] for r in runners] == ["Berg, Anna", 'Cruz "Benny" Ben']


def test_missing_numbers_come_after_the_highest_in_database_and_file():
    existing = [(30, "Old One", "9a")]
    runners = parse("Name,Klasse,Jahrgang,Startnummer\nA,5a,5,\nB,5a,5,45\nC,5a,5,\nD,5a,5,12\n",
                    existing)
    assert [r["start_number"] for r in runners] == [46, 45, 47, 12]


def test_missing_numbers_come_after_the_database_when_the_file_has_none():
    runners = parse(f"{HEADER}\nA,5a,5\nB,5a,5\n", [(7, "X", "1a"), (3, "Y", "1a")])
    assert [r["start_number"] for r in runners] == [8, 9]


def too_few(needed: int, free: int) -> str:
    """Say how many rows need a number and how many the pool has free."""
    return f"{needed} need a number, {free} free"


def test_a_pool_numbers_rows_with_its_free_numbers_lowest_first():
    pool = NumberPool(9000, 9005, too_few)
    existing = [(9001, "In Block", "1a"), (12000, "Above", "1a")]
    runners = parse("Name,Klasse,Jahrgang,Startnummer\nA,5a,5,\nB,5a,5,9000\nC,5a,5,\n"
                    "D,5a,5,44\nE,5a,5,\n", existing, pool=pool)
    assert [r["start_number"] for r in runners] == [9002, 9000, 9003, 44, 9004]


def test_a_pool_with_too_few_free_numbers_refuses_the_file_at_the_first_row_left_out():
    pool = NumberPool(9000, 9002, too_few)
    text = "Name,Klasse,Jahrgang,Startnummer\nA,5a,5,\nB,5a,5,9001\nC,5a,5,\nD,5a,5,x\nE,5a,5,\n"
    with pytest.raises(RosterError) as caught:
        parse(text, pool=pool)
    assert [(p.line, p.message) for p in caught.value.problems] == [
        (5, "The start number 'x' is not valid: use digits only, e.g. 17."),
        (6, "3 need a number, 2 free")]


def test_startnummer_column_may_be_present_but_empty_everywhere():
    runners = parse("Name,Klasse,Jahrgang,Startnummer\nA,5a,5,\nB,5a,5, \n")
    assert [r["start_number"] for r in runners] == [1, 2]


@pytest.mark.parametrize("text, line, fragment", [
    ("", 1, "empty"),
    ("\n\n  \n", 1, "empty"),
    (f"{HEADER}\n", 1, "no runners"),
    ("Name,Klasse\nAnna,5a\n", 1, "missing Jahrgang"),
    ("Vorname,Klasse,Jahrgang\nAnna,5a,5\n", 1, "unknown column 'vorname'"),
    ("Name,Klasse,Jahrgang,Name\nA,5a,5,B\n", 1, "Name twice"),
    ("Anna,5a,5\nBen,5a,5\n", 1, "Wrong header"),
    (f"{HEADER}\nAnna,5a,5\nBen,5a\n", 3, "Expected 3 columns, found 2"),
    (f"{HEADER}\nAnna,5a,5,extra\n", 2, "Expected 3 columns, found 4"),
    (f"{HEADER}\nAnna,5a,5\n ,5a,5\n", 3, "name must be 1 to 100"),
    (f"{HEADER}\n{'x' * 101},5a,5\n", 2, "name must be 1 to 100"),
    (f"{HEADER}\nAnna,,5\n", 2, "class must be"),
    (f"{HEADER}\nAnna,5a,0\n", 2, "grade must be 1 to 13"),
    (f"{HEADER}\nAnna,5a,14\n", 2, "grade must be 1 to 13"),
    (f"{HEADER}\nAnna,5a,x\n", 2, "grade must be a whole number"),
    (f"{HEADER}\nAnna,5a,5.0\n", 2, "grade must be a whole number"),
    (f"{HEADER},Startnummer\nAnna,5a,5,zwölf\n", 2, "'zwölf' is not valid"),
    (f"{HEADER},Startnummer\nAnna,5a,5,-3\n", 2, "'-3' is not valid"),
    (f"{HEADER},Startnummer\nAnna,5a,5,1.5\n", 2, "'1.5' is not valid"),
    (f"{HEADER},Startnummer\nAnna,5a,5,١٢\n", 2, "is not valid"),
    (f"{HEADER},Startnummer\nAnna,5a,5,0\n", 2, "Start numbers run from 1 to 999999"),
    (f"{HEADER},Startnummer\nAnna,5a,5,1000000\n", 2, "Start numbers run from 1 to 999999"),
    (f"{HEADER},Startnummer\nAnna,5a,5,7\nBen,5a,5,8\nCleo,5b,5,7\n", 4,
     "Start number 7 is also on line 2"),
    (f"{HEADER},Startnummer\nAnna,5a,5,17\n", 2, "Start number 17 is already used"),
    (f"{HEADER}\nAnna Berg,5a,5\nanna  berg,5A,5\n", 3, "is also on line 2"),
    (f"{HEADER}\nCleo Dahl,6b,6\n", 2, "already on the roster with start number 17"),
    (f'{HEADER}\n"Anna\nBerg",5a,5\n', 2, "line breaks"),
])
def test_bad_rows_are_reported_with_their_line(text, line, fragment):
    report = problems(text, existing=[(17, "Cleo Dahl", "6b")])
    assert any(at == line and fragment in message for at, message in report), report


def test_every_bad_line_is_reported_not_only_the_first():
    text = (f"{HEADER},Startnummer\nGood One,5a,5,1\n,5a,5,2\nBad Grade,5a,99,3\n"
            "Good Two,5a,5,4\nBad Number,5a,5,x\nDouble,5a,5,4\n")
    report = problems(text)
    assert [line for line, _ in report] == [3, 4, 6, 7]


def test_a_line_with_a_bad_number_and_a_bad_grade_reports_both():
    report = problems(f"{HEADER},Startnummer\nAnna,5a,x,abc\n")
    assert [line for line, _ in report] == [2, 2]
    assert "'abc' is not valid" in report[0][1] and "grade" in report[1][1]


def test_line_numbers_count_physical_lines_of_quoted_multiline_fields_and_blanks():
    text = f'{HEADER}\n"Anna, the\nfirst",5a,5\n\nBen,5a,0\n'
    report = problems(text)
    assert report[-1][0] == 5 and "grade" in report[-1][1]


def test_too_many_rows_is_refused():
    rows = "".join(f"Kind {i},5a,5\n" for i in range(MAX_ROWS + 1))
    report = problems(f"{HEADER}\n{rows}")
    assert report[-1] == (MAX_ROWS + 2, f"Too many rows: at most {MAX_ROWS:,} runners per file.")


def test_exactly_the_row_limit_is_accepted():
    rows = "".join(f"Kind {i},5a,5\n" for i in range(MAX_ROWS))
    assert len(parse(f"{HEADER}\n{rows}")) == MAX_ROWS


@pytest.mark.parametrize("data, fragment", [
    (b"Name,Klasse,Jahrgang\nAnna\x81,5a,5\n", "neither UTF-8 nor Windows-1252"),
    (b"Name,Klasse,Jahrgang\n\x8fAnna,5a,5\n", "byte 0x8F"),
    ("Name,Klasse,Jahrgang\n".encode("utf-16"), "UTF-16"),
    (b"Name,Klasse,Jahrgang\nAn\x00na,5a,5\n", "NUL"),
])
def test_unreadable_bytes_are_refused_with_a_clear_message(data, fragment):
    report = problems(data)
    assert len(report) == 1 and fragment in report[0][1]


def test_undefined_cp1252_byte_reports_its_line():
    report = problems(b"Name,Klasse,Jahrgang\nAnna,5a,5\nZo\xeb,5a,5\nX\x81,5a,5\n")
    assert report[0][0] == 4


def test_decode_prefers_utf8_and_falls_back_to_cp1252():
    assert decode("Zoë".encode("utf-8")) == "Zoë"
    assert decode("\ufeffZoë".encode("utf-8")) == "Zoë"
    assert decode("Zoë €".encode("cp1252")) == "Zoë €"


def test_report_is_json_ready_and_printable():
    with pytest.raises(RosterError) as caught:
        parse(f"{HEADER}\nAnna,5a,0\n")
    error = caught.value
    assert error.status == 422 and error.code == "invalid_roster"
    assert error.extra["problems"] == [{"line": 2, "message": "The grade must be 1 to 13."}]
    assert format_report(error).splitlines()[1] == "line 2: The grade must be 1 to 13."


# ---- fuzzing: any bytes give every runner or a report, never a crash ------

import csv  # noqa: E402
import io  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lapsync.protocol import CONTROL_CHARS  # noqa: E402
from sync.blocks import free_gap_end, next_free_number  # noqa: E402
from sync.roster import unreserved_validator  # noqa: E402

TAKEN = [(17, "Cleo Dahl", "6b")]
_TRICKY = ["=SUM(A1:A9)", "+49 170", "-5", "@cmd", "=cmd|' /C calc'!A0", '"quoted"', "a,b",
           "a;b", "x\ny", "x\r\ny", "\t", " ", "", "5", "13", "14", "0", "007", "١٢", "Zoë",
           "Ærø", "€", "ß", "\u2028", "\ufeff", "'; DROP TABLE runner;--", "Anna Berg", "5a",
           "x" * 101, "17"]
SAFE = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäöüßÄÖÜé -'", min_size=1, max_size=20)
TRICKY = st.one_of(st.sampled_from(_TRICKY), st.text(max_size=12))
COLUMN = {"name": SAFE, "klasse": st.sampled_from(["5a", "6b", "Q1", " 7c "]),
          "jahrgang": st.sampled_from([str(g) for g in range(1, 14)]),
          "startnummer": st.sampled_from(["", "", "3", "12", "999999"])}
GOOD_HEADERS = st.sampled_from([["Name", "Klasse", "Jahrgang"], ["name", " KLASSE ", "jahrgang"],
                                ["Jahrgang", "Name", "Klasse", "Startnummer"]])
HEADERS = st.sampled_from([["Name", "Klasse", "Jahrgang"], ["name", " KLASSE ", "jahrgang"],
                           ["Jahrgang", "Name", "Klasse", "Startnummer"],
                           ["Name", "Klasse", "Jahrgang", "Startnummer"], ["Name", "Klasse"],
                           ["Name", "Klasse", "Jahrgang", "Name"], ["Vorname", "Klasse", "Jahrgang"]])


@st.composite
def roster_row(draw, header: list[str]) -> list[str]:
    """Draw one row: mostly good cells for its columns, now and then a tricky one or ragged."""
    row = [draw(st.one_of(COLUMN.get(name.strip().lower(), TRICKY), TRICKY)
                if draw(st.integers(0, 24)) == 0 else COLUMN.get(name.strip().lower(), TRICKY))
           for name in header]
    if draw(st.integers(0, 24)) == 0:
        row = row[:-1] if draw(st.booleans()) else row + [draw(TRICKY)]
    return row


@st.composite
def roster_files(draw) -> bytes:
    """Draw a roster-like file: header, rows with tricky cells, any delimiter and codec."""
    if draw(st.integers(0, 7)) == 0:
        return draw(st.binary(max_size=300))                       # any bytes at all
    header = draw(st.one_of(GOOD_HEADERS, GOOD_HEADERS, HEADERS))
    rows = [header] + draw(st.lists(roster_row(header), min_size=1, max_size=8))
    delimiter = draw(st.sampled_from([",", ";"]))
    if draw(st.booleans()):                                        # properly quoted
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))
                   ).writerows(rows)
        text = out.getvalue()
    else:                                                          # naive: quotes left broken
        text = "\n".join(delimiter.join(row) for row in rows) + draw(st.sampled_from(["", "\n"]))
    codec = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-8", "utf-16"]))
    data = text.encode(codec, errors="replace")
    if draw(st.integers(0, 9)) == 0:                               # a stray byte somewhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at:]
    return data


def check_roster(data: bytes, existing=TAKEN, validate=validate_runner,
                 highest: int = MAX_START_NUMBER,
                 pool: NumberPool | None = None) -> list[dict] | RosterError:
    """Parse data; assert the outcome is all runners, clean, or a report of real lines."""
    try:
        runners = parse(data, existing, validate, highest, pool)
    except RosterError as refused:
        lines = data.count(b"\n") + data.count(b"\r") + 2        # generous: any line break
        assert refused.problems and refused.status == 422
        assert all(1 <= p.line <= lines and p.message.strip() for p in refused.problems)
        assert [p.line for p in refused.problems] == sorted(p.line for p in refused.problems)
        assert format_report(refused).startswith(refused.message)
        return refused
    numbers = [r["start_number"] for r in runners]
    assert runners and len(set(numbers)) == len(numbers)
    assert not set(numbers) & {n for n, _name, _class in existing}
    for runner in runners:
        assert validate_runner(runner["start_number"], runner["name"], runner["class"],
                               runner["grade"]) == runner           # clean as stored
        assert not CONTROL_CHARS.search(runner["name"] + runner["class"])
    return runners


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=roster_files())
def test_any_file_imports_whole_and_clean_or_is_refused_with_a_line_report(data):
    check_roster(data)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(rows=st.lists(st.tuples(SAFE, st.sampled_from(["5a", "6b", "7c", "10d", "Q1"]),
                               st.integers(1, 13), st.booleans()), min_size=1, max_size=12),
       delimiter=st.sampled_from([",", ";"]), codec=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
       formula=st.sampled_from(["", "=", "+", "-", "@"]))
def test_a_clean_file_imports_exactly_its_rows_in_any_encoding(rows, delimiter, codec, formula):
    """Names as the office typed them, formula-like ones included (neutralised on export)."""
    rows = [(formula + name.strip() if name.strip() else "x", class_, grade, quoted)
            for name, class_, grade, quoted in rows]
    keys = [(" ".join(n.split()).casefold(), c.casefold()) for n, c, _g, _q in rows]
    if len(set(keys)) != len(keys):
        return  # doubles are a refusal, checked elsewhere
    lines = [delimiter.join(["Name", "Klasse", "Jahrgang"])]
    lines += [delimiter.join([f'"{n}"' if q else n, c, str(g)]) for n, c, g, q in rows]
    runners = check_roster(("\r\n".join(lines) + "\r\n").encode(codec), existing=[])
    assert [(r["name"], r["class"], r["grade"]) for r in runners] == \
        [(" ".join(n.split(" ")).strip(), c, g) for n, c, g, _q in rows]
    assert [r["start_number"] for r in runners] == list(range(1, len(rows) + 1))


def _post_roster(client, data: bytes, as_json: bool):
    """Upload data to a roster import view (the laptop's or central's) as a form or JSON client."""
    headers = {"Accept": "application/json", "X-CSRFToken": client.csrf} if as_json else {}
    form = {"file": (io.BytesIO(data), "klassen.csv")}
    if not as_json:
        form["csrf_token"] = client.csrf
    return client.post("/runners/import", data=form, content_type="multipart/form-data",
                       headers=headers)


def check_upload(client, data: bytes, as_json: bool, existing: list, state,
                 validate=validate_runner, highest: int = MAX_START_NUMBER,
                 pool: NumberPool | None = None) -> None:
    """Post data; the view must do exactly what parse_roster says: import all, or refuse all."""
    before = state()
    expected = check_roster(data, existing, validate, highest, pool)
    response = _post_roster(client, data, as_json)
    if isinstance(expected, RosterError):
        assert response.status_code == 422, response.get_data(as_text=True)[:500]
        assert state() == before                                    # nothing changed
        if as_json:
            assert response.get_json()["error"] == "invalid_roster"
            assert response.get_json()["problems"] == expected.extra["problems"]
        else:
            assert 'class="import-report"' in response.get_data(as_text=True)
        return
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert len(state()[0]) == len(before[0]) + len(expected)


_VIEWS = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@_VIEWS
@given(data=roster_files(), as_json=st.booleans())
def test_the_laptop_import_view_imports_all_or_nothing_whatever_the_file(admin, db, data, as_json):
    existing = db.execute("SELECT start_number, name, class FROM runner").fetchall()
    # The laptop numbers rows without a number from its block (here: the local range).
    check_upload(admin, data, as_json, existing, lambda: (
        db.execute("SELECT * FROM runner ORDER BY id").fetchall(),
        db.execute("SELECT count(*), max(seq) FROM change").fetchone()),
        pool=import_pool(db))


@_VIEWS
@given(data=roster_files(), as_json=st.booleans())
def test_the_central_import_view_imports_all_or_nothing_whatever_the_file(central_admin, central_db,
                                                                         data, as_json):
    existing = [(r["start_number"], r["name"], r["class"])
                for r in central_db.execute("SELECT start_number, name, class FROM runner")]
    # Central numbers rows without a number up to the next reserved block and refuses
    # numbers of a block: parse_roster with central's validator and highest number.
    highest = free_gap_end(central_db, next_free_number(central_db))
    check_upload(central_admin, data, as_json, existing, lambda: (
        central_db.execute("SELECT * FROM runner ORDER BY id").fetchall(),
        central_db.execute("SELECT last_value FROM change_id_seq").fetchone(),
        central_db.execute("SELECT count(*) FROM clash").fetchone()),
        unreserved_validator(central_db), highest)


def test_empty_columns_german_excel_leaves_after_the_header_are_no_columns():
    data = "Name;Klasse;Jahrgang;;\r\nMax Mustermann;8b;8;;\r\nLea Süß;8b;8\r\n".encode("cp1252")
    assert [r["name"] for r in parse(data)] == ["Max Mustermann", "Lea Süß"]
    assert problems("Name;Klasse;Jahrgang;;\nMax;8b;8;x;\n") == [(2, "Expected 3 columns, found 5.")]


@pytest.mark.parametrize("jahrgang, class_, grade", [
    ("", "9a", 9), ("2011", "9a", 9), ("1999", "10 b", 10), ("9.", "9a", 9), ("7", "9a", 7)])
def test_a_missing_grade_or_a_year_of_birth_takes_the_grade_from_the_class(jahrgang, class_, grade):
    assert parse(f"{HEADER}\nAnna Berg,{class_},{jahrgang}\n")[0]["grade"] == grade


def test_without_a_grade_in_the_class_a_missing_grade_is_still_reported():
    assert problems(f"{HEADER}\nAnna Berg,Q1,\nBen Cruz,5a,2011x\n") == [
        (2, "The Jahrgang is empty and the class 'Q1' does not begin with the grade: type the "
            "grade."), (3, "The grade must be a whole number.")]
