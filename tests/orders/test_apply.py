"""Orders: each order_id applied to its customer exactly once, whatever the queue does."""
from __future__ import annotations

import json

import pytest

from crm.messages import pack
from offline.lambda_worker import LambdaContext
from tests.conftest import load_function
from tests.helpers import assert_error

ORDER_QUEUE = "OrderIngestQueue"
CUSTOMER_QUEUE = "CustomerIngestQueue"


def _order(order_id: str, email: str = "ada@example.com", amount: float = 25.0, date: str | None = None) -> dict:
    order = {"order_id": order_id, "customer_email": email, "amount": amount,
             "items": [{"sku": "TEA-1", "name": "Tea", "qty": 1, "price": amount}]}
    if date:
        order["date"] = date
    return order


@pytest.fixture
def ada(api, consumers, db):
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "spend": 100, "visits": 2,
                                "last_active": "2026-06-01T00:00:00Z"})
    consumers.drain(CUSTOMER_QUEUE)
    return db.customers.find_one({"email": "ada@example.com"})


def _deliver(consumers, bodies: list[str]) -> dict:
    event = consumers.event_for(ORDER_QUEUE, bodies)
    return load_function("order_ingest").handler(event, LambdaContext("OrderIngestFunction", 512, "r", 2e9))


def test_order_updates_spend_visits_and_last_active(api, consumers, db, ada):
    status, body, _ = api.post("/api/orders", _order("o-1", amount=40.5, date="2026-11-01T10:00:00Z"))
    assert (status, body) == (202, {"accepted": 1})
    assert db.orders.count_documents({}) == 0, "the API must not write orders itself"
    consumers.drain(ORDER_QUEUE)
    customer = db.customers.find_one({"_id": ada["_id"]})
    assert customer["spend"] == 140.5 and customer["visits"] == 3
    assert customer["last_active"].isoformat() == "2026-11-01T10:00:00+00:00"

    status, page, _ = api.get(f"/api/orders?customer_id={ada['_id']}")
    [order] = page["items"]
    assert order["order_id"] == "o-1" and order["customer_id"] == str(ada["_id"]) and order["amount"] == 40.5
    assert order["items"] == [{"sku": "TEA-1", "name": "Tea", "qty": 1, "price": 40.5}]
    assert set(order) == {"id", "order_id", "customer_id", "amount", "items", "date", "created_at"}


def test_older_order_does_not_move_last_active_back(api, consumers, db, ada):
    api.post("/api/orders", _order("o-old", date="2025-01-01T00:00:00Z"))
    consumers.drain(ORDER_QUEUE)
    customer = db.customers.find_one({"_id": ada["_id"]})
    assert customer["last_active"].isoformat() == "2026-06-01T00:00:00+00:00"
    assert customer["visits"] == 3


def test_order_by_customer_id(api, consumers, db, ada):
    order = _order("o-id")
    del order["customer_email"]
    order["customer_id"] = str(ada["_id"])
    api.post("/api/orders", order)
    consumers.drain(ORDER_QUEUE)
    assert db.customers.find_one({"_id": ada["_id"]})["spend"] == 125


def test_duplicate_delivery_applies_once(api, consumers, db, ada):
    api.post("/api/orders", {"orders": [_order("o-1"), _order("o-2", amount=5)]})
    api.post("/api/orders", _order("o-1"))  # the client retried without an idempotency key
    [first, second] = consumers.messages(ORDER_QUEUE)
    assert _deliver(consumers, [first["Body"], first["Body"], second["Body"]]) == {"batchItemFailures": []}
    assert _deliver(consumers, [first["Body"]]) == {"batchItemFailures": []}
    customer = db.customers.find_one({"_id": ada["_id"]})
    assert customer["spend"] == 130 and customer["visits"] == 4
    assert db.orders.count_documents({}) == 2


