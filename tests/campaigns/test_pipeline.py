"""Campaign creation, fan-out, sending and receipts, each against retries and duplicates."""
from __future__ import annotations

import json
import time

import pytest
from bson import ObjectId

from crm import signing
from crm.messages import unpack
from crm.services import campaigns as campaign_service
from tests.helpers import assert_error, stats

FANOUT, SEND, RECEIPTS = "CampaignFanoutQueue", "CampaignSendQueue", "VendorReceiptQueue"
# Verified receipts, between the receipt URL and the consumer that applies them.
APPLY = "DeliveryReceiptQueue"


def _create(api, segment_id, **headers) -> dict:
    status, campaign, _ = api.post("/api/campaigns", {"name": "Winter sale", "segment_id": segment_id,
                                                      "message": "Hi {{first_name}}, 20% off for {{name}}!"},
                                   headers=headers or None)
    assert status == 202, campaign
    return campaign


def _records(consumers, queue: str) -> list[dict]:
    return [r for m in consumers.messages(queue) for r in unpack(m["Body"])[1]]


def test_create_only_stores_and_queues(api, db, consumers, segment_id):
    campaign = _create(api, segment_id)
    assert campaign["status"] == "QUEUED"
    assert campaign["stats"] == stats()
    assert set(campaign) >= {"id", "name", "segment_id", "message", "subject", "status", "created_at", "stats"}
    assert campaign["send_at"] is None and campaign["variants"] is None and campaign["control_percent"] == 0
    assert db.communication_logs.count_documents({}) == 0, "the request never touches the audience"
    assert _records(consumers, FANOUT) == [{"campaign_id": campaign["id"]}]


def test_idempotency_key_creates_one_campaign(api, db, consumers, segment_id):
    first = _create(api, segment_id, **{"Idempotency-Key": "c-1"})
    again = _create(api, segment_id, **{"Idempotency-Key": "c-1"})
    assert first == again
    assert db.campaigns.count_documents({}) == 1 and len(_records(consumers, FANOUT)) == 1


@pytest.mark.parametrize("payload, loc", [
    ({"name": "x", "segment_id": "nope", "message": "m"}, ["body", "segment_id"]),
    ({"name": "", "segment_id": "0" * 24, "message": "m"}, ["body", "name"]),
    ({"name": "x", "segment_id": "0" * 24}, ["body", "message"]),
])
def test_bad_campaigns_are_422(api, db, payload, loc):
    status, body, _ = api.post("/api/campaigns", payload)
    assert status == 422
    assert_error(body, "validation_error", loc)
    assert db.campaigns.count_documents({}) == 0


def test_unknown_segment_is_404(api, db):
    status, body, _ = api.post("/api/campaigns", {"name": "x", "segment_id": "0" * 24, "message": "m"})
    assert status == 404 and db.campaigns.count_documents({}) == 0


def test_fan_out_writes_one_personalised_log_per_recipient_even_when_redelivered(
        api, db, consumers, segment_id, monkeypatch):
    monkeypatch.setattr(campaign_service, "PAGE_SIZE", 50)
    campaign = _create(api, segment_id)
    [message] = consumers.messages(FANOUT)
    assert consumers.deliver(FANOUT, [message["Body"], message["Body"]]) == {"batchItemFailures": []}
    assert consumers.deliver(FANOUT, [message["Body"]]) == {"batchItemFailures": []}

    logs = list(db.communication_logs.find({"campaign_id": ObjectId(campaign["id"])}))
    assert len(logs) == 120 and len({log["customer_id"] for log in logs}) == 120
    log = next(log for log in logs if log["to"]["name"] == "Customer 007")
    assert log["message"] == "Hi Customer, 20% off for Customer 007!" and log["status"] == "QUEUED"
    stored = db.campaigns.find_one({"_id": ObjectId(campaign["id"])})
    assert stored["stats"] == stats(audience=120, queued=120)
    assert stored["status"] == "SENDING" and stored["fanout"]["done"]
    sends = _records(consumers, SEND)
    assert {r["log_id"] for r in sends} == {str(log["_id"]) for log in logs}


def test_fan_out_resumes_after_a_crash_without_counting_twice(api, db, consumers, segment_id, monkeypatch):
    monkeypatch.setattr(campaign_service, "PAGE_SIZE", 50)
    real_record, calls = campaign_service._record_page, []

    def record_then_die(*args):
        recorded = real_record(*args)
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("container died after recording page 2, before queuing its sends")
        return recorded

    monkeypatch.setattr(campaign_service, "_record_page", record_then_die)
    campaign = _create(api, segment_id)
    [message] = consumers.messages(FANOUT)
    assert len(consumers.deliver(FANOUT, [message["Body"]])["batchItemFailures"]) == 1
    assert consumers.deliver(FANOUT, [message["Body"]]) == {"batchItemFailures": []}
    stored = db.campaigns.find_one({"_id": ObjectId(campaign["id"])})
    assert stored["stats"]["audience"] == stored["stats"]["queued"] == 120
    assert db.communication_logs.count_documents({}) == 120


