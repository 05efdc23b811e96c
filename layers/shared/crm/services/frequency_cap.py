"""The frequency cap: a person already handed `n` messages of other campaigns in the last `d` days is not messaged
again (their log is SKIPPED frequency_cap). Counted from the logs' send times, on the customer_sent_at index, a
batch of recipients at a time."""
from __future__ import annotations

from datetime import datetime, timedelta

from bson import ObjectId
from pymongo.database import Database

from crm.db import LOGS, in_chunks


def parse(cap: str) -> tuple[int, int] | None:
    """("2/7d") → (2, 7); None when there is no cap."""
    if not cap:
        return None
    count, days = cap.removesuffix("d").split("/")
    return int(count), int(days)


def capped(db: Database, recipients: dict[ObjectId, tuple[ObjectId, ObjectId]], cap: tuple[int, int],
           now: datetime) -> set[ObjectId]:
    """Of these logs ({log id: (customer id, campaign id)}), those whose person has had cap[0] messages of other
    campaigns in the last cap[1] days."""
    limit, days = cap
    since = now - timedelta(days=days)
    handed: dict[ObjectId, set[ObjectId]] = {}
    for run in in_chunks(sorted({customer for customer, _ in recipients.values()})):
        for log in db[LOGS].find({"customer_id": {"$in": run}, "sent_at": {"$gte": since}},
                                 {"customer_id": 1, "campaign_id": 1}):
            handed.setdefault(log["customer_id"], set()).add(log["campaign_id"])
    return {log_id for log_id, (customer, campaign) in recipients.items()
            if len(handed.get(customer, set()) - {campaign}) >= limit}
