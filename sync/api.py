"""The sync API for laptops: POST /api/v1/push, GET /api/v1/pull (Bearer device tokens)."""
from __future__ import annotations

import time
from pathlib import Path

from flask import Blueprint, Flask, Response, g, jsonify, request, send_file
from werkzeug.exceptions import RequestEntityTooLarge

from lapsync.errors import InputError
from lapsync.protocol import (
    API_PREFIX,
    MAX_BATCH_BYTES,
    PUSH_CONTENT_ENCODINGS,
    PUSH_ENCODINGS,
    ProtocolError,
    decode_body,
    validate_push,
)
from lapsync.protocol.columns import (COLUMNS_TYPE, JSON_TYPE, PUSH_CONTENT_TYPES, strict_json,
                                      validate_columns)
from lapsync.protocol.limits import EVENT_HEADER, FOLLOWS_HEADER

from . import clock, sync_log
from .blocks import block_settings, ensure_block
from .db import connection
from .devices import authenticate, find_device
from .pull import parse_paging, pull
from .push import push

bp = Blueprint("api", __name__, url_prefix=API_PREFIX)
OPENAPI = Path(__file__).resolve().with_name("openapi.yaml")


def read_body() -> bytes:
    """Return the request's push body without its Content-Encoding, or raise 413 or 400."""
    too_large = ProtocolError("batch_too_large", f"A push body may have at most "
                              f"{MAX_BATCH_BYTES} bytes.", 413, max_bytes=MAX_BATCH_BYTES)
    if (request.content_length or 0) > MAX_BATCH_BYTES:
        raise too_large
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise too_large from None
    g.body_received = time.perf_counter()  # central's own time starts now (apply_ms)
    return decode_body(raw, request.headers.get("Content-Encoding"))  # gzip, if sent so


def read_push() -> dict:
    """Return the request's push batch checked: a JSON or a columnar body, else a 415."""
    if request.mimetype == JSON_TYPE:
        return validate_push(strict_json(read_body()))
    if request.mimetype == COLUMNS_TYPE:
        return validate_columns(read_body())
    raise ProtocolError("unsupported_media_type", f"Send the batch as {JSON_TYPE} (or as "
                        f"{COLUMNS_TYPE}, which this central lists in content_types).", 415)


def follows() -> int | None:
    """Return the seq of the Lapsync-Follows header (the batch sent before this one), if sent."""
    value = request.headers.get(FOLLOWS_HEADER)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise ProtocolError("malformed_follows", f"The {FOLLOWS_HEADER} header must be a "
                            "seq: digits only.", 400)
    return int(value)


def current_device(path: str) -> dict:
    """Return the live device of the request's Bearer token or raise a 401 (a revoked one logged)."""
    header = request.headers.get("Authorization")
    with connection() as conn:
        try:
            return authenticate(conn, header)
        except ProtocolError as exc:
            device = find_device(conn, (header or "").partition(" ")[2].strip())
            if device is not None:  # a revoked device still trying: the organiser should know
                sync_log.record_failure(conn, device, path, exc)
            else:  # a token lost in a restore, or guessed: never the token itself
                sync_log.log_unknown_token(path, exc)
            raise


@bp.post("/push")
def push_view() -> Response:
    """Apply a batch of a laptop's changes exactly once; answer the acknowledged seq.

    The answer lists the optional encodings this central accepts (compact lap runs,
    gzip, the columnar body's content type) and apply_ms, its own time since the body
    arrived (the laptop tells the link's speed from it).
    """
    device = current_device("push")
    try:
        batch, after = read_push(), follows()
        with connection() as conn:
            answer = push(conn, device, batch, max_ahead_ms=clock.bound_ms(), follows=after,
                          event=request.headers.get(EVENT_HEADER))
    except InputError as exc:
        with connection() as conn:
            sync_log.record_failure(conn, device, "push", exc)
        raise
    sync_log.log_rejected(device, answer.get("rejected") or [])
    return jsonify({**answer, "encodings": list(PUSH_ENCODINGS),
                    "content_encodings": list(PUSH_CONTENT_ENCODINGS),
                    "content_types": list(PUSH_CONTENT_TYPES),
                    "apply_ms": round((time.perf_counter() - g.body_received) * 1000)})


@bp.get("/pull")
def pull_view() -> Response:
    """Answer one page of changes since the cursor, with the device's number block."""
    device = current_device("pull")
    try:
        cursor, limit = parse_paging(request.args.get("cursor"), request.args.get("limit"))
        with connection() as conn:
            block = ensure_block(conn, device, *block_settings())  # also for older devices
            return jsonify(pull(conn, device, cursor, limit, block))
    except InputError as exc:
        with connection() as conn:
            sync_log.record_failure(conn, device, "pull", exc)
        raise


@bp.get("/openapi.yaml")
def openapi() -> Response:
    """Serve the OpenAPI description of this API."""
    return send_file(OPENAPI, mimetype="application/yaml")


def init_app(app: Flask) -> None:
    """Register the API blueprint and the sync log (its page, central's log file)."""
    app.register_blueprint(bp)
    sync_log.init_app(app)
