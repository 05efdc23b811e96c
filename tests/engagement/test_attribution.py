"""Attribution and the report, through the real consumers, SecantusDB and moto: orders after a campaign (inside
its window, before its messages, by recipients whose message failed, by its control group, delivered twice) are
attributed once each, and every figure of the report equals a count made here from the raw orders and logs."""
from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from bson import ObjectId

from crm.consent.links import token_for
from crm.models.common import to_iso, utcnow
from crm.services.delivery import Outcome, record_outcomes, roll_up_pending

FANOUT, SEND, ORDERS = "CampaignFanoutQueue", "CampaignSendQueue", "OrderIngestQueue"
WINDOW = timedelta(days=5)
ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}


def _campaign(api, consumers, db, segment_id) -> dict:
    status, campaign, _ = api.post("/api/campaigns", {
        "name": "Diwali sale", "segment_id": segment_id, "control_percent": 20,
        "variants": [{"name": "A", "message": "A {{first_name}} {{unsubscribe_url}}"},
                     {"name": "B", "message": "B {{first_name}} {{unsubscribe_url}}"}]})
    assert status == 202, campaign
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    campaign_id = ObjectId(campaign["id"])
    handed = list(db.communication_logs.find({"campaign_id": campaign_id, "status": "QUEUED"}, {"_id": 1}))
    # Every tenth message fails; the rest are delivered.
    record_outcomes(db, [Outcome(log["_id"], "FAILED" if i % 10 == 0 else "SENT") for i, log in enumerate(handed)])
    return db.campaigns.find_one({"_id": campaign_id})


def _order(order_id, email, amount, at):
    return {"order_id": order_id, "customer_email": email, "amount": amount, "date": to_iso(at),
            "items": [{"sku": "SKU-1", "name": "Lamp", "qty": 1, "price": amount}]}


def _expected(db, campaign_id) -> dict:
    """The report's figures from the raw collections: each order goes to the latest SENT message of its customer in
    the window before it (any campaign's), and to the latest control log in that window."""
    logs = list(db.communication_logs.find({}))
    by_customer = defaultdict(list)
    for log in logs:
        by_customer[log["customer_id"]].append(log)
    converted, revenue = defaultdict(set), defaultdict(float)
    control_converted, control_revenue = set(), 0.0
    for order in db.orders.find({}):
        since, until = order["date"] - WINDOW, order["date"]
        mine = by_customer[order["customer_id"]]
        sent = [log for log in mine if log["status"] == "SENT" and log.get("sent_at")
                and since <= log["sent_at"] <= until]
        if sent:
            log = max(sent, key=lambda log: (log["sent_at"], log["_id"]))
            if log["campaign_id"] == campaign_id:
                converted[log.get("variant")].add(log["_id"])
                revenue[log.get("variant")] += order["amount"]
        held = [log for log in mine if log.get("reason") == "control" and since <= log["created_at"] <= until]
        if held:
            log = max(held, key=lambda log: (log["created_at"], log["_id"]))
            if log["campaign_id"] == campaign_id:
                control_converted.add(log["_id"])
                control_revenue += order["amount"]
    mine = [log for log in logs if log["campaign_id"] == campaign_id]
    sent = [log for log in mine if log["status"] == "SENT"]
    control = [log for log in mine if log.get("reason") == "control"]
    return {"sent": len(sent), "converted": sum(len(v) for v in converted.values()),
            "revenue": round(sum(revenue.values()), 2),
            "variants": {name: {"recipients": sum(log.get("variant") == name for log in sent),
                                "converted": len(converted[name]), "revenue": round(revenue[name], 2)}
                         for name in ("A", "B")},
            "control": {"recipients": len(control), "converted": len(control_converted),
                        "revenue": round(control_revenue, 2)},
            "unsubscribed": sum(1 for log in mine if log.get("events", {}).get("unsubscribed"))}


