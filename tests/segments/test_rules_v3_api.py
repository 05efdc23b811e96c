"""Rules v3 through the API: previews, a saved segment and a campaign's fan-out over behaviour rules (orders and their
SKUs through the order queue, campaign messages as the roll-up records them); rules that do not fit are 422 naming
their path and save nothing."""
from __future__ import annotations

from datetime import timedelta

import pytest
from bson import ObjectId
from pymongo import MongoClient

from crm import rules as crm_rules
from crm.db import CUSTOMERS
from crm.models.common import to_iso, utcnow
from crm.rules import activity
from crm.services import segments
from tests.helpers import FindReplies, assert_error

DAY = timedelta(days=1)
EARLIER_CAMPAIGN = ObjectId()
FANOUT = "CampaignFanoutQueue"


@pytest.fixture
def shop(api, consumers, db):
    """Ada ordered twice today (tea) and opened the earlier campaign; Bob ordered 40 days ago (a mug) and got the
    campaign without opening it; Cy never ordered and got no message."""
    now = utcnow()
    api.post("/api/customers", {"customers": [{"name": n, "email": f"{n.lower()}@example.com"}
                                              for n in ("Ada", "Bob", "Cy")]})
    consumers.drain("CustomerIngestQueue")

    def order(order_id, email, amount, sku, date):
        return {"order_id": order_id, "customer_email": email, "amount": amount, "date": to_iso(date),
                "items": [{"sku": sku, "name": sku, "qty": 1, "price": amount}]}

    api.post("/api/orders", {"orders": [order("o-1", "ada@example.com", 30, "TEA", now),
                                        order("o-2", "ada@example.com", 12.5, "TEA", now),
                                        order("o-3", "bob@example.com", 99, "MUG", now - 40 * DAY)]})
    consumers.drain("OrderIngestQueue")
    ids = {d["email"].split("@")[0]: d["_id"] for d in db[CUSTOMERS].find({}, {"email": 1})}
    sent = now - 3 * DAY
    db[CUSTOMERS].bulk_write(activity.message_activity_writes([
        {"customer_id": ids["ada"], "campaign_id": EARLIER_CAMPAIGN, "sent_at": sent, "events": {"opened": now}},
        {"customer_id": ids["bob"], "campaign_id": EARLIER_CAMPAIGN, "sent_at": sent, "events": {}}]))
    return ids


def _audience(api, rules) -> set[str]:
    status, body, _ = api.post("/api/segments/preview", {"rules": rules})
    assert status == 200, body
    assert body["audience_size"] == len(body["sample"])
    return {c["email"].split("@")[0] for c in body["sample"]}


def test_behaviour_rules_select_through_the_api(api, shop):
    assert _audience(api, {"field": "orders", "days": 7, "op": ">=", "value": 2}) == {"ada"}
    assert _audience(api, {"field": "orders", "days": 30, "op": "==", "value": 0}) == {"bob", "cy"}
    assert _audience(api, {"field": "orders", "days": 41, "op": "between", "value": [1, 1]}) == {"bob"}
    assert _audience(api, {"field": "order_spend", "days": 1, "op": ">", "value": 42}) == {"ada"}
    assert _audience(api, {"field": "order_spend", "days": 1, "op": "<", "value": 42.5}) == {"bob", "cy"}
    assert _audience(api, {"field": "bought", "days": 30, "op": "has_any", "value": ["MUG", "TEA"]}) == {"ada"}
    assert _audience(api, {"field": "bought", "days": 60, "op": "has_none", "value": ["MUG"]}) == {"ada", "cy"}
    assert _audience(api, {"field": "messages_received", "days": 7, "op": ">", "value": 0}) == {"ada", "bob"}
    assert _audience(api, {"field": "opened", "days": 1, "op": ">=", "value": 1}) == {"ada"}
    assert _audience(api, {"field": "clicked", "days": 730, "op": "==", "value": 0}) == {"ada", "bob", "cy"}
    # A resend to those who got the campaign and did not open it.
    earlier = str(EARLIER_CAMPAIGN)
    assert _audience(api, {"and": [
        {"field": "campaign", "campaign_id": earlier, "op": "==", "value": "received"},
        {"field": "campaign", "campaign_id": earlier, "op": "!=", "value": "opened"}]}) == {"bob"}
    assert _audience(api, {"or": [{"field": "spend", "op": ">", "value": 50},
                                  {"not": {"field": "campaign", "campaign_id": earlier, "op": "==",
                                           "value": "received"}}]}) == {"bob", "cy"}


def test_a_previews_sample_is_read_without_the_customers_behaviour_roll_up(env, shop):
    """Review finding: the sample read each customer's whole activity, which a behaviour rule's sample always has."""
    listener = FindReplies()
    with MongoClient(env["MONGO_URI"], event_listeners=[listener], tz_aware=True) as client:
        result = segments.preview(client[env["MONGO_DB"]][CUSTOMERS],
                                  crm_rules.parse({"field": "orders", "days": 60, "op": ">", "value": 0}), 20_000)
    assert [c.email for c in result.sample] in (["ada@example.com", "bob@example.com"],
                                                ["bob@example.com", "ada@example.com"])
    assert len(listener.documents) == 2 and all("activity" not in d and d["email"] for d in listener.documents)


