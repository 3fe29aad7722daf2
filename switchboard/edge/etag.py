"""ETag and 304 Not Modified for GET queries.

A GET query's 200 response carries a weak ETag (`W/"<blake2b of the body>"`, weak since
the bytes differ once compressed) and `Cache-Control: private, no-cache` with
`Vary: Authorization, Accept, Accept-Encoding`: a client or private cache may keep it,
but asks again with `If-None-Match`, and a matching tag answers 304 with no body. The
operation still runs (the tag is the body's hash), so 304 saves bandwidth, not work.
"""

from __future__ import annotations

import hashlib

CACHE_CONTROL = "private, no-cache"
VARY = "Authorization, Accept, Accept-Encoding"


def etag_of(body: bytes) -> str:
    return f'W/"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak comparison) or is `*`."""
    if not if_none_match:
        return False
    opaque = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == opaque:
            return True
    return False
