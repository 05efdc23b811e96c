"""The suppression list: addresses never messaged (unsubscribed, bounced, complained, added by hand, erased).
Each is kept by the SHA-256 of its normalised address, so an erased person's entry holds no address at all."""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from crm.access.audit import Auditor
from crm.access.policy import ADMINS
from crm.db import SUPPRESSIONS
from crm.errors import Conflict, Forbidden, InvalidInput, NotFound
from crm.models.common import utcnow

REASONS = ("unsubscribed", "bounced", "complained", "manual", "erased")
ERASED = "erased"
# Entries the person made themselves: lifting one would message someone who said no, so only an admin may, saying
# why (API.md, "Safe on the internet").
THE_PERSONS_OWN = frozenset({"unsubscribed", "complained"})


def address_hash(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def add(suppressions: Collection, email: str, reason: str, session: ClientSession | None = None) -> dict[str, Any]:
    """The address's entry, made now or as it was: the first reason an address was suppressed for stays, but the
    person's own (an unsubscribe, a complaint) replaces one someone else gave (a bounce, by hand)."""
    key = address_hash(email)
    document = {"email": email.strip().lower(), "reason": reason, "created_at": utcnow()}
    try:
        suppressions.update_one({"email_hash": key}, {"$setOnInsert": document}, upsert=True, session=session)
    except DuplicateKeyError:
        pass  # a concurrent add of the same address won: its entry is the one
    if reason in THE_PERSONS_OWN:
        # Else lifting a bounce (anyone's to lift) would lift the person's opt-out with it.
        suppressions.update_one({"email_hash": key, "reason": {"$nin": [*THE_PERSONS_OWN, ERASED]}},
                                {"$set": {"reason": reason}}, session=session)
    return suppressions.find_one({"email_hash": key}, session=session)


def erase(suppressions: Collection, email: str, session: ClientSession | None = None) -> None:
    """The address is kept only as its hash, with the reason `erased`, whatever its entry said before."""
    try:
        suppressions.update_one({"email_hash": address_hash(email)},
                                {"$set": {"email": None, "reason": ERASED, "erased_at": utcnow()},
                                 "$setOnInsert": {"created_at": utcnow()}}, upsert=True, session=session)
    except DuplicateKeyError:
        erase(suppressions, email, session)


def remove(audit: Auditor, email: str, reason: str | None) -> None:
    """The address may be messaged again, audited with the caller's reason. 404 when it is not suppressed; 409 for an
    erased person's entry, which only erasure may hold; 403 for an entry its person made (an unsubscribe, a
    complaint) unless an admin removes it, and 422 when the admin gives no reason."""
    collection, key = audit.db[SUPPRESSIONS], address_hash(email)
    entry = collection.find_one({"email_hash": key}, {"reason": 1})
    if entry is None:
        raise NotFound("This address is not suppressed")
    if entry["reason"] == ERASED:
        raise Conflict("An erased person's address stays suppressed", code="erased")
    if entry["reason"] in THE_PERSONS_OWN:
        if audit.actor.role not in ADMINS:
            raise Forbidden("Only an admin may remove an address its person unsubscribed or complained about")
        if reason is None:
            raise InvalidInput.for_field(("body", "reason"), "say why this person may be messaged again")

    def change(session: ClientSession) -> None:
        # Only the entry checked above: one erased or removed meanwhile is not this request's to remove.
        if not collection.delete_one({"_id": entry["_id"], "reason": entry["reason"]}, session=session).deleted_count:
            raise Conflict("This address's entry changed meanwhile; try again")

    audit.write("suppression.delete", "suppression", key, change, removed=entry["reason"],
                **({"reason": reason} if reason is not None else {}))


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
