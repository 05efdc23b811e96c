"""The audit trail: each write through the API recorded once, with its actor and the request's id; a write that
fails records nothing; an audit write that fails fails the request (and, where they share a transaction, the
write)."""
from __future__ import annotations

import pytest

from tests.helpers import assert_error, new_key, token_for

SEGMENT = {"name": "Big", "rules": {"field": "spend", "op": ">", "value": 10}}


def _entries(api, query: str = "") -> list[dict]:
    status, body, _ = api.get(f"/api/audit{query}")
    assert status == 200, body
    return body["items"]


def test_each_write_is_recorded_once_with_its_actor(api, db, consumers):
    marketer = token_for(api, "mark@example.com", "marketer")
    status, segment, _ = api.post("/api/segments", SEGMENT, token=marketer)
    assert status == 201
    campaign = {"name": "Hi", "segment_id": segment["id"], "message": "Hi {{name}}"}
    first = api.post("/api/campaigns", campaign, token=marketer, headers={"Idempotency-Key": "c-1"})
    again = api.post("/api/campaigns", campaign, token=marketer, headers={"Idempotency-Key": "c-1"})
    assert first[0] == again[0] == 202 and first[1]["id"] == again[1]["id"]
    key = new_key(api, "customers:write")
    for _ in range(2):
        assert api.post("/api/customers", {"name": "A", "email": "a@example.com"}, token=key["key"],
                        headers={"Idempotency-Key": "batch-1"})[0] == 202
    assert api.request("DELETE", f"/api/api-keys/{key['id']}")[0] == 204

    entries = _entries(api)
    actions = [e["action"] for e in entries]
    # Newest first; the api fixture's and the marketer's dev-token sign-ins come first in time.
    assert actions == ["api_key.revoke", "customers.ingest", "api_key.create", "campaign.create", "segment.create",
                       "user.sign_in", "user.sign_in"], actions
    by_action = {e["action"]: e for e in entries}
    assert by_action["segment.create"]["actor"]["email"] == "mark@example.com"
    assert by_action["segment.create"]["target"] == {"type": "segment", "id": segment["id"]}
    assert by_action["campaign.create"]["target"] == {"type": "campaign", "id": first[1]["id"]}
    assert by_action["customers.ingest"]["actor"] == {"type": "api_key", "id": key["id"]}
    assert by_action["api_key.revoke"]["actor"]["email"] == "tester@example.com"
    assert all(e["request_id"] and e["at"] for e in entries)
    assert len({e["request_id"] for e in entries}) == len(entries)


@pytest.mark.parametrize("path, body", [
    ("/api/segments", {"name": "Bad", "rules": {"field": "spend", "op": "~", "value": 1}}),
    ("/api/campaigns", {"name": "Hi", "segment_id": "0123456789abcdef01234567", "message": "Hi"}),
    ("/api/users", {"email": "tester@example.com", "role": "admin"}),
    ("/api/customers", {"name": "A", "email": "not-an-address"}),
    ("/api/api-keys", {"name": "k", "scopes": ["everything"]}),
])
def test_a_write_that_fails_records_nothing(api, db, path, body):
    before = db.audit_log.count_documents({})
    status, _, _ = api.post(path, body)
    assert 400 <= status < 500
    assert db.audit_log.count_documents({}) == before


def test_a_failed_audit_write_fails_the_request_and_its_write(api, db):
    db.command("collMod", "audit_log", validator={"$expr": False}, validationAction="error")
    status, body, _ = api.post("/api/segments", SEGMENT)
    assert status >= 500
    assert db.segments.count_documents({}) == 0, "the segment and its entry commit together or not at all"
    status, body, _ = api.post("/api/users", {"email": "new@example.com", "role": "analyst"})
    assert status >= 500 and db.users.count_documents({"email": "new@example.com"}) == 0
    status, body, _ = api.post("/api/customers", {"name": "A", "email": "a@example.com"},
                               headers={"Idempotency-Key": "k-1"})
    assert status >= 500
    db.command("collMod", "audit_log", validator={})
    # The key was released: the retry does the work and records it.
    assert api.post("/api/customers", {"name": "A", "email": "a@example.com"}, headers={"Idempotency-Key": "k-1"}
                    )[0] == 202
    assert [e["action"] for e in _entries(api, "?action=customers.ingest")] == ["customers.ingest"]


