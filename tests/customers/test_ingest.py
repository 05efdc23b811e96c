"""POST /api/customers: validate, queue, upsert by e-mail in the consumer."""
from __future__ import annotations

import pytest

from crm.messages import unpack
from tests.helpers import assert_error

CUSTOMER_QUEUE = "CustomerIngestQueue"


def test_ingested_customers_become_visible(api, consumers, db):
    status, body, _ = api.post("/api/customers", {"customers": [
        {"name": "Ada Lovelace", "email": "Ada@Example.com", "spend": 120.5, "visits": 3,
         "last_active": "2026-10-01T09:00:00+02:00", "phone": "+44 20 7946 0000"},
        {"name": "Bob", "email": "bob@example.com"},
    ]})
    assert (status, body) == (202, {"accepted": 2})
    assert db.customers.count_documents({}) == 0, "the API must not write customers itself"
    assert consumers.drain(CUSTOMER_QUEUE) == 1, "both customers travel in one message"

    status, page, _ = api.get("/api/customers")
    assert status == 200
    by_email = {c["email"]: c for c in page["items"]}
    assert set(by_email) == {"ada@example.com", "bob@example.com"}
    ada, bob = by_email["ada@example.com"], by_email["bob@example.com"]
    assert ada["spend"] == 120.5 and ada["visits"] == 3 and ada["phone"] == "+44 20 7946 0000"
    assert ada["last_active"] == "2026-10-01T07:00:00.000Z"
    assert bob["spend"] == 0 and bob["visits"] == 0 and bob["phone"] is None
    assert bob["last_active"] == bob["created_at"], "never active counts as active at creation"
    assert set(ada) == {"id", "name", "email", "phone", "spend", "visits", "last_active", "created_at", "updated_at",
                        "attributes", "tags", "subscribed"}
    assert (ada["attributes"], ada["tags"], ada["subscribed"]) == ({}, [], True)


def test_reingesting_an_email_updates_without_duplicating(api, consumers, db):
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "spend": 10})
    consumers.drain(CUSTOMER_QUEUE)
    first = db.customers.find_one({"email": "ada@example.com"})

    api.post("/api/customers", {"name": "Ada L.", "email": "ADA@example.COM", "visits": 7})
    consumers.drain(CUSTOMER_QUEUE)
    docs = list(db.customers.find({}))
    assert len(docs) == 1
    updated = docs[0]
    assert updated["_id"] == first["_id"] and updated["created_at"] == first["created_at"]
    assert updated["name"] == "Ada L." and updated["visits"] == 7
    assert updated["spend"] == 10, "fields the client did not send are kept"


def test_null_fields_count_as_not_given(api, consumers, db):
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "spend": 10, "phone": "+1 555 0100"})
    api.post("/api/customers", {"name": "Bob", "email": "bob@example.com", "spend": None, "visits": None,
                                "last_active": None, "phone": None})
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "spend": None, "phone": None})
    consumers.drain(CUSTOMER_QUEUE)
    status, page, _ = api.get("/api/customers")
    assert status == 200
    by_email = {c["email"]: c for c in page["items"]}
    assert by_email["bob@example.com"]["spend"] == 0 and by_email["bob@example.com"]["visits"] == 0
    assert by_email["ada@example.com"]["spend"] == 10 and by_email["ada@example.com"]["phone"] == "+1 555 0100"


def test_redelivered_customer_message_changes_nothing_more(api, consumers, db):
    api.post("/api/customers", {"customers": [{"name": f"C{i}", "email": f"c{i}@example.com"} for i in range(5)]})
    [message] = consumers.messages(CUSTOMER_QUEUE)
    handler_event = consumers.event_for(CUSTOMER_QUEUE, [message["Body"], message["Body"]])
    from offline.lambda_worker import LambdaContext
    from tests.conftest import load_function

    reply = load_function("customer_ingest").handler(handler_event, LambdaContext("c", 512, "r", 2e9))
    assert reply == {"batchItemFailures": []}
    assert db.customers.count_documents({}) == 5


def test_a_thousand_customers_travel_in_one_message(api, consumers):
    batch = [{"name": f"Customer {i}", "email": f"customer{i}@example.com", "spend": i} for i in range(1000)]
    status, body, _ = api.post("/api/customers", {"customers": batch})
    assert (status, body) == (202, {"accepted": 1000})
    [message] = consumers.messages(CUSTOMER_QUEUE)
    assert len(unpack(message["Body"])[1]) == 1000


