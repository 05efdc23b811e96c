"""SES's events applied to their logs in bulk, with the receipts' discipline: a log's status only moves forward, each
kind of event counts once per message and only while its log is not FAILED or SKIPPED (a late Delivery of a log
already failed no_receipt moves no counter), and the campaign's counters catch up in one roll-up per batch.
Duplicated and out-of-order events change nothing twice."""
from __future__ import annotations

from datetime import timedelta

from bson import ObjectId
from pymongo import UpdateMany, UpdateOne
from pymongo.database import Database

from crm.channels import UNCONFIRMED
from crm.channels.ses_events import EFFECTS, PERMANENT_BOUNCE, SesEvent
from crm.consent import suppressions
from crm.db import LOGS, SUPPRESSIONS
from crm.models.campaigns import QUEUED, SENT
from crm.models.common import utcnow
from crm.services.delivery import PENDING, Outcome, outcome_writes, roll_up_due

DELAYED = "DeliveryDelay"
CLICK = "Click"


def apply_events(db: Database, events: list[SesEvent], receipt_timeout: timedelta, roll_up_every: float,
                 ses_counts_clicks: bool = True) -> int:
    """Applies a batch of SES's events (crm.channels.ses_events.read); how many log changes they made.

    ses_counts_clicks: False when the CRM tracks clicks itself (TRACK_CLICKS). Its own redirect counts them then,
    and the stack's configuration set publishes no click events (template.yaml), so SES rewrites no link either;
    a Click event that still comes (published before the switch, or by a set someone else configured) would count
    the same click twice, so it is ignored."""
    read_events = _with_log_ids(db, events)
    now = utcnow()
    changes: list[UpdateOne | UpdateMany] = []
    delayed: list[ObjectId] = []
    suppressing: dict[ObjectId, tuple[str, str]] = {}
    for event in read_events:
        if event.kind == DELAYED:
            delayed.append(event.log_id)  # SES keeps trying: its outcome is later than the receipt timeout
            continue
        if event.kind == CLICK and not ses_counts_clicks:
            continue
        effects = PERMANENT_BOUNCE if event.kind == "Bounce" and event.permanent else EFFECTS.get(event.kind)
        if effects is None:
            continue  # Send, a transient bounce, Subscription: nothing final
        outcome, counter, suppress = effects
        changes += _changes(event, outcome, counter, now)
        if suppress:
            suppressing[event.log_id] = (event.message_id, suppress)
    modified = db[LOGS].bulk_write(changes, ordered=True).modified_count if changes else 0
    if delayed:
        db[LOGS].update_many({"_id": {"$in": delayed}, "status": QUEUED, "vendor_message_id": {"$ne": None}},
                             {"$set": {"due_at": now + receipt_timeout}})
    if suppressing:
        _suppress(db, suppressing)
    # Also when this batch changed nothing: a first delivery that died before its roll-up left tallies to count.
    roll_up_due(db, [e.log_id for e in read_events], roll_up_every)
    return modified


def _with_log_ids(db: Database, events: list[SesEvent]) -> list[SesEvent]:
    """The events whose log is known: by their log_id tag, else by SES's message id (one read for all of them)."""
    untagged = [e.message_id for e in events if e.log_id is None]
    found = {d["vendor_message_id"]: d["_id"] for d in db[LOGS].find(
        {"vendor_message_id": {"$in": untagged}}, {"vendor_message_id": 1})} if untagged else {}
    return [e if e.log_id else SesEvent(e.kind, e.message_id, found[e.message_id], e.at, e.permanent)
            for e in events if e.log_id or e.message_id in found]


def _changes(event: SesEvent, outcome: tuple[str, str | None] | None, counter: str | None,
             now) -> list[UpdateOne | UpdateMany]:
    """In this order: a send made without SES's answer takes the event's message id; the counter's first mark
    (before the outcome, which may take the log out of the statuses that count); the outcome."""
    log_id, mark = event.log_id, UNCONFIRMED + str(event.log_id)
    # An event about another message than the one this log was sent as changes nothing.
    this_message = {"vendor_message_id": {"$in": [None, event.message_id, mark]}}
    changes: list[UpdateOne | UpdateMany] = [UpdateOne({"_id": log_id, "vendor_message_id": mark},
                         {"$set": {"vendor_message_id": event.message_id}})]
    if counter:
        changes.append(UpdateOne(
            {"_id": log_id, f"events.{counter}": {"$exists": False}, "status": {"$in": [QUEUED, SENT]},
             **this_message},
            {"$set": {f"events.{counter}": event.at or now, **PENDING}, "$push": {"tally": counter}}))
    if outcome:
        status, reason = outcome
        changes += outcome_writes([Outcome(log_id, status, at=event.at, reason=reason)], this_message, now)
    return changes


def _suppress(db: Database, events: dict[ObjectId, tuple[str, str]]) -> None:
    """Each address whose own message bounced or was complained about (read after the batch's write, which gave an
    unconfirmed send its message id)."""
    for log in db[LOGS].find({"_id": {"$in": list(events)}}, {"to.email": 1, "vendor_message_id": 1}):
        message_id, reason = events[log["_id"]]
        email = (log.get("to") or {}).get("email")
        if email and log.get("vendor_message_id") in (None, message_id):  # an erased person's log has none
            suppressions.add(db[SUPPRESSIONS], email, reason)
