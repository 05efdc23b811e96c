"""The campaign's counters, rolled up from its logs' tallies: a consumer that dies between its bulk write and its
roll-up loses no count, the scheduled roll-up counts what it left, and two roll-ups never count a tally twice."""
from __future__ import annotations

import threading
import time

import pytest
from bson import ObjectId
from pymongo import monitoring

from offline.lambda_worker import LambdaContext
from tests.campaigns.test_pipeline import _receipt, _sent_logs
from tests.conftest import load_function
from tests.helpers import stats


class Died(Exception):
    pass


class _Commands(monitoring.CommandListener):
    """Counts one command on one collection, as a client sends it (retries included)."""

    def __init__(self, name: str, collection: str):
        self.name, self.collection, self.count = name, collection, 0

    def started(self, event) -> None:
        if event.command_name == self.name and event.command[self.name] == self.collection:
            self.count += 1

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


def _tallied_and_its_turn_open(api, db, consumers, segment_id, vendor) -> tuple[ObjectId, list[dict]]:
    """A campaign whose 120 logs hold a SENT tally no roll-up has counted, and whose turn to be rolled up is open."""
    from crm.models.common import utcnow
    from crm.services import receipts

    campaign, logs = _sent_logs(api, db, consumers, segment_id, vendor)
    campaign_id = ObjectId(campaign["id"])
    db.campaigns.update_one({"_id": campaign_id}, {"$set": {"rolled_up_at": utcnow()}})
    receipts.apply(db, [_receipt(log, "SENT") for log in logs], roll_up_every=3600)
    db.campaigns.update_one({"_id": campaign_id}, {"$unset": {"rolled_up_at": ""}})
    return campaign_id, logs


def _roll_up_function(seconds_left: float = 12) -> dict:
    event = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    context = LambdaContext("RollUpFunction", 256, "r", time.time() + seconds_left)
    return load_function("roll_up").handler(event, context)


def test_receipts_applied_by_a_consumer_that_died_before_its_roll_up_are_counted_by_the_schedule(
        api, db, env, consumers, segment_id, vendor, monkeypatch):
    from crm.services import delivery, receipts

    campaign, logs = _sent_logs(api, db, consumers, segment_id, vendor)
    monkeypatch.setattr(delivery, "roll_up", lambda *_: (_ for _ in ()).throw(Died()))
    with pytest.raises(Died):
        receipts.apply(db, [_receipt(log, "SENT") for log in logs], roll_up_every=0)
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"]["queued"] == 120, "nothing counted yet"
    monkeypatch.undo()
    assert _roll_up_function()["tallies"] == 120
    stored = db.campaigns.find_one({"_id": ObjectId(campaign["id"])})
    assert stored["status"] == "COMPLETED" and stored["stats"] == stats(audience=120, sent=120)
    assert _roll_up_function()["tallies"] == 0, "nothing counted twice"


def test_roll_ups_at_the_same_time_count_each_tally_once(api, db, env, consumers, segment_id, vendor):
    from crm.models.common import utcnow
    from crm.services import receipts
    from crm.services.delivery import roll_up

    campaign, logs = _sent_logs(api, db, consumers, segment_id, vendor)
    db.campaigns.update_one({"_id": ObjectId(campaign["id"])}, {"$set": {"rolled_up_at": utcnow()}})
    receipts.apply(db, [_receipt(log, "FAILED" if i % 4 else "SENT") for i, log in enumerate(logs)],
                   roll_up_every=3600)  # rolled up a moment ago: the consumer leaves its roll-up to others
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"]["queued"] == 120
    counted: list[int] = []
    threads = [threading.Thread(target=lambda: counted.append(roll_up(db, ObjectId(campaign["id"]))))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counted) == 120
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"] == stats(audience=120, sent=30,
                                                                                      failed=90)