def test_a_run_overtaken_by_a_duplicate_run_reads_on_from_where_that_one_got_to(api, db, segment_id, monkeypatch):
    monkeypatch.setattr(campaign_service, "PAGE_SIZE", 20)
    campaign_id = ObjectId(_create(api, segment_id)["id"])
    sent: list[str] = []

    def record(batch, _campaign):
        sent.extend(r["log_id"] for r in batch)

    def overtaken(batch, _campaign):
        record(batch, _campaign)
        if len(sent) == 20:  # this run has written page 1, not yet recorded it; the other gets 3 pages ahead
            for _ in range(3):
                assert not campaign_service.fan_out(db, campaign_id, record, lambda: None, -1)

    assert campaign_service.fan_out(db, campaign_id, overtaken, lambda: None, 60)
    stored = db.campaigns.find_one({"_id": campaign_id})
    assert stored["stats"]["audience"] == stored["stats"]["queued"] == 120 and stored["fanout"]["done"]
    assert db.communication_logs.count_documents({"campaign_id": campaign_id}) == 120
    assert len(set(sent)) == 120


def test_fan_out_continues_itself_past_its_time_budget(api, db, consumers, segment_id, monkeypatch):
    from crm.consumers import campaigns as consumer

    monkeypatch.setattr(campaign_service, "PAGE_SIZE", 50)
    monkeypatch.setattr(consumer, "FANOUT_TIME_BUDGET_SECONDS", -1)  # every page is past the budget
    monkeypatch.setattr(consumer, "FANOUT_RESERVE_SECONDS", 10**6)  # run by a Lambda: past it too
    campaign = _create(api, segment_id)
    pages = 0
    while (messages := consumers.messages(FANOUT)):
        consumers.deliver(FANOUT, [m["Body"] for m in messages])
        pages += 1
    assert pages == 3  # 50, 50, then 20: a short page ends the fan-out
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"]["audience"] == 120


def test_empty_audience_completes_at_once(api, db, consumers, audience):
    _, segment, _ = api.post("/api/segments", {"name": "Nobody", "rules": {"field": "spend", "op": ">",
                                                                            "value": 10**9}})
    campaign = _create(api, segment["id"])
    consumers.drain(FANOUT)
    _, stored, _ = api.get(f"/api/campaigns/{campaign['id']}")
    assert stored["status"] == "COMPLETED" and stored["stats"]["audience"] == 0


def _fanned_out(api, consumers, segment_id) -> dict:
    campaign = _create(api, segment_id)
    consumers.drain(FANOUT)
    return campaign


def test_sends_go_out_once_even_when_the_send_message_is_redelivered(api, db, consumers, segment_id, vendor):
    campaign = _fanned_out(api, consumers, segment_id)
    bodies = [m["Body"] for m in consumers.messages(SEND)]
    assert consumers.deliver(SEND, bodies + bodies) == {"batchItemFailures": []}
    assert consumers.deliver(SEND, bodies) == {"batchItemFailures": []}
    sent = vendor.sent_log_ids()
    assert len(sent) == len(set(sent)) == 120
    assert all(r["key"].startswith("test-vendor-key-") for r in vendor.received)
    log = db.communication_logs.find_one({"campaign_id": ObjectId(campaign["id"])})
    assert log["vendor_message_id"] == f"v-{log['_id']}" and log["sent_at"] and log["status"] == "QUEUED"


def test_a_live_claim_holds_a_log_and_an_expired_one_frees_it(api, db, consumers, segment_id, vendor):
    from datetime import timedelta

    from crm.models.common import utcnow

    _fanned_out(api, consumers, segment_id)
    held, expired = [log["_id"] for log in db.communication_logs.find({}, {"_id": 1}).limit(2)]
    db.communication_logs.update_one({"_id": held}, {"$set": {"claimed_until": utcnow() + timedelta(seconds=60)}})
    db.communication_logs.update_one({"_id": expired}, {"$set": {"claimed_until": utcnow() - timedelta(seconds=1)}})
    consumers.deliver(SEND, [m["Body"] for m in consumers.messages(SEND)])
    sent = set(vendor.sent_log_ids())
    assert str(held) not in sent and str(expired) in sent and len(sent) == 119


