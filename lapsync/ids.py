"""Ids born where the data is born: cuid2, so that no two nodes ever make the same one."""
from __future__ import annotations

import os
import random

from cuid2 import Cuid

# cuid2's entropy from a Mersenne Twister seeded from os.urandom, not a system call per
# character (SystemRandom): an id costs less than half. The ids are not secrets (session
# ids and tokens come from `secrets`); each id still hashes time, counter, host
# fingerprint and 24 random characters with SHA3. A forked child draws a fresh seed
# (Windows has no fork).
_random = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random.seed)
_cuid = Cuid(length=24, random_generator=lambda: _random)


def new_id() -> str:
    """Return a new cuid2 id."""
    return _cuid.generate()
