"""The campaign consumers' record appliers: fan-out, send, and the mock vendor's delayed receipts."""
from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import httpx
from bson import ObjectId

from crm import queues, signing
from crm.channels import get_channel
from crm.config import Settings, get_settings
from crm.consent.links import unsubscribe_url
from crm.consumers import DB_MARGIN_SECONDS, make_sqs_handler
from crm.db import get_db
from crm.engagement.links import LinkTracker
from crm.errors import DependencyUnavailable, InvalidInput
from crm.observability import logger
from crm.services import campaign_jobs, campaigns, frequency_cap, mock_vendor, sending, sweep

# What the last page and the continuation message may take at the end of the consumer's database time. The run
# pages until then: each run starts its audience query afresh, which the local server answers only after reading
# every customer after the cursor, so fewer, longer runs fan a large audience out sooner.
FANOUT_RESERVE_SECONDS = 30.0
# The run's paging time when it is not run by a Lambda (no deadline).
FANOUT_TIME_BUDGET_SECONDS = 20.0
# What recording a vendor call's outcome may take.
RECORD_SECONDS = 5


def fan_out_records(records: list[Any], deadline: float | None = None) -> None:
    """A campaign's jobs: its fan-out, or the sweep of its logs after a resume or a cancel."""
    settings, db = get_settings(), get_db()
    budget = FANOUT_TIME_BUDGET_SECONDS if deadline is None else (
        deadline - time.time() - DB_MARGIN_SECONDS - FANOUT_RESERVE_SECONDS)
    send_timeout = timedelta(seconds=settings.send_timeout_seconds)

    def queue_sends(sends: list[dict[str, Any]], campaign: dict[str, Any]) -> None:
        campaign_jobs.queue_sends(settings, sends, rate_per_minute=campaign.get("rate_per_minute"))

    for record in records:
        campaign_id = ObjectId(record["campaign_id"])
        if record.get("job") == "sweep":
            after = ObjectId(record["after"]) if record.get("after") else None
            sweep.sweep(db, campaign_id, queue_sends,
                        lambda last: campaign_jobs.queue_sweep(settings, campaign_id, last),
                        budget, send_timeout, settings.roll_up_seconds, after)
            continue
        campaigns.fan_out(db, campaign_id, queue_sends, lambda: campaign_jobs.queue_fan_out(settings, campaign_id),
                          budget, send_timeout, lambda customer_id: unsubscribe_url(settings, customer_id))


def send_records(records: list[Any], deadline: float | None = None) -> None:
    settings = get_settings()
    # Sends stop where the database time ends (make_sqs_handler's margin), less the time to record the last call.
    send_by = None if deadline is None else deadline - DB_MARGIN_SECONDS - RECORD_SECONDS
    sending.send_records(get_db(), get_channel(settings), records, send_policy(settings),
                         lambda sends, delay: campaign_jobs.queue_sends(settings, sends, delay), send_by)


def send_policy(settings: Settings) -> sending.SendPolicy:
    return sending.SendPolicy(send=timedelta(seconds=settings.send_timeout_seconds),
                              receipt=timedelta(seconds=settings.receipt_timeout_seconds),
                              max_attempts=settings.max_send_attempts, roll_up_every=settings.roll_up_seconds,
                              frequency_cap=frequency_cap.parse(settings.frequency_cap),
                              links=LinkTracker.of(settings) if settings.track_clicks else None)


def deliver_receipts(records: list[Any], _deadline: float | None = None) -> None:
    """The mock vendor reporting back: signed receipts POSTed to the receipt URL, as a vendor would.

    Like a real vendor it retries a report the receipt URL refused on a schedule of its own (30 s, doubling, up to
    15 minutes; eight tries in all), then gives up on it: the reconciler asks for the message's status instead.
    """
    settings = get_settings()
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InvalidInput("receipt records must be objects")
    attempt = max((r.get("attempt", 0) for r in records), default=0)
    receipts = [{k: v for k, v in r.items() if k != "attempt"} for r in records]
    try:
        _post_receipts(settings, receipts)
    except DependencyUnavailable as exc:
        if attempt + 1 >= mock_vendor.REPORT_ATTEMPTS:
            logger.warning("mock vendor gives up on its reports",
                           extra={"receipts": len(receipts), "error": exc.message})
            return
        queues.enqueue(settings.sqs_vendor_receipt_queue_url, mock_vendor.QUEUE_KIND,
                       [{**r, "attempt": attempt + 1} for r in receipts], settings,
                       delay_seconds=min(900, 30 * 2 ** attempt))


def _post_receipts(settings: Settings, receipts: list[dict[str, Any]]) -> None:
    body = json.dumps({"receipts": receipts}, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    signature = signing.sign(settings.secret("webhook_secret"), timestamp, body)
    try:
        reply = httpx.post(settings.receipt_url, content=body, timeout=settings.vendor_timeout_seconds,
                           headers={"Content-Type": "application/json", "X-Vendor-Timestamp": timestamp,
                                    "X-Vendor-Signature": signature})
    except httpx.TransportError as exc:
        raise DependencyUnavailable("the receipt URL is unreachable") from exc
    if reply.status_code != 202:
        raise DependencyUnavailable(f"the receipt URL answered {reply.status_code}")


campaign_fanout_handler = make_sqs_handler(campaigns.QUEUE_KIND, fan_out_records)
campaign_send_handler = make_sqs_handler(sending.QUEUE_KIND, send_records)
vendor_receipt_handler = make_sqs_handler(mock_vendor.QUEUE_KIND, deliver_receipts)
