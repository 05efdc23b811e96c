"""The campaign's counters, rolled up from its logs' tallies: a consumer that dies between its bulk write and its
roll-up loses no count, the scheduled roll-up counts what it left, and two roll-ups never count a tally twice."""
from __future__ import annotations

import threading
import time

import pytest
from bson import ObjectId

from offline.lambda_worker import LambdaContext
from tests.campaigns.test_pipeline import _receipt, _sent_logs
from tests.conftest import load_function
from tests.helpers import stats


class Died(Exception):
    pass


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
    first = threading.Thread(target=lambda: results.append(_roll_up_function(seconds_left=20)))
    first.start()
    time.sleep(1)
    started = time.time()
    assert _roll_up_function()["passes"] == 0 and time.time() - started < 1, "the lease is held: back at once"
    first.join()
    assert results[0]["passes"] >= 1
    assert _roll_up_function(seconds_left=11)["passes"] >= 1, "the lease was given back"


def test_logs_tallied_before_the_pending_flag_are_counted_after_the_deploys_migration(api, db, env, consumers,
                                                                                      segment_id, vendor):
    """The roll-up's first index was on the tally (an array: a multikey index, which the local server answered by
    reading the whole collection under its lock); the migration flags what that code tallied and drops it."""
    from pymongo import ASCENDING

    from crm.migration import TALLY_INDEX, pending_by_flag
    from crm.models.common import utcnow
    from crm.services import delivery, receipts

    campaign, logs = _sent_logs(api, db, consumers, segment_id, vendor)
    db.campaigns.update_one({"_id": ObjectId(campaign["id"])}, {"$set": {"rolled_up_at": utcnow()}})
    receipts.apply(db, [_receipt(log, "SENT") for log in logs[:50]], roll_up_every=3600)  # left to a later roll-up
    # As the earlier code left them: tallies with no flag, and its index.
    db.communication_logs.update_many({}, {"$unset": {"pending": ""}})
    db.communication_logs.create_index([("tally", ASCENDING)], sparse=True, name=TALLY_INDEX)
    assert delivery.roll_up_pending(db) == 0
    pending_by_flag(db)
    pending_by_flag(db)  # a second deploy changes nothing
    assert TALLY_INDEX not in db.communication_logs.index_information()
    assert delivery.roll_up_pending(db) == 50
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"]["sent"] == 50


def test_consumers_finishing_together_roll_a_campaign_up_once(api, db, env, consumers, segment_id, vendor,
                                                                monkeypatch):
    """Every consumer rolling up the same campaign at once only made their transactions conflict on its document:
    the first since ROLL_UP_SECONDS takes the turn, the others leave it."""
    from crm.services import delivery, receipts

    campaign, logs = _sent_logs(api, db, consumers, segment_id, vendor)
    db.campaigns.update_one({"_id": ObjectId(campaign["id"])}, {"$unset": {"rolled_up_at": ""}})
    monkeypatch.setattr(delivery, "roll_up_due", lambda *args: None)
    receipts.apply(db, [_receipt(log, "SENT") for log in logs], roll_up_every=3600)
    monkeypatch.undo()
    calls: list[ObjectId] = []
    real_roll_up = delivery.roll_up
    monkeypatch.setattr(delivery, "roll_up", lambda db_, campaign_id: calls.append(campaign_id) or
                        real_roll_up(db_, campaign_id))
    ids = [log["_id"] for log in logs]
    threads = [threading.Thread(target=delivery.roll_up_due, args=(db, ids, 3600)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [ObjectId(campaign["id"])]
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"] == stats(audience=120, sent=120)
