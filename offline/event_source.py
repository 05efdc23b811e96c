"""Lambda's SQS event source mapping, done locally: poll, invoke with a batch, delete what succeeded."""
from __future__ import annotations

import hashlib
import threading
import time
from typing import Any, Callable

from offline.faults import Faults
from offline.invoker import InvocationError, InvocationTimeout, WorkerKilled
from offline.template import LocalQueue, SqsSource

MAX_RECEIVE = 10
# sqs_kill strikes this many seconds or less into an invocation (real time: it races the handler's own work).
KILL_WINDOW_SECONDS = 2.0
# sqs_dup's second delivery after a success comes back within this (divided by the time scale).
REDELIVERY_DELAY_SECONDS = 10


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
    """One poller per concurrent consumer, like a Lambda event source mapping's pollers.

    A failed batch (an error, a timeout, a killed worker) is left to the queue, which shows it again after its
    VisibilityTimeout, as Lambda does; retry_delay_seconds, when given, makes it visible after that instead
    (tests use 0 to drain quickly).
    """

    def __init__(self, sqs, function: str, queue: LocalQueue, source: SqsSource,
                 invoke: Callable[..., Any], log: Callable[[str, str], None],
                 stop: threading.Event | None, retry_delay_seconds: int | None = None,
                 faults: Faults | None = None, time_scale: float = 1.0):
        super().__init__(name=f"poller-{function}", daemon=True)
        self.sqs = sqs
        self.function = function
        self.queue = queue
        self.source = source
        self.invoke = invoke
        self.log = log
        self.stop_event = stop
        self.retry_delay_seconds = retry_delay_seconds
        self.faults = faults if faults is not None and faults.active else None
        self.time_scale = time_scale

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
        event = sqs_event(batch, self.queue)
        started = time.perf_counter()
        duplicate = self.faults.choice(("concurrent", "after")) if self.faults and self.faults.should("sqs_dup") \
            else None
        if duplicate == "concurrent":
            self._deliver_concurrently(event, len(batch))
        try:
            result = self._invoke(event)
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
            if duplicate == "after":
                self._deliver_again(done)
        if retry and self.retry_delay_seconds is not None:
            self.sqs.change_message_visibility_batch(QueueUrl=self.queue.url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.retry_delay_seconds}
                for i, m in enumerate(retry)])
            self.log("sqs", f"{self.queue.name}: {len(retry)} of {len(batch)} message(s) returned to the queue")
        elif retry:
            self.log("sqs", f"{self.queue.name}: {len(retry)} of {len(batch)} message(s) return to the queue "
                            f"after its visibility timeout")
        return len(batch)

    def _invoke(self, event: dict[str, Any]) -> Any:
        if not (self.faults and self.faults.should("sqs_kill")):
            return self.invoke(self.function, event)
        after = self.faults.uniform(0, KILL_WINDOW_SECONDS)
        try:
            return self.invoke(self.function, event, kill_after=after)
        except WorkerKilled:
            self.faults.count("sqs_kill")
            self.log("faults", f"sqs_kill: {self.function} killed {after:.2f} s into a batch of "
                               f"{len(event['Records'])} from {self.queue.name}")
            raise

    def _deliver_concurrently(self, event: dict[str, Any], size: int) -> None:
        """sqs_dup: the same batch to a second worker at the same time; its outcome decides nothing."""
        self.faults.count("sqs_dup", size)
        self.log("faults", f"sqs_dup: {size} message(s) of {self.queue.name} also to a second {self.function}")

        def deliver() -> None:
            try:
                self.invoke(self.function, event)
                outcome = "succeeded"
            except (InvocationError, InvocationTimeout) as exc:
                outcome = f"failed: {exc}"
            self.log("faults", f"sqs_dup: the second delivery to {self.function} {outcome}")

        threading.Thread(target=deliver, name=f"sqs-dup-{self.function}", daemon=True).start()

    def _deliver_again(self, messages: list[dict[str, Any]]) -> None:
        """sqs_dup: messages handled successfully come back once more, a little later, as SQS may redeliver."""
        delay = round(self.faults.uniform(0, REDELIVERY_DELAY_SECONDS) / self.time_scale)
        self.sqs.send_message_batch(QueueUrl=self.queue.url, Entries=[
            {"Id": str(i), "MessageBody": m["Body"], "DelaySeconds": min(delay, 900),
             **({"MessageAttributes": m["MessageAttributes"]} if m.get("MessageAttributes") else {})}
            for i, m in enumerate(messages)])
        self.faults.count("sqs_dup", len(messages))
        self.log("faults", f"sqs_dup: {len(messages)} message(s) of {self.queue.name} delivered again in {delay} s")
