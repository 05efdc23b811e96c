"""The v3 backfill (crm.rules.backfill) over data written before v3: customers, orders and communication logs with no
`activity`, some customers also with orders and messages applied by this release's writers after the upgrade. After
the backfill, rules v3 select exactly what a plain count over the raw orders and logs selects (tests/shared/
test_rules_v3.py's reference), and each customer's buckets are its raw orders'; a second run writes nothing; a run
cut off half-way (a page limit, or a death between a page's writes and its cursor) and resumed ends the same; an
order or a message applied by a consumer between the backfill's read of a customer and its write counts once."""
from __future__ import annotations

import random
import time
import uuid
from datetime import datetime, timedelta

import pytest
from bson import ObjectId
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crm import rules
from crm.db import CUSTOMERS, LOGS, MIGRATIONS, ORDERS
from crm.models.common import utcnow
from crm.models.orders import OrderIn
from crm.rules import activity, backfill
from crm.services import orders as order_service
from crm.services.reconcile import Limits, reconcile
from tests.shared.test_rules_v3 import (
    CAMPAIGNS,
    CUSTOMER,
    PAST,
    SKUS,
    TREE,
    _buckets,
    _expected_buckets,
    _moment,
    _plain,
)

SOON = 600  # seconds: a deadline no test reaches


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _order_doc(cid: ObjectId, order: dict, midnight: datetime, now: datetime) -> dict:
    """An order as the releases before v3 stored it."""
    return {"order_id": uuid.uuid4().hex, "customer_id": cid, "amount": order["amount"],
            "items": [{"sku": sku, "name": sku, "qty": 1, "price": 1} for sku in order["skus"]],
            "date": _moment(midnight, order["days_ago"], order["time"]), "created_at": now}


def _order_record(cid: ObjectId, order: dict, midnight: datetime) -> dict:
    """The same order as the order consumer gets it from its queue."""
    return order_service.queue_records([OrderIn(
        order_id=uuid.uuid4().hex, customer_id=str(cid), amount=order["amount"],
        date=_moment(midnight, order["days_ago"], order["time"]),
        items=[{"sku": sku, "name": sku, "qty": 1, "price": 1} for sku in order["skus"]])])[0]


def _log_doc(cid: ObjectId, log: dict, midnight: datetime) -> dict:
    events = {event: _moment(midnight, log[event]) for event in ("opened", "clicked", "converted")
              if log[event] is not None}
    return {"campaign_id": CAMPAIGNS[log["campaign"]], "customer_id": cid, "status": log["status"],
            "sent_at": _moment(midnight, log["sent"]), "events": events,
            **({"reason": "control"} if log["control"] else {})}


def _load(db, customers: list[dict], now: datetime, rng: random.Random, after_upgrade: float = 0.3) -> list[ObjectId]:
    """Customers with the orders and logs an earlier release wrote (no activity); about `after_upgrade` of the orders
    and logs came after the upgrade instead: applied by the order consumer, and by the roll-up's message writer."""
    midnight = _midnight(now)
    ids = [ObjectId() for _ in customers]
    db[CUSTOMERS].insert_many([{"_id": cid, "email": f"{cid}@example.com", "created_at": now, "spend": c["spend"],
                                "tags": c["tags"]} for cid, c in zip(ids, customers)])
    earlier, later = [], []
    for cid, c in zip(ids, customers):
        for order in c["orders"]:
            (later if rng.random() < after_upgrade else earlier).append((cid, order))
    if earlier:
        db[ORDERS].insert_many([_order_doc(cid, order, midnight, now) for cid, order in earlier])
    if later:
        order_service.apply_orders(db, [_order_record(cid, order, midnight) for cid, order in later])
    logs = [_log_doc(cid, log, midnight) for cid, c in zip(ids, customers) for log in c["logs"]]
    if logs:
        db[LOGS].insert_many(logs)
    rolled_up = activity.message_activity_writes(log for log in logs if rng.random() < after_upgrade)
    if rolled_up:
        db[CUSTOMERS].bulk_write(rolled_up, ordered=False)
    return ids


