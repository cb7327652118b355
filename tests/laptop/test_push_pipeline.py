"""The push with two batches in flight against a real central: applied one at a time, in
seq order, each change once; a batch is marked only after its own answer."""
from __future__ import annotations

import threading
import time

from lapsync import protocol
from lapsync.laptop.client import push as client_push
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import TRANSIENT, Central, SyncError
from tests.laptop.test_client import backlog, changes, pending


class SlowAnswers(Central):
    """A client that keeps the first push's answer a while (as a slow link would) and notes
    how many pushes were on their way at once and which seqs were pending meanwhile."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock, self.open, self.most, self.calls = threading.Lock(), 0, 0, 0

    def push(self, body: bytes, follows: int | None = None) -> tuple[int, dict]:
        """POST the body; hold the first answer for 0.3 s."""
        with self.lock:
            self.open += 1
            self.calls += 1
            first, self.most = self.calls == 1, max(self.most, self.open)
        try:
            answer = super().push(body, follows)
            if first:
                time.sleep(0.3)  # the second batch goes out meanwhile
            return answer
        finally:
            with self.lock:
                self.open -= 1


def test_two_batches_in_flight_are_applied_once_in_seq_order(db, live_central, central_db,
                                                            device_token, monkeypatch):
    monkeypatch.setattr(protocol.limits, "MAX_BATCH_CHANGES", 40)
    monkeypatch.setattr(client_push, "PIPELINE_FROM", 40)
    backlog(db, 400)
    central = SlowAnswers(live_central, device_token)
    result = sync_once(db, central)
    assert result.error is None and pending(db) == [] and result.pushed == changes(db)
    assert central.most == 2                      # the second batch left before the first's answer
    stored = central_db.execute("SELECT count(*) AS n, count(DISTINCT id) AS d FROM lap").fetchone()
    assert stored == {"n": 400, "d": 400}
    assert central_db.execute("SELECT last_seq FROM device").fetchone()["last_seq"] == changes(db)
    assert central_db.execute("SELECT count(*) AS n FROM sync_failure").fetchone()["n"] == 0


def test_small_batches_wait_for_the_answer_before_them(db, live_central, central_db, device_token,
                                                       monkeypatch):
    monkeypatch.setattr(protocol.limits, "MAX_BATCH_CHANGES", 40)  # below PIPELINE_FROM
    backlog(db, 200)
    central = SlowAnswers(live_central, device_token)
    assert sync_once(db, central).error is None and pending(db) == []
    assert central.most == 1
    assert central_db.execute("SELECT count(*) AS n FROM lap").fetchone()["n"] == 200


def test_a_lost_answer_with_a_batch_behind_it_marks_neither_and_the_next_run_ends_it(
        db, live_central, central_db, device_token, monkeypatch):
    monkeypatch.setattr(protocol.limits, "MAX_BATCH_CHANGES", 40)
    monkeypatch.setattr(client_push, "PIPELINE_FROM", 40)
    backlog(db, 200)
    first_seq = pending(db)[0]
    lost, bodies = SlowAnswers(live_central, device_token), []
    original = lost.push

    def push(body: bytes, follows: int | None = None) -> tuple[int, dict]:
        """Lose the answer to the run's first batch (central applied it)."""
        bodies.append(body)
        first = len(bodies) == 1
        answer = original(body, follows)
        if first:
            raise SyncError(TRANSIENT, "connection reset")
        return answer
    lost.push = push
    failed = sync_once(db, lost)
    assert failed.error is not None and failed.error.kind == TRANSIENT
    assert lost.most == 2 and pending(db)[0] == first_seq    # nothing marked without its answer
    assert sync_once(db, Central(live_central, device_token), force=True).error is None
    assert pending(db) == []
    stored = central_db.execute("SELECT count(*) AS n, count(DISTINCT id) AS d FROM lap").fetchone()
    assert stored == {"n": 200, "d": 200}
