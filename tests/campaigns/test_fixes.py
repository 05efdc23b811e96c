"""Campaign faults that once broke: a retried creation that made a second campaign, a completion lost between two
writes, a duplicate fan-out leaving a log no counter saw, sends that could never finish."""
from __future__ import annotations

import threading
from datetime import timedelta

from bson import ObjectId
from pymongo import monitoring
from pymongo.collection import Collection

from crm.messages import unpack
from crm.models.common import utcnow
from crm.services import campaigns as campaign_service
from crm.services import idempotency
from tests.helpers import assert_error

FANOUT, SEND = "CampaignFanoutQueue", "CampaignSendQueue"
BODY = {"name": "Sale", "message": "Hi {{first_name}}"}


def _records(consumers, queue: str) -> list[dict]:
    return [r for m in consumers.messages(queue) for r in unpack(m["Body"])[1]]


def test_a_retry_taking_over_a_request_that_died_finishes_the_same_campaign(api, db, consumers, segment_id,
                                                                            monkeypatch):
    real_update = idempotency.Collection.update_one

    def die_before_marking_done(self, selector, update, *args, **kwargs):
        if "state" in update.get("$set", {}):
            raise SystemExit("the function was killed after creating the campaign")
        return real_update(self, selector, update, *args, **kwargs)

    monkeypatch.setattr(idempotency.Collection, "update_one", die_before_marking_done)
    try:
        api.post("/api/campaigns", {**BODY, "segment_id": segment_id}, headers={"Idempotency-Key": "c-9"})
    except SystemExit:
        pass
    monkeypatch.undo()
    assert db.campaigns.count_documents({}) == 1
    # Past the time after which a pending key counts as abandoned, the client's retry takes it over.
    db.idempotency_keys.update_many({}, {"$set": {"started_at": utcnow() - timedelta(minutes=5)}})
    status, campaign, _ = api.post("/api/campaigns", {**BODY, "segment_id": segment_id},
                                   headers={"Idempotency-Key": "c-9"})
    assert status == 202
    assert db.campaigns.count_documents({}) == 1, "the takeover found the campaign instead of making another"
    assert campaign["id"] == str(db.campaigns.find_one()["_id"])
    jobs = _records(consumers, FANOUT)
    assert jobs and {j["campaign_id"] for j in jobs} == {campaign["id"]}, "its fan-out is queued"
    assert api.post("/api/campaigns", {**BODY, "segment_id": segment_id},
                    headers={"Idempotency-Key": "c-9"})[1] == campaign


def test_a_message_that_cannot_fit_once_personalised_is_refused_at_creation(api, db, segment_id):
    message = "{{name}} " * 9 + "x" * 200  # nine names of up to 200 characters each: over 2,000
    status, body, _ = api.post("/api/campaigns", {"name": "Long", "segment_id": segment_id, "message": message})
    assert status == 422
    assert_error(body, "validation_error", ["body", "message"])
    assert db.campaigns.count_documents({}) == 0


def test_personalisation_is_one_pass():
    assert campaign_service.personalise("Hi {{name}}", "{{first_name}} Smith") == "Hi {{first_name}} Smith"


class TransactionSpy(monitoring.CommandListener):
    def __init__(self):
        self.completions: list[bool] = []

    def started(self, event):
        if event.command_name == "update" and event.command.get("update") == "campaigns":
            for update in event.command.get("updates", []):
                if update.get("u", {}).get("$set", {}).get("status") == "COMPLETED":
                    # Inside a transaction a command carries autocommit: false (a retryable write has a
                    # txnNumber too, so that alone says nothing).
                    self.completions.append(event.command.get("autocommit") is False)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def test_the_last_receipt_completes_the_campaign_in_its_own_transaction(api, db, consumers, segment_id, vendor):
    from pymongo import MongoClient

    from crm.services.delivery import Outcome, record_outcomes

    campaign = api.post("/api/campaigns", {**BODY, "segment_id": segment_id})[1]
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    spy = TransactionSpy()
    spied = MongoClient(db.client.address and f"mongodb://{db.client.address[0]}:{db.client.address[1]}/",
                        event_listeners=[spy], tz_aware=True)[db.name]
    logs = list(db.communication_logs.find({}, {"vendor_message_id": 1}))
    record_outcomes(spied, [Outcome(log["_id"], "SENT", log["vendor_message_id"]) for log in logs])
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["status"] == "COMPLETED"
    assert spy.completions == [True], "COMPLETED commits with the counters, not after them"


