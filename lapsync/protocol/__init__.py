"""The sync wire format both ends share: limits, validation, the push encoder, pull checks.

Specified in sync/openapi.yaml; the reasons behind the rules are in docs/PROTOCOL.md.
Limits are read from `limits` at call time (tests change them there).
"""
from __future__ import annotations

from . import limits
from .encode import Batch, BatchEncoder, push_head
from .jumps import CLOCK_JUMP_FIELDS, MAX_CLOCK_JUMPS
from .limits import (API_PREFIX, CHANGE_FIELDS, CLOCK_JUMPS, CONTROL_CHARS, DATA_FIELDS,
                     DATABASE_FIELD, DECISION_ACTIONS,
                     GRADES, GZIP, HLC_PATTERN, ID_FIELD, LAP_RUN, LAP_RUN_FIELDS,
                     LOCAL_NUMBERS, MAX_BATCH_BYTES, MAX_BATCH_CHANGES, MAX_CLASS,
                     MAX_ID_LENGTH, MAX_PASSWORD_HASH, MAX_PULL_LIMIT, MAX_REASON,
                     MAX_RUNNER_NAME, MAX_START_NUMBER, MAX_TIME, MAX_USER_NAME, MIN_ID_LENGTH,
                     PROTOCOL_VERSION, PULL_ENTITIES, PUSH_CONTENT_ENCODINGS, PUSH_ENCODINGS,
                     PUSH_ENTITIES, PUSH_FIELDS, ROLES, SETTINGS)
from .pull import (answer_database, answer_seq, check_pull_page, pulled_decision, pulled_hlc, pulled_id,
                   pulled_integer, pulled_number_block, pulled_optional_text, pulled_text)
from .validate import (ProtocolError, change_count, compact_changes, decode_body,
                       expand_changes, is_id, last_seq, too_large_body, validate_change,
                       validate_push, validate_setting)

__all__ = [
    "limits", "Batch", "BatchEncoder", "push_head", "API_PREFIX", "CHANGE_FIELDS",
    "CLOCK_JUMP_FIELDS", "CLOCK_JUMPS", "MAX_CLOCK_JUMPS",
    "CONTROL_CHARS", "DATA_FIELDS", "DATABASE_FIELD", "DECISION_ACTIONS", "GRADES", "GZIP", "HLC_PATTERN",
    "ID_FIELD", "LAP_RUN", "LAP_RUN_FIELDS", "LOCAL_NUMBERS", "MAX_BATCH_BYTES",
    "MAX_BATCH_CHANGES", "MAX_CLASS", "MAX_ID_LENGTH", "MAX_PASSWORD_HASH", "MAX_PULL_LIMIT",
    "MAX_REASON", "MAX_RUNNER_NAME", "MAX_START_NUMBER", "MAX_TIME", "MAX_USER_NAME",
    "MIN_ID_LENGTH", "PROTOCOL_VERSION", "PULL_ENTITIES", "PUSH_CONTENT_ENCODINGS",
    "PUSH_ENCODINGS", "PUSH_ENTITIES", "PUSH_FIELDS", "ROLES", "SETTINGS", "answer_database", "answer_seq",
    "check_pull_page", "pulled_decision", "pulled_hlc", "pulled_id", "pulled_integer",
    "pulled_number_block", "pulled_optional_text", "pulled_text", "ProtocolError",
    "change_count", "compact_changes", "decode_body", "expand_changes", "is_id", "last_seq",
    "too_large_body", "validate_change", "validate_push", "validate_setting",
]
