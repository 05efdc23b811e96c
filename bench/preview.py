"""Segment preview latency on 1,000,000 customers, beside a raw count of the same filter, with and without
the indexes.

    python -m bench.preview [--customers 1000000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import time
import uuid
from datetime import timedelta

from bson import ObjectId
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from bench._stack import ROOT
from bench._table import Row
from offline import services

TREES = {
    "spend > 40000": {"field": "spend", "op": ">", "value": 40000},
    "inactive > 600 days": {"field": "inactive_days", "op": ">", "value": 600},
    "API.md example": {"and": [{"field": "inactive_days", "op": ">", "value": 180},
                               {"field": "spend", "op": ">", "value": 5000}]},
    "visits >= 55": {"field": "visits", "op": ">=", "value": 55},
    "spend > 45000 or visits == 0": {"or": [{"field": "spend", "op": ">", "value": 45000},
                                            {"field": "visits", "op": "==", "value": 0}]},
}
PRODUCT_INDEXES = ("spend", "visits", "last_active")


def load_customers(collection, count: int) -> None:
    from crm.models.common import utcnow

    now = utcnow()
    rng = random.Random(7)
    batch = 20_000
    for start in range(0, count, batch):
        collection.insert_many([{
            "_id": ObjectId(), "name": f"Customer {i}", "name_key": f"customer {i}", "email": f"c{i:07d}@example.com",
            "phone": None, "spend": round(min(rng.expovariate(1 / 8000), 50_000), 2), "visits": rng.randint(0, 60),
            "last_active": now - timedelta(seconds=rng.randint(0, 730 * 86400)), "created_at": now, "updated_at": now,
        } for i in range(start, min(start + batch, count))], ordered=False)


def segments_handler():
    spec = importlib.util.spec_from_file_location("function_segments", ROOT / "functions" / "segments" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def timed(call, repeats: int) -> tuple[float, object]:
    results, times = None, []
    for _ in range(repeats):
        started = time.perf_counter()
        results = call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), results


def run(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m bench.preview")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    mongo = services.MongoServer(":memory:", log_path=None)
    try:
        db_name = f"bench_{uuid.uuid4().hex[:8]}"
        os.environ.update({"MONGO_URI": mongo.uri, "MONGO_DB": db_name, "JWT_SECRET": uuid.uuid4().hex,
                           "POWERTOOLS_LOG_LEVEL": "WARNING", "ENV": "development",
                           # The Python server counts far slower than Atlas; measure it rather than time out.
                           "AUDIENCE_COUNT_TIME_LIMIT_MS": "600000", "MONGO_SOCKET_TIMEOUT_MS": "660000"})
        from crm import rules
        from crm.auth import issue_token
        from crm.config import get_settings
        from crm.db import CUSTOMERS, ensure_indexes
        from crm.models.common import utcnow
        from offline.gateway import http_api_event
        from offline.lambda_worker import LambdaContext
        from offline.template import HttpRoute

        get_settings.cache_clear()  # an earlier benchmark of the same run may have read other settings

        customers = MongoClient(mongo.uri, tz_aware=True)[db_name][CUSTOMERS]
        started = time.perf_counter()
        load_customers(customers, args.customers)
        loaded = time.perf_counter() - started
        # The project's own indexes; built here with no socket timeout, as a deploy step would on a big collection.
        ensure_indexes(customers.database)
        print(f"preview: {args.customers:,} customers (loaded in {loaded:.0f} s, indexed in "
              f"{time.perf_counter() - started - loaded:.0f} s), median of {args.repeats}", flush=True)

        handler = segments_handler()
        # A token names a user, whose role the API reads: an analyst may preview.
        customers.database.users.insert_one({"email": "bench@example.com", "role": "analyst", "disabled": False,
                                             "created_at": utcnow()})
        token, _ = issue_token(get_settings(), "bench@example.com")

        def preview(raw: dict) -> dict:
            event = http_api_event("POST", "/api/segments/preview", [("authorization", f"Bearer {token}"),
                                                                     ("content-type", "application/json")],
                                   json.dumps({"rules": raw}).encode(), "127.0.0.1",
                                   HttpRoute("ANY", "/api/segments/{proxy+}"), {})
            reply = handler(event, LambdaContext("SegmentsFunction", 512, "r", time.time() + 30))
            assert reply["statusCode"] == 200, reply
            return json.loads(reply["body"])

        rows = []
        for name, raw in TREES.items():
            preview_ms, result = timed(lambda: preview(raw), args.repeats)
            query = rules.to_filter(rules.parse(raw), utcnow())
            count_ms, count = timed(lambda: customers.count_documents(query), args.repeats)
            assert abs(count - result["audience_size"]) <= args.customers // 10_000 + 5  # clock moves between calls
            rows.append([name, result["audience_size"], preview_ms, count_ms])
            print(f"  measured {name}", flush=True)

        try:
            for field in PRODUCT_INDEXES:
                customers.drop_index(field)
        except OperationFailure as exc:  # seen once on SecantusDB at 1,000,000 documents
            print(f"  could not drop the indexes ({exc.code}: {exc.details.get('errmsg')}); "
                  f"no figures without them", flush=True)
        dropped = not customers.index_information().keys() & set(PRODUCT_INDEXES)
        for row in rows:
            unindexed_ms, _ = timed(lambda: preview(TREES[row[0]]), 1) if dropped else (float("nan"), None)
            row.append(unindexed_ms)

        print(f"  {'rules':<30} {'audience':>9} {'preview ms':>11} {'raw count ms':>13} {'ratio':>6} "
              f"{'no-index preview ms':>20} {'slower':>7}")
        for name, audience, preview_ms, count_ms, unindexed_ms in rows:
            print(f"  {name:<30} {audience:>9,} {preview_ms:>11.0f} {count_ms:>13.0f} {preview_ms / count_ms:>6.2f} "
                  f"{unindexed_ms:>20.0f} {unindexed_ms / preview_ms:>6.1f}x")
        return [Row("preview", f"{name} ({audience:,} of {args.customers:,})", preview_ms, "ms", count_ms,
                    "raw count_documents") for name, audience, preview_ms, count_ms, _ in rows]
    finally:
        mongo.stop()


if __name__ == "__main__":
    run()