def test_vendor_5xx_is_retried_then_succeeds(api, db, consumers, segment_id, vendor):
    _fanned_out(api, consumers, segment_id)
    vendor.script = [503, 500]
    assert consumers.deliver(SEND, [m["Body"] for m in consumers.messages(SEND)]) == {"batchItemFailures": []}
    assert [r["status"] for r in vendor.received[:3]] == [503, 500, 202]
    assert db.communication_logs.count_documents({"vendor_message_id": None}) == 0


def test_vendor_4xx_fails_the_logs_for_good(api, db, consumers, segment_id, vendor):
    campaign = _fanned_out(api, consumers, segment_id)
    vendor.script = [400]
    consumers.deliver(SEND, [m["Body"] for m in consumers.messages(SEND)])
    failed = db.communication_logs.count_documents({"status": "FAILED"})
    assert failed == 100  # the first vendor call carries 100 messages
    counted = db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"]
    assert counted == stats(audience=120, queued=20, failed=100)


def test_vendor_down_frees_the_logs_counts_an_attempt_and_queues_them_again_later(api, db, consumers, segment_id,
                                                                                   vendor):
    _fanned_out(api, consumers, segment_id)
    vendor.script = [503] * 8
    bodies = [m["Body"] for m in consumers.messages(SEND)]
    assert consumers.deliver(SEND, bodies) == {"batchItemFailures": []}, "given back as new messages, not failed"
    assert db.communication_logs.count_documents({"claimed_until": {"$exists": True}}) == 0
    assert db.communication_logs.count_documents({"send_attempts": 1}) == 120, "the vendor was asked: one attempt"
    attributes = consumers.sqs.get_queue_attributes(QueueUrl=consumers.queues[SEND].url,
                                                    AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "2", "back after RETRY_SECONDS"
    assert consumers.deliver(SEND, bodies) == {"batchItemFailures": []}
    assert db.communication_logs.count_documents({"vendor_message_id": None}) == 0


def _post_receipts(api, env, payload, timestamp: int | None = None, signature: str | None = None):
    raw = json.dumps(payload).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    sig = signature or signing.sign(env["WEBHOOK_SECRET"], ts, raw)
    return api.post("/api/delivery-receipt", raw=raw, token="",
                    headers={"X-Vendor-Timestamp": ts, "X-Vendor-Signature": sig})


def _sent_logs(api, db, consumers, segment_id, vendor) -> tuple[dict, list[dict]]:
    campaign = _fanned_out(api, consumers, segment_id)
    consumers.deliver(SEND, [m["Body"] for m in consumers.messages(SEND)])
    return campaign, list(db.communication_logs.find({"campaign_id": ObjectId(campaign["id"])}))


def _receipt(log: dict, status: str) -> dict:
    return {"vendor_message_id": log["vendor_message_id"], "log_id": str(log["_id"]), "status": status,
            "timestamp": "2026-11-25T10:00:00Z"}


def test_receipts_move_logs_forward_once_and_complete_the_campaign(api, db, env, consumers, segment_id, vendor):
    campaign, logs = _sent_logs(api, db, consumers, segment_id, vendor)
    receipts = [_receipt(log, "FAILED" if i % 10 == 0 else "SENT") for i, log in enumerate(logs)]
    assert _post_receipts(api, env, {"receipts": receipts[:100]})[:2] == (202, {"accepted": 100, "ignored": 0})
    assert db.communication_logs.count_documents({"status": "QUEUED"}) == 120, "the receipt URL only queues"
    consumers.drain(APPLY)
    assert _post_receipts(api, env, {"receipts": receipts[:100]})[:2] == (202, {"accepted": 100, "ignored": 0})
    late = {**receipts[1], "status": "FAILED"}
    unknown = {**receipts[0], "log_id": str(ObjectId())}
    _post_receipts(api, env, {"receipts": [late, unknown]})
    consumers.drain(APPLY)
    _, detail, _ = api.get(f"/api/campaigns/{campaign['id']}")
    assert detail["status"] == "SENDING"
    assert detail["stats"] == stats(audience=120, queued=20, sent=90, failed=10), \
        "duplicates, a late receipt and an unknown one change nothing"
    _post_receipts(api, env, {"receipts": receipts[100:]})
    consumers.drain(APPLY)
    _, detail, _ = api.get(f"/api/campaigns/{campaign['id']}?status=FAILED&limit=5")
    assert detail["status"] == "COMPLETED"
    assert detail["stats"] == stats(audience=120, sent=108, failed=12)
    assert len(detail["logs"]["items"]) == 5 and {log["status"] for log in detail["logs"]["items"]} == {"FAILED"}
    by_status = {s: db.communication_logs.count_documents({"status": s}) for s in ("QUEUED", "SENT", "FAILED")}
    assert by_status == {"QUEUED": 0, "SENT": 108, "FAILED": 12}, "stats agree with the logs"
    assert db.communication_logs.count_documents({"tally": {"$exists": True}}) == 0, "every tally counted"


def test_receipts_are_applied_as_one_bulk_write_and_one_campaign_write_a_batch(api, db, env, consumers, segment_id,
                                                                               vendor):
    """Ten messages of receipts, one delivery of the consumer: one bulk write of the logs, one roll-up."""
    from pymongo import monitoring

    campaign, logs = _sent_logs(api, db, consumers, segment_id, vendor)
    for start in range(0, 120, 12):
        _post_receipts(api, env, {"receipts": [_receipt(log, "SENT") for log in logs[start:start + 12]]})
    bodies = [m["Body"] for m in consumers.messages(APPLY)]
    assert len(bodies) == 10

    class Writes(monitoring.CommandListener):
        def __init__(self):
            self.seen: list[tuple[str, str]] = []

        def started(self, event):
            name = event.command_name
            if name in ("update", "findAndModify", "insert", "delete"):
                self.seen.append((name, event.command.get(name)))

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    writes = Writes()
    monitoring.register(writes)
    try:
        from crm import db as database
        database._clients.clear()  # a client made now carries the listener
        assert consumers.deliver(APPLY, bodies) == {"batchItemFailures": []}
    finally:
        monitoring._LISTENERS.command_listeners.remove(writes)
        database._clients.clear()
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"]["sent"] == 120
    campaign_writes = [w for w in writes.seen if w[1] == "campaigns"]
    assert len(campaign_writes) <= 2, campaign_writes  # the roll-up, and the completion
    # One bulk write of the logs; the roll-up clears their tallies in runs of IN_CHUNK ids.
    assert len([w for w in writes.seen if w == ("update", "communication_logs")]) == 1 + 2, writes.seen


@pytest.mark.parametrize("case", ["forged", "stale", "future", "missing", "other_body"])
def test_bad_signatures_are_401_and_change_nothing(api, db, env, consumers, segment_id, vendor, case):
    _, logs = _sent_logs(api, db, consumers, segment_id, vendor)
    payload = _receipt(logs[0], "SENT")
    now = int(time.time())
    if case == "forged":
        reply = _post_receipts(api, env, payload, signature="0" * 64)
    elif case == "stale":
        reply = _post_receipts(api, env, payload, timestamp=now - 301)
    elif case == "future":
        reply = _post_receipts(api, env, payload, timestamp=now + 301)
    elif case == "other_body":
        other = signing.sign(env["WEBHOOK_SECRET"], str(now), b"{}")
        reply = _post_receipts(api, env, payload, timestamp=now, signature=other)
    else:
        reply = api.post("/api/delivery-receipt", payload, token="")
    assert reply[0] == 401
    assert_error(reply[1], "invalid_signature")
    assert db.communication_logs.count_documents({"status": "SENT"}) == 0


def test_receipt_batches_are_limited_to_100(api, env):
    receipt = {"vendor_message_id": "v", "log_id": str(ObjectId()), "status": "SENT",
               "timestamp": "2026-11-25T10:00:00Z"}
    status, body, _ = _post_receipts(api, env, {"receipts": [receipt] * 101})
    assert status == 422
    assert_error(body, "validation_error", ["body", "receipts"])


def test_mock_vendor_accepts_once_per_log_and_reports_later(api, env, consumers):
    log_id = str(ObjectId())
    message = {"log_id": log_id, "to": {"name": "Ada", "email": "ada@example.com"}, "message": "Hi Ada"}
    headers = {"X-Vendor-Key": env["VENDOR_API_KEY"]}
    first = api.post("/api/mock-send", message, token="", headers=headers)
    again = api.post("/api/mock-send", message, token="", headers=headers)
    assert first[0] == again[0] == 202 and first[1] == again[1] and first[1]["status"] == "ACCEPTED"
    [receipt] = _records(consumers, RECEIPTS)
    assert receipt["log_id"] == log_id and receipt["vendor_message_id"] == first[1]["vendor_message_id"]
    assert receipt["status"] in ("SENT", "FAILED")
    status, body, _ = api.post("/api/mock-send", message, token="", headers={"X-Vendor-Key": "wrong"})
    assert status == 401 and _records(consumers, RECEIPTS) == []


def test_mock_vendor_fails_about_ten_percent():
    from crm.models.campaigns import FAILED
    from crm.services.mock_vendor import outcome_for

    failed = sum(outcome_for("seed", str(ObjectId()), 0.1) == FAILED for _ in range(5000))
    assert 400 < failed < 600
