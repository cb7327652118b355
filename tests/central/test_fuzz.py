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
from psycopg import sql

from lapsync.ids import new_id
from sync.devices import register_device
from tests.pg import CENTRAL_TABLES

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "sync" / "openapi.yaml"
# Schema-valid pushes may still break rules a schema cannot state (seqs contiguous,
# run columns of one length, change id = data id): those get 422. No 400 or 413.
CONFIG = {
    "seed": 20250627,
    # Tokens are ours (a fresh one per case); 401s are tested in test_sync_api.py.
    "generation": {"mode": "all", "deterministic": True, "with-security-parameters": False},
    "phases": {"stateful": {"enabled": False}},
    "checks": {
        "positive_data_acceptance": {"expected-statuses": [200, 401, 403, 409, 422]},
        "negative_data_rejection": {"expected-statuses": [400, 401, 403, 409, 413, 414, 415, 422]},
    },
}
schema = schemathesis.openapi.from_path(SPEC, config=schemathesis.Config.from_dict(CONFIG))
# Every row of every central table in one round trip (tests.pg.snapshot takes a dozen):
# a device's last contact and clock offset move on any authenticated request.
FINGERPRINT = sql.SQL("SELECT md5(string_agg(x, '|' ORDER BY x)) AS rows, "
                      "(SELECT last_value FROM change_id_seq) AS seq FROM ({}) AS t").format(
    sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {} || (to_jsonb(r) - 'last_contact' - 'clock_offset_ms')::text AS x "
                "FROM {} r").format(sql.Literal(table), sql.Identifier(table))
        for table in CENTRAL_TABLES))


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
