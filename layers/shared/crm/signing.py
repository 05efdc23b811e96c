"""Vendor webhook signatures: hex HMAC-SHA256 of "<timestamp>.<raw body>" with the shared secret."""
from __future__ import annotations

import hashlib
import hmac
import re
import time

from crm.errors import Unauthorized

TOLERANCE_SECONDS = 300
# What the two headers look like, for the OpenAPI document and for verify: Unix seconds in ASCII digits (int() alone
# would also take "+1_700", "١٧٠٠" and fullwidth digits), and 64 hex digits.
TIMESTAMP_PATTERN = "^[0-9]{1,20}$"
SIGNATURE_PATTERN = "^[0-9a-fA-F]{64}$"
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)
_SIGNATURE = re.compile(SIGNATURE_PATTERN)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None) -> None:
    """Raises Unauthorized for a missing, malformed, stale (±5 minutes) or wrong signature, without saying which."""
    now = time.time() if now is None else now
    timestamp, signature = timestamp or "", (signature or "").strip().lower()
    # Checked before comparing: hmac.compare_digest raises TypeError on a str that is not ASCII.
    well_formed = _TIMESTAMP.fullmatch(timestamp) and _SIGNATURE.fullmatch(signature)
    if not well_formed or abs(now - int(timestamp)) > TOLERANCE_SECONDS \
            or not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise Unauthorized("Invalid or stale vendor signature", code="invalid_signature")
