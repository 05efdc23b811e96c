"""SQS consumers: Powertools batch processing with partial failures, one message = many records."""
from __future__ import annotations

import time
from typing import Any, Callable

import pymongo
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from crm.db import time_budget
from crm.errors import CRMError
from crm.messages import unpack
from crm.observability import logger

# Applies a message's records; given when the invocation is cut off (seconds since the epoch), if known.
RecordsApplier = Callable[[list[Any], float | None], Any]
# Below this much time left, the remaining messages of a batch go back to the queue untouched
# rather than risk being cut off by the function timeout halfway through a bulk write.
MIN_REMAINING_MS = 10_000
# What is left of the invocation after its database work, to report the batch's outcome.
DB_MARGIN_SECONDS = 5


class NotStarted(Exception):
    """Too little time was left to apply this message; it is retried in a later invocation."""


def packed(kind: str) -> Callable[[str], list[Any]]:
    """The records of one of our own messages of this kind."""
    def read(body: str) -> list[Any]:
        message_kind, records = unpack(body)
        if message_kind != kind:
            raise ValueError(f"expected a {kind} message, got {message_kind!r}")
        return records
    return read


def make_sqs_handler(kind: str, apply_records: RecordsApplier, read: Callable[[str], list[Any]] | None = None
                     ) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """A Lambda handler that applies each message's records and reports failed messages only. `read` turns a
    message body into records: ours are packed with their kind; another service's (an EventBridge rule's) are not."""
    read = read or packed(kind)
    # Every message failing is reported like any partial failure, not as an invocation error.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record_handler(record: SQSRecord, lambda_context: Any = None) -> None:
        deadline = None
        if lambda_context is not None:
            remaining_ms = lambda_context.get_remaining_time_in_millis()
            if remaining_ms < MIN_REMAINING_MS:
                raise NotStarted(record.message_id)
            deadline = time.time() + remaining_ms / 1000
        try:
            records = read(record.body)
            # Database work ends before the invocation does: a transaction abandoned by a function killed at its
            # timeout would hold its writes on the server for a minute and block every writer of those documents.
            budget = None if deadline is None else time_budget(deadline - time.time(), DB_MARGIN_SECONDS)
            with pymongo.timeout(budget):
                apply_records(records, deadline)
        except CRMError as exc:
            logger.warning("message not fully applied", extra={"message_id": record.message_id,
                                                               "error": exc.message, "details": exc.details[:5]})
            raise
        except Exception as exc:
            logger.exception("message failed", extra={"message_id": record.message_id, "error": type(exc).__name__})
            raise

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)

    return handler


def make_sqs_batch_handler(kind: str, apply_records: RecordsApplier, read: Callable[[str], list[Any]] | None = None
                           ) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """A Lambda handler that applies the records of every message of its batch in one call (outcomes are applied as
    one bulk write and one roll-up a batch, not a message). A message that cannot be read fails alone; when applying
    fails, every message of the batch comes back (applying is idempotent)."""
    read = read or packed(kind)

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failed: list[str] = []
        applying: list[str] = []
        records: list[Any] = []
        for message in event.get("Records") or []:
            try:
                records += read(message["body"])
                applying.append(message["messageId"])
            except Exception as exc:  # noqa: BLE001 - a bad message fails alone
                logger.warning("message not readable", extra={"message_id": message.get("messageId"),
                                                              "error": f"{type(exc).__name__}: {exc}"[:300]})
                failed.append(message.get("messageId"))
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else None
        if records and remaining is not None and remaining * 1000 < MIN_REMAINING_MS:
            failed += applying
        elif records:
            deadline = None if remaining is None else time.time() + remaining
            try:
                with pymongo.timeout(None if remaining is None else time_budget(remaining, DB_MARGIN_SECONDS)):
                    apply_records(records, deadline)
            except Exception as exc:  # noqa: BLE001 - reported as the batch's failure; SQS delivers it again
                logger.exception("batch failed", extra={"messages": len(applying), "error": type(exc).__name__})
                failed += applying
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    return handler
