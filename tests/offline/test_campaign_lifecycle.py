"""Campaign lifecycle through the whole local system in fault mode: pauses and resumes mid-send while SQS delivers
twice and consumers are killed, and a campaign scheduled ahead that waits for its time."""
from __future__ import annotations

import time
from datetime import timedelta

from bson import ObjectId

from crm.models.common import to_iso, utcnow
from offline import services
from offline.faults import Faults
from tests.conftest import signed_in_system
from tests.test_faults import _audience, wait_until


def _handed(db, log_ids: set[str] | None = None) -> int:
    """Messages the mock vendor has taken (its idempotency log: one entry per log id, however often sent)."""
    return db.vendor_messages.count_documents({} if log_ids is None else {"_id": {"$in": sorted(log_ids)}})


def _steady(db, settle: float = 2.0, watch: float = 4.0) -> int:
    """What the vendor holds once a call under way at a pause has finished, checked to stay so for `watch` s."""
    time.sleep(settle)
    before = _handed(db)
    time.sleep(watch)
    assert _handed(db) == before, "a message was handed over after the pause"
    return before


def test_pauses_and_resumes_under_sqs_faults_send_each_recipient_once_and_a_scheduled_campaign_waits(
        stack_env, queues, db):
    _audience(db, 150)
    port = services.free_port()
    env = {**stack_env, "VENDOR_URL": f"http://127.0.0.1:{port}/api/mock-send",
           "RECEIPT_URL": f"http://127.0.0.1:{port}/_url/ReceiptsFunction/api/delivery-receipt"}
    faults = Faults({"sqs_dup": 0.3, "sqs_kill": 0.15}, seed=23)
    # The reconciler's schedule (which starts scheduled campaigns) ticks every 10 s instead of every minute.
    with signed_in_system(env, queues, port, faults, time_scale=6) as http:
        segment = http.post("/api/segments", json={"name": "All", "rules": {"field": "spend", "op": ">=",
                                                                            "value": 0}}).json()
        send_at = utcnow() + timedelta(seconds=90)
        scheduled = http.post("/api/campaigns", json={"name": "Later", "segment_id": segment["id"],
                                                      "message": "Soon, {{first_name}}", "send_at": to_iso(send_at)})
        assert scheduled.status_code == 202 and scheduled.json()["status"] == "SCHEDULED", scheduled.text
        scheduled_id = ObjectId(scheduled.json()["id"])
        created = http.post("/api/campaigns", json={"name": "Now", "segment_id": segment["id"],
                                                    "message": "Hi {{first_name}}", "rate_per_minute": 600})
        assert created.status_code == 202, created.text
        campaign_id = created.json()["id"]

        for _ in range(2):
            seen = _handed(db)
            wait_until(lambda: _handed(db) >= seen + 30, 120, "30 more messages handed over")
            paused = http.post(f"/api/campaigns/{campaign_id}/pause")
            assert paused.status_code == 200 and paused.json()["status"] == "PAUSED", paused.text
            held = _steady(db)
            assert held < 150
            assert http.post(f"/api/campaigns/{campaign_id}/pause").status_code == 200
            resumed = http.post(f"/api/campaigns/{campaign_id}/resume")
            assert resumed.status_code == 200 and resumed.json()["status"] == "SENDING", resumed.text

        assert utcnow() < send_at and db.communication_logs.count_documents({"campaign_id": scheduled_id}) == 0, \
            "nothing of the scheduled campaign is read before its time"
        detail = wait_until(lambda: (d := http.get(f"/api/campaigns/{campaign_id}").json())["status"] == "COMPLETED"
                            and d, 420, "the campaign completing")
        later = wait_until(lambda: (d := http.get(f"/api/campaigns/{scheduled_id}").json())["status"] == "COMPLETED"
                           and d, 300, "the scheduled campaign completing")

    injected = faults.injected()
    assert injected["sqs_dup"] and injected["sqs_kill"], injected
    for campaign in (detail, later):
        stats = campaign["stats"]
        assert stats["audience"] == 150 and stats["queued"] == 0
        assert stats["sent"] + stats["failed"] == 150, stats
        log_ids = {str(log["_id"]) for log in db.communication_logs.find({"campaign_id": ObjectId(campaign["id"])})}
        assert len(log_ids) == 150 and _handed(db, log_ids) == 150, "each recipient one message"
        assert db.communication_logs.count_documents({"campaign_id": ObjectId(campaign["id"]),
                                                      "reason": {"$in": ["send_failed", "no_receipt"]}}) == 0
    first_log = db.communication_logs.find_one({"campaign_id": scheduled_id}, sort=[("created_at", 1)])
    assert first_log["created_at"] >= send_at.replace(microsecond=0), "no log before its time"
    assert db.audit_log.count_documents({"action": {"$in": ["campaign.pause", "campaign.resume"]},
                                         "target.id": campaign_id}) == 4
