"""The sync wire format that laptop (client.py) and central (sync/api.py) share.

Protocol version 1, JSON over HTTP, `Authorization: Bearer <device token>`.

PUSH  POST /api/v1/push   Content-Type: application/json
  request  {"protocol": 1, "device_id": "<laptop cuid>", "device_time": <laptop epoch ms>,
            "changes": [{"seq": 12, "entity": "lap", "id": "<cuid>", "data": {...}}, ...]}
           changes are this laptop's outbox rows in ascending, contiguous seq order.
  entity / data:
    lap       {"id", "runner_id", "created_by", "time", "device_id"}
    lap_void  {"lap_id", "voided": bool, "at", "by", "reason", "hlc", "origin"}
    runner    {"id", "start_number", "name", "class", "grade", "hlc", "origin"}
    user      {"id", "name", "password_hash", "role", "created_at", "hlc", "origin"}
  200      {"acked_seq": N, "server_time": ms, "rejected": [{"seq", "error", "message"}]}
           acked_seq is the device's last applied seq after this batch; seqs at or below
           it are already applied and are skipped when sent again (replay is a no-op).
           "rejected" lists items refused for good (kept at central for the admin);
           they are acknowledged too so that they never wedge the queue.
  409      {"error": "seq_gap", "message", "acked_seq": N, "resume_from": N + 1}
  4xx      {"error": "<code>", "message": "..."}: 400 malformed, 401 token, 413 too big,
           415 content type, 422 invalid item (nothing of the batch applied).

PULL  GET /api/v1/pull?cursor=N&limit=M
  200      {"protocol": 1, "server_time": ms, "next_cursor": N, "more": bool,
            "changes": [{"cursor": N, "entity": E, "id": "...", "data": {...}}, ...]}
  entity / data (a laptop is not sent back changes it made itself):
    runner    as in push
    user      as in push (password hashes go only to authenticated devices)
    lap_void  as in push: voids and restores decided elsewhere (central, other laptops)
    setting   {"key": "min_lap_seconds" | "metres_per_lap" | "event_name" | "event_date",
               "value": ...}
    total     {"runner_id", "other_laps"}: laps of this runner that count, recorded on
              other devices; the laptop shows its own laps + other_laps.
  The cursor is a server-assigned change id given out in commit order, never a
  device clock: a row committed late never hides below a cursor already served.
"""
from __future__ import annotations

PROTOCOL_VERSION = 1
API_PREFIX = "/api/v1"
MAX_BATCH_CHANGES = 1000          # changes per push
MAX_BATCH_BYTES = 1_000_000       # request body bytes per push
MAX_PULL_LIMIT = 1000             # changes per pull page
PUSH_ENTITIES = ("lap", "lap_void", "runner", "user")
PULL_ENTITIES = ("runner", "user", "lap_void", "setting", "total")
