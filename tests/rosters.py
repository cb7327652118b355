"""A big school's roster for both apps' search tests: names with umlauts, ß and other scripts."""
from __future__ import annotations

import random

FIRST = ["Anna", "Ömer", "Jürgen", "Zoë", "Lea", "Ben", "Cem", "Mia", "Noah", "Élodie"]
LAST = ["Müller", "Schmidt", "Groß", "Weiß", "Öztürk", "Yılmaz", "Berg", "Kaya", "Fischer"]


def big_roster(count: int = 5000, seed: int = 5) -> list[tuple[str, str]]:
    """Return COUNT (name, class) pairs, the same ones for the same seed."""
    rng = random.Random(seed)
    return [(f"{rng.choice(FIRST)} {rng.choice(LAST)} {i}", f"{rng.randint(5, 13)}{rng.choice('abcd')}")
            for i in range(count)]
