"""The scheduled roll-up: every ROLL_UP_SECONDS for the whole of its invocation (scheduled each minute), each
campaign's counters catch up with the tallies its logs hold. With the consumers' own roll-ups (at most one a campaign
per ROLL_UP_SECONDS), a counter matches its logs within about two of those periods, however the outcomes came."""
from __future__ import annotations

import time
from typing import Any

import pymongo

from crm.config import get_settings
from crm.consumers import DB_MARGIN_SECONDS
from crm.db import get_db, time_budget
from crm.observability import logger
from crm.services.delivery import pending_campaigns, roll_up

# A pass that would start this close to the invocation's end is left to the next invocation.
STOP_BEFORE_TIMEOUT_SECONDS = 10


@logger.inject_lambda_context(clear_state=True)
def roll_up_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    settings, db = get_settings(), get_db()
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 0
    stop_at = time.time() + remaining - STOP_BEFORE_TIMEOUT_SECONDS
    passes = counted = 0
    while True:
        started = time.time()
        with pymongo.timeout(time_budget(stop_at - started + STOP_BEFORE_TIMEOUT_SECONDS, DB_MARGIN_SECONDS)):
            counted += sum(roll_up(db, campaign_id) for campaign_id in pending_campaigns(db))
        passes += 1
        next_at = started + max(settings.roll_up_seconds, 1.0)
        if next_at >= stop_at:
            break
        time.sleep(max(0.0, next_at - time.time()))
    logger.info("rolled up", extra={"passes": passes, "tallies": counted})
    return {"passes": passes, "tallies": counted}
