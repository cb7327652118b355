"""Answers of a check that depends on its key alone, kept for the next time the key comes."""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator


class KeptAnswers:
    """At most LIMIT answers by key (all dropped when full); safe to share between threads.

    A helper's browser sends the same signed cookie and CSRF token with every lap:
    checking a signature again each time was a tenth of a lap's time on the server.
    """

    def __init__(self, limit: int) -> None:
        """Start with no answer kept."""
        self.limit = limit
        self.answers: dict[Hashable, object] = {}
        self.lock = threading.Lock()

    def get(self, key: Hashable, check: Callable[[], object]) -> object:
        """Return the answer kept for KEY, or run check() once and keep what it answers."""
        with self.lock:
            if key in self.answers:
                return self.answers[key]
        answer = check()
        with self.lock:
            if len(self.answers) >= self.limit:
                self.answers.clear()
            self.answers[key] = answer
        return answer

    def __iter__(self) -> Iterator[Hashable]:
        """Iterate over the keys kept."""
        with self.lock:
            return iter(list(self.answers))
