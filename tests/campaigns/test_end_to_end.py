"""A campaign through the whole local system: offline runner, moto SQS, SecantusDB, the mock vendor and
its signed receipts on the receipt function's own URL."""
from __future__ import annotations

import sys
import time

import httpx
from bson import ObjectId

from crm.models.campaigns import FAILED
from crm.services.mock_vendor import outcome_for
from offline import services, template
from offline.runner import OfflineRunner
from tests.conftest import TEMPLATE


def test_campaign_to_a_few_hundred_customers_completes(stack_env, queues, db):
    from crm.models.common import to_iso, utcnow
    from crm.services.customers import upsert_customers

    upsert_customers(db, [{"name": f"Person {i:03d}", "email": f"p{i:03d}@example.com",
                                      "spend": float(i), "accepted_at": to_iso(utcnow())} for i in range(300)])
    port = services.free_port()
    env = {**stack_env, "VENDOR_URL": f"http://127.0.0.1:{port}/api/mock-send",
           "RECEIPT_URL": f"http://127.0.0.1:{port}/_url/ReceiptsFunction/api/delivery-receipt",
           "MOCK_VENDOR_SEED": "e2e"}
    runner = OfflineRunner(template.load(TEMPLATE, services.LOCAL_PARAMETERS, queues), queues, env, port=port,
                           retry_delay_seconds=0, reload=False, out=sys.stdout).start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            signed_in = http.post("/api/auth/dev-token", json={"email": "ops@example.com"})
            assert signed_in.status_code == 200, signed_in.text
            token = signed_in.json()["token"]
            http.headers["Authorization"] = f"Bearer {token}"
            segment = http.post("/api/segments", json={"name": "Under 250", "rules": {
                "field": "spend", "op": "<", "value": 250}}).json()
            assert segment["audience_size"] == 250
            campaign = http.post("/api/campaigns", json={"name": "Hello", "segment_id": segment["id"],
                                                         "message": "Hello {{name}}!"}).json()
            deadline = time.monotonic() + 180
            while (detail := http.get(f"/api/campaigns/{campaign['id']}").json())["status"] != "COMPLETED":
                assert time.monotonic() < deadline, detail["stats"]
                time.sleep(0.5)
            listed = http.get("/api/campaigns").json()["items"]
            summary = http.post("/api/ai/summary", json={"campaign_id": campaign["id"]}).json()
    finally:
        runner.stop()

    stats = detail["stats"]
    logs = list(db.communication_logs.find({"campaign_id": ObjectId(campaign["id"])}))
    assert stats["audience"] == len(logs) == len({log["customer_id"] for log in logs}) == 250
    assert stats["sent"] + stats["failed"] == 250 and stats["queued"] == 0
    expected_failed = {str(log["_id"]) for log in logs if outcome_for("e2e", str(log["_id"]), 0.1) == FAILED}
    assert {str(log["_id"]) for log in logs if log["status"] == "FAILED"} == expected_failed
    assert stats["failed"] == len(expected_failed) and 5 <= len(expected_failed) <= 50
    assert all(log["message"] == f"Hello {log['to']['name']}!" and log["vendor_message_id"] for log in logs)
    assert listed[0]["id"] == campaign["id"] and listed[0]["stats"] == stats
    assert f"reached 250 customers; {stats['sent']} messages were sent" in summary["summary"]
