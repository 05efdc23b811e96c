"""Unsubscribing through a link: the customer it names is suppressed (reason `unsubscribed`) and their consent
denied, in one transaction with its audit entry; doing it again records nothing more. Each click's denial wins over
every ingest the API accepted before it."""
from __future__ import annotations

from bson import ObjectId
from pymongo.database import Database

from crm.access.audit import Auditor
from crm.access.principals import RECIPIENT, Principal
from crm.consent import suppressions
from crm.db import CUSTOMERS, SUPPRESSIONS
from crm.engagement import attribution
from crm.models.common import utcnow
from crm.models.customers import version_after_ingests_until, versioned_write

UNSUBSCRIBED = "unsubscribed"


def unsubscribe(db: Database, customer_id: ObjectId, request_id: str) -> None:
    customer = db[CUSTOMERS].find_one({"_id": customer_id}, {"email": 1, "email_consent": 1})
    if customer is None:
        return  # erased: the address is suppressed already, and nothing of the person is left to change
    email = customer["email"]
    entry = suppressions.reasons(db[SUPPRESSIONS], [email]).get(email)
    # Versioned as an ingest's write is: one the API accepted before now, applied later, does not grant it back.
    now = utcnow()
    deny = [{"$set": {**versioned_write("email_consent", "email_consent", "denied", version_after_ingests_until(now)),
                      "updated_at": now}}]
    if customer.get("email_consent") == "denied" and entry in (*suppressions.THE_PERSONS_OWN, suppressions.ERASED):
        # Nothing new to record, but this click's denial still wins over the ingests accepted before it.
        db[CUSTOMERS].update_one({"_id": customer_id}, deny)
        return

    def change(session) -> None:
        suppressions.add(db[SUPPRESSIONS], email, UNSUBSCRIBED, session)
        db[CUSTOMERS].update_one({"_id": customer_id}, deny, session=session)
        attribution.attribute_unsubscribe(db, customer_id, session)

    Auditor(db, Principal(RECIPIENT, str(customer_id)), request_id).write(
        "suppression.create", "suppression", suppressions.address_hash(email), change)
