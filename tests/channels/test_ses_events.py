"""SES's events (the EventBridge shapes of AWS's documentation, events/ses/) through the delivery-event consumer's
real handler: each applied once however duplicated or reordered; a permanent bounce and a complaint suppress the
address, and the next campaign skips it."""
from __future__ import annotations

import copy
import json
import random
import time
import uuid
from pathlib import Path

import pytest
from bson import ObjectId

from offline.lambda_worker import LambdaContext
from tests.channels.conftest import SEND
from tests.helpers import stats

FIXTURES = Path(__file__).resolve().parents[2] / "events" / "ses"


def ses_event(kind: str, log: dict) -> dict:
    event = copy.deepcopy(json.loads((FIXTURES / f"{kind}.json").read_text()))
    event["id"] = str(uuid.uuid4())
    mail = event["detail"]["mail"]
    mail["messageId"], mail["destination"] = log["vendor_message_id"], [log["to"]["email"]]
    mail["tags"]["log_id"] = [str(log["_id"])]
    return event


def deliver(events: list[dict]) -> dict:
    from crm.consumers.delivery_events import delivery_event_handler

    records = [{"messageId": str(uuid.uuid4()), "receiptHandle": "r", "body": json.dumps(e), "attributes": {},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:DeliveryEventQueue", "awsRegion": "us-east-1"}
               for e in events]
    return delivery_event_handler({"Records": records},
                                  LambdaContext("DeliveryEventsFunction", 512, "test", time.time() + 60))


@pytest.fixture
def sent_logs(db, consumers, email_campaign):
    def make(count: int) -> tuple[str, list[dict]]:
        campaign_id = email_campaign(count)
        consumers.drain(SEND)
        logs = list(db.communication_logs.find({"campaign_id": ObjectId(campaign_id)}).sort("to.email", 1))
        assert len(logs) == count and all(log["vendor_message_id"] for log in logs)
        return campaign_id, logs
    return make


@pytest.fixture
def ses_tracks_clicks(env, monkeypatch):
    """SES counts clicks: our own tracked links are off (TRACK_CLICKS=false)."""
    from crm.config import get_settings

    monkeypatch.setenv("TRACK_CLICKS", "false")
    get_settings.cache_clear()


def test_each_event_counts_once_however_duplicated_or_reordered(db, sent_logs, ses_tracks_clicks):
    campaign_id, logs = sent_logs(3)
    delivered, bounced, complained = logs
    events = [ses_event(kind, delivered) for kind in ("send", "delivery", "open", "click", "open", "click")]
    events += [ses_event(kind, bounced) for kind in ("delivery_delay", "bounce_transient", "bounce_permanent")]
    events += [ses_event(kind, complained) for kind in ("delivery", "complaint", "open")]
    shuffled = events * 2
    random.Random(7).shuffle(shuffled)
    for start in range(0, len(shuffled), 5):
        assert deliver(shuffled[start:start + 5]) == {"batchItemFailures": []}

    by_address = {log["to"]["email"]: log for log in db.communication_logs.find({})}
    assert by_address[delivered["to"]["email"]]["status"] == "SENT"
    assert by_address[delivered["to"]["email"]]["events"]["opened"] is not None
    assert (by_address[bounced["to"]["email"]]["status"], by_address[bounced["to"]["email"]]["reason"]) == (
        "FAILED", "bounced")
    assert by_address[complained["to"]["email"]]["status"] == "SENT"
    campaign = db.campaigns.find_one({"_id": ObjectId(campaign_id)})
    assert campaign["status"] == "COMPLETED"
    assert campaign["stats"] == stats(audience=3, sent=2, failed=1, delivered=2, bounced=1, complained=1, opened=2,
                                      clicked=1)
    assert {(s["email"], s["reason"]) for s in db.suppressions.find({})} == {
        (bounced["to"]["email"], "bounced"), (complained["to"]["email"], "complained")}


def test_with_our_own_tracked_links_a_click_ses_reports_is_not_counted_again(db, sent_logs):
    campaign_id, [log] = sent_logs(1)
    assert deliver([ses_event(kind, log) for kind in ("delivery", "open", "click", "click")]) == {
        "batchItemFailures": []}
    stored = db.communication_logs.find_one({"_id": log["_id"]})
    assert "clicked" not in stored["events"] and stored["events"]["opened"]
    assert db.campaigns.find_one({"_id": ObjectId(campaign_id)})["stats"] == stats(audience=1, sent=1, delivered=1,
                                                                                   opened=1)


def test_a_late_bounce_after_delivery_suppresses_but_does_not_move_the_log_back(db, sent_logs):
    _, [log] = sent_logs(1)
    deliver([ses_event("delivery", log)])
    deliver([ses_event("bounce_permanent", log)])
    stored = db.communication_logs.find_one({"_id": log["_id"]})
    assert stored["status"] == "SENT"
    assert db.suppressions.find_one({})["reason"] == "bounced"


def test_a_rejected_email_fails_and_unknown_or_broken_events_change_nothing(db, sent_logs):
    _, [log] = sent_logs(1)
    stranger = {**log, "_id": ObjectId(), "vendor_message_id": "someone-elses"}
    result = deliver([ses_event("reject", log), ses_event("delivery", stranger), {"detail": "nonsense"}])
    assert len(result["batchItemFailures"]) == 1, "only the broken one goes back to the queue"
    stored = db.communication_logs.find_one({"_id": log["_id"]})
    assert (stored["status"], stored["reason"]) == ("FAILED", "rejected")


def test_a_bounced_address_is_skipped_by_the_next_campaign(db, consumers, sent_logs, email_campaign):
    _, [log] = sent_logs(1)
    deliver([ses_event("bounce_permanent", log)])
    second = email_campaign(1)
    consumers.drain(SEND)
    [skipped] = db.communication_logs.find({"campaign_id": ObjectId(second)})
    assert (skipped["status"], skipped["reason"], skipped["vendor_message_id"]) == ("SKIPPED", "bounced", None)
    assert db.campaigns.find_one({"_id": ObjectId(second)})["stats"] == stats(audience=1, skipped=1)


def test_a_batch_whose_write_fails_comes_back_whole_and_applies_once_later(db, sent_logs, monkeypatch):
    from crm.consent import suppressions

    campaign_id, [failing, fine] = sent_logs(2)
    real_add = suppressions.add

    def add(collection, email, reason, session=None):
        if email == failing["to"]["email"]:
            raise RuntimeError("this address's write fails")
        return real_add(collection, email, reason, session)

    monkeypatch.setattr(suppressions, "add", add)
    events = [ses_event("delivery", fine), ses_event("complaint", failing), ses_event("delivery", failing)]
    result = deliver(events)
    # Applied together (one bulk write, one roll-up), the batch comes back whole; what it wrote before the failure
    # is written so that applying it again changes nothing twice.
    assert len(result["batchItemFailures"]) == 3
    monkeypatch.setattr(suppressions, "add", real_add)
    assert deliver(events) == {"batchItemFailures": []}
    assert deliver(events) == {"batchItemFailures": []}
    campaign = db.campaigns.find_one({"_id": ObjectId(campaign_id)})
    assert campaign["stats"] == stats(audience=2, sent=2, delivered=2, complained=1)
    assert [s["reason"] for s in db.suppressions.find({})] == ["complained"]


def test_an_unconfirmed_send_takes_the_events_of_the_first_message_named_only(db, sent_logs):
    campaign_id, [log] = sent_logs(1)
    db.communication_logs.update_one({"_id": log["_id"]}, {"$set": {"vendor_message_id": f"unconfirmed:{log['_id']}"}})
    first, other = {**log, "vendor_message_id": "ses-first"}, {**log, "vendor_message_id": "ses-other"}
    assert deliver([ses_event("delivery", first), ses_event("bounce_permanent", other),
                    ses_event("open", other)]) == {"batchItemFailures": []}
    stored = db.communication_logs.find_one({"_id": log["_id"]})
    assert (stored["vendor_message_id"], stored["status"]) == ("ses-first", "SENT")
    assert set(stored["events"]) == {"delivered"}
    assert db.campaigns.find_one({"_id": ObjectId(campaign_id)})["stats"] == stats(audience=1, sent=1, delivered=1)
    assert db.suppressions.count_documents({}) == 0


def test_an_event_for_a_log_already_failed_moves_no_counter(db, sent_logs):
    """Review finding: a delayed e-mail failed no_receipt, then its Delivery and Open moved the counters (more
    delivered than sent)."""
    campaign_id, [log] = sent_logs(1)
    db.communication_logs.update_one({"_id": log["_id"]}, {"$set": {"status": "FAILED", "reason": "no_receipt"}})
    db.campaigns.update_one({"_id": ObjectId(campaign_id)}, {"$inc": {"stats.queued": -1, "stats.failed": 1}})
    assert deliver([ses_event("delivery", log), ses_event("open", log)]) == {"batchItemFailures": []}
    assert db.campaigns.find_one({"_id": ObjectId(campaign_id)})["stats"] == stats(audience=1, failed=1)


def test_a_delivery_delay_moves_the_receipt_timeout_on(db, sent_logs):
    from datetime import timedelta

    from crm.models.common import utcnow

    _, [log] = sent_logs(1)
    soon = utcnow() + timedelta(seconds=5)
    db.communication_logs.update_one({"_id": log["_id"]}, {"$set": {"due_at": soon}})
    assert deliver([ses_event("delivery_delay", log)]) == {"batchItemFailures": []}
    assert db.communication_logs.find_one({"_id": log["_id"]})["due_at"] > soon + timedelta(minutes=10)
