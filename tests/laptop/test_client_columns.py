"""The laptop sends columnar push bodies to a central that names the type in content_types,
JSON to any other, and JSON again (remembered) after a central refused a columnar body."""
from __future__ import annotations

import json

import pytest
from werkzeug.wrappers import Request

from lapsync.laptop.client.batch import ROWS_AT_ONCE, encode_batch, encode_columns
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop.db import device_id, get_meta, record_change, transaction
from lapsync.protocol import expand_changes, limits
from lapsync.protocol.columns import COLUMNS_TYPE, JSON_TYPE, MAGIC, validate_columns
from tests.core.test_protocol_columns import unchecked
from tests.laptop.fake_central import TOKEN, FakeCentral
from tests.laptop.test_client import backlog, changes, pending, user_id


class ColumnsCentral(FakeCentral):
    """A fake central that announces compact runs and the columnar body (or refuses it: 415)."""

    def __init__(self, refuse: bool = False):
        super().__init__()
        self.refuse, self.types = refuse, []

    def wsgi(self, environ, start_response):
        """Apply a push of either type (runs written out); answer with the types announced."""
        request = Request(environ)
        if not request.path.endswith("/push"):
            return super().wsgi(environ, start_response)
        self.types.append(request.mimetype)
        if self.refuse and request.mimetype == COLUMNS_TYPE:
            return self.json({"error": "unsupported_media_type", "message": "JSON only"},
                             415)(environ, start_response)
        raw = request.get_data()
        batch = validate_columns(raw) if request.mimetype == COLUMNS_TYPE else json.loads(raw)
        response = self.push({**batch, "changes": expand_changes(batch["changes"])})
        answer = json.loads(response.get_data())
        if response.status_code == 200:
            answer.update(encodings=["laps"], content_types=[JSON_TYPE, COLUMNS_TYPE])
        return self.json(answer, response.status_code)(environ, start_response)


def test_laps_go_columnar_once_central_names_the_type_and_arrive_once(db, runners):
    central = ColumnsCentral()
    try:
        backlog(db, 120)
        laptop = Central(central.url, TOKEN)
        assert sync_once(db, laptop).error is None and pending(db) == []
        assert central.types[0] == JSON_TYPE and COLUMNS_TYPE not in central.types[:1]
        assert [c["seq"] for c in central.received] == list(range(1, changes(db) + 1))
        backlog(db, 30)                                    # the next run (a new process) ...
        assert sync_once(db, Central(central.url, TOKEN)).error is None and pending(db) == []
        assert central.types[-1] == COLUMNS_TYPE           # ... remembers the type
        assert [c["seq"] for c in central.received] == list(range(1, changes(db) + 1))
    finally:
        central.close()


def test_after_a_415_to_a_columnar_body_the_laptop_sends_json_and_remembers(db, runners):
    central = ColumnsCentral(refuse=True)
    try:
        backlog(db, 20)
        assert sync_once(db, Central(central.url, TOKEN)).error is None   # JSON: none announced yet
        backlog(db, 20)
        failed = sync_once(db, Central(central.url, TOKEN))               # columnar: refused
        assert failed.error is not None and failed.error.status == 415
        assert central.types[-1] == COLUMNS_TYPE
        assert COLUMNS_TYPE not in (get_meta(db, "push_content_types") or "")
        assert sync_once(db, Central(central.url, TOKEN), force=True).error is None
        assert central.types[-1] == JSON_TYPE and pending(db) == []
        assert [c["seq"] for c in central.received] == list(range(1, changes(db) + 1))
    finally:
        central.close()



def encoded_from(db, encode, start: int) -> list[list[dict]]:
    """Encode the whole outbox from seq START with ENCODE; return each batch's changes as read."""
    batches = []
    while (batch := encode(db, start)).seqs:
        raw = batch.body(device_id(db), 1)
        body = unchecked(raw) if raw.startswith(MAGIC) else json.loads(raw)
        batches.append(expand_changes(body["changes"]))
        assert [c["seq"] for c in batches[-1]] == list(batch.seqs)
        start = batch.seqs[-1] + 1
    return batches


@pytest.mark.parametrize("max_changes, max_bytes", [(50_000, 16_000_000), (1_000, 16_000_000),
                                                   (50_000, 60_000)])
def test_an_outbox_of_laps_and_other_changes_goes_columnar_as_it_goes_as_json(
        db, runners, monkeypatch, max_changes, max_bytes):
    monkeypatch.setattr(limits, "MAX_BATCH_CHANGES", max_changes)
    monkeypatch.setattr(limits, "MAX_BATCH_BYTES", max_bytes)
    first = changes(db) + 1
    backlog(db, 3 * ROWS_AT_ONCE + 100)                  # chunks of laps alone, then part of one
    with transaction(db):
        record_change(db, "lap_void", "qvoid", {"lap_id": "qvoid", "voided": True})
    backlog(db, 500)
    with transaction(db):
        lap = {"runner_id": runners[1], "id": "qold", "created_by": user_id(db), "time": 5,
               "device_id": device_id(db)}                # another key order: sent verbatim
        record_change(db, "lap", "qold", lap)
        db.execute("DELETE FROM change WHERE seq = ?", [first + 3 * ROWS_AT_ONCE + 400])  # a gap
    backlog(db, 2 * ROWS_AT_ONCE)
    seqs = [row[0] for row in db.execute("SELECT seq FROM change WHERE seq >= ? ORDER BY seq", [first])]
    columnar = encoded_from(db, encode_columns, first)
    as_json = encoded_from(db, lambda db, s: encode_batch(db, s, compact=True), first)
    assert [c for batch in columnar for c in batch] == [c for batch in as_json for c in batch]
    assert [c["seq"] for batch in columnar for c in batch] == seqs
    assert {c["entity"] for batch in columnar for c in batch} == {"lap", "lap_void"}
    if max_bytes < 16_000_000:  # a JSON lap takes more bytes: its batches end sooner
        assert 1 < len(columnar) < len(as_json)
    else:
        assert len(columnar) == len(as_json) == -(-len(seqs) // max_changes)