def test_orders_are_attributed_once_and_the_report_matches_the_raw_counts(api, db, consumers, segment_id, vendor,
                                                                         env):
    from crm.config import get_settings

    campaign = _campaign(api, consumers, db, segment_id)
    logs = list(db.communication_logs.find({"campaign_id": campaign["_id"]}))
    emails = {c["_id"]: c["email"] for c in db.customers.find({}, {"email": 1})}
    sent = [log for log in logs if log["status"] == "SENT"]
    failed = [log for log in logs if log["status"] == "FAILED"]
    control = [log for log in logs if log.get("reason") == "control"]
    assert len(sent) > 40 and failed and len(control) >= 10
    now = utcnow()
    orders = []
    for i, log in enumerate(sent[:30]):  # inside the window; every third buys twice
        orders.append(_order(f"in-{i}", emails[log["customer_id"]], 100.0 + i, now))
        if i % 3 == 0:
            orders.append(_order(f"again-{i}", emails[log["customer_id"]], 10.5, now + timedelta(minutes=1)))
    for i, log in enumerate(sent[30:35]):  # before the message: not the campaign's doing
        orders.append(_order(f"before-{i}", emails[log["customer_id"]], 50.0, log["sent_at"] - timedelta(hours=1)))
    for i, log in enumerate(sent[35:40]):  # after the window
        late = log["sent_at"] + WINDOW + timedelta(hours=1)
        orders.append(_order(f"late-{i}", emails[log["customer_id"]], 70.0, late))
    for i, log in enumerate(failed[:3]):  # the message failed: nothing to attribute to
        orders.append(_order(f"failed-{i}", emails[log["customer_id"]], 40.0, now))
    for i, log in enumerate(control[:6]):  # the control group buys too
        orders.append(_order(f"control-{i}", emails[log["customer_id"]], 30.0 + i, now))
    status, _, _ = api.post("/api/orders", {"orders": orders})
    assert status == 202
    # The same orders delivered again, and once more in another batch: attributed once.
    status, _, _ = api.post("/api/orders", {"orders": orders[:20]})
    assert status == 202
    consumers.drain(ORDERS)
    for log in sent[40:42]:  # two recipients unsubscribe through their message's link, one of them twice
        token = token_for(get_settings().secret("unsubscribe_secret"), log["customer_id"])
        for _ in range(2):
            assert api.request("POST", f"/u/{token}", raw=b"List-Unsubscribe=One-Click", headers=ONE_CLICK,
                               token="")[0] == 200
    roll_up_pending(db)  # the schedule's roll-up: an unsubscribe is a request, which counts nothing itself

    expected = _expected(db, campaign["_id"])
    assert expected["converted"] == 30 and expected["control"]["converted"] == 6, "the test's own arithmetic"
    assert db.orders.count_documents({}) == len(orders)
    _, body, _ = api.get(f"/api/campaigns/{campaign['_id']}")
    assert body["stats"]["converted"] == expected["converted"]
    assert body["stats"]["revenue"] == expected["revenue"]
    status, report, _ = api.get(f"/api/campaigns/{campaign['_id']}/report")
    assert status == 200, report
    assert report["funnel"] == {"audience": 120, "sent": expected["sent"], "delivered": expected["sent"],
                                "opened": 0, "clicked": 0, "converted": expected["converted"],
                                "unsubscribed": 2, "bounced": 0, "complained": 0}
    assert expected["unsubscribed"] == 2
    assert report["rates"]["conversion"] == pytest.approx(expected["converted"] / expected["sent"])
    assert report["rates"]["unsubscribe"] == pytest.approx(2 / expected["sent"])
    assert report["rates"]["delivery"] == 1.0
    assert report["revenue"] == expected["revenue"]
    assert [{k: v[k] for k in ("name", "recipients", "converted", "revenue")} for v in report["variants"]] == [
        {"name": name, **expected["variants"][name]} for name in ("A", "B")]
    control_rate = expected["control"]["converted"] / expected["control"]["recipients"]
    assert report["control"] == {
        "recipients": expected["control"]["recipients"], "converted": 6, "conversion_rate": pytest.approx(control_rate),
        "lift": pytest.approx((expected["converted"] / expected["sent"]) / control_rate - 1),
        "revenue": expected["control"]["revenue"]}
    # Attributed exactly once: each order names where it counted, and the logs agree.
    attributed = {o["order_id"]: o.get("attribution") for o in db.orders.find({})}
    assert all(attributed[f"in-{i}"]["campaign_id"] == campaign["_id"] for i in range(30))
    assert not any(attributed[f"{kind}-{i}"] for kind in ("before", "late") for i in range(5))
    assert not any(attributed[f"failed-{i}"] for i in range(3))
    assert all(attributed[f"control-{i}"]["control_campaign_id"] == campaign["_id"] for i in range(6))
    assert db.communication_logs.count_documents({"pending": True}) == 0, "every tally counted"


def test_the_report_is_for_people_who_may_read(api, db, consumers, segment_id, vendor):
    campaign = _campaign(api, consumers, db, segment_id)
    status, report, _ = api.get(f"/api/campaigns/{campaign['_id']}/report", token="")
    assert status == 401
    status, body, _ = api.get(f"/api/campaigns/{ObjectId()}/report")
    assert status == 404 and body["error"]["code"] == "not_found"
