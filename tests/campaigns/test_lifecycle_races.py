"""Campaign lifecycle races: a pause, resume or cancel landing between a sender's (or the reconciler's) check and its
park, a sender killed between its park and its second look, a pause during a wait for a rate's turn, senders that
cannot use a rate's turns. Each failed on the first version of the lifecycle."""
from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

from bson import ObjectId

from crm.models.common import utcnow
from tests.campaigns.test_lifecycle import FANOUT, SEND, _change, _create, _reconcile, _sent_log_ids, _tick


def test_a_cancel_between_a_senders_pause_check_and_its_park_still_skips_those_logs(api, db, consumers, segment_id,
                                                                                 vendor, monkeypatch):
    """A sender reads the campaign PAUSED; the cancel and its sweep come (the sweep leaves the logs this sender
    holds); the sender then parks them with no due_at and its recheck only looks for a running campaign."""
    from crm.services import lifecycle

    campaign = _create(api, segment_id)
    consumers.drain(FANOUT)
    bodies = [m["Body"] for m in consumers.messages(SEND)]
    _change(api, campaign["id"], "pause")

    real_park, fired = lifecycle.park, []

    def park(db_, log_ids, token, until):
        if until is None and not fired:
            fired.append(True)
            _change(api, campaign["id"], "cancel")
            consumers.drain(FANOUT)  # the cancel's sweep, done while this sender holds its claim
        return real_park(db_, log_ids, token, until)

    monkeypatch.setattr(lifecycle, "park", park)
    consumers.deliver(SEND, bodies[:1])
    monkeypatch.setattr(lifecycle, "park", real_park)
    consumers.deliver(SEND, bodies[1:])  # the other messages (the first one was handled, and deleted)
    for days in (1, 2, 30):
        _reconcile(db, utcnow() + timedelta(days=days))
        consumers.drain(FANOUT)
        consumers.drain(SEND)
    assert fired
    assert not vendor.sent_log_ids()
    left = Counter((log["status"], bool(log.get("parked")), "due_at" in log)
                   for log in db.communication_logs.find({"status": "QUEUED"}))
    doc = db.campaigns.find_one({"_id": ObjectId(campaign["id"])})
    assert not left and doc["stats"]["queued"] == 0, (
        f"a cancelled campaign keeps QUEUED logs nothing will ever settle: {dict(left)}, stats {doc['stats']}")


def test_a_resume_between_the_reconcilers_pause_check_and_its_park_still_sends_those_logs(api, db, consumers,
                                                                                       segment_id, vendor,
                                                                                       monkeypatch):
    """The reconciler finds due logs (their send messages were lost) of a PAUSED campaign; a resume and its sweep
    come between its check and its park (the sweep finds nothing parked yet); the reconciler parks them with no
    due_at and never looks again."""
    from crm.services import lifecycle

    campaign = _create(api, segment_id)
    consumers.drain(FANOUT)
    consumers.messages(SEND)  # the send messages are lost (dead-lettered)
    _change(api, campaign["id"], "pause")

    real_not_now, fired = lifecycle.not_now, []

    def not_now(db_, log_ids, now=None):
        answer = real_not_now(db_, log_ids, now)
        if not fired:
            fired.append(True)
            _change(api, campaign["id"], "resume")
            consumers.drain(FANOUT)  # the resume's sweep: nothing is parked yet
        return answer

    monkeypatch.setattr(lifecycle, "not_now", not_now)
    _reconcile(db, utcnow() + timedelta(hours=2))
    monkeypatch.setattr(lifecycle, "not_now", real_not_now)
    for hours in (3, 24, 24 * 30):
        sends: list = []
        _reconcile(db, utcnow() + timedelta(hours=hours), sends=sends)
        if sends:
            from tests.campaigns.test_lifecycle import _send_body

            consumers.deliver(SEND, [_send_body(sends)])
        consumers.drain(FANOUT)
        consumers.drain(SEND)
    assert fired
    doc = db.campaigns.find_one({"_id": ObjectId(campaign["id"])})
    stranded = db.communication_logs.count_documents({"status": "QUEUED", "parked": True, "due_at": None})
    assert len(_sent_log_ids(vendor)) == 120 and max(_sent_log_ids(vendor).values()) == 1 and not stranded, (
        f"resumed campaign never sends: {stranded} logs parked with no due_at, status {doc['status']}, "
        f"{len(_sent_log_ids(vendor))} sent")


