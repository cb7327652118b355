"""The wire format's version, entities, fields and limits, shared by both ends."""
from __future__ import annotations

import re

PROTOCOL_VERSION = 1
API_PREFIX = "/api/v1"
# Large batches: central's cost grows with the runners a batch touches (docs/PROTOCOL.md).
MAX_BATCH_CHANGES = 50_000        # changes per push (a compact lap run counts its laps)
MAX_BATCH_BYTES = 16_000_000      # request body bytes per push (decompressed, with gzip)
MAX_PULL_LIMIT = 1000             # changes per pull page
PUSH_ENTITIES = ("lap", "lap_void", "runner", "user")
LAP_RUN = "laps"                   # the entity of a compact lap run
CLOCK_JUMPS = "clock_jumps"        # the optional list of clock jumps in a push body (jumps.py)
# Optional push encodings central accepts (push answer): compact lap runs, clock jump reports.
PUSH_ENCODINGS = (LAP_RUN, CLOCK_JUMPS)
# A push request's header naming the first seq of the batch the laptop sent just before it
# and has no answer to yet: central then waits for that batch instead of refusing a gap.
FOLLOWS_HEADER = "Lapsync-Follows"
# The event a pushing laptop counts for, as its last pull named it (sync/events.py).
EVENT_HEADER = "Lapsync-Event"
# The identity of central's database, in every pull and push answer (sync/identity.py): init-db
# makes it and every restore renews it, so a laptop that finds another one knows that central
# may lack what it acknowledged and hold changes below its pull cursor that it never sent.
DATABASE_FIELD = "database_id"
MAX_DATABASE_ID = 64
GZIP = "gzip"                      # a push body's Content-Encoding, if any
PUSH_CONTENT_ENCODINGS = (GZIP,)   # Content-Encodings central accepts (push answer)
PULL_ENTITIES = ("runner", "user", "lap_void", "setting", "total")

MIN_ID_LENGTH, MAX_ID_LENGTH = 20, 32
MAX_TIME = 10 ** 14                # epoch ms, year 5138: rules out seconds*1000 typos
MAX_START_NUMBER = 999_999
MAX_RUNNER_NAME, MAX_CLASS, MAX_USER_NAME, MAX_REASON = 100, 20, 50, 200
MAX_PASSWORD_HASH = 500
# What a device not trusted to manage users pulls instead of an admin's password hash: no
# hash at all (no password matches it), so central's admins cannot log in on that laptop.
WITHHELD_HASH = "!withheld"
GRADES = range(1, 14)
ROLES = ("admin", "teacher", "viewer")
HLC_PATTERN = re.compile(r"[0-9]{13}\.[0-9]{4}")  # not \d: that takes any Unicode digit
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
PUSH_FIELDS = ("protocol", "device_id", "device_time", "changes")  # and CLOCK_JUMPS, optional
CHANGE_FIELDS = ("seq", "entity", "id", "data")
DATA_FIELDS = {
    "lap": ("id", "runner_id", "created_by", "time", "device_id"),
    "lap_void": ("lap_id", "voided", "at", "by", "reason", "hlc", "origin"),
    "runner": ("id", "start_number", "name", "class", "grade", "hlc", "origin"),
    "user": ("id", "name", "password_hash", "role", "created_at", "hlc", "origin"),
}
ID_FIELD = {"lap": "id", "lap_void": "lap_id", "runner": "id", "user": "id"}
LAP_RUN_FIELDS = ("seq", "entity", "data")
SETTINGS = ("min_lap_seconds", "metres_per_lap", "event_name", "event_date")
# Decisions of central's admin a pulled lap_void or runner may carry (who, why, when).
DECISION_ACTIONS = {"lap_void": ("void_lap", "restore_lap"), "runner": ("renumber", "merge")}
# Start numbers a laptop gives late runners while it has no block from central (it never
# pulled): the same for every such laptop, so central reserves no block in it and its own
# next free number skips it (docs/PROTOCOL.md, "Start-number blocks").
LOCAL_NUMBERS = range(90_000, 91_000)
