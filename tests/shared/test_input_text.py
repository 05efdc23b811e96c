"""Text fields: a length or pattern limit holds for the text as sent, as the OpenAPI document states it; the text is
stored trimmed; a required text of spaces alone is refused."""
from __future__ import annotations

from tests.helpers import assert_error


def test_a_limit_holds_for_the_text_as_sent_not_as_trimmed(api, db):
    status, reply, _ = api.post("/api/api-keys", {"name": "\t" + "a" * 100, "scopes": ["orders:write"]})
    assert status == 422, reply
    assert_error(reply, "validation_error", ["body", "name"])
    status, reply, _ = api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "tags": ["vip "]})
    assert status == 422, reply
    assert_error(reply, "validation_error", ["body", "tags", 0])
    assert db.api_keys.count_documents({}) == 0


def test_text_is_stored_trimmed_and_spaces_alone_are_refused(api, db):
    status, created, _ = api.post("/api/api-keys", {"name": "  Shopify store\n", "scopes": ["orders:write"]})
    assert status == 201, created
    assert created["name"] == "Shopify store" and db.api_keys.find_one({})["name"] == "Shopify store"
    status, reply, _ = api.post("/api/api-keys", {"name": " \t ", "scopes": ["orders:write"]})
    assert status == 422
    assert_error(reply, "validation_error", ["body", "name"])
    assert "blank" in str(reply["error"]["details"])
    assert db.api_keys.count_documents({}) == 1


def test_a_minimum_holds_for_the_trimmed_text_and_rules_are_read_as_written(api, db):
    status, reply, _ = api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "phone": "12 "})
    assert status == 422, reply
    assert_error(reply, "validation_error", ["body", "phone"])
    from crm.db import ATTRIBUTE_REGISTRY, CUSTOMERS
    from crm.models.customers import CustomerIn
    from crm.services import attributes

    attributes.register(db[ATTRIBUTE_REGISTRY], db[CUSTOMERS],
                        [CustomerIn(name="Sam", email="sam@example.com", attributes={"city": "San Jose"})])
    rules = {"field": "attributes.city", "op": "starts_with", "value": "San "}
    status, created, _ = api.post("/api/segments", {"name": " Bay ", "rules": rules})
    assert status == 201, created
    assert created["name"] == "Bay" and created["rules"] == rules