def test_logs_a_killed_sender_parked_after_the_resume_sweep_are_swept_again(api, db, consumers,
                                                                                     segment_id, vendor,
                                                                                     monkeypatch):
    """A sender parks (campaign read PAUSED), the resume and its sweep have just passed; it dies before its recheck
    and its message dead-letters (or was the last receive). Nothing has a due_at to find the logs by."""
    from crm.services import lifecycle

    campaign = _create(api, segment_id)
    consumers.drain(FANOUT)
    bodies = [m["Body"] for m in consumers.messages(SEND)]
    _change(api, campaign["id"], "pause")
    real_park = lifecycle.park

    def park(db_, log_ids, token, until):
        _change(api, campaign["id"], "resume")
        consumers.drain(FANOUT)  # the sweep passes before the park
        real_park(db_, log_ids, token, until)
        raise SystemExit("the sender's container is killed")

    monkeypatch.setattr(lifecycle, "park", park)
    try:
        consumers.deliver(SEND, bodies[:1])
    except BaseException:  # noqa: BLE001 - the kill
        pass
    monkeypatch.setattr(lifecycle, "park", real_park)
    # Its message is not redelivered (it dead-lettered); everything else goes on.
    _tick(db, consumers, utcnow())
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    stranded = db.communication_logs.count_documents({"status": "QUEUED", "parked": True, "due_at": None})
    assert stranded == 0, f"{stranded} logs parked with no due_at in a SENDING campaign: nothing finds them"
    consumers.deliver(SEND, bodies[1:])  # the campaign's other send message, late
    sent = _sent_log_ids(vendor)
    assert len(sent) == 120 and max(sent.values()) == 1


def test_a_pause_while_a_rate_limited_sender_waits_for_its_turn_holds_the_message(
        api, db, consumers, vendor, audience, monkeypatch):
    """The campaign's state is checked before the wait for the rate's turn, not after: a pause whose reply comes
    during the wait does not stop the message."""
    from crm.services import lifecycle

    status, segment, _ = api.post("/api/segments", {"name": "Few", "rules": {"field": "spend", "op": "<",
                                                                              "value": 3}})
    assert status == 201
    campaign = _create(api, segment["id"], rate_per_minute=60)
    consumers.drain(FANOUT)
    bodies = [m["Body"] for m in consumers.messages(SEND)]
    # Other senders of the campaign have taken the next 4 seconds of its turns.
    db.channel_rates.replace_one({"_id": f"campaign:{campaign['id']}"}, {"next_at": time.time() + 4}, upsert=True)
    checked = threading.Event()
    real_not_now = lifecycle.not_now

    def not_now(*args, **kwargs):
        answer = real_not_now(*args, **kwargs)
        checked.set()
        return answer

    monkeypatch.setattr(lifecycle, "not_now", not_now)
    sender = threading.Thread(target=consumers.deliver, args=(SEND, bodies))
    sender.start()
    assert checked.wait(10)
    time.sleep(0.5)
    _change(api, campaign["id"], "pause")
    replied = time.time()
    sender.join(60)
    after = [m["log_id"] for call in vendor.received if call["at"] > replied for m in call["messages"]]
    assert not after, f"{len(after)} message(s) handed over {max(c['at'] for c in vendor.received) - replied:.1f} s " \
                      f"after the pause's reply"


def test_a_wait_that_cannot_be_met_takes_no_turn_of_a_shared_rate(db):
    from crm.channels.rate import SharedRateLimiter

    db.channel_rates.insert_one({"_id": "campaign:x", "next_at": time.time() + 40})
    before = db.channel_rates.find_one({"_id": "campaign:x"})["next_at"]
    for _ in range(20):  # twenty senders find the turns taken for the next 40 s and give back
        other = SharedRateLimiter(db.channel_rates, "campaign:x", 60 / 60 * 0.97)
        assert not other.wait(1, until=time.time() + 30)
    after = db.channel_rates.find_one({"_id": "campaign:x"})["next_at"]
    assert after - before < 1, f"{after - before:.0f} s of the campaign's turns burnt with nothing sent"


def test_rate_limited_senders_that_find_the_turns_taken_leave_them_to_others(
        api, db, consumers, segment_id, vendor):
    """Each send message of a rate-limited campaign that arrives while the campaign's turns are taken further ahead
    than its call can wait takes a turn anyway and drops it; with more messages than seconds in a give-back delay
    (at most 900 s) the turns run away from the clock and nothing is sent any more."""
    campaign = _create(api, segment_id, rate_per_minute=60)
    consumers.drain(FANOUT)
    bodies = [m["Body"] for m in consumers.messages(SEND)]
    assert len(bodies) == 4  # 30 sends a message: 30 s of the rate
    key = f"campaign:{campaign['id']}"
    db.channel_rates.replace_one({"_id": key}, {"next_at": time.time() + 100}, upsert=True)
    before = db.channel_rates.find_one({"_id": key})["next_at"]
    for body in bodies:
        consumers.deliver(SEND, [body])
    after = db.channel_rates.find_one({"_id": key})["next_at"]
    assert not vendor.received
    assert after - before < 1, f"{after - before:.1f} s of the campaign's turns taken by senders that sent nothing"
