"""Idempotency-Key handling: the same key and body replay the first reply and do nothing more."""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any, Callable

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from crm.errors import Conflict, InvalidInput
from crm.models.common import utcnow

KEY_TTL = timedelta(hours=24)
# A request that held its key this long without finishing has died; a retry may take the key over.
ABANDONED_AFTER = timedelta(seconds=60)
MAX_KEY_LENGTH = 255

Reply = tuple[int, dict[str, Any]]


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def run_once(keys: Collection, scope: str, key: str | None, payload: Any, action: Callable[[], Reply]) -> Reply:
    if key is None:
        return action()
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput.for_field(("header", "Idempotency-Key"),
                                     f"must be 1 to {MAX_KEY_LENGTH} printable characters")
    doc_id = f"{scope}:{key}"
    body_hash = fingerprint(payload)
    now = utcnow()
    try:
        keys.insert_one({"_id": doc_id, "fingerprint": body_hash, "state": "pending", "started_at": now,
                         "expires_at": now + KEY_TTL})
    except DuplicateKeyError:
        replay = _replay_or_take_over(keys, doc_id, body_hash)
        if replay is not None:
            return replay
    try:
        status, body = action()
    except BaseException:
        keys.delete_one({"_id": doc_id, "state": "pending"})
        raise
    keys.update_one({"_id": doc_id}, {"$set": {"state": "done", "status": status, "body": body}})
    return status, body


def _replay_or_take_over(keys: Collection, doc_id: str, body_hash: str) -> Reply | None:
    existing = keys.find_one({"_id": doc_id})
    if existing is None:
        raise Conflict("A request with this Idempotency-Key is in progress; retry shortly")
    if existing["fingerprint"] != body_hash:
        raise Conflict("This Idempotency-Key was used with a different request body", code="idempotency_key_reused")
    if existing["state"] == "done":
        return existing["status"], existing["body"]
    now = utcnow()
    taken = keys.update_one(
        {"_id": doc_id, "state": "pending", "started_at": {"$lt": now - ABANDONED_AFTER}},
        {"$set": {"started_at": now}},
    )
    if taken.modified_count == 0:
        raise Conflict("A request with this Idempotency-Key is in progress; retry shortly")
    return None
