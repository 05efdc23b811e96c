"""SES's events about the e-mails it was given (through the configuration set's EventBridge destination), applied
to their logs with the receipts' discipline: a log's status only moves forward, each kind of event counts once per
message, and a queue batch's changes (logs, counters, suppressions, completion) commit in one transaction.
Duplicated and out-of-order events change nothing twice."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database

from crm.channels.ses import UNCONFIRMED
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


def effects_of(event: SesEvent) -> tuple[tuple[str, str | None] | None, str | None, str | None] | None:
    """What an event does; None for Send, DeliveryDelay, a transient bounce, Subscription: nothing final."""
    return PERMANENT_BOUNCE if event.kind == "Bounce" and event.permanent else EFFECTS.get(event.kind)


def apply_events(db: Database, events: list[SesEvent]) -> int:
    """Applies a batch of events in one transaction; how many counters and statuses moved (none for duplicates,
    late events or unknown messages). The campaign's counters move once per campaign for the whole batch: a write
    per event to the campaign would queue every batch's transaction behind the others' and behind the fan-out's."""
    acting = [(event, effects) for event in events if (effects := effects_of(event))]
    logs = _logs_of(db, [event for event, _ in acting])
    matched = [(event, effects, log) for event, effects in acting if (log := _log_of(logs, event)) is not None]
    if not matched:
        return 0

    def change(session: ClientSession) -> int:
        counts: dict[ObjectId, Counter[str]] = defaultdict(Counter)
        outcomes: dict[ObjectId, Outcome] = {}
        # This attempt's view of each log: the first event naming an unconfirmed log's message decides which
        # message it was sent as, for the events after it in the batch (and a retried attempt starts afresh).
        sent_as = {log["_id"]: log.get("vendor_message_id") for _, _, log in matched}
        for event, (outcome, counter, suppress), log in matched:
            if str(sent_as[log["_id"]]).startswith(UNCONFIRMED):
                db[LOGS].update_one({"_id": log["_id"], "vendor_message_id": sent_as[log["_id"]]},
                                    {"$set": {"vendor_message_id": event.message_id}}, session=session)
                sent_as[log["_id"]] = event.message_id
            elif sent_as[log["_id"]] not in (event.message_id, None):
                continue  # about another message than the one this log was sent as
            if counter and _mark_first(db, session, log, counter, event.at):
                counts[log["campaign_id"]][counter] += 1
            if outcome:
                status, reason = outcome
                # The first final outcome in the batch is the one a one-by-one application would have kept.
                outcomes.setdefault(log["_id"], Outcome(log["_id"], status, at=event.at, reason=reason))
            email = (log.get("to") or {}).get("email")
            if suppress and email:
                suppressions.add(db[SUPPRESSIONS], email, suppress, session)
        for campaign_id, counted in counts.items():
            db[CAMPAIGNS].update_one({"_id": campaign_id}, {"$inc": {
                f"stats.{counter}": count for counter, count in counted.items()}}, session=session)
        return sum(sum(counted.values()) for counted in counts.values()) + apply_outcomes(
            db, session, list(outcomes.values()))

    with db.client.start_session() as session:
        return session.with_transaction(change)


def _logs_of(db: Database, events: list[SesEvent]) -> dict[ObjectId | str, dict[str, Any]]:
    """The events' logs by id and by SES's message id, in one query: an event finds its log by its tag (a message
    sent without SES's answer, "unconfirmed", has no message id yet) or else by the message id."""
    log_ids = list({event.log_id for event in events if event.log_id})
    message_ids = list({event.message_id for event in events if not event.log_id})
    wanted = [query for query in ({"_id": {"$in": log_ids}} if log_ids else None,
                                  {"vendor_message_id": {"$in": message_ids}} if message_ids else None) if query]
    found = db[LOGS].find({"$or": wanted}, {"campaign_id": 1, "vendor_message_id": 1, "to.email": 1}) if wanted else []
    logs: dict[ObjectId | str, dict[str, Any]] = {}
    for log in found:
        logs[log["_id"]] = log
        if log.get("vendor_message_id"):
            logs[log["vendor_message_id"]] = log
    return logs


def _log_of(logs: dict[ObjectId | str, dict[str, Any]], event: SesEvent) -> dict[str, Any] | None:
    """The event's log, if the event is about the message the log was sent as."""
    log = logs.get(event.log_id or event.message_id)
    sent_as = None if log is None else log.get("vendor_message_id")
    if log is None or sent_as not in (event.message_id, None) and not str(sent_as).startswith(UNCONFIRMED):
        return None
    return log


def _mark_first(db: Database, session: ClientSession, log: dict[str, Any], counter: str,
                at: datetime | None) -> bool:
    """Marks the log's first event of this kind; False when it was marked already."""
    mark = f"events.{counter}"
    marked = db[LOGS].update_one({"_id": log["_id"], mark: {"$exists": False}},
                                 {"$set": {mark: at or utcnow()}}, session=session)
    return bool(marked.modified_count)
