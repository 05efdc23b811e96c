"""Campaign lifecycle (v3): scheduling, pause, resume, cancel, and what each does to the logs, through the real
consumers, SecantusDB and moto; whatever the order of pauses, resumes and redeliveries, a recipient gets at most one
message."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from bson import ObjectId

from crm.messages import unpack
from crm.models.common import to_iso, utcnow
from crm.services.reconcile import Limits, reconcile
from tests.helpers import assert_error, stats, token_for

FANOUT, SEND = "CampaignFanoutQueue", "CampaignSendQueue"
LIMITS = Limits(send_timeout=timedelta(hours=1), receipt_timeout=timedelta(minutes=15), max_send_attempts=3,
                fanout_stall=timedelta(minutes=5))


def _create(api, segment_id, **fields) -> dict:
    status, campaign, _ = api.post("/api/campaigns", {"name": "Sale", "segment_id": segment_id,
                                                      **({"message": "Hi {{first_name}}"} if "variants" not in fields
                                                         else {}), **fields})
    assert status == 202, campaign
    return campaign


def _reconcile(db, now, fan_outs=None, sweeps=None, sends=None):
    return reconcile(db, now, LIMITS, lambda _: None, (sends if sends is not None else []).extend,
                     (fan_outs if fan_outs is not None else []).append, deadline=1e12,
                     queue_sweep=(sweeps if sweeps is not None else []).append)


def _tick(db, consumers, now):
    """One reconciler run whose jobs go on their queues, as the deployed reconciler's do."""
    from crm.messages import pack

    fan_outs, sweeps, sends = [], [], []
    settled = _reconcile(db, now, fan_outs, sweeps, sends)
    for record in [{"campaign_id": str(c)} for c in fan_outs] + [{"campaign_id": str(c), "job": "sweep"}
                                                                  for c in sweeps]:
        consumers.send_raw(FANOUT, pack("fanout", [record], 256 * 1024)[0])
    for body in pack("sends", sends, 256 * 1024, 100):
        consumers.send_raw(SEND, body)
    return settled


def _change(api, campaign_id, action, expect=200) -> dict:
    status, body, _ = api.post(f"/api/campaigns/{campaign_id}/{action}", {})
    assert status == expect, body
    return body


def _sent_log_ids(vendor) -> Counter:
    return Counter(vendor.sent_log_ids())


def test_a_scheduled_campaign_reads_and_sends_nothing_before_its_time(api, db, consumers, segment_id, vendor):
    send_at = utcnow() + timedelta(seconds=90)
    campaign = _create(api, segment_id, send_at=to_iso(send_at))
    assert campaign["status"] == "SCHEDULED" and campaign["send_at"] == to_iso(send_at)
    assert consumers.drain(FANOUT) == 0, "no fan-out job before its time"
    fan_outs: list = []
    assert _reconcile(db, send_at - timedelta(seconds=1), fan_outs).started == 0 and not fan_outs
    assert db.communication_logs.count_documents({}) == 0
    assert _reconcile(db, send_at, fan_outs).started == 1 and fan_outs == [ObjectId(campaign["id"])]
    assert _reconcile(db, send_at + timedelta(minutes=1), fan_outs).started == 0, "started once"
    consumers.send_raw(FANOUT, _fan_out_body(campaign["id"]))
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    assert len(_sent_log_ids(vendor)) == 120 and max(_sent_log_ids(vendor).values()) == 1


def test_a_scheduled_campaign_cancelled_before_its_time_never_sends(api, db, consumers, segment_id, vendor):
    send_at = utcnow() + timedelta(minutes=5)
    campaign = _create(api, segment_id, send_at=to_iso(send_at))
    assert _change(api, campaign["id"], "cancel")["status"] == "CANCELLED"
    assert _change(api, campaign["id"], "cancel")["status"] == "CANCELLED", "repeating a change that applied: 200"
    fan_outs: list = []
    assert _reconcile(db, send_at + timedelta(minutes=1), fan_outs).started == 0 and not fan_outs
    consumers.drain(FANOUT)
    assert db.communication_logs.count_documents({}) == 0 and not vendor.received
    status, body, _ = api.post(f"/api/campaigns/{campaign['id']}/resume", {})
    assert status == 409 and "CANCELLED" in body["error"]["message"]


