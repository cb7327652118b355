"""Valid protocol data the protocol tests start from (each test then breaks one thing)."""
from __future__ import annotations

DEVICE, LAP, RUNNER, USER = "d" * 24, "l" * 24, "r" * 24, "u" * 24
STAMP = "1700000000000.0000"
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
NOW = 1_700_000_000_000


def valid_data(entity: str) -> dict:
    """Return valid data of one pushed entity (a fresh dict)."""
    return {
        "lap": {"id": LAP, "runner_id": RUNNER, "created_by": USER, "time": NOW,
                "device_id": DEVICE},
        "lap_void": {"lap_id": LAP, "voided": True, "at": NOW, "by": USER, "reason": "typo",
                     "hlc": STAMP, "origin": DEVICE},
        "runner": {"id": RUNNER, "start_number": 17, "name": "Anna Berg", "class": "5a",
                   "grade": 5, "hlc": STAMP, "origin": DEVICE},
        "user": {"id": USER, "name": "tom", "password_hash": HASH, "role": "teacher",
                 "created_at": NOW, "hlc": STAMP, "origin": DEVICE},
    }[entity]
