"""The v3 backfill (crm.rules.backfill) over data as the releases before v3 left it: customers with orders and
communication logs and no activity. What it costs per 1,000 customers (MongoDB commands, documents read, updates,
seconds), and so per million; then a second run over the same data (nothing to write).

    python -m bench.backfill [--customers 10000] [--orders 5] [--logs 10] [--mongo-uri URI]

--orders and --logs are per customer, on average (10 M customers with 50 M orders is 5).
"""
from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from datetime import timedelta

from bson import ObjectId
from pymongo import MongoClient, monitoring

from bench._stack import add_mongo_option
from bench._table import Row, print_table
from crm.db import CUSTOMERS, LOGS, MIGRATIONS, ORDERS, ensure_indexes
from crm.models.common import utcnow
from crm.rules import backfill
from offline import services

SKUS = [f"SKU-{i}" for i in range(100)]
BATCH = 5000


class Commands(monitoring.CommandListener):
    """Counts the commands sent, and the documents the reads returned."""

    def __init__(self):
        self.counts: Counter[str] = Counter()
        self.documents = 0

    def started(self, event):
        self.counts[event.command_name] += 1

    def succeeded(self, event):
        cursor = event.reply.get("cursor") if isinstance(event.reply, dict) else None
        if cursor:
            self.documents += len(cursor.get("firstBatch") or cursor.get("nextBatch") or [])

    def failed(self, event):
        pass


def load(db, customers: int, orders: int, logs: int, rng: random.Random) -> None:
    """Customers, ~orders and ~logs each, over the last three years (a third of the orders are older than 730
    days); logs of campaigns to everyone, one in five opened, one in twenty clicked, a tenth control."""
    now = utcnow()
    ids = [ObjectId() for _ in range(customers)]
    for start in range(0, customers, BATCH):
        db[CUSTOMERS].insert_many([{"_id": cid, "email": f"{cid}@example.com", "created_at": now, "spend": 0.0,
                                    "visits": 0} for cid in ids[start:start + BATCH]])
    batch = []
    for n in range(customers * orders):
        date = now - timedelta(days=rng.randrange(1095), hours=rng.randrange(24))
        amount = rng.randrange(100, 5000) / 10
        batch.append({"order_id": f"o-{n}", "customer_id": rng.choice(ids), "amount": amount, "date": date,
                      "items": [{"sku": sku, "name": sku, "qty": 1, "price": amount} for sku in rng.sample(SKUS, 2)],
                      "created_at": date})
        if len(batch) == BATCH:
            db[ORDERS].insert_many(batch)
            batch = []
    if batch:
        db[ORDERS].insert_many(batch)
    for campaign in range(logs):
        campaign_id, sent_at = ObjectId(), now - timedelta(days=rng.randrange(1095))
        for start in range(0, customers, BATCH):
            docs = []
            for cid in ids[start:start + BATCH]:
                if rng.random() < 0.1:
                    docs.append({"campaign_id": campaign_id, "customer_id": cid, "status": "SKIPPED",
                                 "reason": "control", "sent_at": None, "created_at": sent_at})
                    continue
                events = {"opened": sent_at + timedelta(hours=2)} if rng.random() < 0.2 else {}
                if events and rng.random() < 0.25:
                    events["clicked"] = sent_at + timedelta(hours=3)
                docs.append({"campaign_id": campaign_id, "customer_id": cid, "status": "SENT", "sent_at": sent_at,
                             "events": events, "created_at": sent_at})
            db[LOGS].insert_many(docs)


def measure(db, listener: Commands) -> dict:
    backfill.request(db, utcnow() - backfill.SETTLE)
    listener.counts.clear()
    listener.documents = 0
    started = time.perf_counter()
    progress = backfill.run(db, time.time() + 10**6)
    seconds = time.perf_counter() - started
    assert progress.done
    return {"seconds": seconds, "customers": progress.customers, "written": progress.written,
            "commands": dict(listener.counts), "documents": listener.documents}


def run(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--logs", type=int, default=10)
    add_mongo_option(parser)
    args = parser.parse_args(argv)
    server = None if args.mongo_uri else services.MongoServer(":memory:")
    listener = Commands()
    rows = []
    try:
        with MongoClient(args.mongo_uri or server.uri, tz_aware=True, event_listeners=[listener]) as client:
            name = f"bench_backfill_{ObjectId()}"
            db = client[name]
            try:
                ensure_indexes(db)
                started = time.perf_counter()
                load(db, args.customers, args.orders, args.logs, random.Random(1))
                print(f"backfill: {args.customers:,} customers, {db[ORDERS].estimated_document_count():,} orders, "
                      f"{db[LOGS].estimated_document_count():,} logs (loaded in {time.perf_counter() - started:.0f} s)")
                first = measure(db, listener)
                db[MIGRATIONS].delete_one({"_id": backfill.JOB})
                second = measure(db, listener)
            finally:
                client.drop_database(name)
    finally:
        if server:
            server.stop()
    for label, figures in (("first run", first), ("second run (nothing to write)", second)):
        per = 1000 / figures["customers"]
        commands = ", ".join(f"{name} {count * per:,.1f}" for name, count in sorted(figures["commands"].items()))
        seconds = figures["seconds"] * per
        print(f"  {label}: {figures['seconds']:.1f} s, {figures['written']:,} customers written")
        print(f"    per 1,000 customers: {seconds:.2f} s; commands: {commands}; documents read "
              f"{figures['documents'] * per:,.0f}; customers written {figures['written'] * per:,.0f}")
        print(f"    per 1,000,000 customers: {seconds * 1000 / 60:,.0f} min of work, "
              f"{seconds * 1000 / 45 :,.0f} reconciler runs of 45 s")
        rows.append(Row("backfill", f"v3 backfill, {label}", seconds, "s/1,000 customers", None, ""))
    return rows


if __name__ == "__main__":
    print_table(run())