def test_filters_by_actor_action_and_time(api, db):
    marketer = token_for(api, "mark@example.com", "marketer")
    api.post("/api/segments", SEGMENT, token=marketer)
    api.post("/api/segments", SEGMENT)
    mine = _entries(api, "?actor=MARK@example.com")
    assert [e["action"] for e in mine] == ["segment.create", "user.sign_in"]
    by_id = _entries(api, f"?actor={mine[0]['actor']['id']}")
    assert [e["id"] for e in by_id] == [e["id"] for e in mine]
    segments = _entries(api, "?action=segment.create")
    assert [e["actor"]["email"] for e in segments] == ["tester@example.com", "mark@example.com"]
    newest = segments[0]["at"]
    assert [e["id"] for e in _entries(api, f"?action=segment.create&from={newest}")] == [segments[0]["id"]]
    assert [e["id"] for e in _entries(api, f"?action=segment.create&to={segments[1]['at']}")] == [segments[1]["id"]]
    # Times an ObjectId cannot hold (before 1970, after 2106) are times all the same.
    assert len(_entries(api, "?from=0182-06-08T15:37:20Z")) == len(_entries(api))
    assert len(_entries(api, "?to=9999-12-31T00:00:00Z")) == len(_entries(api))
    assert _entries(api, "?to=1900-01-01T00:00:00Z") == _entries(api, "?from=2200-01-01T00:00:00Z") == []
    assert len(_entries(api, "?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59.999Z")) == len(_entries(api))
    page = api.get("/api/audit?limit=1")[1]
    assert len(page["items"]) == 1 and page["next_cursor"]
    assert api.get(f"/api/audit?limit=1&cursor={page['next_cursor']}")[1]["items"][0]["id"] != page["items"][0]["id"]


@pytest.mark.parametrize("query, loc", [("?actor={\"$ne\":1}", None), ("?from=yesterday", ["query", "from"]),
                                        ("?limit=0", ["query", "limit"]), ("?who=me", ["query", "who"])])
def test_bad_filters_are_422_or_match_nothing(api, db, query, loc):
    status, body, _ = api.get(f"/api/audit{query}")
    if loc is None:
        assert status == 200 and body["items"] == []
    else:
        assert status == 422
        assert_error(body, "validation_error", loc)


def test_a_campaign_or_an_ingest_whose_entry_fails_is_not_made(api, db, consumers):
    segment = api.post("/api/segments", SEGMENT)[1]
    db.command("collMod", "audit_log", validator={"$expr": False}, validationAction="error")
    status, _, _ = api.post("/api/campaigns", {"name": "Hi", "segment_id": segment["id"], "message": "Hi"})
    assert status >= 500
    assert db.campaigns.count_documents({}) == 0, "a stored campaign would have no entry"
    status, _, _ = api.post("/api/customers", {"name": "A", "email": "a@example.com"})
    assert status >= 500
    assert consumers.messages("CustomerIngestQueue") == [], "queued customers would have no entry"


def test_an_ingest_whose_queue_fails_leaves_no_entry(api, db, env, monkeypatch):
    monkeypatch.setenv("SQS_CUSTOMER_QUEUE_URL", env["SQS_CUSTOMER_QUEUE_URL"] + "-gone")
    from crm.config import get_settings

    get_settings.cache_clear()
    status, _, _ = api.post("/api/customers", {"name": "A", "email": "a@example.com"})
    assert status >= 500
    assert db.audit_log.count_documents({"action": "customers.ingest"}) == 0


def test_a_user_with_a_role_this_version_does_not_know_has_no_rights(api, db):
    from crm.auth import issue_token
    from crm.config import get_settings

    db.users.insert_one({"email": "odd@example.com", "role": "Admin", "disabled": False})
    token, _ = issue_token(get_settings(), "odd@example.com")
    status, body, _ = api.get("/api/me", token=token)
    assert status == 401
    assert_error(body, "unauthorized")
