"""A campaign through the whole local system: offline runner, moto SQS, SecantusDB, the mock vendor and
its signed receipts on the receipt function's own URL."""
from __future__ import annotations

import time

import httpx
import pytest
from bson import ObjectId

from crm.models.campaigns import FAILED
from crm.services.mock_vendor import outcome_for
from offline import services
from tests.conftest import signed_in_system
from tests.offline.conftest import wait_for


@pytest.fixture
def system(stack_env, queues, db):
    """The offline runner over this test's database and queues, its vendor the mock one it serves; an HTTP client
    on it signed in as an admin."""
    port = services.free_port()
    env = {**stack_env, "VENDOR_URL": f"http://127.0.0.1:{port}/api/mock-send",
           "RECEIPT_URL": f"http://127.0.0.1:{port}/_url/ReceiptsFunction/api/delivery-receipt",
           "MOCK_VENDOR_SEED": "e2e"}
    with signed_in_system(env, queues, port) as http:
        yield http


def _completed(http: httpx.Client, campaign_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while (detail := http.get(f"/api/campaigns/{campaign_id}").json())["status"] != "COMPLETED":
        assert time.monotonic() < deadline, detail["stats"]
        time.sleep(0.5)
    return detail


def test_campaign_to_a_few_hundred_customers_completes(system, db):
    from crm.models.common import to_iso, utcnow
    from crm.services.customers import upsert_customers

    http = system
    upsert_customers(db, [{"name": f"Person {i:03d}", "email": f"p{i:03d}@example.com",
                           "spend": float(i), "accepted_at": to_iso(utcnow())} for i in range(300)])
    segment = http.post("/api/segments", json={"name": "Under 250", "rules": {
        "field": "spend", "op": "<", "value": 250}}).json()
    assert segment["audience_size"] == 250
    campaign = http.post("/api/campaigns", json={"name": "Hello", "segment_id": segment["id"],
                                                 "message": "Hello {{name}}!"}).json()
    detail = _completed(http, campaign["id"], 180)
    listed = http.get("/api/campaigns").json()["items"]
    summary = http.post("/api/ai/summary", json={"campaign_id": campaign["id"]}).json()

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


CUSTOMERS = [
    {"name": "Asha Rao", "email": "asha@example.com", "attributes": {"city": "Mumbai"}, "tags": ["vip"]},
    {"name": "Pooja Iyer", "email": "pooja@example.com", "attributes": {"city": "Pune"}, "tags": ["VIP", "new"]},
    {"name": "Ravi Shah", "email": "ravi@example.com", "attributes": {"city": "Pune"}, "tags": ["vip"]},
    {"name": "Meera Das", "email": "meera@example.com", "attributes": {"city": "Delhi"}, "tags": ["vip"]},
    {"name": "Kiran Rao", "email": "kiran@example.com", "attributes": {"city": "Mumbai"}, "tags": ["new"]},
    {"name": "Dev Patel", "email": "dev@example.com", "attributes": {"plan": "gold"}, "tags": ["vip"]},
]
ORDERS = [  # Ravi has bought SKU-9; Asha only SKU-1
    {"order_id": "o-1", "customer_email": "ravi@example.com", "amount": 90,
     "items": [{"sku": "SKU-1", "name": "Tea", "qty": 1, "price": 10}, {"sku": "SKU-9", "name": "Pot", "qty": 1,
                                                                         "price": 80}]},
    {"order_id": "o-2", "customer_email": "asha@example.com", "amount": 10,
     "items": [{"sku": "SKU-1", "name": "Tea", "qty": 1, "price": 10}]},
]
VIPS_OF_MUMBAI_AND_PUNE_WITHOUT_SKU_9 = {"and": [
    {"field": "attributes.city", "op": "in", "value": ["Mumbai", "Pune"]},
    {"field": "tags", "op": "has_any", "value": ["vip"]},
    {"not": {"field": "skus", "op": "has_any", "value": ["SKU-9"]}},
]}


def test_a_campaign_on_v2_rules_reaches_its_audience_with_their_attributes(system):
    """Customers with attributes and tags, an order with SKUs, a preview and a campaign on v2 rules, each
    recipient's city in their message (empty for one without a city)."""
    http = system
    assert http.post("/api/customers", json={"customers": CUSTOMERS}).status_code == 202
    wait_for(lambda: len(http.get("/api/customers").json()["items"]) == len(CUSTOMERS), what="customers stored")
    assert http.post("/api/orders", json={"orders": ORDERS}).status_code == 202
    # An order is listed once applied: its document and the customer's totals and SKUs commit together.
    wait_for(lambda: len(http.get("/api/orders").json()["items"]) == len(ORDERS), what="orders applied")

    preview = http.post("/api/segments/preview", json={"rules": VIPS_OF_MUMBAI_AND_PUNE_WITHOUT_SKU_9})
    assert preview.status_code == 200, preview.text
    assert preview.json()["audience_size"] == 2
    assert {c["email"] for c in preview.json()["sample"]} == {"asha@example.com", "pooja@example.com"}

    # The same audience in words: the registry knows the cities the customers were ingested with.
    drafted = http.post("/api/ai/rules", json={"prompt": "tagged vip in Mumbai or Pune who never bought SKU-9"})
    assert drafted.status_code == 200, drafted.text
    assert drafted.json()["rules"] == {"and": [
        {"field": "tags", "op": "has_any", "value": ["vip"]},
        {"field": "attributes.city", "op": "in", "value": ["Mumbai", "Pune"]},
        {"field": "skus", "op": "has_none", "value": ["SKU-9"]}]}
    drafted_preview = http.post("/api/segments/preview", json={"rules": drafted.json()["rules"]}).json()
    assert drafted_preview["audience_size"] == 2

    # The same audience, and the VIPs of no known city besides.
    rules = {"and": [{"or": [VIPS_OF_MUMBAI_AND_PUNE_WITHOUT_SKU_9["and"][0],
                             {"field": "attributes.city", "op": "exists", "value": False}]},
                     *VIPS_OF_MUMBAI_AND_PUNE_WITHOUT_SKU_9["and"][1:]]}
    segment = http.post("/api/segments", json={"name": "Local VIPs", "rules": rules})
    assert segment.status_code == 201, segment.text
    assert segment.json()["audience_size"] == 3
    campaign = http.post("/api/campaigns", json={"name": "Store opening", "segment_id": segment.json()["id"],
                                                 "message": "Hi {{first_name}}, see you in {{attributes.city}}!"})
    assert campaign.status_code == 202, campaign.text
    detail = _completed(http, campaign.json()["id"], 60)

    emails = {c["id"]: c["email"] for c in http.get("/api/customers").json()["items"]}
    messages = {emails[log["customer_id"]]: log["message"] for log in detail["logs"]["items"]}
    assert messages == {"asha@example.com": "Hi Asha, see you in Mumbai!",
                        "pooja@example.com": "Hi Pooja, see you in Pune!",
                        "dev@example.com": "Hi Dev, see you in !"}
    stats = detail["stats"]
    assert stats["audience"] == 3 and stats["sent"] + stats["failed"] == 3 and stats["queued"] == 0
    assert all(log["status"] in ("SENT", "FAILED") and log["vendor_message_id"] for log in detail["logs"]["items"])
