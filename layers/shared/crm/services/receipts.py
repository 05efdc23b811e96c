"""The vendor's delivery receipts between the receipt URL and their consumer: queued as the URL took them, applied a
batch at a time as one bulk write of log transitions and one roll-up of each campaign they touch."""
from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.database import Database

from crm import queues
from crm.config import Settings
from crm.models.campaigns import ReceiptIn
from crm.services.delivery import Outcome, record_outcomes

QUEUE_KIND = "delivery_receipts"


def queue(settings: Settings, receipts: list[ReceiptIn]) -> None:
    queues.enqueue(settings.sqs_delivery_receipt_queue_url, QUEUE_KIND,
                   [r.model_dump(mode="json", exclude_none=True) for r in receipts], settings)


def apply(db: Database, records: list[Any], roll_up_every: float) -> tuple[int, int]:
    """(applied, ignored); each record was checked by the receipt URL, and is read again here."""
    receipts = [ReceiptIn.model_validate(r) for r in records]
    return record_outcomes(db, [Outcome(ObjectId(r.log_id), r.status, r.vendor_message_id, r.timestamp, r.reason)
                                for r in receipts], roll_up_every=roll_up_every)
