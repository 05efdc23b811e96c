"""SES's events about the e-mails it was given (through the configuration set's EventBridge destination), applied
to their logs with the receipts' discipline: a log's status only moves forward, each kind of event counts once per
message, and each event's changes (log, counters, suppression, completion) commit in one transaction. Duplicated
and out-of-order events change nothing twice."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database

from crm.channels import is_unconfirmed
from crm.consent import suppressions
from crm.db import CAMPAIGNS, LOGS, SUPPRESSIONS
from crm.errors import InvalidInput
from crm.models.campaigns import FAILED, SENT
from crm.models.common import utcnow
from crm.services.delivery import Outcome, apply_outcomes

# eventType → (the log's outcome and its reason, the counter and first-time mark, the suppression's reason)
EFFECTS: dict[str, tuple[tuple[str, str | None] | None, str | None, str | None]] = {
    "Delivery": ((SENT, None), "delivered", None),
    "Reject": ((FAILED, "rejected"), None, None),
    "Rendering Failure": ((FAILED, "rendering_failure"), None, None),
    "Complaint": (None, "complained", "complained"),
    "Open": (None, "opened", None),
    "Click": (None, "clicked", None),
}
PERMANENT_BOUNCE = ((FAILED, "bounced"), "bounced", "bounced")


@dataclass(frozen=True)
class SesEvent:
    kind: str
    message_id: str
    log_id: ObjectId | None
    at: datetime | None
    permanent: bool  # a bounce SES will not retry


def read(event: Any) -> SesEvent:
    """An EventBridge event from SES (detail-type "Email Delivered", "Email Bounced", ...)."""
    try:
        detail = event["detail"]
        mail = detail["mail"]
        kind = detail.get("eventType") or detail["notificationType"]
        log_ids = (mail.get("tags") or {}).get("log_id") or []
        log_id = ObjectId(log_ids[0]) if log_ids and ObjectId.is_valid(log_ids[0]) else None
        happened = _time(event.get("time"))
        bounce = detail.get("bounce") or {}
        return SesEvent(kind, str(mail["messageId"]), log_id, happened, bounce.get("bounceType") == "Permanent")
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        raise InvalidInput(f"not an SES event: {type(exc).__name__} {exc}") from exc


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else None
    except ValueError:
        return None


def apply_events(db: Database, events: list[Any]) -> None:
    for event in events:
        apply(db, read(event))


def apply(db: Database, event: SesEvent) -> bool:
    """Applies one event to its log; False when it changed nothing (a duplicate, a late one, an unknown message)."""
    effects = PERMANENT_BOUNCE if event.kind == "Bounce" and event.permanent else EFFECTS.get(event.kind)
    if effects is None:
        return False  # Send, DeliveryDelay, a transient bounce, Subscription: nothing final
    outcome, counter, suppress = effects
    # Found by its tag: a message sent without SES's answer ("unconfirmed") still finds its log.
    query = {"_id": event.log_id} if event.log_id else {"vendor_message_id": event.message_id}
    log = db[LOGS].find_one(query, {"campaign_id": 1, "vendor_message_id": 1, "to.email": 1})
    unconfirmed = log is not None and is_unconfirmed(log.get("vendor_message_id"))
    if log is None or log.get("vendor_message_id") not in (event.message_id, None) and not unconfirmed:
        return False

    def change(session: ClientSession) -> bool:
        changed = False
        if unconfirmed:
            db[LOGS].update_one({"_id": log["_id"]}, {"$set": {"vendor_message_id": event.message_id}},
                                session=session)
        if counter:
            changed |= _first(db, session, log, counter, event.at)
        if outcome:
            status, reason = outcome
            changed |= bool(apply_outcomes(db, session, [Outcome(log["_id"], status, at=event.at, reason=reason)]))
        email = (log.get("to") or {}).get("email")
        if suppress and email:
            suppressions.add(db[SUPPRESSIONS], email, suppress, session)
        return changed

    with db.client.start_session() as session:
        return session.with_transaction(change)


def _first(db: Database, session: ClientSession, log: dict[str, Any], counter: str, at: datetime | None) -> bool:
    """Marks the log's first event of this kind and counts it on the campaign; False when it was marked already."""
    mark = f"events.{counter}"
    marked = db[LOGS].update_one({"_id": log["_id"], mark: {"$exists": False}},
                                 {"$set": {mark: at or utcnow()}}, session=session)
    if not marked.modified_count:
        return False
    db[CAMPAIGNS].update_one({"_id": log["campaign_id"]}, {"$inc": {f"stats.{counter}": 1}}, session=session)
    return True