def _due(db) -> None:
    """The backfill asked for long enough ago to start."""
    backfill.request(db, utcnow() - backfill.SETTLE)


def _expected_messages(raw: dict, today: int) -> dict:
    """Each campaign's days, straight from the raw logs: SENT logs' sending day, every log's first events."""
    expected = {}
    for log in raw["logs"]:
        if log["control"]:
            continue
        days = {key: today - log[field] for key, field in (("r", "sent"), ("o", "opened"), ("k", "clicked"),
                                                           ("v", "converted")) if log[field] is not None}
        if log["status"] != "SENT":
            days.pop("r", None)
        if days:
            expected[CAMPAIGNS[log["campaign"]]] = days
    return expected


def _messages(customer: dict) -> dict:
    found = customer.get("activity", {}).get("messages", [])
    assert len({e["c"] for e in found}) == len(found), "one entry a campaign"
    return {e["c"]: {k: v for k, v in e.items() if k != "c"} for e in found}


def _assert_rebuilt(db, ids: list[ObjectId], customers: list[dict], now: datetime, messages: bool = True) -> None:
    today = activity.day_number(now)
    stored = {d["_id"]: d for d in db[CUSTOMERS].find()}
    for cid, raw in zip(ids, customers):
        assert _buckets(stored[cid]) == _expected_buckets(raw["orders"], today), raw["orders"]
        if messages:
            assert _messages(stored[cid]) == _expected_messages(raw, today), raw["logs"]


def _customers(rng: random.Random, count: int) -> list[dict]:
    """Customers shaped as test_rules_v3's CUSTOMER strategy draws them, from a seeded generator."""
    def order():
        return {"days_ago": rng.choice([-1, *PAST]), "time": timedelta(hours=rng.choice([0, 12, 23])),
                "amount": rng.randint(0, 20) / 2, "skus": rng.sample(SKUS, rng.randint(1, 3))}

    def log(campaign):
        def day():
            return rng.choice([None, *PAST])
        return {"campaign": campaign, "sent": day(), "opened": day(), "clicked": day(), "converted": day(),
                "status": rng.choice(["SENT", "SENT", "FAILED"]), "control": rng.random() < 0.25}

    return [{"orders": [order() for _ in range(rng.randint(0, 5))],
             "logs": [log(c) for c in rng.sample(range(len(CAMPAIGNS) - 1), rng.randint(0, 3))],
             "spend": rng.randint(0, 6), "tags": rng.sample(["vip", "new"], rng.randint(0, 2))} for _ in range(count)]


def _activity(db) -> dict:
    return {d["_id"]: d.get("activity") for d in db[CUSTOMERS].find({}, {"activity": 1})}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(customers=st.lists(CUSTOMER, min_size=1, max_size=6), trees=st.lists(TREE, min_size=1, max_size=4),
       seed=st.integers(0, 2**16))
def test_after_the_backfill_rules_select_what_the_raw_orders_and_logs_say(db, customers, trees, seed):
    for name in (CUSTOMERS, ORDERS, LOGS, MIGRATIONS):
        db[name].delete_many({})
    now = utcnow()
    ids = _load(db, customers, now, random.Random(seed))
    _due(db)
    progress = backfill.run(db, time.time() + SOON)
    assume(activity.day_number(utcnow()) == activity.day_number(now))  # not a run across midnight
    assert progress.done and progress.customers == len(customers)
    _assert_rebuilt(db, ids, customers, now)
    stored = {d["_id"]: d for d in db[CUSTOMERS].find()}
    for raw_rules in trees:
        node = rules.parse(raw_rules)
        selected = {d["_id"] for d in db[CUSTOMERS].find(rules.to_filter(node, now), {"_id": 1})}
        plain = {cid for cid, raw in zip(ids, customers) if _plain(node, raw, stored[cid], now)}
        assert selected == plain, raw_rules


def test_without_the_backfill_the_check_fails(db):
    """The property above can fail: the same data with no backfill disagrees with the raw orders."""
    customers = [{"orders": [{"days_ago": 3, "time": timedelta(hours=9), "amount": 5.0, "skus": ["TEA"]}], "logs": [],
                  "spend": 0, "tags": []}]
    now = utcnow()
    _load(db, customers, now, random.Random(1), after_upgrade=0)
    with pytest.raises(AssertionError):
        _assert_rebuilt(db, [db[CUSTOMERS].find_one()["_id"]], customers, now)


