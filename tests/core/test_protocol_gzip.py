"""decode_body: a push body without its Content-Encoding, within 16,000,000 bytes.

identity (or none) passes the body as it is; gzip is unpacked, and the byte limit
applies to the unpacked body (a small gzip stream that would unpack to gigabytes is a
413, not a 400 and not an out-of-memory); anything else is a 415. The limit is written
here as a number on purpose, not imported from the code under test.
"""
from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest

from lapsync.protocol import ProtocolError, decode_body, too_large_body

LIMIT = 16_000_000
BODY = b'{"protocol": 1, "device_id": "dddddddddddddddddddddddd", "changes": []}'
GZ = gzip.compress(BODY)
AT_LIMIT = gzip.compress(b" " * LIMIT, 1)          # exactly the limit, unpacked
PAST_LIMIT = gzip.compress(b" " * (LIMIT + 1), 1)  # one byte past it
BOMB = gzip.compress(b"\0" * (4 * LIMIT), 1)        # 64 MB from ~280 kB


def refusal(raw: bytes, coding: str | None) -> ProtocolError:
    """Return the ProtocolError decode_body raises."""
    with pytest.raises(ProtocolError) as caught:
        decode_body(raw, coding)
    return caught.value


@pytest.mark.parametrize("coding", [None, "", "identity", "IDENTITY", "Identity", " identity ",
                                    "\tidentity\n"])
def test_a_body_without_an_encoding_is_passed_as_it_is(coding):
    assert decode_body(BODY, coding) is BODY
    assert decode_body(GZ, coding) is GZ            # not unpacked without the header
    assert decode_body(b"", coding) == b""


def test_an_identity_body_is_not_limited_here():
    """The raw size of a body is the web server's limit (MAX_CONTENT_LENGTH), not this one's."""
    raw = b" " * (LIMIT + 1)
    assert decode_body(raw, None) is raw


@pytest.mark.parametrize("coding", ["gzip", "GZIP", "Gzip", " gzip ", "gzip\t"])
def test_a_gzip_body_unpacks_to_exactly_what_was_packed(coding):
    assert decode_body(GZ, coding) == BODY
    for level in (0, 1, 9):
        assert decode_body(gzip.compress(BODY, level), coding) == BODY
    assert decode_body(gzip.compress(b""), coding) == b""


def test_a_body_of_exactly_the_limit_unpacked_is_accepted():
    assert decode_body(AT_LIMIT, "gzip") == b" " * LIMIT


@pytest.mark.parametrize("raw", [PAST_LIMIT, BOMB, PAST_LIMIT[:-8], BOMB[:len(BOMB) // 2],
                                 PAST_LIMIT + b"junk"],
                         ids=["one-byte-past", "bomb", "past-and-cut-short", "bomb-cut-short",
                              "past-with-trailing-data"])
def test_a_body_past_the_limit_unpacked_is_a_413(raw):
    error = refusal(raw, "gzip")
    assert (error.status, error.code) == (413, "batch_too_large")
    assert error.extra == {"max_bytes": 16_000_000}
    assert error.message == "A push body may have at most 16000000 bytes."


def test_a_bomb_is_refused_without_unpacking_it_whole():
    """The body is unpacked only to the limit + 1 byte: a 64 MB bomb never takes 64 MB."""
    tracemalloc.start()
    try:
        error = refusal(BOMB, "gzip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert error.status == 413
    assert peak < 3 * LIMIT


def test_too_large_body_is_the_413_for_a_body_of_too_many_bytes():
    error = too_large_body()
    assert isinstance(error, ProtocolError)
    assert (error.status, error.code, error.extra) == (413, "batch_too_large",
                                                       {"max_bytes": 16_000_000})
    assert error.message == str(error) == "A push body may have at most 16000000 bytes."


@pytest.mark.parametrize("coding", ["deflate", "br", "zstd", "compress", "x-gzip", "gzip, gzip",
                                    "identity, gzip", "gzip;q=1", "gz", "g zip", "*"])
def test_any_other_encoding_is_a_415(coding):
    error = refusal(GZ, coding)
    assert (error.status, error.code, error.extra) == (415, "unsupported_media_type", {})
    assert error.message == f"A push body may be gzip-compressed, not {coding!r}."


def test_a_long_encoding_is_named_by_its_first_50_characters():
    coding = "x" * 49 + "yz" + "w" * 30
    error = refusal(GZ, coding)
    assert error.message == f"A push body may be gzip-compressed, not {'x' * 49 + 'y'!r}."


@pytest.mark.parametrize("raw", [
    b"not gzip at all", BODY, zlib.compress(BODY),                       # no gzip header
    zlib.compress(BODY)[2:-4],                                            # raw deflate
    b"\x1f\x8b\x09" + GZ[3:],                                             # unknown method
    GZ[:-8] + bytes([GZ[-8] ^ 1]) + GZ[-7:],                              # CRC wrong
    GZ[:-4] + bytes([GZ[-4] ^ 1]) + GZ[-3:],                              # length wrong
], ids=["text", "plain-json", "zlib", "raw-deflate", "bad-method", "bad-crc", "bad-length"])
def test_a_body_that_is_not_gzip_is_a_400(raw):
    error = refusal(raw, "gzip")
    assert (error.status, error.code, error.extra) == (400, "malformed_gzip", {})
    assert error.message.startswith("The body is not valid gzip: ")
    assert len(error.message) <= 300


@pytest.mark.parametrize("raw", [b"", GZ[:1], GZ[:10], GZ[:-1], GZ[:-8], AT_LIMIT[:-1],
                                 GZ + b"x", GZ + b"\0", GZ + GZ, AT_LIMIT + b"x"],
                         ids=["empty", "1-byte", "header-only", "last-byte-cut", "trailer-cut",
                              "at-limit-cut", "trailing-x", "trailing-nul", "two-members",
                              "at-limit-trailing"])
def test_a_gzip_body_cut_short_or_with_data_after_its_end_is_a_400(raw):
    error = refusal(raw, "gzip")
    assert (error.status, error.code, error.extra) == (400, "malformed_gzip", {})
    assert error.message == "The gzip body is cut short or has data after its end."
