"""Schemathesis settings of tests/central/test_fuzz.py and its long run, bench/fuzz_api.py."""
from __future__ import annotations

from psycopg import sql

from lapsync.devkit.postgres import CENTRAL_TABLES

# Schema-valid pushes may still break rules a schema cannot state (seqs contiguous,
# run columns of one length, change id = data id): those get 422. No 400 or 413.
CONFIG = {
    "seed": 20250627,
    # Tokens are ours (a fresh one per case); 401s are tested in tests/central/test_api.py.
    "generation": {"mode": "all", "deterministic": True, "with-security-parameters": False},
    "phases": {"stateful": {"enabled": False}},
    "checks": {
        "positive_data_acceptance": {"expected-statuses": [200, 401, 403, 409, 422]},
        "negative_data_rejection": {"expected-statuses": [400, 401, 403, 409, 413, 414, 415, 422]},
    },
}
# Every row of every central table in one round trip (postgres.snapshot takes a dozen):
# a device's last contact and clock offset move on any authenticated request.
FINGERPRINT = sql.SQL("SELECT md5(string_agg(x, '|' ORDER BY x)) AS rows, "
                      "(SELECT last_value FROM change_id_seq) AS seq FROM ({}) AS t").format(
    sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {} || (to_jsonb(r) - 'last_contact' - 'clock_offset_ms')::text AS x "
                "FROM {} r").format(sql.Literal(table), sql.Identifier(table))
        for table in CENTRAL_TABLES))
