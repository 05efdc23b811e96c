"""The consent check at send time: who, among a batch about to be sent, may no longer be messaged, and why. Read in
bulk (a handful of indexed reads per batch), so a customer who unsubscribes while a campaign is sending is not
messaged after that."""
from __future__ import annotations

from bson import ObjectId
from pymongo.database import Database

from crm import rules
from crm.consent import suppressions
from crm.db import CAMPAIGNS, CUSTOMERS, LOGS, SUPPRESSIONS

NOT_SUBSCRIBED = "not_subscribed"


def reasons_not_to_send(db: Database, log_ids: list[ObjectId]) -> dict[ObjectId, str]:
    """Each of these logs whose recipient is suppressed (the suppression's reason), no longer a customer (erased),
    or not subscribed under the consent mode of the log's campaign (not_subscribed)."""
    logs = list(db[LOGS].find({"_id": {"$in": log_ids}}, {"campaign_id": 1, "customer_id": 1, "to.email": 1}))
    if not logs:
        return {}
    modes = {c["_id"]: c.get("consent_mode", rules.OPT_OUT) for c in db[CAMPAIGNS].find(
        {"_id": {"$in": list({log["campaign_id"] for log in logs})}}, {"consent_mode": 1})}
    consents = {c["_id"]: c.get("email_consent") for c in db[CUSTOMERS].find(
        {"_id": {"$in": [log["customer_id"] for log in logs]}}, {"email_consent": 1})}
    suppressed = suppressions.reasons(db[SUPPRESSIONS], {log["to"]["email"] for log in logs if log["to"]["email"]})
    reasons: dict[ObjectId, str] = {}
    for log in logs:
        if log["customer_id"] not in consents and log["to"]["email"] not in suppressed:
            reasons[log["_id"]] = suppressions.ERASED
            continue
        reason = _reason(log["to"]["email"], consents.get(log["customer_id"]), suppressed,
                         modes.get(log["campaign_id"], rules.OPT_OUT))
        if reason:
            reasons[log["_id"]] = reason
    return reasons


def reasons_not_to_message(db: Database, customers: list[dict], consent_mode: str) -> dict[ObjectId, str]:
    """Each of these customers (read with their email and email_consent) who may not be messaged now, and why."""
    suppressed = suppressions.reasons(db[SUPPRESSIONS], {c["email"] for c in customers if c.get("email")})
    reasons = {c["_id"]: _reason(c.get("email"), c.get("email_consent"), suppressed, consent_mode) for c in customers}
    return {customer_id: reason for customer_id, reason in reasons.items() if reason}


def _reason(email: str | None, consent: str | None, suppressed: dict[str, str], consent_mode: str) -> str | None:
    if email in suppressed:
        return suppressed[email]
    if not rules.subscribed(consent, consent_mode):
        return NOT_SUBSCRIBED
    return None
