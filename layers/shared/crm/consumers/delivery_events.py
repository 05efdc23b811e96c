"""The e-mail channel's delivery-event consumer: SES events, one EventBridge event per SQS message."""
from __future__ import annotations

import json
from typing import Any

from crm.channels import ses_events
from crm.consumers import make_sqs_handler
from crm.db import get_db

QUEUE_KIND = "ses_events"


def apply_records(records: list[Any], _deadline: float | None = None) -> None:
    ses_events.apply_events(get_db(), records)


delivery_event_handler = make_sqs_handler(QUEUE_KIND, apply_records, read=lambda body: [json.loads(body)])
