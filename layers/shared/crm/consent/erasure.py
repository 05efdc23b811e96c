"""Erasing a customer (API.md: DELETE /api/customers/{id}): the customer document goes, their address stays only as
a hash on the suppression list (reason `erased`, so a re-import is never messaged), and their logs lose the address
and the text, a vendor's reason included (also one that comes after the erasure). The request does the customer, the
suppression and the first logs in one go; a person with more logs than a request should touch is finished by the
reconciler, a page at a time."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from crm.access.audit import Auditor
from crm.consent import suppressions
from crm.db import ATTRIBUTE_REGISTRY, AUDIT, CUSTOMERS, ERASURES, LOGS, SUPPRESSIONS, literals
from crm.errors import NotFound
from crm.models.campaigns import SKIPPED
from crm.models.common import utcnow

# Logs blanked inside the request; the rest by the reconciler.
LOGS_IN_REQUEST = 500
LOGS_PER_PAGE = 1000
BLANK_LOG = {"to": {"name": None, "email": None, "phone": None}, "message": "", "subject": None,
             "unsubscribe_url": None, "erased": True}


def reason_kept(status: Any, reason: Any) -> dict[str, Any]:
    """A log's reason as an update-pipeline expression that an erased log (as stored) keeps only when it is SKIPPED:
    then it is the CRM's own word for why it sent nothing. Any other may be a vendor's text, and bounce texts quote
    the address."""
    return {"$cond": [{"$and": [{"$eq": ["$erased", True]}, {"$ne": [status, SKIPPED]}]}, None, reason]}


def erase(audit: Auditor, customer_id: ObjectId) -> None:
    """404 for an unknown customer; an erasure retried while its logs are still being blanked answers as the first."""
    db = audit.db
    customer = db[CUSTOMERS].find_one({"_id": customer_id}, {"email": 1, "attributes": 1})
    if customer is None:
        if db[ERASURES].find_one({"_id": customer_id}) is None:
            raise NotFound("No customer with this id")
        return

    def change(session) -> None:
        suppressions.erase(db[SUPPRESSIONS], customer["email"], session)
        # An admin's reason for lifting the person's suppression may quote their name or address.
        db[AUDIT].update_many({"target.id": suppressions.address_hash(customer["email"]),
                               "details.reason": {"$exists": True}},
                              {"$unset": {"details.reason": ""}}, session=session)
        db[CUSTOMERS].delete_one({"_id": customer_id}, session=session)
        # Until the erasure is done (in this request, or by the reconciler after a crash), its record keeps the
        # attribute values to take out of the registry; then it goes too.
        db[ERASURES].update_one({"_id": customer_id}, {"$setOnInsert": {
            "at": utcnow(), "attributes": customer.get("attributes") or {}}}, upsert=True, session=session)

    audit.write("customer.erase", "customer", str(customer_id), change)
    blank_logs(db, customer_id, LOGS_IN_REQUEST)


def blank_logs(db: Database, customer_id: ObjectId, limit: int) -> bool:
    """Blanks up to `limit` of the person's logs; True (and the erasure done) when none were left."""
    ids = [d["_id"] for d in db[LOGS].find({"customer_id": customer_id, "erased": {"$ne": True}}, {"_id": 1})
           .limit(limit)]
    if ids:
        # The reason is judged once the log is marked erased (the second stage sees the first's write); logs of the
        # first release kept a vendor's reason as failure_reason.
        db[LOGS].update_many({"_id": {"$in": ids}}, [{"$set": {**literals(BLANK_LOG), "updated_at": utcnow()}},
                                                     {"$set": {"reason": reason_kept("$status", "$reason")}},
                                                     {"$unset": ["failure_reason"]}])
    if len(ids) < limit:
        record = db[ERASURES].find_one({"_id": customer_id}, {"attributes": 1})
        if record is not None:
            _forget_registry_values(db, record.get("attributes") or {})
        db[ERASURES].delete_one({"_id": customer_id})
        return True
    return False


def finish_pending(db: Database, deadline: float) -> int:
    """The reconciler's part: blanks what erasures left, a page at a time, until done or the deadline; how many
    erasures it finished."""
    finished = 0
    for pending in db[ERASURES].find({}, {"_id": 1}).limit(100):
        while time.time() < deadline:
            if blank_logs(db, pending["_id"], LOGS_PER_PAGE):
                finished += 1
                break
    return finished


def _forget_registry_values(db: Database, attributes: dict[str, Any]) -> None:
    """A value the person alone had (a name in a free-text attribute, a birthday) leaves the registry's examples
    and values; the registry holds times as their ISO text, the customer as a date."""
    for key, value in attributes.items():
        if value is None or db[CUSTOMERS].find_one({f"attributes.{key}": value}, {"_id": 1}) is not None:
            continue
        entry = db[ATTRIBUTE_REGISTRY].find_one({"_id": key}, {"examples": 1, "values": 1}) or {}
        kept = {field: [v for v in entry.get(field) or [] if not _same(v, value)] for field in ("examples", "values")}
        db[ATTRIBUTE_REGISTRY].update_one({"_id": key}, {"$set": kept})


def _same(shown: Any, stored: Any) -> bool:
    if isinstance(stored, datetime) and isinstance(shown, str):
        try:
            parsed = datetime.fromisoformat(shown.replace("Z", "+00:00"))
        except ValueError:
            return False
        return abs((parsed - stored).total_seconds()) < 0.001 if parsed.tzinfo else False
    return shown == stored and type(shown) is type(stored) or (
        isinstance(shown, (int, float)) and isinstance(stored, (int, float)) and not isinstance(shown, bool)
        and not isinstance(stored, bool) and shown == stored)
