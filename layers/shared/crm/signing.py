"""Vendor webhook signatures: hex HMAC-SHA256 of "<timestamp>.<raw body>" with the shared secret."""
from __future__ import annotations

import hashlib
import hmac
import time

from crm.errors import Unauthorized

TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None) -> None:
    """Raises Unauthorized for a missing, stale (±5 minutes) or wrong signature, without saying which."""
    now = time.time() if now is None else now
    try:
        fresh = abs(now - int(timestamp or "")) <= TOLERANCE_SECONDS
    except ValueError:
        fresh = False
    expected = sign(secret, timestamp or "", body)
    if not fresh or not signature or not hmac.compare_digest(expected, signature.strip().lower()):
        raise Unauthorized("Invalid or stale vendor signature", code="invalid_signature")
