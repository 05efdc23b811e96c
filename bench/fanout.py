"""Campaign fan-out to 100,000 recipients through the running system, beside a raw insert_many of the same
logs into the same server; then the time until the campaign is COMPLETED with the mock vendor.

    python -m bench.fanout [--recipients 100000]
"""
from __future__ import annotations

import argparse
import time

import httpx
from bson import ObjectId
from pymongo import MongoClient

from bench._stack import local_stack
from bench._table import Row
from crm.db import INDEXES, LOGS, ensure_indexes
from crm.models.common import utcnow


def seed_customers(db, count: int) -> None:
    now = utcnow()
    for start in range(0, count, 20_000):
        db.customers.insert_many([{"name": f"Customer {i}", "name_key": f"customer {i}",
                                   "email": f"c{i:07d}@example.com", "phone": None, "spend": float(i % 1000),
                                   "visits": 1, "last_active": now, "created_at": now, "updated_at": now}
                                  for i in range(start, min(start + 20_000, count))])


def wait_for(check, timeout: float, what: str) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"{what} did not happen within {timeout:.0f} s (see .local/bench-runner.log)")
        time.sleep(0.5)
    return time.perf_counter()


def raw_logs(client: MongoClient, db_name: str, count: int) -> float:
    collection = client[db_name][LOGS]
    collection.create_indexes(INDEXES[LOGS])
    campaign_id, now = ObjectId(), utcnow()
    docs = [{"campaign_id": campaign_id, "customer_id": ObjectId(), "status": "QUEUED",
             "message": f"Hi Customer {i}, 20% off this weekend!",
             "to": {"name": f"Customer {i}", "email": f"c{i:07d}@example.com", "phone": None},
             "vendor_message_id": None, "sent_at": None, "created_at": now, "updated_at": now} for i in range(count)]
    started = time.perf_counter()
    for start in range(0, count, 1000):
        collection.insert_many(docs[start:start + 1000], ordered=False)
    return time.perf_counter() - started


def run(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout")
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--fan-out-only", action="store_true", help="stop once the fan-out is done")
    args = parser.parse_args(argv)
    # The mock vendor is local; its rate limit is a production concern, not what this measures.
    # Everything shares two cores here, so the vendor's answers get a patient timeout.
    with local_stack(extra_env={"VENDOR_MAX_PER_SECOND": "0", "MOCK_VENDOR_DELAY_SECONDS": "0",
                                "VENDOR_TIMEOUT_SECONDS": "30"}) as stack:
        client = MongoClient(stack["mongo_uri"], tz_aware=True)
        db = client[stack["env"]["MONGO_DB"]]
        seed_customers(db, args.recipients)
        ensure_indexes(db)  # as a deploy step would on a big collection: no request waits for it
        with httpx.Client(base_url=stack["url"], timeout=120) as http:
            token = http.post("/api/auth/dev-token", json={"email": "bench@example.com"}).json()["token"]
            http.headers["Authorization"] = f"Bearer {token}"
            reply = http.post("/api/segments", json={"name": "All", "rules": {"field": "spend", "op": ">=",
                                                                              "value": 0}})
            reply.raise_for_status()
            segment = reply.json()
            print(f"fan-out: {segment['audience_size']:,} recipients", flush=True)
            started = time.perf_counter()
            campaign = http.post("/api/campaigns", json={"name": "Bench", "segment_id": segment["id"],
                                                         "message": "Hi {{name}}, 20% off this weekend!"}).json()
            campaign_id = ObjectId(campaign["id"])
            fanned_out = wait_for(lambda: db.campaigns.find_one({"_id": campaign_id})["fanout"]["done"], 3600,
                                  "the fan-out")
            print(f"  fan-out done (every log QUEUED, every send enqueued): {fanned_out - started:.1f} s", flush=True)
            completed = None if args.fan_out_only else wait_for(
                lambda: db.campaigns.find_one({"_id": campaign_id})["status"] == "COMPLETED", 7200, "completion")
            stats = db.campaigns.find_one({"_id": campaign_id})["stats"]
        baseline = raw_logs(client, "bench_raw_logs", args.recipients)
    fan_out_seconds = fanned_out - started
    print(f"  {'fan-out through the system (POST -> all logs + sends queued)':<62} {fan_out_seconds:>7.1f} s")
    print(f"  {'baseline: raw insert_many of the same logs, same server':<62} {baseline:>7.1f} s")
    print(f"  ratio fan-out / raw insert: {fan_out_seconds / baseline:.2f}")
    rows = [Row("fan-out", f"{args.recipients:,} recipients: POST -> logs + sends queued", fan_out_seconds, "s",
                baseline, "raw insert_many of the same logs")]
    if completed is None:
        return rows
    print(f"  POST -> COMPLETED with the mock vendor: {completed - started:.1f} s "
          f"({stats['sent']:,} sent, {stats['failed']:,} failed, {args.recipients / (completed - started):,.0f} "
          f"recipients/s)")
    return [*rows, Row("fan-out", f"{args.recipients:,} recipients: POST -> COMPLETED", completed - started, "s",
                       baseline, "raw insert_many of the same logs")]


if __name__ == "__main__":
    run()
