"""The mock messaging vendor: accepts at once, reports each message later through a delayed queue message."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any, Callable

from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from crm.config import Settings
from crm.db import only_duplicates
from crm.models.campaigns import FAILED, SENT, VendorSendIn
from crm.models.common import to_iso, utcnow

QUEUE_KIND = "receipts"
# How often the mock vendor tries to deliver a report before it gives up on it.
REPORT_ATTEMPTS = 8
KEEP = timedelta(days=7)

ScheduleReceipts = Callable[[list[dict[str, Any]], int], None]


def outcome_for(seed: str, log_id: str, failure_rate: float) -> str:
    """≈ failure_rate of messages fail; the same log always gets the same outcome, so tests can predict it."""
    draw = int.from_bytes(hashlib.sha256(f"{seed}:{log_id}".encode()).digest()[:8], "big") / 2**64
    return FAILED if draw < failure_rate else SENT


def accept(messages: Collection, settings: Settings, sends: list[VendorSendIn],
           schedule: ScheduleReceipts) -> dict[str, str]:
    """The vendor message id of each log_id; a repeated log_id gets its first id back and no second receipt."""
    now = utcnow()
    ids = {s.log_id: "vm_" + hashlib.sha256(f"{settings.mock_vendor_seed}:{s.log_id}".encode()).hexdigest()[:24]
           for s in sends}
    try:
        messages.insert_many([{"_id": log_id, "vendor_message_id": vendor_id, "scheduled": False, "created_at": now,
                               "expires_at": now + KEEP} for log_id, vendor_id in ids.items()], ordered=False)
    except BulkWriteError as exc:
        if not only_duplicates(exc):
            raise
    # Each message's report is taken once, with a token: two calls for the same log_id at once schedule one.
    token = secrets.token_hex(8)
    messages.update_many({"_id": {"$in": list(ids)}, "scheduled": False}, {"$set": {"scheduled": token}})
    receipts = []
    for doc in messages.find({"_id": {"$in": list(ids)}, "scheduled": token}, {"_id": 1}):
        log_id = doc["_id"]
        status = outcome_for(settings.mock_vendor_seed, log_id, settings.mock_vendor_failure_rate)
        receipt = {"vendor_message_id": ids[log_id], "log_id": log_id, "status": status, "timestamp": to_iso(now)}
        if status == FAILED:
            receipt["reason"] = "recipient unreachable"
        receipts.append(receipt)
    if receipts:
        # Should this fail, the reports are lost, as a real vendor's can be: the reconciler asks for the status.
        schedule(receipts, settings.mock_vendor_delay_seconds)
    return ids


def status_of(messages: Collection, settings: Settings, vendor_message_id: str) -> dict[str, str] | None:
    """What became of a message: ACCEPTED until its report is due, then the outcome the report carries."""
    doc = messages.find_one({"vendor_message_id": vendor_message_id})
    if doc is None:
        return None
    reported = utcnow() >= doc["created_at"] + timedelta(seconds=settings.mock_vendor_delay_seconds)
    status = outcome_for(settings.mock_vendor_seed, doc["_id"], settings.mock_vendor_failure_rate) if reported \
        else "ACCEPTED"
    return {"vendor_message_id": vendor_message_id, "log_id": doc["_id"], "status": status}
