"""The sample events in events/ are what the functions accept (they are what `sam local invoke` sends)."""
from __future__ import annotations

import json
from pathlib import Path

from offline.lambda_worker import LambdaContext
from tests.conftest import load_function

EVENTS = Path(__file__).resolve().parent.parent / "events"


def _event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def _context() -> LambdaContext:
    return LambdaContext("sample", 512, "r", 2e9)


def test_api_events(api, consumers):
    reply = load_function("auth").handler(_event("auth_dev_token.json"), _context())
    assert reply["statusCode"] == 200
    token = json.loads(reply["body"])["token"]
    event = _event("customers_post.json")
    event["headers"]["authorization"] = f"Bearer {token}"
    reply = load_function("customers").handler(event, _context())
    assert (reply["statusCode"], json.loads(reply["body"])) == (202, {"accepted": 1})
    assert load_function("meta").handler(_event("health_get.json"), _context())["statusCode"] == 200


def test_sqs_events(db):
    assert load_function("customer_ingest").handler(_event("sqs_customer_ingest.json"), _context()) == {
        "batchItemFailures": []}
    assert load_function("order_ingest").handler(_event("sqs_order_ingest.json"), _context()) == {
        "batchItemFailures": []}
    customer = db.customers.find_one({"email": "ada@example.com"})
    assert customer["spend"] == 120.5 + 42.0 and customer["visits"] == 1
