"""The per-customer activity behaviour rules read (crm.rules.activity): daily order buckets written by the order
consumer, one message entry per campaign written idempotently, and the server operators both rely on."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from bson import ObjectId

from crm.db import CUSTOMERS
from crm.models.common import utcnow
from crm.models.orders import OrderIn
from crm.rules import activity
from crm.services import orders

DAY = timedelta(days=1)


def _order(order_id: str, customer_id: ObjectId, date: datetime, amount: float, skus: list[str]) -> dict:
    order = OrderIn(order_id=order_id, customer_id=str(customer_id), amount=amount, date=date,
                    items=[{"sku": sku, "name": sku, "qty": 1, "price": amount} for sku in skus])
    return orders.queue_records([order])[0]


def _buckets(db, customer_id) -> dict[int, tuple[int, float, set[str]]]:
    doc = db[CUSTOMERS].find_one({"_id": customer_id})
    days = [b["d"] for b in doc["activity"]["orders"]]
    assert len(days) == len(set(days)), "one bucket a day"
    return {b["d"]: (b["n"], b["s"], set(b["skus"]), b["cn"], b["cs"]) for b in doc["activity"]["orders"]}


def test_day_numbers_are_utc_calendar_days():
    assert activity.day_number(datetime(1970, 1, 1, tzinfo=timezone.utc)) == 0
    assert activity.day_number(datetime(1970, 1, 2, 23, 59, 59, tzinfo=timezone.utc)) == 1
    # 01:00 in India is still the previous UTC day.
    india = timezone(timedelta(hours=5, minutes=30))
    assert activity.day_number(datetime(1970, 1, 3, 1, 0, tzinfo=india)) == 1
    assert activity.day_number(datetime(1970, 1, 3, 1, 0)) == 2, "a naive moment is UTC"


def test_the_order_consumer_keeps_one_bucket_a_day_and_applies_each_order_once(db):
    ada = db[CUSTOMERS].insert_one({"email": "ada@example.com", "created_at": utcnow()}).inserted_id
    now = utcnow()
    today = activity.day_number(now)
    first = [_order("o-1", ada, now, 10, ["TEA", "MUG"]), _order("o-2", ada, now - 3 * DAY, 2.5, ["CUP"])]
    assert orders.apply_orders(db, first) == 2
    assert orders.apply_orders(db, first) == 0, "a redelivery changes nothing"
    assert _buckets(db, ada) == {today: (1, 10.0, {"TEA", "MUG"}, 1, 10.0), today - 3: (1, 2.5, {"CUP"}, 2, 12.5)}
    # Same day again, in a later batch: added to that day's bucket, its SKUs joined, the running totals of that day
    # and every earlier one moved.
    orders.apply_orders(db, [_order("o-3", ada, now, 4, ["MUG", "JAR"]), _order("o-4", ada, now, 1, ["TEA"])])
    assert _buckets(db, ada) == {today: (3, 15.0, {"TEA", "MUG", "JAR"}, 3, 15.0),
                                 today - 3: (1, 2.5, {"CUP"}, 4, 17.5)}
    # A day between the two, and one before both: each counts what is on it and after it.
    orders.apply_orders(db, [_order("o-5", ada, now - DAY, 1, ["CUP"]), _order("o-6", ada, now - 9 * DAY, 2, ["TEA"])])
    assert _buckets(db, ada) == {today: (3, 15.0, {"TEA", "MUG", "JAR"}, 3, 15.0),
                                 today - 1: (1, 1.0, {"CUP"}, 4, 16.0),
                                 today - 3: (1, 2.5, {"CUP"}, 5, 18.5),
                                 today - 9: (1, 2.0, {"TEA"}, 6, 20.5)}


def test_buckets_past_the_longest_window_are_dropped_when_the_customer_is_next_written(db):
    now = utcnow()
    today = activity.day_number(now)
    kept = {"d": today - activity.MAX_DAYS + 1, "n": 2, "s": 6.0, "skus": ["EDGE"], "cn": 2, "cs": 6.0}
    stale = {"d": today - activity.MAX_DAYS, "n": 1, "s": 5.0, "skus": ["OLD"], "cn": 3, "cs": 11.0}
    bea = db[CUSTOMERS].insert_one({"email": "bea@example.com", "created_at": now,
                                    "activity": {"orders": [stale, kept], "messages": [{"c": ObjectId(), "r": 1}]}}
                                   ).inserted_id
    orders.apply_orders(db, [_order("o-9", bea, now - activity.MAX_DAYS * DAY, 7, ["ANCIENT"]),
                             _order("o-10", bea, now - 1 * DAY, 1, ["NEW"])])
    assert _buckets(db, bea) == {today - activity.MAX_DAYS + 1: (2, 6.0, {"EDGE"}, 3, 7.0),
                                 today - 1: (1, 1.0, {"NEW"}, 1, 1.0)}
    assert len(db[CUSTOMERS].find_one({"_id": bea})["activity"]["messages"]) == 1, "messages are left alone"


def _log(customer, campaign, sent=None, **events) -> dict:
    return {"customer_id": customer, "campaign_id": campaign, "sent_at": sent, "events": events}


def test_message_activity_is_the_same_however_often_and_in_whatever_order_it_is_written(db):
    now = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
    today = activity.day_number(now)
    ada, bea, cy = (db[CUSTOMERS].insert_one({"email": f"{n}@example.com"}).inserted_id for n in ("ada", "bea", "cy"))
    spring, summer = ObjectId(), ObjectId()
    logs = [
        _log(ada, spring, now - 5 * DAY),
        _log(ada, spring, now - 5 * DAY, opened=now - 4 * DAY),  # the same log, later, after its first open
        _log(ada, spring, now - 5 * DAY, opened=now - 4 * DAY, clicked=now - 2 * DAY, converted=now),
        _log(ada, summer, now),
        _log(str(bea), str(summer), now - DAY, opened=now),  # ids as text are taken too
        {**_log(cy, summer, now), "reason": "control", "events": {"converted": now}},  # a control recipient
        {**_log(cy, spring, now - DAY), "status": "FAILED"},  # handed over, then failed: not received
        _log(cy, ObjectId()),  # nothing happened yet: nothing to record
    ]
    def entries(customer) -> dict:
        doc = db[CUSTOMERS].find_one({"_id": customer})
        found = doc.get("activity", {}).get("messages", [])
        assert len(found) == len({e["c"] for e in found}), "one entry per campaign"
        return {e["c"]: {k: v for k, v in e.items() if k != "c"} for e in found}

    expected = {ada: {spring: {"r": today - 5, "o": today - 4, "k": today - 2, "v": today}, summer: {"r": today}},
                bea: {summer: {"r": today - 1, "o": today}}, cy: {}}
    rng = random.Random(3)
    for _ in range(8):
        # Every state of every log in one unordered bulk, in a new order each time: as from roll-ups at once.
        db[CUSTOMERS].update_many({}, {"$unset": {"activity": ""}})
        writes = activity.message_activity_writes(logs) * 2
        rng.shuffle(writes)
        db[CUSTOMERS].bulk_write(writes, ordered=False)
        assert {c: entries(c) for c in (ada, bea, cy)} == expected
    # Once more, one log at a time, the latest state first: an earlier state never moves a day forward.
    for log in reversed(logs):
        if one := activity.message_activity_writes([log]):
            db[CUSTOMERS].bulk_write(one, ordered=False)
    assert {c: entries(c) for c in (ada, bea, cy)} == expected


def test_a_missing_customer_is_skipped(db):
    writes = activity.message_activity_writes([_log(ObjectId(), ObjectId(), utcnow())])
    result = db[CUSTOMERS].bulk_write(writes, ordered=False)
    assert result.matched_count == 0 and result.upserted_count == 0
    assert db[CUSTOMERS].count_documents({}) == 0
