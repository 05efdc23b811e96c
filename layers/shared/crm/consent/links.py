"""Unsubscribe links: a token that names one customer, signed so that no one can make one for another, and that
never expires (a link in an old e-mail must still work)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from bson import ObjectId

from crm.config import Settings

MAC_BYTES = 16
PATH = "/u/"
# An id of 12 bytes and a MAC of 16: 38 characters of base64url.
TOKEN_LENGTH = 38
MAX_PUBLIC_URL_LENGTH = 200
LONGEST_URL = MAX_PUBLIC_URL_LENGTH + len(PATH) + TOKEN_LENGTH


def _mac(secret: str, customer_id: bytes) -> bytes:
    return hmac.new(secret.encode(), b"unsubscribe:" + customer_id, hashlib.sha256).digest()[:MAC_BYTES]


def token_for(secret: str, customer_id: ObjectId) -> str:
    raw = customer_id.binary
    return base64.urlsafe_b64encode(raw + _mac(secret, raw)).decode().rstrip("=")


def customer_of(secret: str, token: str) -> ObjectId | None:
    """The customer a token names, or None for anything not made by token_for with this secret."""
    if len(token) != TOKEN_LENGTH or not token.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "==")
    except (binascii.Error, ValueError):
        return None
    customer_id, mac = raw[:12], raw[12:]
    return ObjectId(customer_id) if hmac.compare_digest(mac, _mac(secret, customer_id)) else None


def unsubscribe_url(settings: Settings, customer_id: ObjectId) -> str:
    return f"{settings.public_url.rstrip('/')}{PATH}{token_for(settings.secret('unsubscribe_secret'), customer_id)}"
