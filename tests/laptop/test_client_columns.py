"""The laptop sends columnar push bodies to a central that names the type in content_types,
JSON to any other, and JSON again (remembered) after a central refused a columnar body."""
from __future__ import annotations

import json

from werkzeug.wrappers import Request

from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop.db import get_meta
from lapsync.protocol import expand_changes
from lapsync.protocol.columns import COLUMNS_TYPE, JSON_TYPE, validate_columns
from tests.laptop.fake_central import TOKEN, FakeCentral
from tests.laptop.test_client import backlog, changes, pending


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
