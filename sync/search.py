"""Search and class order in PostgreSQL by the core's rules (lapsync/text.py).

init-db creates three immutable SQL functions, built from the Python functions themselves
so that both apps find and sort alike: lapsync_plain(text) = text.plain (case folded,
accents off, ß as ss), lapsync_fold(text) = text.fold (ae, oe, ue also as a, o, u) and
lapsync_class_key(text) = text.class_key (numbers by value: 5a < 5b < 10a). They agree
with Python for every letter of the Latin, Greek and Cyrillic blocks listed below; other
scripts are lower-cased by the server's locale.

The runner table keeps their results as stored generated columns (name_folded,
name_plain, class_key), written with the row by every writer: a search reads 5,000 short
strings instead of folding 5,000 names, and lists sort by a column. When the rules change
(a new release), init-db rewrites the functions and recomputes the columns.
"""
from __future__ import annotations

import functools
import hashlib
import unicodedata

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from lapsync.text import CLASS_NUMBER_WIDTH, fold, plain

# The blocks whose letters the SQL functions map exactly as Python does: Latin-1 and the
# Latin extensions, combining accents, Greek, Cyrillic, Latin ligatures, full-width Latin.
BLOCKS = ((0x00A0, 0x024F), (0x0300, 0x036F), (0x0370, 0x03FF), (0x0400, 0x04FF),
          (0x1E00, 0x1EFF), (0xFB00, 0xFB06), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A))

# ASCII, most names, takes the short way, as text.plain does; other names are decomposed
# (NFKD) and their accents dropped by the server, and the letters it would get wrong are
# mapped before (several letters: ß -> ss) or after (one letter: Ø -> o).
FUNCTIONS = """
CREATE OR REPLACE FUNCTION lapsync_plain(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN $1 ~ '^[\\x01-\\x7f]*$' THEN lower($1) ELSE lower(translate(
          regexp_replace(normalize({replaced}, NFKD), {marks}, '', 'g'), {source}, {target})) END $$;

CREATE OR REPLACE FUNCTION lapsync_fold(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT regexp_replace(lapsync_plain($1), '([aou])e', '\\1', 'g') $$;

CREATE OR REPLACE FUNCTION lapsync_class_key(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT coalesce(string_agg(coalesce(lpad(part[1], {width}, '0'), part[2]), '' ORDER BY n), '')
      FROM regexp_matches(lapsync_plain($1), '([0-9]+)|([^0-9]+)', 'g') WITH ORDINALITY AS t(part, n) $$;
"""
# One child typed twice: names alike as a person reads them (case, accents, ß as ss, ae as
# ä, spacing aside) in the same class (case and spaces aside): "Lena Fuß" and "Lena  Fuss"
# in 7a, "8B" and "8 b". The review's name clashes compare it (sync/ledger.py).
SAME_CHILD = ("btrim(regexp_replace(lapsync_fold({name}), '\\s+', ' ', 'g')) || ' / ' || "
              "replace(lapsync_plain({class_}), ' ', '')")
COLUMNS = f"""
ALTER TABLE runner ADD COLUMN IF NOT EXISTS name_folded text
    GENERATED ALWAYS AS (lapsync_fold(name)) STORED;
ALTER TABLE runner ADD COLUMN IF NOT EXISTS same_child text
    GENERATED ALWAYS AS ({SAME_CHILD.format(name="name", class_="class")}) STORED;
CREATE INDEX IF NOT EXISTS runner_same_child ON runner (same_child);
ALTER TABLE runner ADD COLUMN IF NOT EXISTS name_plain text
    GENERATED ALWAYS AS (lapsync_plain(name)) STORED;
ALTER TABLE runner ADD COLUMN IF NOT EXISTS class_key text COLLATE "C"
    GENERATED ALWAYS AS (lapsync_class_key(class)) STORED;
"""
# A runner's name as a search finds it (folded, or plain so that 'el' finds 'Joel').
NAME_MATCHES = ("(strpos({table}name_folded, %(folded)s) > 0 "
                "OR strpos({table}name_plain, %(plain)s) > 0)")
