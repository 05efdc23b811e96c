"""Customers v2: attributes merged key by key (a null removes one), tags replaced, e-mail consent; the attribute
registry and its types; bought SKUs from orders."""
from __future__ import annotations

import pytest

from tests.helpers import assert_error

CUSTOMER_QUEUE = "CustomerIngestQueue"
ORDER_QUEUE = "OrderIngestQueue"


def _customer(api, email: str) -> dict:
    status, page, _ = api.get(f"/api/customers?email={email}")
    assert status == 200 and len(page["items"]) == 1, page
    return page["items"][0]


def test_attributes_tags_and_consent_are_stored_and_listed(api, consumers, db):
    status, _, _ = api.post("/api/customers", {
        "name": "Ada", "email": "ada@example.com", "email_consent": "denied",
        "attributes": {"city": "Mumbai", "plan": "gold", "vip": True, "orders_last_year": 12,
                       "birthday": "1990-05-01T00:00:00+05:30"},
        "tags": ["VIP", "newsletter", "vip"]})
    assert status == 202
    consumers.drain(CUSTOMER_QUEUE)
    ada = _customer(api, "ada@example.com")
    assert ada["attributes"] == {"city": "Mumbai", "plan": "gold", "vip": True, "orders_last_year": 12,
                                 "birthday": "1990-04-30T18:30:00.000Z"}
    assert ada["tags"] == ["vip", "newsletter"] and ada["subscribed"] is False
    stored = db.customers.find_one({"email": "ada@example.com"})
    assert stored["attributes"]["birthday"].year == 1990, "a time attribute is stored as a date"


def test_attributes_merge_key_by_key_a_null_removes_one_and_tags_replace(api, consumers, db):
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "attributes": {"city": "Pune", "plan": "a"},
                                "tags": ["one", "two"]})
    consumers.drain(CUSTOMER_QUEUE)
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "attributes": {"plan": None, "zip": "411"},
                                "tags": ["three"], "email_consent": "granted"})
    consumers.drain(CUSTOMER_QUEUE)
    ada = _customer(api, "ada@example.com")
    assert ada["attributes"] == {"city": "Pune", "zip": "411"}
    assert ada["tags"] == ["three"] and ada["subscribed"] is True


def test_a_late_redelivery_of_an_older_ingest_does_not_bring_back_old_attributes(api, consumers, db):
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "attributes": {"city": "Pune"},
                                "tags": ["old"]})
    [older] = consumers.messages(CUSTOMER_QUEUE)
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "attributes": {"city": None},
                                "tags": ["new"]})
    consumers.drain(CUSTOMER_QUEUE)
    consumers.deliver(CUSTOMER_QUEUE, [older["Body"]])
    ada = _customer(api, "ada@example.com")
    assert ada["attributes"] == {} and ada["tags"] == ["new"]


@pytest.mark.parametrize("customer, loc", [
    ({"attributes": {"City": "x"}}, ["body", "customers", 1, "attributes", "City"]),
    ({"attributes": {"city": {"$gt": ""}}}, ["body", "customers", 1, "attributes", "city"]),
    ({"attributes": {"city": "x" * 201}}, ["body", "customers", 1, "attributes", "city"]),
    ({"attributes": {"n": 1e300}}, ["body", "customers", 1, "attributes", "n"]),
    ({"attributes": {f"k{i}": i for i in range(51)}}, ["body", "customers", 1, "attributes"]),
    ({"tags": ["no spaces"]}, ["body", "customers", 1, "tags", 0]),
    ({"tags": [f"t{i}" for i in range(51)]}, ["body", "customers", 1, "tags"]),
    ({"tags": [{"$ne": 1}]}, ["body", "customers", 1, "tags", 0]),
    ({"email_consent": "yes"}, ["body", "customers", 1, "email_consent"]),
    # A valid ISO time that no stored date can hold: refused here, not dead-lettered by the consumer.
    ({"attributes": {"d": "9999-12-31T23:00:00-05:00"}}, ["body", "customers", 1, "attributes"]),
    ({"attributes": {"d": "0001-01-01T00:30:00+01:00"}}, ["body", "customers", 1, "attributes"]),
])
def test_a_batch_with_one_bad_customer_is_422_naming_its_index_and_key(api, consumers, db, customer, loc):
    status, body, _ = api.post("/api/customers", {"customers": [
        {"name": "Good", "email": "good@example.com"}, {"name": "Bad", "email": "bad@example.com", **customer}]})
    assert status == 422
    assert_error(body, "validation_error", loc)
    assert consumers.messages(CUSTOMER_QUEUE) == []


def test_a_key_sent_with_a_new_type_is_422_naming_both_types(api, consumers, db):
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "attributes": {"city": "Pune"}})
    consumers.drain(CUSTOMER_QUEUE)
    status, body, _ = api.post("/api/customers", {"customers": [
        {"name": "Bob", "email": "bob@example.com", "attributes": {"plan": "gold"}},
        {"name": "Cy", "email": "cy@example.com", "attributes": {"city": 5}}]})
    assert status == 422
    assert_error(body, "validation_error", ["body", "customers", 1, "attributes", "city"])
    assert "string" in body["error"]["message"] and "number" in body["error"]["message"]
    status, body, _ = api.post("/api/customers", {"customers": [
        {"name": "Bob", "email": "bob@example.com", "attributes": {"score": 1}},
        {"name": "Cy", "email": "cy@example.com", "attributes": {"score": True}}]})
    assert status == 422, "two types of one new key in one batch"
    assert_error(body, "validation_error", ["body", "customers", 1, "attributes", "score"])
    assert consumers.messages(CUSTOMER_QUEUE) == []