def test_a_duplicate_fan_out_racing_an_audience_change_leaves_no_uncounted_log(api, db, segment_id, monkeypatch):
    monkeypatch.setattr(campaign_service, "PAGE_SIZE", 20)
    campaign_id = ObjectId(api.post("/api/campaigns", {**BODY, "segment_id": segment_id})[1]["id"])
    moving = db.customers.find_one({"email": "c005@example.com"})
    real_record, calls = campaign_service._record_page, []

    def other_run_first(db_, campaign, page, send_by, *links):
        calls.append(1)
        if len(calls) == 1:
            # This run has read its first page (with c005 in it); before it records it, c005 leaves the
            # audience and a duplicate run records the first page without it, then c005 comes back.
            db.customers.update_one({"_id": moving["_id"]}, {"$set": {"spend": -1.0}})
            assert not campaign_service.fan_out(db, campaign_id, lambda *_: None, lambda: None, -1)
            db.customers.update_one({"_id": moving["_id"]}, {"$set": {"spend": moving["spend"]}})
        return real_record(db_, campaign, page, send_by, *links)

    monkeypatch.setattr(campaign_service, "_record_page", other_run_first)
    assert campaign_service.fan_out(db, campaign_id, lambda *_: None, lambda: None, 60)
    stats = db.campaigns.find_one({"_id": campaign_id})["stats"]
    logs = db.communication_logs.count_documents({"campaign_id": campaign_id})
    assert stats["audience"] == stats["queued"] == logs, (stats, logs)
    assert db.communication_logs.count_documents({"customer_id": moving["_id"]}) == 0, \
        "the run that recorded the page decided who was in it"


def test_an_unsendable_record_fails_its_log_instead_of_poisoning_the_queue(api, db, consumers, segment_id, vendor):
    campaign = api.post("/api/campaigns", {**BODY, "segment_id": segment_id})[1]
    consumers.drain(FANOUT)
    [first, *rest] = _records(consumers, SEND)
    too_long = {**first, "message": "x" * 2001}
    from crm.messages import pack

    body = pack("sends", [too_long, *rest[:5]], 256 * 1024)[0]
    assert consumers.deliver(SEND, [body]) == {"batchItemFailures": []}
    log = db.communication_logs.find_one({"_id": ObjectId(first["log_id"])})
    assert (log["status"], log["reason"]) == ("FAILED", "invalid_message")
    stats = db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"]
    assert stats["failed"] == 1 and stats["queued"] == 119


