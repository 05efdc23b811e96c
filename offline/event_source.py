"""Lambda's SQS event source mapping, done locally: poll, invoke with a batch, delete what succeeded."""
from __future__ import annotations

import hashlib
import threading
import time
from typing import Any, Callable

from offline.invoker import InvocationError, InvocationTimeout
from offline.template import LocalQueue, SqsSource

MAX_RECEIVE = 10


def sqs_event(messages: list[dict[str, Any]], queue: LocalQueue, region: str = "us-east-1") -> dict[str, Any]:
    return {"Records": [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": {name: {"stringValue": a.get("StringValue"), "binaryValue": a.get("BinaryValue"),
                                     "stringListValues": [], "binaryListValues": [], "dataType": a["DataType"]}
                              for name, a in (m.get("MessageAttributes") or {}).items()},
        "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": region,
    } for m in messages]}


def failed_message_ids(result: Any, batch: list[dict[str, Any]], report_failures: bool) -> set[str]:
    """The messages Lambda returns to the queue after an invocation that did not raise.

    As documented for ReportBatchItemFailures: no reply or no failures list is full success; a
    reply of the wrong shape, or an identifier that is empty or not in the batch, fails it all.
    """
    if not report_failures or result is None:
        return set()
    all_ids = {m["MessageId"] for m in batch}
    if not isinstance(result, dict):
        return all_ids
    failures = result.get("batchItemFailures") or []
    if not isinstance(failures, list) or not all(isinstance(f, dict) for f in failures):
        return all_ids
    ids = {f.get("itemIdentifier") for f in failures}
    return ids if ids <= all_ids else all_ids


class SqsPoller(threading.Thread):
    """One poller per concurrent consumer, like a Lambda event source mapping's pollers."""

    def __init__(self, sqs, function: str, queue: LocalQueue, source: SqsSource,
                 invoke: Callable[[str, dict[str, Any]], Any], log: Callable[[str, str], None],
                 stop: threading.Event, retry_delay_seconds: int):
        super().__init__(name=f"poller-{function}", daemon=True)
        self.sqs = sqs
        self.function = function
        self.queue = queue
        self.source = source
        self.invoke = invoke
        self.log = log
        self.stop_event = stop
        self.retry_delay_seconds = retry_delay_seconds

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - keep polling, as the managed mapping does
                self.log("sqs", f"{self.queue.name}: polling failed: {type(exc).__name__}: {exc}")
                self.stop_event.wait(1)

    def poll_once(self, wait_seconds: int = 1) -> int:
        batch = self.sqs.receive_message(
            QueueUrl=self.queue.url, MaxNumberOfMessages=min(self.source.batch_size, MAX_RECEIVE),
            WaitTimeSeconds=wait_seconds, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            return 0
        started = time.perf_counter()
        try:
            result = self.invoke(self.function, sqs_event(batch, self.queue))
            failed = failed_message_ids(result, batch, self.source.report_failures)
        except (InvocationError, InvocationTimeout) as exc:
            self.log("sqs", f"{self.queue.name}: {self.function} failed the whole batch: {exc}")
            failed = {m["MessageId"] for m in batch}
        self.log("sqs", f"{self.queue.name}: {len(batch)} message(s) -> {self.function} "
                        f"{(time.perf_counter() - started) * 1000:.0f} ms, {len(failed)} failed")
        done = [m for m in batch if m["MessageId"] not in failed]
        retry = [m for m in batch if m["MessageId"] in failed]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue.url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        if retry:
            # Lambda waits out the visibility timeout; locally a short delay keeps retries quick.
            self.sqs.change_message_visibility_batch(QueueUrl=self.queue.url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.retry_delay_seconds}
                for i, m in enumerate(retry)])
            self.log("sqs", f"{self.queue.name}: {len(retry)} of {len(batch)} message(s) returned to the queue")
        return len(batch)