def _fan_out_body(campaign_id: str) -> str:
    from crm.messages import pack

    return pack("fanout", [{"campaign_id": campaign_id}], 256 * 1024)[0]


def test_pause_then_resume_then_pause_and_resume_again_sends_each_recipient_once(api, db, consumers, segment_id,
                                                                                 vendor):
    campaign = _create(api, segment_id)
    consumers.drain(FANOUT)
    bodies = [m["Body"] for m in consumers.messages(SEND)]
    first, rest = bodies[:1], bodies[1:]
    assert consumers.deliver(SEND, first) == {"batchItemFailures": []}
    sent_before_pause = sum(_sent_log_ids(vendor).values())
    assert 0 < sent_before_pause < 120

    assert _change(api, campaign["id"], "pause")["status"] == "PAUSED"
    assert _change(api, campaign["id"], "pause")["status"] == "PAUSED"
    # The queued messages arrive while paused (twice each): nothing is handed over, the logs wait.
    assert consumers.deliver(SEND, rest + rest) == {"batchItemFailures": []}
    assert sum(_sent_log_ids(vendor).values()) == sent_before_pause
    parked = db.communication_logs.count_documents({"parked": True})
    assert parked == 120 - sent_before_pause
    assert consumers.drain(SEND) == 0, "a paused campaign's messages wait in the database, not in the queue"

    assert _change(api, campaign["id"], "resume")["status"] == "SENDING"
    consumers.drain(FANOUT)  # the resume's sweep queues the parked sends again
    resumed = [m["Body"] for m in consumers.messages(SEND)]
    assert _change(api, campaign["id"], "pause")["status"] == "PAUSED"
    consumers.deliver(SEND, resumed[:1])  # paused again before these arrive
    assert _change(api, campaign["id"], "resume")["status"] == "SENDING"
    consumers.drain(FANOUT)
    # Late copies of every message ever queued arrive too.
    consumers.deliver(SEND, bodies + resumed)
    consumers.drain(SEND)
    sent = _sent_log_ids(vendor)
    assert len(sent) == 120 and max(sent.values()) == 1, "every recipient exactly one message"
    assert db.communication_logs.count_documents({"parked": True}) == 0
    assert db.audit_log.count_documents({"action": {"$in": ["campaign.pause", "campaign.resume"]}}) == 4


def test_cancel_mid_send_skips_every_log_not_handed_over_and_the_counters_still_sum(api, db, consumers, segment_id,
                                                                                    vendor):
    campaign = _create(api, segment_id)
    consumers.drain(FANOUT)
    bodies = [m["Body"] for m in consumers.messages(SEND)]
    consumers.deliver(SEND, bodies[:1])
    handed = sum(_sent_log_ids(vendor).values())
    assert _change(api, campaign["id"], "cancel")["status"] == "CANCELLED"
    consumers.drain(FANOUT)  # the cancel's sweep
    consumers.deliver(SEND, bodies + bodies)
    assert sum(_sent_log_ids(vendor).values()) == handed, "no message after the reply"
    logs = Counter((log["status"], log.get("reason")) for log in db.communication_logs.find({}))
    assert logs == {("QUEUED", None): handed, ("SKIPPED", "cancelled"): 120 - handed}
    doc = db.campaigns.find_one({"_id": ObjectId(campaign["id"])})
    assert doc["status"] == "CANCELLED" and doc["stats"] == stats(audience=120, queued=handed, skipped=120 - handed)
    for action in ("pause", "resume"):
        status, body, _ = api.post(f"/api/campaigns/{campaign['id']}/{action}", {})
        assert status == 409, body
        assert_error(body, "conflict")