def test_logs_a_live_sender_holds_come_back_in_a_message_of_their_own(api, db, consumers, segment_id, vendor):
    api.post("/api/campaigns", {**BODY, "segment_id": segment_id})
    consumers.drain(FANOUT)
    messages = consumers.messages(SEND)
    assert all(len(unpack(m["Body"])[1]) <= 100 for m in messages) and len(messages) == 2, "one vendor call each"
    held = ObjectId(unpack(messages[0]["Body"])[1][0]["log_id"])
    db.communication_logs.update_one({"_id": held}, {"$set": {"claimed_until": utcnow() + timedelta(seconds=60)}})
    reply = consumers.deliver(SEND, [messages[0]["Body"]])
    assert reply == {"batchItemFailures": []}
    assert str(held) not in set(vendor.sent_log_ids()) and len(vendor.sent_log_ids()) == 99
    # The other sender may yet fail: the held log comes back, when its claim ends, in a message of its own.
    attributes = consumers.sqs.get_queue_attributes(QueueUrl=consumers.queues[SEND].url,
                                                    AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"


def test_a_request_that_fails_after_storing_its_campaign_leaves_the_retry_that_campaign(api, db, consumers,
                                                                                       segment_id, monkeypatch):
    from pymongo.collection import Collection
    from pymongo.errors import AutoReconnect

    real_insert = Collection.insert_one

    def stored_then_connection_lost(self, document, *args, **kwargs):
        result = real_insert(self, document, *args, **kwargs)
        if self.name == "campaigns":
            raise AutoReconnect("connection lost after the write")
        return result

    monkeypatch.setattr(Collection, "insert_one", stored_then_connection_lost)
    status, body, _ = api.post("/api/campaigns", {**BODY, "segment_id": segment_id}, headers={"Idempotency-Key": "k"})
    assert status == 503
    monkeypatch.undo()
    status, campaign, _ = api.post("/api/campaigns", {**BODY, "segment_id": segment_id},
                                   headers={"Idempotency-Key": "k"})
    assert status == 202 and db.campaigns.count_documents({}) == 1, "the retry finished the stored campaign"
    assert campaign["id"] == str(db.campaigns.find_one()["_id"])


def test_a_copy_of_a_message_waits_out_a_claim_that_ends_soon_and_sends_what_is_left(api, db, consumers, segment_id,
                                                                                      vendor):
    api.post("/api/campaigns", {**BODY, "segment_id": segment_id})
    consumers.drain(FANOUT)
    first = consumers.messages(SEND)[0]["Body"]
    held = ObjectId(unpack(first)[1][0]["log_id"])
    # Another sender died holding this log a moment ago; its claim ends in two seconds.
    db.communication_logs.update_one({"_id": held}, {"$set": {"claimed_until": utcnow() + timedelta(seconds=2)}})
    assert consumers.deliver(SEND, [first]) == {"batchItemFailures": []}
    sent = vendor.sent_log_ids()
    assert len(sent) == len(set(sent)) == 100 and str(held) in sent


def test_the_mock_vendor_retries_a_refused_report_on_its_own_schedule_then_gives_up(env, db, consumers, monkeypatch):
    from crm.config import get_settings
    from crm.messages import pack

    monkeypatch.setenv("RECEIPT_URL", "http://127.0.0.1:9/nowhere")  # refused
    get_settings.cache_clear()
    receipt = {"vendor_message_id": "vm_1", "log_id": str(ObjectId()), "status": "SENT",
               "timestamp": "2026-11-25T10:00:00Z"}
    body = pack("receipts", [receipt], 256 * 1024)[0]
    assert consumers.deliver("VendorReceiptQueue", [body]) == {"batchItemFailures": []}, "never dead-lettered"
    attrs = consumers.sqs.get_queue_attributes(QueueUrl=consumers.queues["VendorReceiptQueue"].url,
                                               AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "1", "tried again later, as a vendor would"
    last = pack("receipts", [{**receipt, "attempt": 7}], 256 * 1024)[0]
    assert consumers.deliver("VendorReceiptQueue", [last]) == {"batchItemFailures": []}
    attrs = consumers.sqs.get_queue_attributes(QueueUrl=consumers.queues["VendorReceiptQueue"].url,
                                               AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "1", "after the eighth try it gives up"


def test_a_page_holds_its_campaign_against_counts_committed_while_it_writes(api, db, segment_id, monkeypatch):
    """A page's transaction touches its campaign first: an outcome's short transaction on the same campaign, made
    while the page makes or writes its logs, retries until the page commits rather than making it start over
    (touched after them, the campaign met every such commit, and on a busy campaign the page started over until
    it timed out)."""
    campaign_id = ObjectId(api.post("/api/campaigns", {**BODY, "segment_id": segment_id})[1]["id"])
    real_new_logs, real_insert = campaign_service._new_logs, Collection.insert_many
    made, written, counters = [], [], []

    def count_a_delivery() -> None:
        def count() -> None:
            with db.client.start_session() as session:
                session.with_transaction(lambda s: db.campaigns.update_one(
                    {"_id": campaign_id}, {"$inc": {"stats.delivered": 1}}, session=s))
        counters.append(threading.Thread(target=count))
        counters[-1].start()
        counters[-1].join(timeout=2)

    def make_while_a_count_is_made(*args, **kwargs):
        made.append(1)
        count_a_delivery()
        return real_new_logs(*args, **kwargs)

    def insert_while_a_count_is_made(self, documents, *args, **kwargs):
        if self.name == "communication_logs" and kwargs.get("session") is not None:
            written.append(len(documents))
            count_a_delivery()
        return real_insert(self, documents, *args, **kwargs)

    monkeypatch.setattr(campaign_service, "_new_logs", make_while_a_count_is_made)
    monkeypatch.setattr(Collection, "insert_many", insert_while_a_count_is_made)
    assert campaign_service.fan_out(db, campaign_id, lambda *_: None, lambda: None, 60)
    for counter in counters:
        counter.join(timeout=30)
    assert len(made) == len(written) == 1, "the page was recorded at the first attempt, not started over"
    stats = db.campaigns.find_one({"_id": campaign_id})["stats"]
    assert stats["audience"] == written[0] > 0 and stats["delivered"] == 2


def test_outcomes_written_together_keep_each_logs_own_values_and_take_dollar_text_as_text(db):
    """One update moves many logs alike (crm.services.delivery.outcome_writes): each keeps its own vendor id and
    receipt time; a vendor's reason starting with '$' is stored as text, not read as a field of the log."""
    from datetime import timedelta

    from crm.models.common import utcnow
    from crm.services.delivery import Outcome, record_outcomes

    campaign_id = db.campaigns.insert_one({"status": "SENDING", "fanout": {"done": True},
                                           "stats": {"queued": 150, "failed": 0}}).inserted_id
    ids = db.communication_logs.insert_many([{"campaign_id": campaign_id, "customer_id": ObjectId(), "status": "QUEUED",
                                              "vendor_message_id": None} for i in range(150)]).inserted_ids
    at = utcnow().replace(microsecond=0)
    outcomes = [Outcome(log_id, "FAILED", f"vm-{i}", at + timedelta(seconds=i), reason="$message")
                for i, log_id in enumerate(ids)]
    assert record_outcomes(db, outcomes) == (150, 0)
    for i, log_id in enumerate(ids):
        log = db.communication_logs.find_one({"_id": log_id})
        assert (log["status"], log["vendor_message_id"], log["reason"]) == ("FAILED", f"vm-{i}", "$message")
        assert log["delivered_at"].replace(tzinfo=None) == (at + timedelta(seconds=i)).replace(tzinfo=None)
    assert record_outcomes(db, outcomes) == (0, 150)
    assert db.campaigns.find_one({"_id": campaign_id})["stats"] == {"queued": 0, "failed": 150}


def test_a_receipt_in_a_batch_moves_only_the_log_of_its_own_message(db):
    """Review finding: a batch's vendor ids taken as one list let a receipt move a log holding another message's id
    of the same batch."""
    from crm.services.delivery import Outcome, record_outcomes

    campaign_id = db.campaigns.insert_one({"status": "SENDING", "fanout": {"done": True},
                                           "stats": {"queued": 2, "sent": 0}}).inserted_id
    holding_b, fresh = db.communication_logs.insert_many([
        {"campaign_id": campaign_id, "customer_id": ObjectId(), "status": "QUEUED", "vendor_message_id": "vm-b"},
        {"campaign_id": campaign_id, "customer_id": ObjectId(), "status": "QUEUED", "vendor_message_id": None},
    ]).inserted_ids
    assert record_outcomes(db, [Outcome(holding_b, "SENT", "vm-a"), Outcome(fresh, "SENT", "vm-b")]) == (1, 1)
    assert db.communication_logs.find_one({"_id": holding_b})["status"] == "QUEUED"
