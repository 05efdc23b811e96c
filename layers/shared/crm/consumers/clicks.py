"""The click consumer: clicks the redirect queued, applied to their logs a batch at a time."""
from __future__ import annotations

from typing import Any

from crm.config import get_settings
from crm.consumers import make_sqs_batch_handler
from crm.db import get_db
from crm.engagement import clicks


def apply_records(records: list[Any], _deadline: float | None = None) -> None:
    clicks.apply(get_db(), records, get_settings().roll_up_seconds)


click_handler = make_sqs_batch_handler(clicks.QUEUE_KIND, apply_records, read=clicks.read)