def test_one_scheduled_roll_up_runs_at_a_time(api, db, env, consumers, segment_id, vendor):
    _sent_logs(api, db, consumers, segment_id, vendor)  # a campaign SENDING: the first run loops
    results: list[dict] = []
    first = threading.Thread(target=lambda: results.append(_roll_up_function(seconds_left=14)))
    first.start()
    time.sleep(1)
    started = time.time()
    assert _roll_up_function()["passes"] == 0 and time.time() - started < 1, "the lease is held: back at once"
    first.join()
    assert results[0]["passes"] >= 1
    assert _roll_up_function(seconds_left=11)["passes"] >= 1, "the lease was given back"


def test_logs_tallied_by_the_release_before_the_flag_are_counted(api, db, env, consumers, segment_id, vendor):
    """The roll-up's first index was on the tally (an array: multikey, which the local server answered by reading
    the whole collection under its lock). What that release tallies, also after the deploy (its containers may
    still run), is flagged by the deploy's migration and by each reconciler run."""
    from pymongo import ASCENDING

    from crm.models.common import utcnow
    from crm.services import delivery, receipts

    campaign, logs = _sent_logs(api, db, consumers, segment_id, vendor)
    db.campaigns.update_one({"_id": ObjectId(campaign["id"])}, {"$set": {"rolled_up_at": utcnow()}})
    db.communication_logs.create_index([("tally", ASCENDING)], sparse=True, name=delivery.EARLIER_TALLY_INDEX)
    for start in (0, 50):  # before the migration, and after it
        receipts.apply(db, [_receipt(log, "SENT") for log in logs[start:start + 50]], roll_up_every=3600)
        db.communication_logs.update_many({}, {"$unset": {"pending": ""}})  # as that release writes them
        assert delivery.roll_up_pending(db) == 0
        assert delivery.flag_earlier_tallies(db) == 50
        assert delivery.roll_up_pending(db) == 50
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"]["sent"] == 100
    db.communication_logs.drop_index(delivery.EARLIER_TALLY_INDEX)
    assert delivery.flag_earlier_tallies(db) == 0, "without that index (a new database, or the next release): nothing"


def test_a_log_flagged_whose_tally_an_earlier_roll_up_cleared_counts_nothing_and_stops_nothing(db):
    """Review finding: the release before the flag clears only the tally; a flag left alone broke every roll-up."""
    from crm.services.delivery import Outcome, record_outcomes, roll_up_pending

    campaign_id = db.campaigns.insert_one({"status": "SENDING", "fanout": {"done": True},
                                           "stats": {"queued": 1, "sent": 0}}).inserted_id
    db.communication_logs.insert_one({"campaign_id": campaign_id, "customer_id": ObjectId(), "status": "SENT",
                                      "pending": True})
    log_id = db.communication_logs.insert_one({"campaign_id": campaign_id, "customer_id": ObjectId(),
                                               "status": "QUEUED", "vendor_message_id": None}).inserted_id
    assert record_outcomes(db, [Outcome(log_id, "SENT", "vm-1")]) == (1, 0)
    assert roll_up_pending(db) == 0
    assert db.campaigns.find_one({"_id": campaign_id})["stats"] == {"queued": 0, "sent": 1}
    assert db.communication_logs.count_documents({"pending": True}) == 0


