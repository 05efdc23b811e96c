"""The shared SQS consumer: messages it has no time left for go back to the queue untouched."""
from __future__ import annotations

import time

from crm.messages import pack
from offline.lambda_worker import LambdaContext
from tests.conftest import load_function


def test_messages_are_not_started_when_the_deadline_is_near(consumers, db):
    body = pack("customers", [{"name": "A", "email": "a@example.com", "accepted_at": "2026-11-25T00:00:00Z"}],
                256 * 1024)[0]
    event = consumers.event_for("CustomerIngestQueue", [body, body])
    nearly_out_of_time = LambdaContext("CustomerIngestFunction", 512, "r", time.time() + 5)
    reply = load_function("customer_ingest").handler(event, nearly_out_of_time)
    assert {f["itemIdentifier"] for f in reply["batchItemFailures"]} == {r["messageId"] for r in event["Records"]}
    assert db.customers.count_documents({}) == 0


def test_a_message_of_the_wrong_kind_fails(consumers, db):
    body = pack("orders", [{"name": "A", "email": "a@example.com", "accepted_at": "2026-11-25T00:00:00Z"}],
                256 * 1024)[0]
    event = consumers.event_for("CustomerIngestQueue", [body])
    reply = load_function("customer_ingest").handler(event, LambdaContext("c", 512, "r", time.time() + 60))
    assert len(reply["batchItemFailures"]) == 1
    assert db.customers.count_documents({}) == 0
