"""Rules v2 through the API: a preview and a saved segment over attributes, tags, SKUs and consent; rules on
attributes the registry does not know, or of another type, are 422 naming their path."""
from __future__ import annotations

import pytest

from tests.helpers import assert_error


@pytest.fixture
def brand(api, consumers):
    api.post("/api/customers", {"customers": [
        {"name": "Ada", "email": "ada@example.com", "attributes": {"city": "Mumbai", "plan": "gold"},
         "tags": ["vip"], "spend": 900},
        {"name": "Bob", "email": "bob@example.com", "attributes": {"city": "Pune"}, "tags": ["new"],
         "email_consent": "denied"},
        {"name": "Cy", "email": "cy@example.com", "spend": 50}]})
    consumers.drain("CustomerIngestQueue")
    api.post("/api/orders", {"order_id": "o-1", "customer_email": "cy@example.com", "amount": 5,
                             "items": [{"sku": "SKU-123", "name": "Tea", "qty": 1, "price": 5}]})
    consumers.drain("OrderIngestQueue")


def _audience(api, rules) -> set[str]:
    status, body, _ = api.post("/api/segments/preview", {"rules": rules})
    assert status == 200, body
    return {c["email"].split("@")[0] for c in body["sample"]}


def test_v2_rules_select_through_the_api(api, brand):
    assert _audience(api, {"field": "attributes.city", "op": "==", "value": "Mumbai"}) == {"ada"}
    assert _audience(api, {"field": "attributes.city", "op": "!=", "value": "Mumbai"}) == {"bob", "cy"}
    assert _audience(api, {"field": "attributes.plan", "op": "exists", "value": False}) == {"bob", "cy"}
    assert _audience(api, {"field": "tags", "op": "has_none", "value": ["VIP"]}) == {"bob", "cy"}
    assert _audience(api, {"field": "skus", "op": "has_any", "value": ["SKU-123"]}) == {"cy"}
    assert _audience(api, {"field": "subscribed", "op": "==", "value": False}) == {"bob"}
    assert _audience(api, {"and": [{"field": "signup_days", "op": "<", "value": 1},
                                   {"not": {"field": "attributes.city", "op": "in", "value": ["Pune", "Mumbai"]}}]}
                     ) == {"cy"}
    status, segment, _ = api.post("/api/segments", {"name": "Mumbai VIPs", "rules": {"and": [
        {"field": "attributes.city", "op": "starts_with", "value": "Mum"}, {"field": "tags", "op": "has_all",
                                                                           "value": ["vip"]}]}})
    assert status == 201 and segment["audience_size"] == 1
    assert api.get(f"/api/segments/{segment['id']}/preview")[1]["audience_size"] == 1


@pytest.mark.parametrize("rules, loc", [
    ({"field": "attributes.birthday", "op": "exists", "value": True}, ["body", "rules", "field"]),
    ({"field": "attributes.city", "op": ">", "value": 5}, ["body", "rules", "value"]),
    ({"and": [{"field": "tags", "op": "==", "value": "vip"}]}, ["body", "rules", "and", 0, "op"]),
    ({"field": "attributes.city", "op": "==", "value": {"$gt": ""}}, ["body", "rules", "value"]),
])
def test_rules_that_do_not_fit_are_422_and_save_nothing(api, db, brand, rules, loc):
    status, body, _ = api.post("/api/segments", {"name": "Bad", "rules": rules})
    assert status == 422
    assert_error(body, "validation_error", loc)
    assert db.segments.count_documents({}) == 0
