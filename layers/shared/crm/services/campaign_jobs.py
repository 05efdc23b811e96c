"""The campaign pipeline's queue messages: a fan-out job, and sends packed one vendor call to a message."""
from __future__ import annotations

from typing import Any

from bson import ObjectId

from crm import queues
from crm.channels import CALL_BUDGET_SECONDS, sends_per_message
from crm.config import Settings
from crm.services import campaigns, sending


def queue_fan_out(settings: Settings, campaign_id: ObjectId, delay_seconds: int = 0) -> None:
    queues.enqueue(settings.sqs_campaign_fanout_queue_url, campaigns.QUEUE_KIND, [{"campaign_id": str(campaign_id)}],
                   settings, delay_seconds=delay_seconds)


def queue_sweep(settings: Settings, campaign_id: ObjectId, after: ObjectId | None = None) -> None:
    """What a resume or a cancel implies for the campaign's logs (crm.services.sweep), run by the fan-out consumer;
    a continuation goes on after the log its run reached."""
    record = {"campaign_id": str(campaign_id), "job": "sweep", **({"after": str(after)} if after else {})}
    queues.enqueue(settings.sqs_campaign_fanout_queue_url, campaigns.QUEUE_KIND, [record], settings)


def queue_sends(settings: Settings, sends: list[dict[str, Any]], delay_seconds: int = 0,
                rate_per_minute: int | None = None) -> None:
    """Packed as many to a message as one send call can send at the channel's rate (and the campaign's)."""
    if sends:
        per_message = sends_per_message(settings)
        if rate_per_minute:
            per_message = max(1, min(per_message, rate_per_minute * CALL_BUDGET_SECONDS // 60))
        queues.enqueue(settings.sqs_campaign_send_queue_url, sending.QUEUE_KIND, sends, settings,
                       delay_seconds=delay_seconds, max_records=per_message)
