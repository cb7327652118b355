"""Ids born where the data is born: cuid2, so that no two nodes ever make the same one."""
from __future__ import annotations

import os
import random
import time
from bisect import bisect_right
from hashlib import sha3_512
from math import floor

from cuid2.utils import (BASE36_ALPHABET, INITIAL_COUNT_MAX, create_counter, create_entropy,
                         create_fingerprint, create_letter)

LENGTH = 24
# Powers of 36 past 2**512: how many base-36 digits a SHA3-512 value has, by bisection.
POWERS = [36 ** k for k in range(101)]

# cuid2's entropy from a Mersenne Twister seeded from os.urandom, not a system call per
# character (SystemRandom): an id costs less than half. The ids are not secrets (session
# ids and tokens come from `secrets`); each id still hashes time, counter, host
# fingerprint and 24 random characters with SHA3. A forked child draws a fresh seed
# (Windows has no fork).
_random = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random.seed)
_count = create_counter(floor(_random.random() * INITIAL_COUNT_MAX))
_fingerprint = create_fingerprint(random_generator=_random)


def new_id() -> str:
    """Return a new cuid2 id (what cuid2's Cuid(length=24).generate() returns)."""
    data = (base36(time.time_ns()) + create_entropy(_random, LENGTH) + base36(_count())
            + _fingerprint)
    return create_letter(_random) + hash_digits(int.from_bytes(sha3_512(data.encode()).digest(), "big"))


def hash_digits(number: int) -> str:
    """Return base36(number)[2:LENGTH + 1], the part of the hash a cuid2 keeps.

    cuid2 writes out all ~99 digits of the 512-bit hash one divmod at a time and keeps
    23 of them: dividing by a power of 36 first leaves only the digits kept.
    """
    digits = bisect_right(POWERS, number)
    if digits <= LENGTH:  # a hash this small: one in 36**75
        return base36(number)[2:LENGTH + 1]
    return base36(number // POWERS[digits - LENGTH - 1])[2:]


def base36(number: int) -> str:
    """Return a non-negative integer in base 36 (cuid2's alphabet: digits, then a-z)."""
    out = []
    while True:
        number, digit = divmod(number, 36)
        out.append(BASE36_ALPHABET[digit])
        if not number:
            return "".join(reversed(out))
