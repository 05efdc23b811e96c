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
    first = threading.Thread(target=lambda: results.append(_roll_up_function(seconds_left=14)))
    first.start()
    time.sleep(1)
    started = time.time()
    assert _roll_up_function()["passes"] == 0 and time.time() - started < 1, "the lease is held: back at once"
    first.join()
    assert results[0]["passes"] >= 1
    assert _roll_up_function(seconds_left=11)["passes"] >= 1, "the lease was given back"


def test_before_the_migration_made_the_tally_index_the_roll_up_still_counts(api, db, env, consumers, segment_id,
                                                                          vendor):
    """Review finding: new code running before the deploy's migration named an index that did not exist yet."""
    from crm.services import delivery, receipts

    campaign, logs = _sent_logs(api, db, consumers, segment_id, vendor)
    db.communication_logs.drop_index(delivery.PENDING_INDEX)
    try:
        receipts.apply(db, [_receipt(log, "SENT") for log in logs], roll_up_every=0)
        assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"] == stats(audience=120, sent=120)
    finally:
        delivery._hint_refused_at = None
