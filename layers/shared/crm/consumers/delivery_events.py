"""The e-mail channel's delivery-event consumer: SES events, one EventBridge event per SQS message, applied a batch
at a time."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from crm.channels import ses_events
from crm.config import get_settings
from crm.consumers import make_sqs_batch_handler
from crm.db import get_db
from crm.services import email_events

QUEUE_KIND = "ses_events"


def apply_records(records: list[Any], _deadline: float | None = None) -> None:
    settings = get_settings()
    email_events.apply_events(get_db(), records, timedelta(seconds=settings.receipt_timeout_seconds),
                              settings.roll_up_seconds, ses_counts_clicks=not settings.track_clicks)


delivery_event_handler = make_sqs_batch_handler(QUEUE_KIND, apply_records,
                                                read=lambda body: [ses_events.read(json.loads(body))])
