"""What a resume or a cancel implies for a campaign's logs, done by the fan-out consumer in pages: a resume queues
again the sends a pause parked; a cancel settles every log not yet handed over as SKIPPED cancelled. A sweep that
dies is started again by the reconciler (the campaign's `sweep` mark stays until one finishes); a live sweep
renews the mark at each page, and stops if another has taken it over."""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Callable, Iterator

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
# Queues the sweep's continuation, from after this log.
ContinueFrom = Callable[[ObjectId], None]


def sweep(db: Database, campaign_id: ObjectId, queue_sends: QueueSends, continue_later: ContinueFrom,
          time_budget_seconds: float, send_timeout: timedelta, roll_up_every: float = 0,
          after: ObjectId | None = None) -> bool:
    """True once the sweep is over (or there is none to do); past the time budget it queues its continuation."""
    started = time.monotonic()
    campaign = db[CAMPAIGNS].find_one({"_id": campaign_id}, {"status": 1, "sweep": 1, "rate_per_minute": 1})
    if campaign is None or not (campaign.get("sweep") or {}).get("pending"):
        return True
    if campaign["status"] == CANCELLED:
        pages = _cancel_pages(db, campaign_id, roll_up_every, after)
    elif lifecycle.is_running(campaign):
        pages = _resume_pages(db, campaign, queue_sends, send_timeout, after)
    else:
        return True  # paused again: the next resume marks a sweep of its own
    mark = campaign["sweep"]["updated_at"]
    for last in pages:
        renewed = utcnow()
        if not db[CAMPAIGNS].update_one({"_id": campaign_id, "sweep.updated_at": mark},
                                        {"$set": {"sweep.updated_at": renewed}}).modified_count:
            return True  # a later resume or cancel, or the reconciler, has started the sweep again
        mark = renewed
        if last is not None and time.monotonic() - started > time_budget_seconds:
            continue_later(last)
            return False
    db[CAMPAIGNS].update_one({"_id": campaign_id, "sweep.updated_at": mark}, {"$set": {"sweep.pending": False}})
    return True


def _cancel_pages(db: Database, campaign_id: ObjectId, roll_up_every: float,
                  after: ObjectId | None) -> Iterator[ObjectId | None]:
    """SKIPPED cancelled, a page at a time (newest first), for logs not handed over and held by no live sender (a
    sender holding one finds the campaign cancelled at its next step and skips it itself). Yields the page's last
    log while more may follow, else None."""
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
        yield after if len(ids) == PAGE else None
        if len(ids) < PAGE:
            return


def _resume_pages(db: Database, campaign: dict[str, Any], queue_sends: QueueSends, send_timeout: timedelta,
                  after: ObjectId | None) -> Iterator[ObjectId | None]:
    """The sends a pause parked (those waiting for a time, a send window's opening, stay parked), queued again:
    queued before they leave the park, so that a sweep that dies between the two leaves them to its restart."""
    while True:
        query: dict[str, Any] = {"campaign_id": campaign["_id"], "parked": True}
        if after is not None:
            query["_id"] = {"$gt": after}
        page = list(db[LOGS].find(query, {"due_at": 1}).sort("_id", 1).limit(PAGE))
        waiting = [log["_id"] for log in page if log.get("due_at") is None]
        lifecycle.unpark(db, waiting, utcnow() + send_timeout,
                         lambda logs: queue_sends([send_record(log) for log in logs], campaign))
        if page:
            after = page[-1]["_id"]
        yield after if len(page) == PAGE else None
        if len(page) < PAGE:
            return