def test_a_sweep_lost_with_its_request_is_restarted_by_the_reconciler(api, db, consumers, segment_id, vendor):
    campaign = _create(api, segment_id)
    consumers.drain(FANOUT)
    _change(api, campaign["id"], "pause")
    consumers.drain(SEND)
    _change(api, campaign["id"], "resume")
    consumers.messages(FANOUT)  # the sweep's job is lost
    sweeps: list = []
    assert _reconcile(db, utcnow(), sweeps=sweeps).sweeps_requeued == 0, "not before it stalled"
    assert _reconcile(db, utcnow() + timedelta(minutes=6), sweeps=sweeps).sweeps_requeued == 1
    assert sweeps == [ObjectId(campaign["id"])]


def test_status_changes_are_for_marketers_and_admins(api, segment_id):
    campaign = _create(api, segment_id)
    analyst = token_for(api, "ana@example.com", "analyst")
    status, body, _ = api.post(f"/api/campaigns/{campaign['id']}/pause", {}, token=analyst)
    assert status == 403, body
    status, body, _ = api.post(f"/api/campaigns/{ObjectId()}/pause", {})
    assert status == 404, body


def test_a_send_window_holds_the_recipients_outside_it_until_it_opens_then_each_gets_one_message(
        api, db, consumers, segment_id, vendor, monkeypatch):
    now = datetime.now(timezone.utc)
    # Open now in UTC (from an hour ago for two hours); closed now in a zone fourteen hours ahead.
    opens, closes = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=1)).strftime("%H:%M")
    far = db.customers.find({}, {"_id": 1}).limit(60)
    far_ids = [c["_id"] for c in far]
    db.customers.update_many({"_id": {"$in": far_ids}}, {"$set": {"attributes.time_zone": "Pacific/Kiritimati"}})
    db.customers.update_one({"_id": {"$nin": far_ids}}, {"$set": {"attributes.time_zone": "Not/AZone"}})
    campaign = _create(api, segment_id, send_window={"from": opens, "to": closes, "time_zone": "UTC"})
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    sent = _sent_log_ids(vendor)
    assert len(sent) == 60, "the recipients in UTC (and the one whose zone is unknown) go now"
    waiting = list(db.communication_logs.find({"parked": True}, {"due_at": 1, "customer_id": 1}))
    assert {log["customer_id"] for log in waiting} == set(far_ids)
    assert consumers.drain(SEND) == 0, "nothing waits in the queue"
    opening = {log["due_at"] for log in waiting}
    assert len(opening) == 1 and next(iter(opening)) > now

    # The clock moves to the opening: the reconciler's tick then queues them again, and the senders hand them over.
    import crm.services.sending as sending

    shift = next(iter(opening)) - now + timedelta(minutes=1)
    monkeypatch.setattr(sending, "utcnow", lambda: datetime.now(timezone.utc) + shift)
    sends: list = []
    assert _reconcile(db, now + shift, sends=sends).requeued == 60
    consumers.deliver(SEND, [_send_body(sends)])
    consumers.drain(SEND)
    sent = _sent_log_ids(vendor)
    assert len(sent) == 120 and max(sent.values()) == 1
    assert db.campaigns.find_one({"_id": ObjectId(campaign["id"])})["stats"]["audience"] == 120


def _send_body(sends: list[dict]) -> str:
    from crm.messages import pack

    bodies = pack("sends", sends, 256 * 1024)
    assert len(bodies) == 1
    return bodies[0]


def test_the_frequency_cap_skips_who_had_enough_messages_unless_an_admin_overrides_it(api, db, consumers, segment_id,
                                                                                      vendor, monkeypatch):
    from crm.config import get_settings

    monkeypatch.setenv("FREQUENCY_CAP", "1/7d")
    get_settings.cache_clear()
    _create(api, segment_id)
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    assert len(_sent_log_ids(vendor)) == 120
    second = _create(api, segment_id, name="Again")
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    assert len(_sent_log_ids(vendor)) == 120, "nobody gets a second message this week"
    skipped = Counter(log["reason"] for log in db.communication_logs.find({"campaign_id": ObjectId(second["id"])}))
    assert skipped == {"frequency_cap": 120}
    marketer = token_for(api, "mark@example.com", "marketer")
    status, body, _ = api.post("/api/campaigns", {"name": "Must", "segment_id": segment_id, "message": "x",
                                                  "ignore_frequency_cap": True}, token=marketer)
    assert status == 403 and body["error"]["details"][0]["loc"] == ["body", "ignore_frequency_cap"]
    _create(api, segment_id, name="Must", ignore_frequency_cap=True)
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    assert len(_sent_log_ids(vendor)) == 240


