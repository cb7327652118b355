"""Schemathesis against sync/openapi.yaml on a running central, with device tokens.

Every operation of the spec, every response checked: no 5xx, a documented status,
the documented body schema (errors are {"error", "message"}) and content type;
schema-violating requests are refused with a 4xx, schema-valid ones get no 400.
A refused request changes nothing at central. Reproducible: a fixed seed and
derandomized Hypothesis. The long run is bench/fuzz_api.py.
"""
from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from lapsync.devkit.fuzz import CONFIG, FINGERPRINT
from lapsync.ids import new_id
from sync.devices import register_device

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "sync" / "openapi.yaml"
schema = schemathesis.openapi.from_path(SPEC, config=schemathesis.Config.from_dict(CONFIG))


def prepare(case, conn) -> dict:
    """Give the case a fresh device token; a valid push comes from that token's own laptop."""
    if case.operation.method.upper() == "POST" and case.meta.generation.mode.is_positive \
            and isinstance(case.body, dict):
        case.body["device_id"] = new_id()  # generated ids repeat: 403 laptop_registered
    return {"Authorization": f"Bearer {register_device(conn, new_id()[:20])}"}


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_and_a_refusal_changes_nothing(
        case, live_central, central_db):
    headers = prepare(case, central_db)
    before = central_db.execute(FINGERPRINT).fetchone()
    response = case.call_and_validate(base_url=f"{live_central}/api/v1", headers=headers)
    if response.status_code >= 400:
        assert central_db.execute(FINGERPRINT).fetchone() == before
