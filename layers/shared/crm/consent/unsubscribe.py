"""Unsubscribing through a link: the customer it names is suppressed (reason `unsubscribed`) and their consent
denied, in one transaction with its audit entry; doing it again changes nothing."""
from __future__ import annotations

from bson import ObjectId
from pymongo.database import Database

from crm.access.audit import Auditor
from crm.access.principals import RECIPIENT, Principal
from crm.consent import suppressions
from crm.db import CUSTOMERS, SUPPRESSIONS
from crm.models.common import utcnow

UNSUBSCRIBED = "unsubscribed"


def unsubscribe(db: Database, customer_id: ObjectId, request_id: str) -> None:
    customer = db[CUSTOMERS].find_one({"_id": customer_id}, {"email": 1, "email_consent": 1})
    if customer is None:
        return  # erased: the address is suppressed already, and nothing of the person is left to change
    email = customer["email"]
    if customer.get("email_consent") == "denied" and suppressions.reasons(db[SUPPRESSIONS], [email]):
        return

    def change(session) -> None:
        suppressions.add(db[SUPPRESSIONS], email, UNSUBSCRIBED, session)
        db[CUSTOMERS].update_one({"_id": customer_id}, {"$set": {"email_consent": "denied", "updated_at": utcnow()}},
                                 session=session)

    Auditor(db, Principal(RECIPIENT, str(customer_id)), request_id).write(
        "suppression.create", "suppression", suppressions.address_hash(email), change)
