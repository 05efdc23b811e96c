"""Re-ingest under redelivery: the newest accepted ingest wins per field, orders are never erased, last_active only
moves forward (API.md, "What an ingest does")."""
from __future__ import annotations

from crm.messages import unpack

CUSTOMER_QUEUE, ORDER_QUEUE = "CustomerIngestQueue", "OrderIngestQueue"


def _taken(consumers, queue: str) -> list[str]:
    return [m["Body"] for m in consumers.messages(queue)]


def _customer(db, email: str = "ada@example.com") -> dict:
    return db.customers.find_one({"email": email})


def test_a_late_redelivery_of_an_older_ingest_changes_nothing(api, consumers, db):
    api.post("/api/customers", {"name": "Ada Old", "email": "ada@example.com", "spend": 10, "visits": 1,
                                "phone": "+1 555 0100", "last_active": "2026-01-01T00:00:00Z"})
    [older] = _taken(consumers, CUSTOMER_QUEUE)
    api.post("/api/customers", {"name": "Ada New", "email": "ada@example.com", "spend": 50, "visits": 4,
                                "last_active": "2026-06-01T00:00:00Z"})
    [newer] = _taken(consumers, CUSTOMER_QUEUE)

    consumers.deliver(CUSTOMER_QUEUE, [newer])
    consumers.deliver(CUSTOMER_QUEUE, [older])  # late, after the newer one
    ada = _customer(db)
    assert (ada["name"], ada["spend"], ada["visits"]) == ("Ada New", 50, 4)
    assert ada["phone"] == "+1 555 0100", "the newer ingest did not carry a phone, so the older one's stands"
    assert ada["last_active"].isoformat().startswith("2026-06-01")
    assert ada["name_key"] == "ada new"

    consumers.deliver(CUSTOMER_QUEUE, [newer, older])  # redelivered again, in any order
    again = _customer(db)
    assert {k: again[k] for k in ("name", "spend", "visits", "phone", "last_active")} == \
           {k: ada[k] for k in ("name", "spend", "visits", "phone", "last_active")}


def test_reingesting_spend_keeps_the_orders_applied_since(api, consumers, db):
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "spend": 100, "visits": 2})
    consumers.drain(CUSTOMER_QUEUE)
    api.post("/api/orders", {"orders": [
        {"order_id": f"o-{i}", "customer_email": "ada@example.com", "amount": 25, "date": "2026-11-01T00:00:00Z",
         "items": [{"sku": "TEA", "name": "Tea", "qty": 1, "price": 25}]} for i in range(3)]})
    consumers.drain(ORDER_QUEUE)
    before = _customer(db)
    assert (before["spend"], before["visits"]) == (175, 5)

    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "spend": 40, "visits": 1})
    consumers.drain(CUSTOMER_QUEUE)
    ada = _customer(db)
    assert (ada["spend"], ada["visits"]) == (40 + 75, 1 + 3), "re-ingest replaces only the ingested part"
    assert ada["last_active"] == before["last_active"], "an ingest without last_active keeps it"


def test_last_active_never_moves_back(api, consumers, db):
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "last_active": "2026-09-01T00:00:00Z"})
    consumers.drain(CUSTOMER_QUEUE)
    api.post("/api/customers", {"name": "Ada", "email": "ada@example.com", "last_active": "2026-03-01T00:00:00Z"})
    consumers.drain(CUSTOMER_QUEUE)
    assert _customer(db)["last_active"].isoformat().startswith("2026-09-01")


def test_the_later_entry_for_an_email_in_one_request_wins(api, consumers, db):
    api.post("/api/customers", {"customers": [{"name": "First", "email": "ada@example.com", "spend": 1},
                                              {"name": "Second", "email": "ADA@example.com", "spend": 2}]})
    [body] = _taken(consumers, CUSTOMER_QUEUE)
    records = unpack(body)[1]
    assert [r["accepted_seq"] for r in records] == [0, 1]
    consumers.deliver(CUSTOMER_QUEUE, [body])
    assert (_customer(db)["name"], _customer(db)["spend"]) == ("Second", 2)


def test_values_are_stored_as_data_never_as_expressions(api, consumers, db):
    api.post("/api/customers", {"name": "$email", "email": "ada@example.com"})
    consumers.drain(CUSTOMER_QUEUE)
    assert _customer(db)["name"] == "$email"
