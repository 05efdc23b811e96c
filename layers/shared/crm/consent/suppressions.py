"""The suppression list: addresses never messaged (unsubscribed, bounced, complained, added by hand, erased).
Each is kept by the SHA-256 of its normalised address, so an erased person's entry holds no address at all."""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from crm.errors import Conflict, NotFound
from crm.models.common import utcnow

REASONS = ("unsubscribed", "bounced", "complained", "manual", "erased")
ERASED = "erased"


def address_hash(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def add(suppressions: Collection, email: str, reason: str, session: ClientSession | None = None) -> dict[str, Any]:
    """The address's entry, made now or as it was: the first reason an address was suppressed for stays."""
    key = address_hash(email)
    document = {"email": email.strip().lower(), "reason": reason, "created_at": utcnow()}
    try:
        suppressions.update_one({"email_hash": key}, {"$setOnInsert": document}, upsert=True, session=session)
    except DuplicateKeyError:
        pass  # a concurrent add of the same address won: its entry is the one
    return suppressions.find_one({"email_hash": key}, session=session)


def erase(suppressions: Collection, email: str, session: ClientSession | None = None) -> None:
    """The address is kept only as its hash, with the reason `erased`, whatever its entry said before."""
    try:
        suppressions.update_one({"email_hash": address_hash(email)},
                                {"$set": {"email": None, "reason": ERASED, "erased_at": utcnow()},
                                 "$setOnInsert": {"created_at": utcnow()}}, upsert=True, session=session)
    except DuplicateKeyError:
        erase(suppressions, email, session)


def remove(suppressions: Collection, email: str, session: ClientSession | None = None) -> None:
    """404 when the address is not suppressed; 409 for an erased person's entry, which only erasure may hold."""
    entry = suppressions.find_one({"email_hash": address_hash(email)}, {"reason": 1}, session=session)
    if entry is None:
        raise NotFound("This address is not suppressed")
    if entry["reason"] == ERASED:
        raise Conflict("An erased person's address stays suppressed", code="erased")
    suppressions.delete_one({"_id": entry["_id"], "reason": {"$ne": ERASED}}, session=session)


def erased_at(suppressions: Collection, emails: Iterable[str]) -> dict[str, Any]:
    """When each of these addresses (as given) was erased, for those that were: one indexed read."""
    by_hash = {address_hash(e): e for e in emails}
    if not by_hash:
        return {}
    return {by_hash[d["email_hash"]]: d["erased_at"] for d in suppressions.find(
        {"email_hash": {"$in": list(by_hash)}, "reason": ERASED, "erased_at": {"$exists": True}},
        {"email_hash": 1, "erased_at": 1})}


def reasons(suppressions: Collection, emails: Iterable[str]) -> dict[str, str]:
    """Each suppressed address among these (as given) and why: one indexed read."""
    by_hash = {address_hash(e): e for e in emails}
    if not by_hash:
        return {}
    return {by_hash[d["email_hash"]]: d["reason"]
            for d in suppressions.find({"email_hash": {"$in": list(by_hash)}}, {"email_hash": 1, "reason": 1})}
