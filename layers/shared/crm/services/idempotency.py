"""Idempotency-Key handling: the same key and body replay the first reply and do nothing more.

The key's record names the resource the request creates (its id is chosen when the key is first taken), so a
retry that takes over a request which died half-way finishes that same resource instead of making another.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from bson import ObjectId
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from crm.errors import Conflict, InvalidInput
from crm.models.common import utcnow

KEY_TTL = timedelta(hours=24)
# A request that held its key this long without finishing has died; a retry may take the key over.
ABANDONED_AFTER = timedelta(seconds=60)
MAX_KEY_LENGTH = 255
RELEASED = datetime(1970, 1, 1, tzinfo=timezone.utc)

Reply = tuple[int, dict[str, Any]]
# Does the request's work; given the id of the resource it creates, the same on every retry of one key.
Action = Callable[[ObjectId], Reply]


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def run_once(keys: Collection, scope: str, key: str | None, payload: Any, action: Action) -> Reply:
    if key is None:
        return action(ObjectId())
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput.for_field(("header", "Idempotency-Key"),
                                     f"must be 1 to {MAX_KEY_LENGTH} printable characters")
    doc_id = f"{scope}:{key}"
    body_hash = fingerprint(payload)
    now = utcnow()
    resource_id = ObjectId()
    try:
        keys.insert_one({"_id": doc_id, "fingerprint": body_hash, "state": "pending", "started_at": now,
                         "expires_at": now + KEY_TTL, "resource_id": resource_id})
    except DuplicateKeyError:
        replay, resource_id = _replay_or_take_over(keys, doc_id, body_hash)
        if replay is not None:
            return replay
    try:
        status, body = action(resource_id)
    except BaseException:
        # Released, not deleted: the work may have gone half-way (a campaign stored, its reply lost), so the next
        # retry takes the key over at once and finishes the same resource rather than making another.
        keys.update_one({"_id": doc_id, "state": "pending"}, {"$set": {"started_at": RELEASED}})
        raise
    keys.update_one({"_id": doc_id}, {"$set": {"state": "done", "status": status, "body": body}})
    return status, body


def _replay_or_take_over(keys: Collection, doc_id: str, body_hash: str) -> tuple[Reply | None, ObjectId]:
    """The first reply if the first request finished; else (None, its resource id) once this one has taken over."""
    existing = keys.find_one({"_id": doc_id})
    if existing is None:
        raise Conflict("A request with this Idempotency-Key is in progress; retry shortly")
    if existing["fingerprint"] != body_hash:
        raise Conflict("This Idempotency-Key was used with a different request body", code="idempotency_key_reused")
    if existing["state"] == "done":
        return (existing["status"], existing["body"]), existing.get("resource_id")
    now = utcnow()
    taken = keys.update_one(
        {"_id": doc_id, "state": "pending", "started_at": {"$lt": now - ABANDONED_AFTER}},
        {"$set": {"started_at": now}},
    )
    if taken.modified_count == 0:
        raise Conflict("A request with this Idempotency-Key is in progress; retry shortly")
    # Records from before resources were named get one now.
    return None, existing.get("resource_id") or ObjectId()
