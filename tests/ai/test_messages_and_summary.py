"""POST /api/ai/messages and /api/ai/summary."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber
from bson import ObjectId

from crm.ai.messages import bedrock_suggestions
from crm.models.common import utcnow
from tests.helpers import assert_error, stats


def test_three_varied_suggestions_by_default(api):
    status, body, _ = api.post("/api/ai/messages", {"goal": "Win back customers with 10% off this weekend"})
    assert status == 200
    suggestions = body["suggestions"]
    assert len(suggestions) == len(set(suggestions)) == 3
    assert all("{{name}}" in s or "{{first_name}}" in s for s in suggestions)
    assert all("10% off this weekend" in s for s in suggestions)


def test_up_to_five_and_no_more(api):
    assert len(api.post("/api/ai/messages", {"goal": "new arrivals", "count": 5})[1]["suggestions"]) == 5
    status, body, _ = api.post("/api/ai/messages", {"goal": "new arrivals", "count": 6})
    assert status == 422
    assert_error(body, "validation_error", ["body", "count"])


def test_bedrock_suggestions_with_stubber():
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    reply = {"output": {"message": {"role": "assistant", "content": [{"text": json.dumps(
        {"suggestions": ["Hi {{name}}, we miss you!", "{{first_name}}, 10% off just for you"]})}]}},
        "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1}}
    with Stubber(client) as stubber:
        stubber.add_response("converse", reply, {"modelId": "m", "system": ANY, "messages": ANY,
                                                 "inferenceConfig": ANY})
        assert bedrock_suggestions(client, "m", "win back", 2) == ["Hi {{name}}, we miss you!",
                                                                    "{{first_name}}, 10% off just for you"]


def _campaign(db, name: str, sent: int, failed: int, queued: int = 0, owner: str = "tester@example.com") -> str:
    stats = {"audience": sent + failed + queued, "queued": queued, "sent": sent, "failed": failed}
    return str(db.campaigns.insert_one({"name": name, "segment_id": ObjectId(), "message": "m", "rules": {},
                                        "status": "COMPLETED", "created_by": owner, "created_at": utcnow(),
                                        "stats": stats, "fanout": {"done": True}}).inserted_id)


def test_summary_from_real_stats_compared_with_other_campaigns(api, db):
    _campaign(db, "Spring", sent=80, failed=20)
    _campaign(db, "Summer", sent=90, failed=10)
    _campaign(db, "Someone else's", sent=1, failed=99, owner="other@example.com")
    campaign_id = _campaign(db, "Diwali", sent=1140, failed=144)
    status, body, _ = api.post("/api/ai/summary", {"campaign_id": campaign_id})
    assert status == 200
    assert body["stats"] == stats(audience=1284, sent=1140, failed=144)
    assert body["summary"] == ("Your campaign \u201cDiwali\u201d reached 1,284 customers; 1,140 messages were sent "
                               "and 144 failed (88.8% delivered). That is 3.8 points above your average of 85.0% "
                               "over 2 other campaigns.")


def test_summary_of_a_first_campaign_still_sending(api, db):
    campaign_id = _campaign(db, "First", sent=3, failed=1, queued=6)
    summary = api.post("/api/ai/summary", {"campaign_id": campaign_id})[1]["summary"]
    assert "6 are still on their way" in summary and "first campaign" in summary


def test_summary_of_unknown_campaign_is_404(api):
    assert api.post("/api/ai/summary", {"campaign_id": str(ObjectId())})[0] == 404


def test_summary_counts_skipped_recipients_and_email_engagement(api, db):
    campaign_id = db.campaigns.insert_one({
        "name": "Mail", "segment_id": ObjectId(), "message": "m", "rules": {}, "status": "COMPLETED",
        "created_by": "tester@example.com", "created_at": utcnow(), "fanout": {"done": True},
        "stats": stats(audience=10, sent=6, failed=1, skipped=3, bounced=1, opened=4, clicked=2)}).inserted_id
    status, body, _ = api.post("/api/ai/summary", {"campaign_id": str(campaign_id)})
    assert status == 200 and body["stats"]["skipped"] == 3
    assert "3 were skipped" in body["summary"] and "E-mail: 1 bounced, 4 opened, 2 clicked." in body["summary"]
    everyone_skipped = db.campaigns.insert_one({
        "name": "Nobody", "segment_id": ObjectId(), "message": "m", "rules": {}, "status": "COMPLETED",
        "created_by": "tester@example.com", "created_at": utcnow(), "fanout": {"done": True},
        "stats": stats(audience=2, skipped=2)}).inserted_id
    summary = api.post("/api/ai/summary", {"campaign_id": str(everyone_skipped)})[1]["summary"]
    assert "2 were skipped" in summary


@pytest.mark.parametrize("goal", ["...", "!?", " . "])
def test_a_goal_without_words_is_422_naming_it(api, goal):
    """Review finding: the offline writer failed (500) on a goal that was only punctuation."""
    status, body, _ = api.post("/api/ai/messages", {"goal": goal})
    assert status == 422, body
    assert_error(body, "goal_not_understood", ["body", "goal"])
