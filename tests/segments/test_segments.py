"""The segments API: save, list, read, preview; rules errors name their path."""
from __future__ import annotations

from datetime import timedelta

import pytest

from crm.models.common import utcnow
from crm.services.customers import upsert_customers
from tests.helpers import assert_error

API_EXAMPLE = {"and": [{"field": "inactive_days", "op": ">", "value": 180},
                       {"field": "spend", "op": ">", "value": 5000}]}


@pytest.fixture
def customers(db):
    """30 customers: spend 0..14500, last active 0..290 days ago."""
    now = utcnow()
    upsert_customers(db, [{
        "name": f"C{i}", "email": f"c{i:02d}@example.com", "spend": i * 500.0, "visits": i % 4,
        "last_active": (now - timedelta(days=i * 10, hours=1)).isoformat(), "accepted_at": now.isoformat(),
    } for i in range(30)])
    # inactive > 180 days: i >= 19 (190+ days); spend > 5000: i >= 11  => i in 19..29
    return {f"c{i:02d}@example.com" for i in range(19, 30)}


def test_create_read_list_and_preview(api, customers):
    status, segment, _ = api.post("/api/segments", {"name": "Lapsed big spenders", "description": "win-back",
                                                   "rules": API_EXAMPLE})
    assert status == 201, segment
    assert segment["audience_size"] == len(customers) == 11
    assert segment["created_by"] == "tester@example.com" and segment["rules"] == API_EXAMPLE
    assert set(segment) == {"id", "name", "description", "rules", "created_by", "created_at", "audience_size"}

    status, same, _ = api.get(f"/api/segments/{segment['id']}")
    assert status == 200 and same == segment
    status, page, _ = api.get("/api/segments")
    assert [s["id"] for s in page["items"]] == [segment["id"]] and page["next_cursor"] is None

    status, preview, _ = api.get(f"/api/segments/{segment['id']}/preview")
    assert status == 200 and preview["audience_size"] == 11
    assert len(preview["sample"]) == 10 and {c["email"] for c in preview["sample"]} <= customers
    assert set(preview["sample"][0]) >= {"id", "name", "email", "spend", "visits", "last_active"}


def test_preview_rules_without_saving(api, db, customers):
    rules = {"or": [{"field": "visits", "op": "==", "value": 0}, {"field": "spend", "op": ">=", "value": 14000}]}
    status, preview, _ = api.post("/api/segments/preview", {"rules": rules})
    assert status == 200
    expected = {f"c{i:02d}@example.com" for i in range(30) if i % 4 == 0 or i * 500 >= 14000}
    assert preview["audience_size"] == len(expected)
    assert {c["email"] for c in preview["sample"]} <= expected
    assert db.segments.count_documents({}) == 0


def test_segment_pages(api, customers):
    ids = [api.post("/api/segments", {"name": f"S{i}", "rules": {"field": "visits", "op": ">", "value": i}})[1]["id"]
           for i in range(5)]
    seen, cursor = [], None
    while True:
        _, page, _ = api.get("/api/segments?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))


def test_unknown_and_malformed_ids_are_404(api):
    status, body, _ = api.get("/api/segments/0123456789abcdef01234567")
    assert status == 404
    assert_error(body, "not_found")
    status, body, _ = api.get("/api/segments/0123456789abcdef01234567/preview")
    assert status == 404
    status, body, _ = api.get("/api/segments/not-an-id")
    assert status == 404, "a path that is no id names no segment"
    assert_error(body, "not_found")
    status, body, headers = api.get("/api/segments/preview")
    assert status == 405 and headers["allow"] == "POST", "preview is a route of its own, not an id"


@pytest.mark.parametrize("payload, loc", [
    ({"name": "x", "rules": {"and": [{"field": "spend", "op": ">", "value": 1}, {"field": "spend", "op": "=>",
                                                                                 "value": 1}]}},
     ["body", "rules", "and", 1, "op"]),
    ({"name": "x", "rules": {"or": []}}, ["body", "rules", "or"]),
    ({"name": "", "rules": {"field": "spend", "op": ">", "value": 1}}, ["body", "name"]),
    ({"name": "x"}, ["body", "rules"]),
    ({"name": "x", "rules": {"field": "spend", "op": ">", "value": {"$gt": ""}}}, ["body", "rules", "value"]),
])
def test_bad_segments_are_422_and_save_nothing(api, db, payload, loc):
    status, body, _ = api.post("/api/segments", payload)
    assert status == 422
    assert_error(body, "validation_error", loc)
    assert db.segments.count_documents({}) == 0


def test_rule_errors_say_the_path_in_words(api):
    status, body, _ = api.post("/api/segments/preview", {"rules": {"and": [{"field": "spend", "op": ">", "value": 1},
                                                                           {"field": "spend", "op": "?", "value": 1}]}})
    assert status == 422
    assert "rules.and[1].op" in body["error"]["message"]
