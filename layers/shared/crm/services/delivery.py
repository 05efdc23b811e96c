"""Delivery outcomes: a log's status only moves forward, and the campaign's counters (and its completion) move with
it in the same transaction."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.client_session import ClientSession
from pymongo.database import Database

from crm.db import CAMPAIGNS, LOGS
from crm.models.campaigns import COMPLETED, QUEUED
from crm.models.common import utcnow


@dataclass(frozen=True)
class Outcome:
    log_id: ObjectId
    status: str  # SENT | FAILED | SKIPPED
    vendor_message_id: str | None = None
    at: datetime | None = None
    reason: str | None = None
    # More of the log to change with its status, in the same write (an erased person's log is blanked).
    also: dict | None = None


def record_outcomes(db: Database, outcomes: Iterable[Outcome], only_if: dict | None = None) -> tuple[int, int]:
    """Applies each outcome to a QUEUED log only (and only to logs matching only_if, when given); returns (applied,
    ignored). Duplicates and late ones are ignored.

    Log updates, counter increments and the campaign's completion commit together, so the stats always agree
    with the logs and a crash cannot leave a finished campaign SENDING. A handful of bulk operations per batch
    keeps the transaction short, whatever the batch size.
    """
    outcomes = list(outcomes)
    with db.client.start_session() as session:
        applied = session.with_transaction(lambda s: apply_outcomes(db, s, outcomes, only_if))
    return applied, len(outcomes) - applied


def apply_outcomes(db: Database, session: ClientSession, outcomes: list[Outcome], only_if: dict | None = None) -> int:
    """record_outcomes' work inside the caller's transaction; how many logs moved."""
    latest = {o.log_id: o for o in outcomes}
    queued = list(db[LOGS].find({"_id": {"$in": list(latest)}, "status": QUEUED, **(only_if or {})},
                                {"campaign_id": 1, "vendor_message_id": 1}, session=session))
    moving = [log for log in queued if _answers(latest[log["_id"]], log)]
    if not moving:
        return 0
    now = utcnow()
    db[LOGS].bulk_write([UpdateOne({"_id": log["_id"], "status": QUEUED}, {
        "$set": _changes(latest[log["_id"]], now), "$unset": {"claimed_until": "", "due_at": ""}})
        for log in moving], ordered=False, session=session)
    per_campaign: dict[ObjectId, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for log in moving:
        per_campaign[log["campaign_id"]][f"stats.{latest[log['_id']].status.lower()}"] += 1
    for campaign_id, counts in per_campaign.items():
        db[CAMPAIGNS].update_one({"_id": campaign_id}, {"$inc": {
            **counts, "stats.queued": -sum(counts.values())}}, session=session)
        complete_in(db, campaign_id, session)
    return len(moving)


def _answers(outcome: Outcome, log: dict) -> bool:
    """A receipt must name the message the vendor accepted for this log (or the send not yet recorded)."""
    return outcome.vendor_message_id is None or log.get("vendor_message_id") in (None, outcome.vendor_message_id)


def _changes(outcome: Outcome, now: datetime) -> dict:
    changes = {"status": outcome.status, "updated_at": now, "delivered_at": outcome.at or now,
               "reason": outcome.reason}
    if outcome.vendor_message_id:
        changes["vendor_message_id"] = outcome.vendor_message_id
    return {**changes, **(outcome.also or {})}


def complete_in(db: Database, campaign_id: ObjectId, session: ClientSession | None = None) -> bool:
    """COMPLETED once the fan-out has finished and no log is still QUEUED; in the caller's transaction if given."""
    result = db[CAMPAIGNS].update_one(
        {"_id": campaign_id, "fanout.done": True, "stats.queued": 0, "status": {"$ne": COMPLETED}},
        {"$set": {"status": COMPLETED, "completed_at": utcnow()}}, session=session)
    return result.modified_count == 1
