"""The scheduled roll-up: each campaign's counters catch up with the tallies its logs hold, every ROLL_UP_SECONDS
for the rest of its invocation while a campaign is sending or completed lately (EventBridge schedules a minute at
the finest), once when none is. One runs at a time (a lease on the database): a tick that finds one running
returns at once. With the consumers' own roll-ups (at most one a campaign per ROLL_UP_SECONDS), a counter matches
its logs within about two of those periods, however the outcomes came."""
from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import Any

import pymongo
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from crm.config import get_settings
from crm.consumers import DB_MARGIN_SECONDS
from crm.db import CAMPAIGNS, LEASES, get_db, time_budget
from crm.models.campaigns import CANCELLED, COMPLETED, PAUSED, SENDING
from crm.models.common import utcnow
from crm.observability import logger
from crm.services.delivery import roll_up_pending

# A pass that would start this close to the end of the invocation's database time is left to the next invocation
# (scheduled a minute after this one started, as the function's timeout is): the gap between the two stays short.
# A last pass that runs out of that time is aborted whole; its tallies wait for the next.
LAST_PASS_SECONDS = 2
# Opens, clicks and complaints keep coming after a campaign completes: it is rolled up as often for this long.
AFTER_COMPLETION = timedelta(minutes=30)
LEASE = "roll_up"


@logger.inject_lambda_context(clear_state=True)
def roll_up_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    settings, db = get_settings(), get_db()
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 0
    database_seconds = time_budget(remaining, DB_MARGIN_SECONDS)
    stop_at = time.time() + database_seconds - LAST_PASS_SECONDS
    passes = counted = 0
    holder = secrets.token_hex(8)
    with pymongo.timeout(database_seconds):
        if not _take_lease(db, holder, remaining):
            return {"passes": 0, "tallies": 0}
    try:
        with pymongo.timeout(database_seconds):
            while True:
                started = time.time()
                try:
                    # A campaign a consumer rolled up in the last half period is left to the next pass; one a
                    # fan-out's page holds is waited for, up to a period.
                    counted += roll_up_pending(db, settings.roll_up_seconds / 2,
                                               patience=min(settings.roll_up_seconds, stop_at - time.time()))
                except PyMongoError as exc:
                    if not exc.timeout:
                        raise
                    logger.warning("the last roll-up pass ran out of time; the next invocation counts its tallies")
                    break
                passes += 1
                next_at = started + max(settings.roll_up_seconds, 1.0)
                if next_at >= stop_at or not _active(db):
                    break
                time.sleep(max(0.0, next_at - time.time()))
    finally:
        # Also after the passes ran out of time: the next tick need not wait for the lease to lapse.
        with pymongo.timeout(DB_MARGIN_SECONDS):
            db[LEASES].delete_one({"_id": LEASE, "holder": holder})
    logger.info("rolled up", extra={"passes": passes, "tallies": counted})
    return {"passes": passes, "tallies": counted}


def _active(db: Database) -> bool:
    """A campaign is sending or paused, or completed or cancelled lately (its events still come)."""
    return bool(db[CAMPAIGNS].find_one({"status": {"$in": [SENDING, PAUSED]}}, {"_id": 1}) or db[CAMPAIGNS].find_one(
        {"status": {"$in": [COMPLETED, CANCELLED]}, "completed_at": {"$gte": utcnow() - AFTER_COMPLETION}},
        {"_id": 1}))


def _take_lease(db: Database, holder: str, seconds: float) -> bool:
    """Whether this run may roll up: no other live run holds the lease (one that died lets it lapse)."""
    now = utcnow()
    try:
        taken = db[LEASES].update_one({"_id": LEASE, "until": {"$lt": now}},
                                      {"$set": {"until": now + timedelta(seconds=seconds), "holder": holder}},
                                      upsert=True)
    except DuplicateKeyError:
        return False  # held, and live
    return bool(taken.modified_count or taken.upserted_id)
