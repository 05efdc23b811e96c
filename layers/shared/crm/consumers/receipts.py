"""The delivery-receipt consumer: receipts the receipt URL verified and queued, applied a batch at a time."""
from __future__ import annotations

from typing import Any

from crm.config import get_settings
from crm.consumers import make_sqs_batch_handler
from crm.db import get_db
from crm.services import receipts


def apply_records(records: list[Any], _deadline: float | None = None) -> None:
    receipts.apply(get_db(), records, get_settings().roll_up_seconds)


delivery_receipt_handler = make_sqs_batch_handler(receipts.QUEUE_KIND, apply_records)
