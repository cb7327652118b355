"""Long lists as query parameters: one text each, split by PostgreSQL (string_to_array).

psycopg dumps a list parameter one element at a time in Python (for binary %b arrays, a
struct.pack per element: ~20 ms of central's CPU for a push's 50,000 lap ids); a list of
ids or numbers joined into one text costs one C-level join here and one string_to_array
there (~2 ms). In SQL, a list is `string_to_array(%s, E'\\n')` (texts) or
`string_to_array(%s, ',')::bigint[]` (numbers).
"""
from __future__ import annotations

from collections.abc import Iterable


def lines(values: Iterable[str]) -> str:
    """Return values joined by newlines; each must be one non-empty line, as an id is."""
    values = list(values)
    text = "\n".join(values)
    if text.count("\n") != len(values) - 1 or (values and not all(values)):
        raise ValueError("a value to join is empty or holds a newline")
    return text


def numbers(values: Iterable[int]) -> str:
    """Return integers joined by commas."""
    return ",".join(map(str, values))
