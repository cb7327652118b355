"""Ids born where the data is born: cuid2, so that no two nodes ever make the same one."""
from __future__ import annotations

from cuid2 import Cuid

_cuid = Cuid(length=24)


def new_id() -> str:
    """Return a new cuid2 id."""
    return _cuid.generate()