def test_variants_split_the_audience_by_a_stable_hash_and_logs_name_them(api, db, consumers, segment_id, vendor):
    variants = [{"name": "A", "message": "A for {{name}}"}, {"name": "B", "message": "B for {{name}}"}]
    campaign = _create(api, segment_id, variants=variants, control_percent=20)
    assert campaign["message"] is None and [v["name"] for v in campaign["variants"]] == ["A", "B"]
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    logs = list(db.communication_logs.find({}))
    control = [log for log in logs if log["reason"] == "control"]
    assert 10 <= len(control) <= 40 and all(log["status"] == "SKIPPED" and log["variant"] is None for log in control)
    shares = Counter(log["variant"] for log in logs if log["reason"] != "control")
    assert set(shares) == {"A", "B"} and min(shares.values()) >= 30
    for log in logs:
        if log["variant"]:
            assert log["message"] == f"{log['variant']} for {log['to']['name']}"
    sent = set(_sent_log_ids(vendor))
    assert not sent & {str(log["_id"]) for log in control}, "the control group gets no message"
    doc = db.campaigns.find_one({"_id": ObjectId(campaign["id"])})
    assert doc["stats"]["skipped"] == len(control) and doc["stats"]["audience"] == 120
    status, detail, _ = api.get(f"/api/campaigns/{campaign['id']}")
    assert {log["variant"] for log in detail["logs"]["items"]} <= {"A", "B", None}


def test_an_ab_test_sends_its_share_first_then_the_winner_by_clicks_to_the_rest(api, db, consumers, segment_id,
                                                                                vendor):
    from crm.services.delivery import Outcome, record_outcomes

    variants = [{"name": "A", "message": "A {{name}}"}, {"name": "B", "message": "B {{name}}"}]
    campaign = _create(api, segment_id, variants=variants,
                       test={"percent": 40, "minutes": 1, "win_by": "clicked"})
    campaign_id = ObjectId(campaign["id"])
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    test_logs = list(db.communication_logs.find({"campaign_id": campaign_id}))
    assert 30 <= len(test_logs) <= 70 and {log["variant"] for log in test_logs} == {"A", "B"}
    doc = db.campaigns.find_one({"_id": campaign_id})
    assert doc["fanout"]["phase"] == "waiting" and doc["status"] == "SENDING"
    # Every test message delivered; B's recipients click more.
    record_outcomes(db, [Outcome(log["_id"], "SENT") for log in test_logs])
    b_logs = [log["_id"] for log in test_logs if log["variant"] == "B"]
    db.communication_logs.update_many({"_id": {"$in": b_logs[:5]}}, {"$set": {"events.clicked": utcnow()}})
    fan_outs: list = []
    assert _reconcile(db, utcnow(), fan_outs).winners == 0, "not before its minutes are up"
    assert _reconcile(db, utcnow() + timedelta(minutes=2), fan_outs).winners == 1
    assert fan_outs == [campaign_id]
    consumers.send_raw(FANOUT, _fan_out_body(campaign["id"]))
    consumers.drain(FANOUT)
    consumers.drain(SEND)
    rest = list(db.communication_logs.find({"campaign_id": campaign_id, "_id": {"$nin": [log["_id"] for log in
                                                                                           test_logs]}}))
    assert len(rest) + len(test_logs) == 120 and {log["variant"] for log in rest} == {"B"}
    doc = db.campaigns.find_one({"_id": campaign_id})
    assert doc["winner"] == "B" and doc["fanout"]["done"]
    sent = _sent_log_ids(vendor)
    assert len(sent) == 120 and max(sent.values()) == 1
    status, body, _ = api.get(f"/api/campaigns/{campaign['id']}")
    assert body["winner"] == "B"