def test_the_attribute_registry_lists_keys_types_counts_and_examples(api, consumers, db):
    api.post("/api/customers", {"customers": [
        {"name": f"C{i}", "email": f"c{i}@example.com",
         "attributes": {"city": ["Pune", "Mumbai", "Delhi", "Goa", "Agra", "Kochi", "Pune"][i], "age": 20 + i,
                        "member_since": "2024-01-01T00:00:00Z"}} for i in range(7)]})
    consumers.drain(CUSTOMER_QUEUE)
    status, body, _ = api.get("/api/customers/attributes")
    assert status == 200
    items = {item["key"]: item for item in body["items"]}
    assert [item["key"] for item in body["items"]] == ["age", "city", "member_since"]
    assert items["city"]["type"] == "string" and items["city"]["customers"] == 7
    assert len(items["city"]["examples"]) == 5 and set(items["city"]["examples"]) <= {
        "Pune", "Mumbai", "Delhi", "Goa", "Agra", "Kochi"}
    assert items["age"]["type"] == "number" and items["member_since"]["type"] == "time"


def test_the_registry_keeps_the_known_values_it_has_once_full(api, consumers, db):
    from crm.services.attributes import KNOWN_VALUES

    def ingest(cities):
        api.post("/api/customers", {"customers": [
            {"name": city, "email": f"{city.lower()}@example.com", "attributes": {"city": city}} for city in cities]})
        consumers.drain(CUSTOMER_QUEUE)

    first = [f"Town{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(KNOWN_VALUES)]
    ingest(first[:60])
    ingest(first[60:])
    ingest(["Aaa", "Mumbai", "Zeta", first[0]])
    ingest(["Aaa"])  # a redelivery or a repeat adds nothing
    values = db.attribute_registry.find_one({"_id": "city"})["values"]
    assert sorted(values) == sorted(first), "a full list keeps the values it had, in any order of arrival"


def test_customers_are_listed_by_tag(api, consumers, db):
    api.post("/api/customers", {"customers": [{"name": "A", "email": "a@example.com", "tags": ["vip"]},
                                              {"name": "B", "email": "b@example.com", "tags": ["new"]}]})
    consumers.drain(CUSTOMER_QUEUE)
    status, page, _ = api.get("/api/customers?tag=VIP")
    assert status == 200 and [c["email"] for c in page["items"]] == ["a@example.com"]
    status, body, _ = api.get("/api/customers?tag=no%20space")
    assert status == 422
    assert_error(body, "validation_error", ["query", "tag"])


def test_opt_in_mode_subscribes_only_those_who_granted_consent(api, consumers, db, monkeypatch):
    from crm.config import get_settings

    api.post("/api/customers", {"customers": [{"name": "A", "email": "a@example.com", "email_consent": "granted"},
                                              {"name": "B", "email": "b@example.com"}]})
    consumers.drain(CUSTOMER_QUEUE)
    monkeypatch.setenv("CONSENT_MODE", "opt_in")
    get_settings.cache_clear()
    subscribed = {c["email"]: c["subscribed"] for c in api.get("/api/customers")[1]["items"]}
    assert subscribed == {"a@example.com": True, "b@example.com": False}


def _order(order_id: str, *skus: str) -> dict:
    return {"order_id": order_id, "customer_email": "ada@example.com", "amount": 10,
            "items": [{"sku": sku, "name": sku, "qty": 1, "price": 10 / len(skus)} for sku in skus]}


def test_orders_add_their_skus_once_most_recent_last_and_bounded(api, consumers, db, monkeypatch):
    from crm.services import orders

    monkeypatch.setattr(orders, "MAX_SKUS", 3)
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com"})
    consumers.drain(CUSTOMER_QUEUE)
    api.post("/api/orders", {"orders": [_order("o-1", "TEA", "MUG"), _order("o-2", "CUP", "TEA")]})
    [message] = consumers.messages(ORDER_QUEUE)
    consumers.deliver(ORDER_QUEUE, [message["Body"], message["Body"]])
    ada = db.customers.find_one({"email": "ada@example.com"})
    assert ada["skus"] == ["MUG", "CUP", "TEA"] and ada["visits"] == 2 and ada["spend"] == 20
    api.post("/api/orders", _order("o-3", "$where"))
    consumers.drain(ORDER_QUEUE)
    assert db.customers.find_one({"email": "ada@example.com"})["skus"] == ["CUP", "TEA", "$where"]


def test_a_count_that_cannot_finish_leaves_the_figure_and_fails_no_batch(db):
    """The count runs in the consumer after the batch is written; past the invocation's time it is skipped."""
    import pymongo

    from crm.models.common import utcnow
    from crm.services.attributes import recount, register

    register(db.attribute_registry, db.customers, [])
    db.attribute_registry.insert_one({"_id": "city", "type": "string", "examples": [], "customers": 3,
                                      "counted_at": utcnow().replace(year=2000), "changed_at": utcnow()})
    db.customers.insert_many([{"email": f"c{i}@example.com", "attributes": {"city": "x"}} for i in range(2000)])

    class SlowCustomers:
        """The customers collection, its count past the invocation's deadline (the server's own refusal)."""

        def count_documents(self, query):
            with pymongo.timeout(0.000_001):
                return db.customers.count_documents(query)

    recount(db.attribute_registry, SlowCustomers(), {"city"}, utcnow())
    assert db.attribute_registry.find_one({"_id": "city"})["customers"] == 3