def test_a_saved_behaviour_segment_keeps_its_rules_and_previews(api, shop):
    rules = {"and": [{"field": "bought", "days": 7, "op": "has_all", "value": ["TEA"]},
                     {"field": "order_spend", "days": 7, "op": "between", "value": [40, 50]}]}
    status, segment, _ = api.post("/api/segments", {"name": "Tea lovers this week", "rules": rules})
    assert status == 201 and segment["audience_size"] == 1 and segment["rules"] == rules
    status, preview, _ = api.get(f"/api/segments/{segment['id']}/preview")
    assert status == 200 and [c["email"] for c in preview["sample"]] == ["ada@example.com"]


def test_a_campaign_fans_out_to_a_behaviour_audience(api, db, consumers, shop):
    status, segment, _ = api.post("/api/segments", {"name": "Got it, did not open", "rules": {"and": [
        {"field": "campaign", "campaign_id": str(EARLIER_CAMPAIGN), "op": "==", "value": "received"},
        {"field": "opened", "days": 30, "op": "==", "value": 0}]}})
    assert status == 201 and segment["audience_size"] == 1
    status, campaign, _ = api.post("/api/campaigns", {"name": "Reminder", "segment_id": segment["id"],
                                                      "message": "Hi {{first_name}}, did you see this?"})
    assert status == 202, campaign
    [job] = consumers.messages(FANOUT)
    assert consumers.deliver(FANOUT, [job["Body"], job["Body"]]) == {"batchItemFailures": []}
    logs = list(db.communication_logs.find({"campaign_id": ObjectId(campaign["id"])}))
    assert [log["customer_id"] for log in logs] == [shop["bob"]]


@pytest.mark.parametrize("rules, loc", [
    ({"field": "orders", "op": ">", "value": 1}, ["body", "rules", "days"]),
    ({"field": "orders", "days": 0, "op": ">", "value": 1}, ["body", "rules", "days"]),
    ({"field": "orders", "days": 731, "op": ">", "value": 1}, ["body", "rules", "days"]),
    ({"field": "order_spend", "days": 1.5, "op": ">", "value": 1}, ["body", "rules", "days"]),
    ({"field": "opened", "days": "30", "op": ">", "value": 1}, ["body", "rules", "days"]),
    ({"field": "orders", "days": True, "op": ">", "value": 1}, ["body", "rules", "days"]),
    ({"field": "orders", "days": 30, "op": ">", "value": 1.5}, ["body", "rules", "value"]),
    ({"field": "order_spend", "days": 30, "op": ">", "value": -1}, ["body", "rules", "value"]),
    ({"field": "orders", "days": 30, "op": "has_any", "value": ["TEA"]}, ["body", "rules", "op"]),
    ({"field": "bought", "days": 30, "op": ">", "value": 1}, ["body", "rules", "op"]),
    ({"field": "bought", "days": 30, "op": "has_any", "value": []}, ["body", "rules", "value"]),
    ({"field": "bought", "days": 30, "op": "has_any", "value": [f"S{i}" for i in range(101)]},
     ["body", "rules", "value"]),
    ({"field": "campaign", "campaign_id": "0" * 24, "op": "==", "value": "seen"}, ["body", "rules", "value"]),
    ({"field": "campaign", "campaign_id": "nope", "op": "==", "value": "opened"}, ["body", "rules", "campaign_id"]),
    ({"field": "campaign", "campaign_id": "0" * 23, "op": "==", "value": "opened"}, ["body", "rules", "campaign_id"]),
    ({"field": "campaign", "op": "==", "value": "opened"}, ["body", "rules", "campaign_id"]),
    ({"field": "campaign", "campaign_id": "0" * 24, "op": ">", "value": "opened"}, ["body", "rules", "op"]),
    ({"field": "campaign", "campaign_id": "0" * 24, "days": 7, "op": "==", "value": "opened"},
     ["body", "rules", "days"]),
    ({"field": "orders", "days": 7, "campaign_id": "0" * 24, "op": ">", "value": 1},
     ["body", "rules", "campaign_id"]),
    ({"field": "spend", "days": 7, "op": ">", "value": 1}, ["body", "rules", "days"]),
    ({"or": [{"field": "spend", "op": ">", "value": 1}, {"not": {"field": "clicked", "days": 7, "op": "between",
                                                                  "value": [3, 1]}}]},
     ["body", "rules", "or", 1, "not", "value"]),
])
def test_behaviour_rules_that_do_not_fit_are_422_and_save_nothing(api, db, rules, loc):
    status, body, _ = api.post("/api/segments", {"name": "Bad", "rules": rules})
    assert status == 422, body
    assert_error(body, "validation_error", loc)
    assert db.segments.count_documents({}) == 0
    status, body, _ = api.post("/api/segments/preview", {"rules": rules})
    assert status == 422 and loc in [d["loc"] for d in body["error"]["details"]], body
