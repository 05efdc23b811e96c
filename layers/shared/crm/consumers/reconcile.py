"""The scheduled reconciler's handler, bound to this container's database, queues and vendor."""
from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

import pymongo

from crm import queues
from crm.channels import get_channel
from crm.config import get_settings
from crm.consumers import DB_MARGIN_SECONDS
from crm.db import get_db, time_budget
from crm.models.common import utcnow
from crm.observability import logger
from crm.services import campaign_jobs
from crm.services.reconcile import Limits, reconcile

# Left for the last page's writes when the run stops.
STOP_BEFORE_TIMEOUT_SECONDS = 15


@logger.inject_lambda_context(clear_state=True)
def reconcile_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    settings = get_settings()
    limits = Limits(send_timeout=timedelta(seconds=settings.send_timeout_seconds),
                    receipt_timeout=timedelta(seconds=settings.receipt_timeout_seconds),
                    max_send_attempts=settings.max_send_attempts,
                    fanout_stall=timedelta(seconds=settings.fanout_stall_seconds),
                    roll_up_every=settings.roll_up_seconds, attribution_days=settings.attribution_days)
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 60
    # The database work ends before the invocation: no transaction is left behind by a run cut off at its timeout.
    with pymongo.timeout(time_budget(remaining, DB_MARGIN_SECONDS)):
        settled = reconcile(get_db(), utcnow(), limits, get_channel(settings).status,
                            lambda sends: campaign_jobs.queue_sends(settings, sends),
                            lambda campaign_id: campaign_jobs.queue_fan_out(settings, campaign_id),
                            time.time() + remaining - STOP_BEFORE_TIMEOUT_SECONDS,
                            lambda: queues.holds_messages(settings.sqs_campaign_send_queue_url, settings),
                            lambda campaign_id: campaign_jobs.queue_sweep(settings, campaign_id))
    counts = dataclasses.asdict(settled)
    logger.info("reconciled", extra=counts)
    return counts