BAD_CUSTOMERS = {
    "missing_name": ({"email": "a@example.com"}, ["body", "name"]),
    "empty_name": ({"name": " ", "email": "a@example.com"}, ["body", "name"]),
    "long_name": ({"name": "x" * 201, "email": "a@example.com"}, ["body", "name"]),
    "bad_email": ({"name": "A", "email": "not-an-email"}, ["body", "email"]),
    "operator_as_email": ({"name": "A", "email": {"$gt": ""}}, ["body", "email"]),
    "operator_as_name": ({"name": {"$ne": None}, "email": "a@example.com"}, ["body", "name"]),
    "negative_spend": ({"name": "A", "email": "a@example.com", "spend": -1}, ["body", "spend"]),
    "string_spend": ({"name": "A", "email": "a@example.com", "spend": "12"}, ["body", "spend"]),
    "bool_visits": ({"name": "A", "email": "a@example.com", "visits": True}, ["body", "visits"]),
    "fraction_visits": ({"name": "A", "email": "a@example.com", "visits": 1.5}, ["body", "visits"]),
    "naive_time": ({"name": "A", "email": "a@example.com", "last_active": "2026-01-01T00:00:00"},
                   ["body", "last_active"]),
    "bad_phone": ({"name": "A", "email": "a@example.com", "phone": "call me"}, ["body", "phone"]),
    "unknown_field": ({"name": "A", "email": "a@example.com", "role": "admin"}, ["body", "role"]),
    "not_an_object": (["a"], ["body"]),
    "empty_batch": ({"customers": []}, ["body", "customers"]),
    "batch_not_list": ({"customers": {"name": "A"}}, ["body", "customers"]),
    "oversized_batch": ({"customers": [{"name": "A", "email": f"a{i}@example.com"} for i in range(1001)]},
                        ["body", "customers"]),
    "batch_extra_key": ({"customers": [{"name": "A", "email": "a@example.com"}], "x": 1}, ["body", "x"]),
    "one_bad_in_batch": ({"customers": [{"name": "A", "email": "a@example.com"}, {"name": "B", "email": "b@"}]},
                         ["body", "customers", 1, "email"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CUSTOMERS))
def test_bad_customer_input_is_422_and_writes_nothing(api, consumers, db, case):
    payload, loc = BAD_CUSTOMERS[case]
    status, body, _ = api.post("/api/customers", payload)
    assert status == 422
    assert_error(body, "validation_error", loc)
    assert consumers.messages(CUSTOMER_QUEUE) == []
    assert db.customers.count_documents({}) == 0


def test_invalid_json_is_422(api, consumers):
    status, body, _ = api.post("/api/customers", raw=b'{"name": "A", ')
    assert status == 422
    assert_error(body, "validation_error", ["body"])
    assert consumers.messages(CUSTOMER_QUEUE) == []


def test_idempotency_key_replays_the_first_reply(api, consumers, db):
    payload = {"name": "Ada", "email": "ada@example.com"}
    first = api.post("/api/customers", payload, headers={"Idempotency-Key": "k-1"})
    again = api.post("/api/customers", payload, headers={"Idempotency-Key": "k-1"})
    assert first[:2] == again[:2] == (202, {"accepted": 1})
    assert len(consumers.messages(CUSTOMER_QUEUE)) == 1

    status, body, _ = api.post("/api/customers", {"name": "Eve", "email": "eve@example.com"},
                               headers={"Idempotency-Key": "k-1"})
    assert status == 409
    assert_error(body, "idempotency_key_reused")
    assert consumers.messages(CUSTOMER_QUEUE) == []


def test_queue_outage_is_503_and_leaves_the_key_usable(api, env, consumers, monkeypatch):
    from crm.config import get_settings

    good_url = env["SQS_CUSTOMER_QUEUE_URL"]
    monkeypatch.setenv("SQS_CUSTOMER_QUEUE_URL", good_url.replace("CustomerIngestQueue", "missing-queue"))
    get_settings.cache_clear()
    payload = {"name": "Ada", "email": "ada@example.com"}
    status, body, _ = api.post("/api/customers", payload, headers={"Idempotency-Key": "k-2"})
    assert status == 503
    assert_error(body, "dependency_unavailable")

    monkeypatch.setenv("SQS_CUSTOMER_QUEUE_URL", good_url)
    get_settings.cache_clear()
    status, body, _ = api.post("/api/customers", payload, headers={"Idempotency-Key": "k-2"})
    assert (status, body) == (202, {"accepted": 1})
    assert len(consumers.messages(CUSTOMER_QUEUE)) == 1