def test_consumers_finishing_together_roll_a_campaign_up_once(api, db, env, consumers, segment_id, vendor,
                                                                monkeypatch):
    """Consumers finishing batches together take turns: the first since ROLL_UP_SECONDS rolls the campaign up."""
    from crm.services import delivery, receipts

    campaign, logs = _sent_logs(api, db, consumers, segment_id, vendor)
    db.campaigns.update_one({"_id": ObjectId(campaign["id"])}, {"$unset": {"rolled_up_at": ""}})
    monkeypatch.setattr(delivery, "roll_up_due", lambda *args: None)
    receipts.apply(db, [_receipt(log, "SENT") for log in logs], roll_up_every=3600)
    monkeypatch.undo()
    counted: list[int] = []
    real_roll_up = delivery.roll_up
    monkeypatch.setattr(delivery, "roll_up", lambda db_, campaign_id, every: counted.append(
        real_roll_up(db_, campaign_id, every)))
    ids = [log["_id"] for log in logs]
    threads = [threading.Thread(target=delivery.roll_up_due, args=(db, ids, 3600)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counted) == [0, 0, 0, 120], "one took the turn; the others found it taken"
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"] == stats(audience=120, sent=120)


def test_the_schedule_leaves_a_campaign_a_consumer_has_just_rolled_up_to_its_next_pass(
        api, db, env, consumers, segment_id, vendor, monkeypatch):
    """Benchmark finding (20,000 recipients): the schedule's roll-ups met the consumers' in conflicting transactions,
    which all started over, and wrote the campaign 31.6 times per 1,000 recipients. It takes its turn as they do."""
    from crm.config import get_settings
    from crm.models.common import utcnow
    from crm.services import receipts

    campaign, logs = _sent_logs(api, db, consumers, segment_id, vendor)
    db.campaigns.update_one({"_id": ObjectId(campaign["id"])}, {"$set": {"rolled_up_at": utcnow()}})
    receipts.apply(db, [_receipt(log, "SENT") for log in logs], roll_up_every=3600)
    monkeypatch.setenv("ROLL_UP_SECONDS", "4")
    get_settings.cache_clear()
    assert _roll_up_function(seconds_left=8)["tallies"] == 0, "a consumer rolled it up a moment ago"
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"]["queued"] == 120
    db.campaigns.update_one({"_id": ObjectId(campaign["id"])}, {"$set": {"rolled_up_at": utcnow()}})
    time.sleep(2)
    assert _roll_up_function(seconds_left=8)["tallies"] == 120, "half a period later it is the schedule's turn"
    get_settings.cache_clear()


def test_a_roll_up_taking_turns_gives_its_turn_up_to_a_transaction_holding_the_campaign(
        api, db, env, consumers, segment_id, vendor):
    """Benchmark finding: roll-ups that met a fan-out page's transaction started over until the page committed,
    each attempt a write to the campaign. One that takes turns leaves its tallies to the next turn instead."""
    from pymongo import MongoClient

    from crm.models.common import utcnow
    from crm.services.delivery import roll_up

    campaign_id, logs = _tallied_and_its_turn_open(api, db, consumers, segment_id, vendor)

    campaign_writes = _Commands("findAndModify", "campaigns")
    client = MongoClient(env["MONGO_URI"], event_listeners=[campaign_writes])
    with db.client.start_session() as page:
        page.start_transaction()
        db.campaigns.update_one({"_id": campaign_id}, {"$set": {"fanout.updated_at": utcnow()}}, session=page)
        started = time.time()
        assert roll_up(client[db.name], campaign_id, every=5) == 0
        assert time.time() - started < 2 and campaign_writes.count == 1, "one try, not one per retry"
        page.abort_transaction()
    assert db.communication_logs.count_documents({"campaign_id": campaign_id, "pending": True}) == 120
    assert roll_up(client[db.name], campaign_id, every=5) == 120, "the next turn counts them"
    client.close()


def test_a_roll_up_reads_its_backlog_once_and_loses_no_tally_that_changes_meanwhile(
        api, db, env, consumers, segment_id, vendor, monkeypatch):
    """Benchmark finding (100,000 recipients): each roll-up transaction read the whole backlog again (the local server
    reads every match before a limit), so a backlog made every roll-up slower than the last and the backlog grew. Now
    it is read once; a log whose tally changes after that read is not cleared with the old one."""
    from pymongo import MongoClient

    from crm.services import delivery

    campaign_id, logs = _tallied_and_its_turn_open(api, db, consumers, segment_id, vendor)
    monkeypatch.setattr(delivery, "ROLL_UP_LOGS", 50)

    log_reads = _Commands("find", "communication_logs")
    real_pending = delivery._pending
    late = logs[0]["_id"]

    def pending_then_an_event(*args, **kwargs):
        found = real_pending(*args, **kwargs)
        if log_reads.count == 1:  # an event's tally lands on a log after the roll-up read it
            db.communication_logs.update_one({"_id": late}, {"$push": {"tally": "delivered"}})
        return found

    monkeypatch.setattr(delivery, "_pending", pending_then_an_event)
    client = MongoClient(env["MONGO_URI"], event_listeners=[log_reads])
    assert delivery.roll_up(client[db.name], campaign_id) == 120
    assert log_reads.count == 2, "one read, and one again after the log that changed"
    stored = db.campaigns.find_one({"_id": campaign_id})["stats"]
    assert stored["sent"] == 120 and stored["delivered"] == 1 and stored["queued"] == 0
    assert db.communication_logs.count_documents({"pending": True}) == 0
    client.close()


def test_the_schedule_waits_out_a_fan_out_page_holding_the_campaign(api, db, env, consumers, segment_id, vendor):
    """Benchmark finding (100,000 recipients): the roll-ups gave their turn up to every fan-out page, and the pages
    follow each other closely, so the counters stood still for the whole fan-out (minutes). The schedule's roll-up
    tries again every CONTENDED_PAUSE for up to a period, a write to the campaign a try."""
    from pymongo import MongoClient

    from crm.models.common import utcnow
    from crm.services.delivery import roll_up

    campaign_id, logs = _tallied_and_its_turn_open(api, db, consumers, segment_id, vendor)
    campaign_writes = _Commands("findAndModify", "campaigns")
    client = MongoClient(env["MONGO_URI"], event_listeners=[campaign_writes])
    counted: list[int] = []
    with db.client.start_session() as page:
        page.start_transaction()
        db.campaigns.update_one({"_id": campaign_id}, {"$set": {"fanout.updated_at": utcnow()}}, session=page)
        patient = threading.Thread(target=lambda: counted.append(roll_up(client[db.name], campaign_id, 5, 5)))
        patient.start()
        time.sleep(1.2)
        page.commit_transaction()
    patient.join()
    assert counted == [120], "counted once the page committed"
    assert 2 <= campaign_writes.count <= 5, campaign_writes.count
    assert db.campaigns.find_one({"_id": campaign_id})["stats"]["sent"] == 120
    client.close()


def test_a_log_that_changes_under_a_roll_up_taking_turns_holds_back_only_itself(
        api, db, env, consumers, segment_id, vendor, monkeypatch):
    """Review finding: one log whose tally changed between the read and the transaction threw the whole
    transaction's 2,000 logs away, and on a busy e-mail campaign (opens, clicks) some log always does: the counters
    stood still. Now that log alone waits for the next roll-up, and a turn reads the backlog once."""
    from crm.services import delivery

    campaign_id, logs = _tallied_and_its_turn_open(api, db, consumers, segment_id, vendor)
    monkeypatch.setattr(delivery, "ROLL_UP_LOGS", 50)
    reads = []
    real_pending = delivery._pending

    def read_then_an_open(*args, **kwargs):
        found = real_pending(*args, **kwargs)
        if not reads:
            db.communication_logs.update_one({"_id": logs[0]["_id"]}, {"$push": {"tally": "opened"}})
        reads.append(len(found))
        return found

    monkeypatch.setattr(delivery, "_pending", read_then_an_open)
    assert delivery.roll_up(db, campaign_id, every=5) == 119 and reads == [120], "one read a turn"
    stored = db.campaigns.find_one({"_id": campaign_id})["stats"]
    assert stored["sent"] == 119 and stored["queued"] == 1 and stored["opened"] == 0
    assert delivery.roll_up(db, campaign_id) == 1
    stored = db.campaigns.find_one({"_id": campaign_id})["stats"]
    assert stored["sent"] == 120 and stored["queued"] == 0 and stored["opened"] == 1
