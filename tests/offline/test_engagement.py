"""What a campaign earned, through the whole local system: on the mock vendor in fault mode (SQS delivers twice,
consumers are killed), and on SES (moto, with SES's events from offline.ses_feedback): clicks through the
runner's /c/ links, orders ingested after the campaign (inside its window, after it, before it, by its control
group, sent twice), and the report, whose every figure is checked against a count made here from the raw
collections; then the segments of recipients who did not click, and who did not open, by the campaign rule."""
from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from bson import ObjectId

from crm.config import get_settings
from crm.engagement.links import token_for
from crm.models.common import to_iso, utcnow
from offline import services, ses_feedback
from offline.faults import Faults
from tests.conftest import signed_in_system
from tests.test_faults import _audience, wait_until

LINKS = ["https://shop.example.com/diwali", "https://shop.example.com/lamps?from=mail"]
WINDOW = timedelta(days=5)
SENDER = "Shop <news@shop.example.com>"
# SES's answers: some bounce, half of those delivered open, some follow the tracked link in their mail.
SHARES = ses_feedback.Shares(bounce=0.05, complaint=0.0, open=0.5, click=0.1, seed="earned")


def _order(order_id: str, customer_id, amount: float, at) -> dict:
    return {"order_id": order_id, "customer_id": str(customer_id), "amount": amount, "date": to_iso(at),
            "items": [{"sku": "LAMP-1", "name": "Diya lamp", "qty": 1, "price": amount}]}


def _follow(http, path: str):
    """A reader's click: the public route is throttled (PublicRateLimit), so one that comes too fast is a 429, which
    a reader's browser meets as an error page and the reader tries again."""
    for _ in range(50):
        followed = http.get(path)
        if followed.status_code != 429:
            return followed
        time.sleep(0.2)
    return followed


def _raw_report(db, campaign_id: ObjectId, clicks: Counter, channel: str) -> dict:
    """The report as the raw logs and orders give it."""
    logs = list(db.communication_logs.find({"campaign_id": campaign_id}))
    sent = [log for log in logs if log["status"] == "SENT"]
    control = [log for log in logs if log.get("reason") == "control"]
    mine = {log["_id"]: log for log in logs}
    converted, control_converted = set(), set()
    revenue = control_revenue = 0.0
    for order in db.orders.find({}):
        customer_logs = list(db.communication_logs.find({"customer_id": order["customer_id"]}))
        since, until = order["date"] - WINDOW, order["date"]
        messages = [log for log in customer_logs if log["status"] == "SENT" and since <= log["sent_at"] <= until]
        latest = max(messages, key=lambda log: (log["sent_at"], log["_id"]), default=None)
        if latest is not None and latest["_id"] in mine:
            converted.add(latest["_id"])
            revenue += order["amount"]
        held = [log for log in customer_logs if log.get("reason") == "control" and since <= log["created_at"] <= until]
        latest = max(held, key=lambda log: (log["created_at"], log["_id"]), default=None)
        if latest is not None and latest["_id"] in mine:
            control_converted.add(latest["_id"])
            control_revenue += order["amount"]
    events = Counter(name for log in logs for name in log.get("events", {}))
    conversion = len(converted) / len(sent)
    control_rate = len(control_converted) / len(control)
    return {
        "funnel": {"audience": len(logs), "sent": len(sent),
                   "delivered": events["delivered"] if channel == "ses" else len(sent), "opened": events["opened"],
                   "clicked": events["clicked"], "converted": len(converted), "unsubscribed": 0,
                   "bounced": events["bounced"], "complained": 0},
        "revenue": round(revenue, 2),
        "links": [{"url": url, "clicks": clicks[place],
                   "recipients": sum(place in log.get("clicked_links", []) for log in logs)}
                  for place, url in enumerate(LINKS)],
        "control": {"recipients": len(control), "converted": len(control_converted),
                    "revenue": round(control_revenue, 2), "conversion_rate": control_rate,
                    "lift": conversion / control_rate - 1 if control_rate else None},
        "rates": {"click": events["clicked"] / len(sent), "conversion": conversion}}


def _as_reported(report: dict) -> dict:
    rates = report["rates"]
    return {**{key: report[key] for key in ("funnel", "revenue", "links", "control")},
            "rates": {"click": rates["click"], "conversion": rates["conversion"]}}