# Stored generated columns are computed again on every update of their row.
RECOMPUTE = "UPDATE runner SET name = name"


def bare(text: str) -> str:
    """Return text decomposed (NFKD) without its accents, as the server makes it."""
    return "".join(char for char in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(char))


def letter_maps() -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Return the maps that make the server's plain() Python's for every letter of BLOCKS.

    (after: a letter of a bare text -> its plain letter or none; before: a letter -> its
    several plain letters, replaced before NFKD; the accents NFKD gives for BLOCKS).
    """
    letters = [chr(code) for first, last in BLOCKS for code in range(first, last + 1)]
    after = {}
    for char in sorted({char for letter in letters for char in bare(letter)}):
        if not char.isascii() and len(plain(char)) <= 1 and plain(char) != char:
            after[char] = plain(char)
    before = {}
    for letter in letters:
        mapped = "".join(after.get(char, char) for char in bare(letter))
        if "".join(c.lower() if c.isascii() else c for c in mapped) != plain(letter):
            before[letter] = plain(letter)
    marks = sorted({char for letter in letters for char in unicodedata.normalize("NFKD", letter)
                    if unicodedata.combining(char)})
    return after, before, marks


def char_class(chars: list[str]) -> str:
    """Return a regular expression bracket matching chars (sorted), as ranges."""
    ranges, start = [], 0
    for i in range(1, len(chars) + 1):
        if i == len(chars) or ord(chars[i]) != ord(chars[i - 1]) + 1:
            ranges.append(chars[start] + (f"-{chars[i - 1]}" if i - 1 > start else ""))
            start = i
    return "[" + "".join(ranges) + "]"


@functools.cache
def functions_sql() -> sql.Composed:
    """Return the CREATE FUNCTION statements, their letter maps made from lapsync.text."""
    after, before, marks = letter_maps()
    replaced: sql.Composable = sql.SQL("$1")
    for char, out in before.items():
        replaced = sql.SQL("replace({}, {}, {})").format(replaced, sql.Literal(char),
                                                         sql.Literal(out))
    # translate() drops the letters of source beyond target's length: those go last.
    order = sorted(after, key=lambda char: after[char] == "")
    return sql.SQL(FUNCTIONS).format(
        replaced=replaced, marks=sql.Literal(char_class(marks)),
        source=sql.Literal("".join(order)),
        target=sql.Literal("".join(after[char] for char in order)),
        width=sql.Literal(CLASS_NUMBER_WIDTH))


def install(conn: psycopg.Connection) -> None:
    """Create or replace the functions and columns; recompute the columns if the rules changed."""
    statements = functions_sql().as_string(conn)
    digest = hashlib.sha256(statements.encode()).hexdigest()
    before = conn.cursor(row_factory=tuple_row).execute(
        "SELECT value FROM meta WHERE key = 'search_rules'").fetchone()
    conn.execute(statements)
    conn.execute(COLUMNS)
    if before is not None and before[0] != digest:
        conn.execute(RECOMPUTE)
    conn.execute("INSERT INTO meta (key, value) VALUES ('search_rules', %s) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [digest])


def name_matches(table: str = "") -> str:
    """Return the SQL condition 'the runner is found by the search' (params: search_params)."""
    return NAME_MATCHES.format(table=f"{table}." if table else "")


def class_order(table: str = "") -> str:
    """Return the SQL ORDER BY terms that sort runners' classes naturally."""
    prefix = f"{table}." if table else ""
    return f"{prefix}class_key, {prefix}class"


def search_params(query: str) -> dict[str, str]:
    """Return the folded and plain query that name_matches() compares."""
    return {"folded": fold(query), "plain": plain(query)}