def test_lifecycle_fields_are_checked_and_name_the_bad_field(api, segment_id):
    base = {"name": "x", "segment_id": segment_id}
    variants = [{"name": "A", "message": "a"}, {"name": "B", "message": "b"}]
    cases = [
        ({**base}, ["body", "message"]),
        ({**base, "message": "m", "variants": variants}, ["body", "message"]),
        ({**base, "message": "m", "test": {"percent": 10, "minutes": 5, "win_by": "opened"}}, ["body", "test"]),
        ({**base, "variants": variants, "test": {"percent": 51, "minutes": 5, "win_by": "opened"}},
         ["body", "test", "percent"]),
        ({**base, "variants": variants, "test": {"percent": 10, "minutes": 5, "win_by": "sales"}},
         ["body", "test", "win_by"]),
        ({**base, "variants": [variants[0], variants[0]]}, ["body", "variants"]),
        ({**base, "message": "m", "send_at": to_iso(utcnow() + timedelta(days=366))}, ["body", "send_at"]),
        ({**base, "message": "m", "send_at": "tomorrow"}, ["body", "send_at"]),
        ({**base, "message": "m", "rate_per_minute": 0}, ["body", "rate_per_minute"]),
        ({**base, "message": "m", "rate_per_minute": 10**30}, ["body", "rate_per_minute"]),
        ({**base, "message": "m", "send_window": {"from": "25:00", "to": "06:00", "time_zone": "UTC"}},
         ["body", "send_window", "from"]),
        ({**base, "message": "m", "send_window": {"from": "09:00", "to": "18:00", "time_zone": "Mars/Olympus"}},
         ["body", "send_window", "time_zone"]),
        ({**base, "message": "m", "control_percent": 51}, ["body", "control_percent"]),
        ({**base, "message": "m", "ignore_frequency_cap": "yes"}, ["body", "ignore_frequency_cap"]),
    ]
    for body, loc in cases:
        status, reply, _ = api.post("/api/campaigns", body)
        assert status == 422, (body, reply)
        assert_error(reply, "validation_error", loc)


def test_a_past_send_at_sends_now(api, segment_id, consumers):
    campaign = _create(api, segment_id, send_at="2020-01-01T00:00:00Z")
    assert campaign["status"] == "QUEUED" and campaign["send_at"] is None
    assert [unpack(m["Body"])[1] for m in consumers.messages(FANOUT)] == [[{"campaign_id": campaign["id"]}]]


def test_a_campaign_at_60_a_minute_hands_over_at_most_60_in_any_minute_across_senders(api, db, consumers, vendor,
                                                                                     audience):
    import threading
    import time

    status, segment, _ = api.post("/api/segments", {"name": "Some", "rules": {"field": "spend", "op": "<",
                                                                               "value": 62}})
    assert status == 201
    _create(api, segment["id"], rate_per_minute=60)
    consumers.drain(FANOUT)
    started = time.time()

    def sender() -> None:  # one of two containers of the send function, polling as the runner's poller does
        while time.time() - started < 150 and len(_sent_log_ids(vendor)) < 62:
            if not consumers.pollers[SEND].poll_once(wait_seconds=0):
                time.sleep(0.5)

    senders = [threading.Thread(target=sender) for _ in range(2)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    handed = sorted(m_at for call in vendor.received if call["status"] == 202
                    for m_at in [call["at"]] * len(call["messages"]))
    sent = _sent_log_ids(vendor)
    assert len(sent) == 62 and max(sent.values()) == 1
    busiest = max(sum(1 for t in handed if first <= t < first + 60) for first in handed)
    assert busiest <= 60, f"{busiest} messages in one minute"
    gaps = sorted((round(b - a, 1), i) for i, (a, b) in enumerate(zip(handed, handed[1:])))[-6:]
    assert handed[-1] - handed[0] < 90, ("and not much slower than the rate", gaps)