@pytest.mark.parametrize("channel", ["mock", "ses"])
def test_clicks_orders_and_the_report_match_the_raw_collections(channel, stack_env, queues, db, sqs):
    _audience(db, 200)
    port = services.free_port()
    public_url = f"http://127.0.0.1:{port}"
    env = {**stack_env, "VENDOR_URL": f"{public_url}/api/mock-send", "PUBLIC_URL": public_url,
           "RECEIPT_URL": f"{public_url}/_url/ReceiptsFunction/api/delivery-receipt"}
    if channel == "ses":
        env.update(CHANNEL="ses", SES_FROM_ADDRESS=SENDER)
        assert services.prepare_local_ses(env) == SENDER
    # Fault mode on the mock vendor's path; the e-mail path's faults are test_email's (each stack costs a minute).
    faults = Faults({"sqs_dup": 0.3, "sqs_kill": 0.15}, seed=24) if channel == "mock" else None
    with signed_in_system(env, queues, port, faults, time_scale=6) as http:
        segment = http.post("/api/segments", json={"name": "All", "rules": {"field": "spend", "op": ">=",
                                                                            "value": 0}}).json()
        created = http.post("/api/campaigns", json={
            "name": "Diwali sale", "segment_id": segment["id"], "control_percent": 20,
            "message": f"Hi {{{{first_name}}}}, lamps at {LINKS[0]} and more: {LINKS[1]}",
            **({"subject": "Diwali sale, {{first_name}}"} if channel == "ses" else {})})
        assert created.status_code == 202, created.text
        campaign_id = ObjectId(created.json()["id"])
        readers: Counter = Counter()  # clicks by readers following the tracked link in their e-mail
        if channel == "ses":
            # SES's events decide each log's outcome: answered for every message handed to SES and still waiting.
            def completed_with_feedback():
                mails = ses_feedback.sent_mail(env["SES_ENDPOINT_URL"])
                done = ses_feedback.feedback(db, sqs, queues[ses_feedback.DELIVERY_QUEUE].url, mails, SHARES,
                                             follow_links=True)
                readers[0] += done["followed"]
                return http.get(f"/api/campaigns/{campaign_id}").json()["status"] == "COMPLETED"

            wait_until(completed_with_feedback, 300, "the e-mail campaign completing", interval=3)
        detail = wait_until(lambda: (d := http.get(f"/api/campaigns/{campaign_id}").json())["status"] == "COMPLETED"
                            and d, 300, "the campaign completing")
        if channel == "ses":
            assert detail["stats"]["bounced"] and detail["stats"]["opened"] and readers[0]
        sent = list(db.communication_logs.find({"campaign_id": campaign_id, "status": "SENT"}).sort("_id", 1))
        control = list(db.communication_logs.find({"campaign_id": campaign_id, "reason": "control"}).sort("_id", 1))
        assert len(sent) > 100 and len(control) > 20

        # Clicks through the runner's /c/ links: 40 recipients click the first link, 10 of them twice, and 10
        # of them the second link too. Each GET is one click, whatever SQS does to its message.
        secret = get_settings().secret("unsubscribe_secret")
        clicks: Counter = Counter(readers)
        for i, log in enumerate(sent[:40]):
            for place in [0] + [0] * (i < 10) + [1] * (10 <= i < 20):
                followed = _follow(http, f"/c/{token_for(secret, log['_id'], place, LINKS[place])}")
                assert followed.status_code == 302 and followed.headers["location"] == LINKS[place]
                clicks[place] += 1
        assert http.get("/c/" + "A" * 60).status_code == 404

        # Orders: 30 recipients buy (every third twice), 5 bought before the message, 5 after the window, 8 of
        # the control group buy; the first 15 orders are sent again.
        now = utcnow()
        orders = [_order(f"in-{i}", log["customer_id"], 100.0 + i, now) for i, log in enumerate(sent[:30])]
        orders += [_order(f"again-{i}", log["customer_id"], 12.5, now + timedelta(minutes=1))
                   for i, log in enumerate(sent[:30:3])]
        orders += [_order(f"before-{i}", log["customer_id"], 40.0, log["sent_at"] - timedelta(hours=2))
                   for i, log in enumerate(sent[30:35])]
        orders += [_order(f"late-{i}", log["customer_id"], 70.0, log["sent_at"] + WINDOW + timedelta(hours=2))
                   for i, log in enumerate(sent[35:40])]
        orders += [_order(f"control-{i}", log["customer_id"], 20.0 + i, now) for i, log in enumerate(control[:8])]
        for batch in (orders, orders[:15]):
            assert http.post("/api/orders", json={"orders": batch}).status_code == 202
        wait_until(lambda: db.orders.count_documents({}) == len(orders), 120, "every order applied")

        def matches():
            report = http.get(f"/api/campaigns/{campaign_id}/report").json()
            return _as_reported(report) == _raw_report(db, campaign_id, clicks, channel) and report

        def mismatch() -> str:
            reported = _as_reported(http.get(f"/api/campaigns/{campaign_id}/report").json())
            return f"the report {reported} to match the raw counts {_raw_report(db, campaign_id, clicks, channel)}"

        report = wait_until(matches, 90, mismatch)
        assert report["funnel"]["converted"] == 30 and report["links"][1]["recipients"] == 10
        if channel == "mock":
            assert report["funnel"]["clicked"] == 40 and report["links"][0]["clicks"] == 50
        assert report["control"]["converted"] == 8

        # Resend to the recipients who did not click: received == and clicked != on this campaign.
        rules = {"and": [{"field": "campaign", "campaign_id": str(campaign_id), "op": "==", "value": "received"},
                         {"field": "campaign", "campaign_id": str(campaign_id), "op": "!=", "value": "clicked"}]}
        preview = http.post("/api/segments/preview", json={"rules": rules})
        assert preview.status_code == 200, preview.text
        assert preview.json()["audience_size"] == len(sent) - report["funnel"]["clicked"]
        # And to those who did not open it (all of them on the mock vendor, which reports no opens).
        rules["and"][1]["value"] = "opened"
        preview = http.post("/api/segments/preview", json={"rules": rules}).json()
        assert preview["audience_size"] == len(sent) - report["funnel"]["opened"]
    if faults is not None:
        injected = faults.injected()
        assert injected["sqs_dup"] and injected["sqs_kill"], injected
