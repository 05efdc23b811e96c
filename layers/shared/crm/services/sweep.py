"""What a resume or a cancel implies for a campaign's logs, done by the fan-out consumer in pages: a resume queues
again the sends a pause parked; a cancel settles every log not yet handed over as SKIPPED cancelled. A sweep that
dies is started again by the reconciler (the campaign's `sweep` mark stays until one finishes)."""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Callable

from bson import ObjectId
from pymongo.database import Database

from crm.db import CAMPAIGNS, LOGS
from crm.models.campaigns import CANCELLED, QUEUED, SKIPPED
from crm.models.common import utcnow
from crm.services import lifecycle
from crm.services.delivery import Outcome, record_outcomes
from crm.services.sending import send_record

PAGE = 1000
QueueSends = Callable[[list[dict[str, Any]], dict[str, Any]], None]


def sweep(db: Database, campaign_id: ObjectId, queue_sends: QueueSends, continue_later: Callable[[], None],
          time_budget_seconds: float, send_timeout: timedelta, roll_up_every: float = 0) -> bool:
    """True once the sweep is over (or there is none to do); past the time budget it queues its continuation."""
    started = time.monotonic()
    campaign = db[CAMPAIGNS].find_one({"_id": campaign_id}, {"status": 1, "sweep": 1, "rate_per_minute": 1})
    if campaign is None or not (campaign.get("sweep") or {}).get("pending"):
        return True
    if campaign["status"] == CANCELLED:
        pages = _cancel_pages(db, campaign_id, roll_up_every)
    elif lifecycle.is_running(campaign):
        pages = _resume_pages(db, campaign, queue_sends, send_timeout)
    else:
        return True  # paused again: the next resume marks a sweep of its own
    for more in pages:
        if more and time.monotonic() - started > time_budget_seconds:
            continue_later()
            return False
    db[CAMPAIGNS].update_one({"_id": campaign_id, "sweep.updated_at": campaign["sweep"]["updated_at"]},
                             {"$set": {"sweep.pending": False}})
    return True


def _cancel_pages(db: Database, campaign_id: ObjectId, roll_up_every: float):
    """SKIPPED cancelled, a page at a time, for logs not handed over and held by no live sender (a sender holding
    one finds the campaign cancelled at its next step and skips it itself)."""
    after = None
    while True:
        query: dict[str, Any] = {"campaign_id": campaign_id, "status": QUEUED, "vendor_message_id": None}
        if after is not None:
            query["_id"] = {"$lt": after}
        ids = [log["_id"] for log in db[LOGS].find(query, {"_id": 1}).sort("_id", -1).limit(PAGE)]
        if ids:
            record_outcomes(db, [Outcome(log_id, SKIPPED, reason=lifecycle.SKIPPED_CANCELLED) for log_id in ids],
                            only_if={"vendor_message_id": None, "claimed_until": {"$not": {"$gte": utcnow()}}},
                            roll_up_every=roll_up_every)
            after = ids[-1]
        yield len(ids) == PAGE
        if len(ids) < PAGE:
            return


def _resume_pages(db: Database, campaign: dict[str, Any], queue_sends: QueueSends, send_timeout: timedelta):
    """The sends a pause parked (those waiting for a time, a send window's opening, stay parked), queued again."""
    after = None
    while True:
        query: dict[str, Any] = {"campaign_id": campaign["_id"], "parked": True}
        if after is not None:
            query["_id"] = {"$gt": after}
        page = list(db[LOGS].find(query, {"due_at": 1}).sort("_id", 1).limit(PAGE))
        waiting = [log["_id"] for log in page if log.get("due_at") is None]
        taken = lifecycle.unpark(db, waiting, utcnow() + send_timeout)
        if taken:
            queue_sends([send_record(log) for log in taken], campaign)
        if page:
            after = page[-1]["_id"]
        yield len(page) == PAGE
        if len(page) < PAGE:
            return