def test_crash_between_order_and_customer_writes_loses_and_doubles_nothing(api, consumers, db, ada, monkeypatch):
    from crm.services import orders as service

    api.post("/api/orders", {"orders": [_order("o-1"), _order("o-2")]})
    [message] = consumers.messages(ORDER_QUEUE)

    def crash(*_args, **_kwargs):
        raise RuntimeError("container died")

    monkeypatch.setattr(service, "_customer_updates", crash)  # runs after the orders are inserted
    failed = _deliver(consumers, [message["Body"]])
    assert failed == {"batchItemFailures": [{"itemIdentifier": failed["batchItemFailures"][0]["itemIdentifier"]}]}
    assert db.orders.count_documents({}) == 0, "the order writes rolled back with the failed step"
    assert db.customers.find_one({"_id": ada["_id"]})["spend"] == 100

    monkeypatch.undo()
    assert _deliver(consumers, [message["Body"]]) == {"batchItemFailures": []}
    assert _deliver(consumers, [message["Body"]]) == {"batchItemFailures": []}
    customer = db.customers.find_one({"_id": ada["_id"]})
    assert customer["spend"] == 150 and customer["visits"] == 4


def test_order_for_missing_customer_is_retried_then_dead_lettered(api, consumers, db, sqs, queues):
    api.post("/api/orders", _order("o-orphan", email="nobody@example.com"))
    handled = consumers.drain(ORDER_QUEUE)
    assert handled == 5, "maxReceiveCount in template.yaml: delivered five times"
    [dead] = consumers.messages("OrderIngestDLQ")
    assert json.loads(dead["Body"])["records"][0]["order_id"] == "o-orphan"
    assert db.orders.count_documents({}) == 0


def test_order_waits_for_its_customer(api, consumers, db):
    api.post("/api/orders", _order("o-early", email="late@example.com"))
    [message] = consumers.messages(ORDER_QUEUE)
    assert len(_deliver(consumers, [message["Body"]])["batchItemFailures"]) == 1
    api.post("/api/customers", {"name": "Late", "email": "late@example.com"})
    consumers.drain(CUSTOMER_QUEUE)
    assert _deliver(consumers, [message["Body"]]) == {"batchItemFailures": []}
    assert db.customers.find_one({"email": "late@example.com"})["spend"] == 25


def test_poisoned_message_fails_alone_and_its_good_neighbours_apply_once(api, consumers, db, ada):
    good = pack("orders", [_queued("o-good-1", 10)], 256 * 1024)[0]
    mixed = pack("orders", [_queued("o-mixed-1", 1), {"order_id": "broken"}, _queued("o-mixed-2", 2)], 256 * 1024)[0]
    garbage = "this is not json"
    event = consumers.event_for(ORDER_QUEUE, [good, mixed, garbage])
    ids = [r["messageId"] for r in event["Records"]]
    reply = load_function("order_ingest").handler(event, LambdaContext("OrderIngestFunction", 512, "r", 2e9))
    assert {f["itemIdentifier"] for f in reply["batchItemFailures"]} == {ids[1], ids[2]}
    assert db.customers.find_one({"_id": ada["_id"]})["spend"] == 113

    # The mixed message comes back: its good orders are not applied a second time, the bad one fails again.
    assert len(_deliver(consumers, [mixed])["batchItemFailures"]) == 1
    customer = db.customers.find_one({"_id": ada["_id"]})
    assert customer["spend"] == 113 and customer["visits"] == 5
    assert sorted(d["order_id"] for d in db.orders.find()) == ["o-good-1", "o-mixed-1", "o-mixed-2"]


def test_poisoned_customer_record_does_not_lose_its_neighbours(consumers, db):
    body = pack("customers", [{"name": "A", "email": "a@example.com", "accepted_at": "2026-11-25T00:00:00Z"},
                              {"name": "", "email": "b@example.com", "accepted_at": "2026-11-25T00:00:00Z"}],
                256 * 1024)[0]
    event = consumers.event_for(CUSTOMER_QUEUE, [body])
    reply = load_function("customer_ingest").handler(event, LambdaContext("CustomerIngestFunction", 512, "r", 2e9))
    assert len(reply["batchItemFailures"]) == 1
    assert [d["email"] for d in db.customers.find()] == ["a@example.com"]