def test_a_second_run_writes_nothing_and_changes_nothing(db):
    customers = _customers(random.Random(3), 40)
    now = utcnow()
    ids = _load(db, customers, now, random.Random(4))
    _due(db)
    first = backfill.run(db, time.time() + SOON)
    assert first.done and first.written > 0
    after_first = _activity(db)
    db[MIGRATIONS].delete_one({"_id": backfill.JOB})  # asked for again: a deploy that lost its record, say
    _due(db)
    second = backfill.run(db, time.time() + SOON)
    assert (second.done, second.customers, second.written) == (True, 40, 0)
    assert _activity(db) == after_first
    assert backfill.run(db, time.time() + SOON).customers == 0, "done: nothing more to do"
    _assert_rebuilt(db, ids, customers, now)


def test_a_run_cut_off_half_way_is_resumed_from_its_cursor_and_ends_the_same(db, monkeypatch):
    monkeypatch.setattr(backfill, "PAGE", 4)
    customers = _customers(random.Random(5), 30)
    now = utcnow()
    ids = _load(db, customers, now, random.Random(6))
    _due(db)
    first = backfill.run(db, time.time() + SOON, max_pages=2)
    assert (first.done, first.customers) == (False, 8)
    assert db[MIGRATIONS].find_one({"_id": backfill.JOB})["after"] == sorted(ids)[7]

    # The next run dies after its first page's writes, before its cursor moved.
    real = backfill.rebuild

    def dies_after_writing(*args):
        real(*args)
        raise RuntimeError("killed between the page's writes and the cursor")

    monkeypatch.setattr(backfill, "rebuild", dies_after_writing)
    with pytest.raises(RuntimeError):
        backfill.run(db, time.time() + SOON)
    monkeypatch.setattr(backfill, "rebuild", real)
    assert db[MIGRATIONS].find_one({"_id": backfill.JOB})["after"] == sorted(ids)[7]

    rest = backfill.run(db, time.time() + SOON)
    assert (rest.done, rest.customers) == (True, 22)
    _assert_rebuilt(db, ids, customers, now)


def test_a_run_stops_at_its_deadline_and_an_overtaken_run_stops(db, monkeypatch):
    monkeypatch.setattr(backfill, "PAGE", 5)
    customers = _customers(random.Random(7), 12)
    now = utcnow()
    ids = _load(db, customers, now, random.Random(8))
    _due(db)
    assert backfill.run(db, time.time() - 1).customers == 0, "no time left: no page"
    # Another run moves the cursor while this one is on its first page: this one stops after it.
    real = backfill.rebuild

    def overtaken(database, page):
        result = real(database, page)
        database[MIGRATIONS].update_one({"_id": backfill.JOB}, {"$set": {"after": page[-1]["_id"]}})
        return result

    monkeypatch.setattr(backfill, "rebuild", overtaken)
    assert backfill.run(db, time.time() + SOON).customers == 0
    monkeypatch.setattr(backfill, "rebuild", real)
    assert backfill.run(db, time.time() + SOON).done
    _assert_rebuilt(db, ids, customers, now)


def _one_order(days_ago: int, amount: float, sku: str) -> dict:
    return {"days_ago": days_ago, "time": timedelta(hours=9), "amount": amount, "skus": [sku]}


