"""SQS access: records packed many to a message, one client per container."""
from __future__ import annotations

import threading
from typing import Any, Iterable, Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from crm.config import Settings, get_settings
from crm.errors import DependencyUnavailable, translate_as
from crm.messages import pack

MAX_MESSAGES_PER_BATCH_CALL = 10

translate_as((BotoCoreError, ClientError), DependencyUnavailable)

_clients: dict[tuple[str | None, str], Any] = {}
_lock = threading.Lock()


def get_sqs(settings: Settings | None = None):
    settings = settings or get_settings()
    key = (settings.sqs_endpoint_url, settings.aws_region)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = boto3.client(
                "sqs",
                endpoint_url=settings.sqs_endpoint_url,
                region_name=settings.aws_region,
                config=Config(
                    connect_timeout=settings.sqs_timeout_seconds,
                    read_timeout=settings.sqs_timeout_seconds,
                    retries={"max_attempts": 3, "mode": "standard"},
                ),
            )
            _clients[key] = client
    return client


def _batches(bodies: list[str], max_bytes: int) -> Iterator[list[str]]:
    """Groups for SendMessageBatch: at most 10 messages and max_bytes in all per call."""
    batch: list[str] = []
    size = 0
    for body in bodies:
        body_bytes = len(body.encode())
        if batch and (len(batch) == MAX_MESSAGES_PER_BATCH_CALL or size + body_bytes > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(body)
        size += body_bytes
    if batch:
        yield batch


def enqueue(queue_url: str, kind: str, records: Iterable[dict[str, Any]], settings: Settings | None = None,
            delay_seconds: int = 0, max_records: int | None = None) -> int:
    """Sends the records packed into as few messages as fit (at most max_records each, if given); returns how
    many messages were sent."""
    settings = settings or get_settings()
    if not queue_url:
        raise DependencyUnavailable(f"no queue is configured for {kind}")
    bodies = pack(kind, list(records), settings.sqs_max_message_bytes, max_records)
    sqs = get_sqs(settings)
    for batch in _batches(bodies, settings.sqs_max_message_bytes):
        entries = [{"Id": str(i), "MessageBody": body, **({"DelaySeconds": delay_seconds} if delay_seconds else {})}
                   for i, body in enumerate(batch)]
        for _attempt in range(3):
            failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
            if not failed:
                break
            failed_ids = {f["Id"] for f in failed}
            entries = [e for e in entries if e["Id"] in failed_ids]
        else:
            raise DependencyUnavailable(f"the {kind} queue refused {len(entries)} message(s)")
    return len(bodies)


def check(queue_url: str, settings: Settings | None = None) -> None:
    get_sqs(settings).get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])


IN_QUEUE = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed")


def holds_messages(queue_url: str, settings: Settings | None = None) -> bool:
    """Whether the queue holds any message: waiting, in flight or delayed. SQS's counts are approximate and may lag
    about a minute: an idle answer can be wrong, and what the reconciler then queues again is only sent once (the
    claims and the vendor's idempotency key keep it so)."""
    attributes = get_sqs(settings).get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(IN_QUEUE))
    return any(int(attributes.get("Attributes", {}).get(name, 0)) for name in IN_QUEUE)
