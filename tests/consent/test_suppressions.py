"""The suppression list through the API: added once (the first reason stays), listed, removed, audited; an
erased person's entry stays; bad input writes nothing."""
from __future__ import annotations

import pytest

from crm.consent import suppressions
from tests.helpers import assert_error


def test_an_address_is_suppressed_once_listed_and_removed(api, db):
    status, body, _ = api.post("/api/suppressions", {"email": "Ada@Example.com", "reason": "complained"})
    assert status == 201 and body["email"] == "ada@example.com" and body["reason"] == "complained"
    status, again, _ = api.post("/api/suppressions", {"email": "ada@example.com"})
    assert status == 201 and again["reason"] == "complained", "the first reason stays"
    assert db.suppressions.count_documents({}) == 1
    api.post("/api/suppressions", {"email": "bo@example.com"})
    status, page, _ = api.get("/api/suppressions")
    assert status == 200 and [(s["email"], s["reason"]) for s in page["items"]] == [
        ("bo@example.com", "manual"), ("ada@example.com", "complained")]
    assert api.request("DELETE", "/api/suppressions/ADA@example.com")[0] == 204
    status, body, _ = api.request("DELETE", "/api/suppressions/ada@example.com")
    assert status == 404
    actions = [e["action"] for e in db.audit_log.find({"action": {"$regex": "^suppression"}}).sort("_id", 1)]
    assert actions == ["suppression.create", "suppression.create", "suppression.create", "suppression.delete"]


def test_an_erased_persons_entry_cannot_be_removed(api, db):
    suppressions.erase(db.suppressions, "gone@example.com")
    status, body, _ = api.request("DELETE", "/api/suppressions/gone@example.com")
    assert status == 409
    assert_error(body, "erased")
    _, page, _ = api.get("/api/suppressions")
    assert page["items"][0]["email"] is None and page["items"][0]["reason"] == "erased"
    assert "gone" not in str(db.suppressions.find_one({})), "only the address's hash is kept"


@pytest.mark.parametrize("body, loc", [
    ({"email": "not-an-address"}, ["body", "email"]),
    ({"email": {"$gt": ""}}, ["body", "email"]),
    ({"email": "a@example.com", "reason": "erased"}, ["body", "reason"]),
    ({"email": "a@example.com", "extra": 1}, ["body", "extra"]),
    ({}, ["body", "email"]),
])
def test_bad_input_is_422_and_writes_nothing(api, db, body, loc):
    status, reply, _ = api.post("/api/suppressions", body)
    assert status == 422
    assert_error(reply, "validation_error", loc)
    assert db.suppressions.count_documents({}) == 0 and db.audit_log.count_documents(
        {"action": "suppression.create"}) == 0
