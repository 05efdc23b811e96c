"""API keys for systems (a shop, an app): scoped, shown once, stored only as a hash."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.collection import Collection
from pymongo.database import Database

from crm.access.audit import Auditor
from crm.access.principals import API_KEY, Principal, Scope
from crm.db import API_KEYS
from crm.errors import NotFound
from crm.models.common import utcnow
from crm.pagination import newest_first_page

KEY_PREFIX = "crm_"
# 32 random bytes: 43 URL-safe characters, so a SHA-256 of the key is as good as a slow hash.
SECRET_BYTES = 32
KEY_PATTERN = re.compile(r"^crm_[A-Za-z0-9_-]{40,200}$")
# What lists show of a key: enough to tell keys apart, far too little to guess one.
SHOWN_LENGTH = len(KEY_PREFIX) + 8
LAST_USED_RESOLUTION = timedelta(minutes=1)


def looks_like_key(credential: str) -> bool:
    return credential.startswith(KEY_PREFIX)


def well_formed(credential: str) -> bool:
    """Whether a credential could be a key at all (one that is not is refused without looking it up)."""
    return KEY_PATTERN.fullmatch(credential) is not None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def to_key(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(doc["_id"]), "name": doc["name"], "scopes": doc["scopes"], "prefix": doc["prefix"],
            "created_by": doc["created_by"], "created_at": doc["created_at"], "last_used_at": doc.get("last_used_at")}


def principal_of(doc: dict[str, Any]) -> Principal:
    known = {scope.value for scope in Scope}
    # A scope this version does not know (a document written by hand) grants nothing.
    return Principal(API_KEY, str(doc["_id"]), name=doc["name"],
                     scopes=frozenset(Scope(s) for s in doc["scopes"] if s in known))


def create(audit: Auditor, name: str, scopes: list[Scope]) -> tuple[dict[str, Any], str]:
    """The key's document and its secret, which is returned this once and never stored."""
    secret = KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    doc = {"_id": ObjectId(), "name": name, "scopes": [scope.value for scope in Scope if scope in scopes],
           "prefix": secret[:SHOWN_LENGTH], "hash": digest(secret), "created_by": audit.actor.email,
           "created_at": utcnow(), "last_used_at": None}
    audit.write("api_key.create", "api_key", str(doc["_id"]),
                lambda session: audit.db[API_KEYS].insert_one(doc, session=session), scopes=doc["scopes"])
    return doc, secret


def revoke(audit: Auditor, key_id: str) -> None:
    def delete(session) -> None:
        if audit.db[API_KEYS].delete_one({"_id": ObjectId(key_id)}, session=session).deleted_count == 0:
            raise NotFound(f"No API key {key_id}")

    audit.write("api_key.revoke", "api_key", key_id, delete)


def find(keys: Collection, secret: str) -> dict[str, Any] | None:
    """The key this secret is: found by its hash's unique index (the lookup's timing can tell only about hashes),
    then compared in constant time."""
    if not KEY_PATTERN.match(secret):
        return None
    presented = digest(secret)
    doc = keys.find_one({"hash": presented}, {"name": 1, "scopes": 1, "last_used_at": 1, "hash": 1})
    if doc is None or not hmac.compare_digest(doc.pop("hash"), presented):
        return None
    return doc


def note_use(keys: Collection, doc: dict[str, Any], now: datetime) -> bool:
    """Moves last_used_at when it is a minute old or more: at most one write a minute per key, across containers."""
    last = doc.get("last_used_at")
    if last is not None and now - last < LAST_USED_RESOLUTION:
        return False
    keys.update_one({"_id": doc["_id"], "$or": [{"last_used_at": None},
                                                {"last_used_at": {"$lte": now - LAST_USED_RESOLUTION}}]},
                    {"$set": {"last_used_at": now}})
    doc["last_used_at"] = now
    return True


def list_page(db: Database, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    docs, next_cursor = newest_first_page(db[API_KEYS], [{}], limit, cursor, {"hash": 0})
    return [to_key(d) for d in docs], next_cursor
