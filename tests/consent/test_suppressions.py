"""The suppression list through the API: added once (the first reason stays), listed, removed, audited; an
erased person's entry stays; bad input writes nothing."""
from __future__ import annotations

import json

import pytest

from crm.consent import suppressions
from tests.helpers import assert_error, token_for


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
    assert api.request("DELETE", "/api/suppressions/ADA@example.com", {"reason": "asked us by phone"})[0] == 204
    status, body, _ = api.request("DELETE", "/api/suppressions/ada@example.com", {"reason": "again"})
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


@pytest.mark.parametrize("reason", ["unsubscribed", "complained"])
def test_a_persons_own_opt_out_is_removed_only_by_an_admin_with_a_reason_on_the_audit_trail(api, db, reason):
    """Review finding: a marketer could delete an `unsubscribed` suppression, and the next campaign mailed someone
    who had opted out."""
    assert api.post("/api/suppressions", {"email": "ada@example.com", "reason": reason})[0] == 201
    marketer = token_for(api, "m@example.com", "marketer")
    for body in (None, {"reason": "the shop says she opted in again"}):
        status, reply, _ = api.request("DELETE", "/api/suppressions/ada@example.com", body, token=marketer)
        assert status == 403, reply
        assert_error(reply, "forbidden")
    for body, loc in ((None, ["body", "reason"]), ({"reason": "   "}, ["body", "reason"]),
                      ({"reason": "x" * 501}, ["body", "reason"]), ({"why": "no"}, ["body", "why"])):
        status, reply, _ = api.request("DELETE", "/api/suppressions/ada@example.com", body)
        assert status == 422, (body, reply)
        assert_error(reply, "validation_error", loc)
    assert db.suppressions.count_documents({"reason": reason}) == 1
    assert db.audit_log.count_documents({"action": "suppression.delete"}) == 0

    status, _, _ = api.request("DELETE", "/api/suppressions/ada@example.com", {"reason": " she opted in at the till "})
    assert status == 204 and db.suppressions.count_documents({}) == 0
    [entry] = db.audit_log.find({"action": "suppression.delete"})
    assert entry["actor"]["email"] == "tester@example.com"
    assert entry["details"] == {"reason": "she opted in at the till", "removed": reason}


@pytest.mark.parametrize("reason", ["manual", "bounced"])
def test_other_suppressions_are_removed_by_a_marketer_as_before(api, db, reason):
    assert api.post("/api/suppressions", {"email": "bo@example.com", "reason": reason})[0] == 201
    marketer = token_for(api, "m@example.com", "marketer")
    assert api.request("DELETE", "/api/suppressions/bo@example.com", token=marketer)[0] == 204
    assert db.suppressions.count_documents({}) == 0
    assert db.audit_log.count_documents({"action": "suppression.delete"}) == 1


def test_the_openapi_document_names_the_removal_reason(api):
    _, document, _ = api.get("/openapi.json")
    operation = document["paths"]["/api/suppressions/{email}"]["delete"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert operation["requestBody"].get("required") is not True
    assert "#/components/schemas/SuppressionRemovalIn" in json.dumps(schema)
    model = document["components"]["schemas"]["SuppressionRemovalIn"]
    assert model["required"] == ["reason"] and model["properties"]["reason"]["maxLength"] == 500
    assert "admin" in operation["description"]