@pytest.mark.parametrize("when", ["before its orders are read", "after its orders are read"])
def test_an_order_and_a_message_applied_while_the_backfill_rebuilds_the_customer_count_once(db, monkeypatch, when):
    """The consumer records an order (and the roll-up a message) after the backfill read the customer: before it
    read the customer's orders (an adding backfill would count the order twice), or after (a backfill that set what
    it counted would lose it)."""
    customers = [{"orders": [_one_order(3, 10.0, "TEA"), _one_order(40, 4.0, "MUG")],
                  "logs": [{"campaign": 0, "sent": 2, "opened": None, "clicked": None, "converted": None,
                            "status": "SENT", "control": False}], "spend": 0, "tags": []},
                 {"orders": [_one_order(1, 2.5, "CUP")], "logs": [], "spend": 0, "tags": []}]
    now = utcnow()
    midnight = _midnight(now)
    ids = _load(db, customers, now, random.Random(9), after_upgrade=0)
    late_order = _one_order(3, 7.5, "JAR")
    late_log = {"campaign": 1, "sent": 0, "opened": 0, "clicked": None, "converted": None, "status": "SENT",
                "control": False}

    def consumers_write():
        order_service.apply_orders(db, [_order_record(ids[0], late_order, midnight)])
        log = _log_doc(ids[0], late_log, midnight)
        db[LOGS].insert_one(log)
        db[CUSTOMERS].bulk_write(activity.message_activity_writes([log]))

    real, calls = backfill._writes, []

    def racing(database, page, at):
        if not calls and when == "before its orders are read":
            consumers_write()
        writes = real(database, page, at)
        if not calls and when == "after its orders are read":
            consumers_write()
        calls.append(len(page))
        return writes

    monkeypatch.setattr(backfill, "_writes", racing)
    _due(db)
    progress = backfill.run(db, time.time() + SOON)
    assert progress.done and progress.read_again > 0, "the first write missed: the customer changed under it"
    customers[0]["orders"].append(late_order)
    customers[0]["logs"].append(late_log)
    _assert_rebuilt(db, ids, customers, now)

    # And an order after the backfill is the consumer's to add, once.
    later = _one_order(0, 1.0, "TEA")
    order_service.apply_orders(db, [_order_record(ids[1], later, midnight)])
    customers[1]["orders"].append(later)
    _assert_rebuilt(db, ids, customers, now)


def test_orders_applied_by_a_consumer_throughout_the_backfill_count_once(db, monkeypatch):
    """A consumer thread applies orders for the same customers while the backfill pages through them."""
    import threading

    monkeypatch.setattr(backfill, "PAGE", 3)
    rng = random.Random(10)
    customers = _customers(rng, 24)
    now = utcnow()
    midnight = _midnight(now)
    ids = _load(db, customers, now, random.Random(11))
    late = [(rng.randrange(len(ids)), _one_order(rng.choice([0, 1, 5, 29]), rng.randint(1, 9) / 2, rng.choice(SKUS)))
            for _ in range(60)]
    errors = []

    def consumer():
        try:
            for start in range(0, len(late), 3):
                order_service.apply_orders(db, [_order_record(ids[i], order, midnight) for i, order in
                                                late[start:start + 3]])
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=consumer)
    _due(db)
    thread.start()
    while not backfill.run(db, time.time() + SOON, max_pages=1).done:
        pass
    thread.join(timeout=120)
    assert not errors, errors
    for i, order in late:
        customers[i]["orders"].append(order)
    # Not the messages: the late orders may convert the raw logs' messages.
    _assert_rebuilt(db, ids, customers, now, messages=False)


def test_it_waits_for_the_release_before_to_stop_then_the_reconciler_does_it(db):
    customers = _customers(random.Random(12), 7)
    now = utcnow()
    ids = _load(db, customers, now, random.Random(13), after_upgrade=0)
    job = backfill.request(db, now)
    assert abs(job["start_at"] - (now + backfill.SETTLE)) < timedelta(milliseconds=1)
    assert backfill.request(db, now + timedelta(minutes=5)) == job, "asked for once"
    assert backfill.run(db, time.time() + SOON) == backfill.Progress(), "not before the deploy has settled"
    db[MIGRATIONS].update_one({"_id": backfill.JOB}, {"$set": {"start_at": now - timedelta(seconds=1)}})
    limits = Limits(send_timeout=timedelta(hours=1), receipt_timeout=timedelta(minutes=15), max_send_attempts=3,
                    fanout_stall=timedelta(minutes=5))
    settled = reconcile(db, utcnow(), limits, lambda _: None, lambda _: None, lambda _: None, time.time() + SOON)
    assert settled.backfilled == 7
    _assert_rebuilt(db, ids, customers, now)