def _queued(order_id: str, amount: float) -> dict:
    return {**_order(order_id, amount=amount, date="2026-11-20T00:00:00Z"), "accepted_at": "2026-11-20T00:00:00Z"}


BAD_ORDERS = {
    "no_customer": ({k: v for k, v in _order("o").items() if k != "customer_email"}, ["body"]),
    "both_customers": ({**_order("o"), "customer_id": "0" * 24}, ["body"]),
    "bad_customer_id": ({**{k: v for k, v in _order("o").items() if k != "customer_email"}, "customer_id": "xyz"},
                        ["body", "customer_id"]),
    "negative_amount": ({**_order("o"), "amount": -1}, ["body", "amount"]),
    "no_items": ({**_order("o"), "items": []}, ["body", "items"]),
    "zero_qty": ({**_order("o"), "items": [{"sku": "a", "name": "b", "qty": 0, "price": 1}]},
                 ["body", "items", 0, "qty"]),
    "negative_price": ({**_order("o"), "items": [{"sku": "a", "name": "b", "qty": 1, "price": -2}]},
                       ["body", "items", 0, "price"]),
    "missing_order_id": ({k: v for k, v in _order("o").items() if k != "order_id"}, ["body", "order_id"]),
    "operator_order_id": ({**_order("o"), "order_id": {"$gt": ""}}, ["body", "order_id"]),
    "bad_date": ({**_order("o"), "date": "soon"}, ["body", "date"]),
    "batch_bad_entry": ({"orders": [_order("o-1"), {**_order("o-2"), "amount": "x"}]}, ["body", "orders", 1, "amount"]),
    "oversized_batch": ({"orders": [_order(f"o-{i}") for i in range(1001)]}, ["body", "orders"]),
}


@pytest.mark.parametrize("case", sorted(BAD_ORDERS))
def test_bad_order_input_is_422_and_writes_nothing(api, consumers, db, case):
    payload, loc = BAD_ORDERS[case]
    status, body, _ = api.post("/api/orders", payload)
    assert status == 422
    assert_error(body, "validation_error", loc)
    assert consumers.messages(ORDER_QUEUE) == []
    assert db.orders.count_documents({}) == 0


def test_orders_filter_by_date_and_paginate(api, consumers, db, ada):
    api.post("/api/orders", {"orders": [_order(f"o-{d:02d}", date=f"2026-10-{d:02d}T12:00:00Z") for d in range(1, 21)]})
    consumers.drain(ORDER_QUEUE)
    _, page, _ = api.get("/api/orders?from=2026-10-05T00:00:00Z&to=2026-10-09T23:59:59Z")
    assert sorted(o["order_id"] for o in page["items"]) == [f"o-{d:02d}" for d in range(5, 10)]
    seen, cursor = [], None
    while True:
        _, page, _ = api.get("/api/orders?limit=6" + (f"&cursor={cursor}" if cursor else ""))
        seen.extend(o["order_id"] for o in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [f"o-{d:02d}" for d in range(1, 21)] and len(seen) == 20
    status, body, _ = api.get("/api/orders?customer_id=nope")
    assert status == 422
    assert_error(body, "validation_error", ["query", "customer_id"])


@pytest.mark.parametrize("batch", [False, True])
def test_an_order_larger_than_a_queue_message_is_422_naming_it_and_queues_nothing(api, consumers, db, batch):
    """Review finding: 500 items named in emoji (551,577 bytes, under the body limit) were a 500."""
    big = {**_order("o-big"), "items": [{"sku": f"S{i}", "name": "😀" * 200, "qty": 1, "price": 1} for i in range(500)]}
    status, body, _ = api.post("/api/orders", {"orders": [_order("o-small"), big]} if batch else big)
    assert status == 422, body
    assert_error(body, "validation_error", ["body", "orders", 1] if batch else ["body"])
    assert consumers.messages(ORDER_QUEUE) == []
    assert db.audit_log.count_documents({"action": {"$regex": "ingest"}}) == 0
