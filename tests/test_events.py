"""Each function's sample event in events/ (what `sam local invoke -e` sends), fed to its real handler against the
local stack. Together the consumer events carry one customer through a whole campaign."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from bson import ObjectId

from crm.models.campaigns import CampaignIn
from offline import template
from offline.lambda_worker import LambdaContext
from offline.sign_receipt import signed
from tests.conftest import TEMPLATE, load_function
from tests.helpers import stats
from tests.test_template import sqs_policy_queues

EVENTS = Path(__file__).resolve().parent.parent / "events"
SAMPLE_CAMPAIGN_ID = ObjectId("6744d1a0c2b1f3a4d5e6f702")
SAMPLE_LOG_ID = ObjectId("6744d1a0c2b1f3a4d5e6f701")


def _event(group: str) -> dict:
    return json.loads((EVENTS / f"{group}.json").read_text())


FUNCTIONS = {Path(spec.code_uri).name: name for name, spec in template.load(TEMPLATE).functions.items()}
_invoking: list[str] = []


@pytest.fixture(autouse=True)
def queues_sent_to(env, queues):
    """Every queue each function sends to while handling its event must be one its policies allow."""
    from crm.queues import get_sqs

    sent: set[tuple[str, str]] = set()
    by_url = {queue.url: name for name, queue in queues.items()}

    def record(params, **_):
        sent.add((_invoking[-1], by_url[params["QueueUrl"]]))

    events = get_sqs().meta.events
    events.register("before-parameter-build.sqs.SendMessageBatch", record)
    yield sent
    events.unregister("before-parameter-build.sqs.SendMessageBatch", record)
    for function, queue in sent:
        assert queue in sqs_policy_queues(function), f"{function} sent to {queue}, which its policies do not allow"


def _invoke(group: str, event: dict, seconds_left: float = 2e9) -> dict:
    _invoking.append(FUNCTIONS[group])
    try:
        return load_function(group).handler(event, LambdaContext(group, 512, "sample", min(2e9, time.time()
                                                                                          + seconds_left)))
    finally:
        _invoking.pop()


def _reply(group: str, event: dict) -> tuple[int, dict]:
    reply = _invoke(group, event)
    return reply["statusCode"], json.loads(reply["body"])


def test_every_function_has_its_sample_event():
    folders = {Path(spec.code_uri).name for spec in template.load(TEMPLATE).functions.values()}
    assert {path.stem for path in EVENTS.glob("*.json")} == folders


def test_api_events(env, db, consumers, queues_sent_to):
    status, body = _reply("auth", _event("auth"))
    assert status == 200
    bearer = f"Bearer {body['token']}"

    def with_token(group: str) -> dict:
        event = _event(group)
        assert event["headers"]["authorization"].startswith("Bearer REPLACE")
        event["headers"]["authorization"] = bearer
        return event

    assert _reply("access", with_token("access")) == (200, {"type": "user", "email": "ops@example.com",
                                                            "name": "Ops", "role": "admin"})
    assert _reply("customers", with_token("customers")) == (202, {"accepted": 1})
    assert _reply("orders", with_token("orders")) == (200, {"items": [], "next_cursor": None})
    assert _reply("segments", with_token("segments")) == (200, {"audience_size": 0, "sample": []})
    status, body = _reply("ai", with_token("ai"))
    assert status == 200 and body["rules"]["and"][1] == {"field": "spend", "op": ">", "value": 5000}
    assert _reply("campaigns", with_token("campaigns")) == (200, {"items": [], "next_cursor": None})
    status, body = _reply("meta", _event("meta"))
    assert status == 200 and body["status"] == "ok"

    vendor = _event("vendor")
    vendor["headers"]["x-vendor-key"] = env["VENDOR_API_KEY"]
    status, body = _reply("vendor", vendor)
    assert status == 202 and body["status"] == "ACCEPTED" and consumers.messages("VendorReceiptQueue")
    status, body = _reply("receipts", signed(_event("receipts"), env["WEBHOOK_SECRET"]))
    assert (status, body) == (202, {"accepted": 1, "ignored": 0}) and consumers.messages("DeliveryReceiptQueue")
    assert queues_sent_to == {("CustomersFunction", "CustomerIngestQueue"), ("VendorFunction", "VendorReceiptQueue"),
                              ("ReceiptsFunction", "DeliveryReceiptQueue")}


def test_consumer_events_carry_a_customer_through_a_campaign(env, db, stack, monkeypatch, queues_sent_to):
    from crm import rules
    from crm.access.audit import Auditor
    from crm.access.principals import USER, Principal, Role
    from crm.config import get_settings
    from crm.services import campaigns
    from crm.services.segments import create as create_segment

    _, runner = stack  # the vendor and the receipt URL, served over HTTP as in AWS
    monkeypatch.setenv("VENDOR_URL", f"http://127.0.0.1:{runner.port}/api/mock-send")
    monkeypatch.setenv("RECEIPT_URL", f"http://127.0.0.1:{runner.port}/_url/ReceiptsFunction/api/delivery-receipt")
    get_settings.cache_clear()
    no_failures = {"batchItemFailures": []}

    assert _invoke("customer_ingest", _event("customer_ingest")) == no_failures
    assert _invoke("order_ingest", _event("order_ingest")) == no_failures
    customer = db.customers.find_one({"email": "ada@example.com"})
    assert customer["spend"] == 120.5 + 42.0 and customer["visits"] == 1

    # The sample fan-out names a campaign: this one, to everyone who spent anything.
    ops = Principal(USER, str(ObjectId()), "ops@example.com", role=Role.MARKETER)
    segment = create_segment(Auditor(db, ops, "sample"), "Spenders", None,
                             rules.parse({"field": "spend", "op": ">", "value": 0}), 20_000)
    campaigns.create(Auditor(db, ops, "sample"), SAMPLE_CAMPAIGN_ID,
                     CampaignIn(name="Weekend", segment_id=segment.id,
                                message="Hi {{first_name}}, 20% off this weekend!"),
                     queue_fan_out=lambda _: None)
    assert _invoke("campaign_fanout", _event("campaign_fanout")) == no_failures
    log = db.communication_logs.find_one_and_delete({"campaign_id": SAMPLE_CAMPAIGN_ID})
    assert log["message"] == "Hi Ada, 20% off this weekend!"
    db.communication_logs.insert_one({**log, "_id": SAMPLE_LOG_ID})  # the log the sample send names

    assert _invoke("campaign_send", _event("campaign_send")) == no_failures
    assert db.communication_logs.find_one({"_id": SAMPLE_LOG_ID})["vendor_message_id"].startswith("vm_")
    assert _invoke("vendor_receipts", _event("vendor_receipts")) == no_failures  # POSTed to the receipt URL
    assert db.communication_logs.find_one({"_id": SAMPLE_LOG_ID})["status"] == "QUEUED", "the receipt is queued"
    assert _invoke("delivery_receipts", _event("delivery_receipts")) == no_failures
    assert db.communication_logs.find_one({"_id": SAMPLE_LOG_ID})["status"] == "SENT"
    stored = db.campaigns.find_one({"_id": SAMPLE_CAMPAIGN_ID})
    assert stored["status"] == "COMPLETED" and stored["stats"] == stats(audience=1, sent=1)
    assert _invoke("reconciler", _event("reconciler"))["completed"] == 0, "nothing is left to settle"
    # Its last pass starts a few seconds before its timeout: a pass or two here.
    assert _invoke("roll_up", _event("roll_up"), seconds_left=10)["tallies"] == 0, "nothing is left to count"
    assert queues_sent_to == {("CampaignFanoutFunction", "CampaignSendQueue")}


def test_the_test_send_event_reaches_the_vendor_and_counts_in_no_campaign(env, db, stack, monkeypatch):
    from crm.config import get_settings

    _, runner = stack  # the mock vendor, served over HTTP as in AWS
    monkeypatch.setenv("VENDOR_URL", f"http://127.0.0.1:{runner.port}/api/mock-send")
    get_settings.cache_clear()
    status, body = _reply("auth", _event("auth"))  # ops@example.com, the address the sample test is sent to
    assert status == 200
    event = _event("test_send")
    assert event["headers"]["authorization"].startswith("Bearer REPLACE")
    event["headers"]["authorization"] = f"Bearer {body['token']}"
    status, body = _reply("test_send", event)
    assert status == 200 and [s["to"] for s in body["sent"]] == ["ops@example.com"], body
    assert body["sent"][0]["vendor_message_id"] and db.communication_logs.count_documents({}) == 0


def test_unsubscribe_and_ses_events(env, db):
    # The sample link names no one (as sam local invoke sends it): the page says so, and nothing changes.
    reply = _invoke("unsubscribe", _event("unsubscribe"))
    assert reply["statusCode"] == 404 and reply["headers"]["content-type"].startswith("text/html")
    assert "This link is not valid." in reply["body"] and db.suppressions.count_documents({}) == 0

    # The sample SES event is the delivery of events/ses/delivery.json: one EventBridge event as the queue's body.
    event = _event("delivery_events")
    [record] = event["Records"]
    assert json.loads(record["body"]) == json.loads((EVENTS / "ses" / "delivery.json").read_text())
    log_id = ObjectId(json.loads(record["body"])["detail"]["mail"]["tags"]["log_id"][0])
    assert _invoke("delivery_events", event) == {"batchItemFailures": []}, "an unknown message changes nothing"
    message_id = json.loads(record["body"])["detail"]["mail"]["messageId"]
    campaign_id = ObjectId()
    db.campaigns.insert_one({"_id": campaign_id, "name": "Winter sale", "status": "SENDING",
                             "stats": {"audience": 1, "queued": 1, "sent": 0, "failed": 0, "skipped": 0},
                             "fanout": {"done": True}})
    db.communication_logs.insert_one({"_id": log_id, "campaign_id": campaign_id, "status": "QUEUED",
                                      "vendor_message_id": message_id, "to": {"email": "ada@example.com"}})
    assert _invoke("delivery_events", event) == {"batchItemFailures": []}
    assert db.communication_logs.find_one({"_id": log_id})["status"] == "SENT"
    assert db.campaigns.find_one({"_id": campaign_id})["stats"]["delivered"] == 1


def test_the_click_events_redirect_and_count_the_sample_logs_click(env, db, queues_sent_to):
    # The sample link is signed with the development key (what `sam local` runs with): it redirects, and queues.
    reply = _invoke("click_redirect", _event("click_redirect"))
    assert reply["statusCode"] == 302 and reply["headers"]["location"] == "https://shop.example.com/sale"
    assert queues_sent_to == {("ClickRedirectFunction", "ClickQueue")}

    # The sample click names the sample log: its first click, counted once however often it comes.
    db.communication_logs.insert_one({"_id": SAMPLE_LOG_ID, "campaign_id": SAMPLE_CAMPAIGN_ID,
                                      "customer_id": ObjectId(), "status": "SENT"})
    for _ in range(2):
        assert _invoke("clicks", _event("clicks")) == {"batchItemFailures": []}
    log = db.communication_logs.find_one({"_id": SAMPLE_LOG_ID})
    assert len(log["click_ids"]) == 1 and log["events"]["clicked"].year == 2026
