"""Delivery outcomes: a log's status only moves forward, and the campaign's counters move with it."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from bson import ObjectId
from pymongo.database import Database

from crm.db import CAMPAIGNS, LOGS
from crm.models.campaigns import COMPLETED, QUEUED
from crm.models.common import utcnow


@dataclass(frozen=True)
class Outcome:
    log_id: ObjectId
    status: str  # SENT | FAILED
    vendor_message_id: str | None = None
    at: datetime | None = None
    reason: str | None = None


def record_outcomes(db: Database, outcomes: Iterable[Outcome]) -> tuple[int, int]:
    """Applies each outcome to a QUEUED log only; returns (applied, ignored). Duplicates and late ones are ignored.

    Log updates and counter increments commit together, so the stats always agree with the logs.
    """
    outcomes = list(outcomes)

    def apply(session) -> tuple[int, set[ObjectId]]:
        per_campaign: dict[ObjectId, dict[str, int]] = defaultdict(lambda: {"sent": 0, "failed": 0})
        now = utcnow()
        for outcome in outcomes:
            match = {"_id": outcome.log_id, "status": QUEUED}
            if outcome.vendor_message_id:
                match["vendor_message_id"] = {"$in": [outcome.vendor_message_id, None]}
            changes = {"status": outcome.status, "updated_at": now, "delivered_at": outcome.at or now,
                       "failure_reason": outcome.reason}
            if outcome.vendor_message_id:
                changes["vendor_message_id"] = outcome.vendor_message_id
            log = db[LOGS].find_one_and_update(match, {"$set": changes, "$unset": {"claimed_until": ""}},
                                               projection={"campaign_id": 1}, session=session)
            if log is not None:
                per_campaign[log["campaign_id"]][outcome.status.lower()] += 1
        for campaign_id, counts in per_campaign.items():
            db[CAMPAIGNS].update_one({"_id": campaign_id}, {"$inc": {
                "stats.sent": counts["sent"], "stats.failed": counts["failed"],
                "stats.queued": -(counts["sent"] + counts["failed"])}}, session=session)
        return sum(sum(c.values()) for c in per_campaign.values()), set(per_campaign)

    with db.client.start_session() as session:
        applied, campaign_ids = session.with_transaction(apply)
    for campaign_id in campaign_ids:
        complete_if_done(db, campaign_id)
    return applied, len(outcomes) - applied


def complete_if_done(db: Database, campaign_id: ObjectId) -> bool:
    """COMPLETED once the fan-out has finished and no log is still QUEUED."""
    result = db[CAMPAIGNS].update_one(
        {"_id": campaign_id, "fanout.done": True, "stats.queued": 0, "status": {"$ne": COMPLETED}},
        {"$set": {"status": COMPLETED, "completed_at": utcnow()}})
    return result.modified_count == 1
