"""Segment preview latency on 1,000,000 customers, beside a raw count of the same filter, with and without
the indexes; and what the local server's planner (`explain`) does with each tree and each kind of rule. Behaviour
rules (v3) over 5,000,000 orders and the customers' campaign messages, beside the same question aggregated from the
raw orders and logs.

    python -m bench.preview [--customers 1000000] [--orders 5000000] [--repeats 5] [--behaviour-only] [--cache-size 8G]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import statistics
import sys
import time
import uuid
from datetime import timedelta
from typing import Any, Iterator

from bson import ObjectId
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from bench._behaviour import Behaviour
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
    # Rules v2: attributes, tags, SKUs, signup days and not.
    "city == Pune": {"field": "attributes.city", "op": "==", "value": "Pune"},
    "tags has_any vip, churn-risk": {"field": "tags", "op": "has_any", "value": ["vip", "churn-risk"]},
    "plan in pro, enterprise": {"field": "attributes.plan", "op": "in", "value": ["pro", "enterprise"]},
    "not city == Mumbai": {"not": {"field": "attributes.city", "op": "==", "value": "Mumbai"}},
    "mixed and/or/not": {"and": [{"field": "signup_days", "op": "<", "value": 365},
                                 {"field": "attributes.age", "op": ">=", "value": 30},
                                 {"or": [{"field": "tags", "op": "has_any", "value": ["vip"]},
                                         {"field": "skus", "op": "has_any", "value": ["SKU-0007"]}]},
                                 {"not": {"field": "attributes.app_user", "op": "==", "value": True}}]},
}
# One rule of each kind, only explained (not timed): which index the local server's planner picks for it.
RULE_KINDS = {
    "spend > (number)": {"field": "spend", "op": ">", "value": 40000},
    "visits between": {"field": "visits", "op": "between", "value": [10, 20]},
    "visits != (number)": {"field": "visits", "op": "!=", "value": 0},
    "inactive_days >": {"field": "inactive_days", "op": ">", "value": 600},
    "signup_days <": {"field": "signup_days", "op": "<", "value": 30},
    "tags has_any": {"field": "tags", "op": "has_any", "value": ["vip"]},
    "tags has_all": {"field": "tags", "op": "has_all", "value": ["vip", "new"]},
    "tags has_none": {"field": "tags", "op": "has_none", "value": ["vip"]},
    "skus has_any": {"field": "skus", "op": "has_any", "value": ["SKU-0007"]},
    "attributes.city ==": {"field": "attributes.city", "op": "==", "value": "Pune"},
    "attributes.city in": {"field": "attributes.city", "op": "in", "value": ["Pune", "Jaipur"]},
    "attributes.city starts_with": {"field": "attributes.city", "op": "starts_with", "value": "Ch"},
    "attributes.age between (number)": {"field": "attributes.age", "op": "between", "value": [30, 40]},
    "attributes.app_user == (boolean)": {"field": "attributes.app_user", "op": "==", "value": True},
    "attributes.age exists": {"field": "attributes.age", "op": "exists", "value": True},
    "attributes.age exists: false": {"field": "attributes.age", "op": "exists", "value": False},
    "attributes.city !=": {"field": "attributes.city", "op": "!=", "value": "Mumbai"},
    "attributes.city not_in": {"field": "attributes.city", "op": "not_in", "value": ["Mumbai"]},
    "subscribed == true": {"field": "subscribed", "op": "==", "value": True},
    "not (spend > 40000)": {"not": {"field": "spend", "op": ">", "value": 40000}},
    "and of spend, tags": {"and": [{"field": "spend", "op": ">", "value": 40000},
                                   {"field": "tags", "op": "has_any", "value": ["vip"]}]},
    "or of spend, tags": {"or": [{"field": "spend", "op": ">", "value": 40000},
                                 {"field": "tags", "op": "has_any", "value": ["vip"]}]},
    # Rules v3: behaviour in a window (crm.rules.windows).
    "orders > 0 in a window": {"field": "orders", "days": 30, "op": ">", "value": 0},
    "orders >= n in a window": {"field": "orders", "days": 30, "op": ">=", "value": 3},
    "orders < n in a window": {"field": "orders", "days": 30, "op": "<", "value": 3},
    "order_spend > x in a window": {"field": "order_spend", "days": 30, "op": ">", "value": 5000},
    "bought has_any in a window": {"field": "bought", "days": 30, "op": "has_any", "value": ["SKU-0007"]},
    "bought has_none in a window": {"field": "bought", "days": 30, "op": "has_none", "value": ["SKU-0007"]},
    "opened >= 1 in a window": {"field": "opened", "days": 30, "op": ">=", "value": 1},
    "campaign == opened": {"field": "campaign", "campaign_id": "0" * 24, "op": "==", "value": "opened"},
    "campaign != opened": {"field": "campaign", "campaign_id": "0" * 24, "op": "!=", "value": "opened"},
}
# The customers indexes a rule can use (crm.db), dropped for the figures without them.
PRODUCT_INDEXES = ("spend", "visits", "last_active", "created_at", "tags", "skus", "attributes_wildcard")
WILDCARD = "attributes_wildcard"
# Twenty cities, the first most common (a Zipf-like 1/rank share), as a real customer base is skewed.
CITIES = ("Mumbai", "Delhi", "Bengaluru", "Hyderabad", "Chennai", "Pune", "Kolkata", "Ahmedabad", "Jaipur", "Surat",
          "Lucknow", "Kanpur", "Nagpur", "Indore", "Bhopal", "Patna", "Vadodara", "Kochi", "Coimbatore", "Chandigarh")
PLANS = {"free": 60, "basic": 20, "pro": 15, "enterprise": 5}
TAGS = ("vip", "new", "churn-risk", "wholesale", "newsletter", "loyalty", "sale-hunter", "b2b", "referral", "beta")
SKUS = tuple(f"SKU-{n:04d}" for n in range(1, 101))
WITH_ATTRIBUTES = 0.85
# In memory, SecantusDB's WiredTiger cache is all its storage: the default 1 GiB holds a million v1 customers but not
# their tags, SKUs and attributes with nine indexes (the tags index build failed with WT_CACHE_FULL).
CACHE_SIZE = "8G"


class RoomyMongoServer(services.MongoServer):
    """services.MongoServer in memory, with a WiredTiger cache of `cache_size`."""

    def __init__(self, cache_size: str):
        self.port = services.free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/"
        executable = shutil.which("secantusd-py", path=os.path.dirname(sys.executable)) or "secantusd-py"
        services.ChildProcess.__init__(self, "SecantusDB", [
            executable, "--host", "127.0.0.1", "--port", str(self.port), "--storage-path", ":memory:",
            "--log-level", "WARNING", "--cache-size", cache_size], services._tcp_open(self.port), None)


def v2_fields(rng: random.Random, now) -> dict[str, Any]:
    """Tags, bought SKUs, a signup time over two years and, for most customers, attributes (some keys missing)."""
    doc: dict[str, Any] = {"created_at": now - timedelta(seconds=rng.randint(0, 730 * 86400)),
                           "tags": rng.sample(TAGS, rng.randint(0, 3)), "skus": rng.sample(SKUS, rng.randint(0, 4))}
    if rng.random() < WITH_ATTRIBUTES:
        attributes = {"city": rng.choices(CITIES, weights=[1 / rank for rank in range(1, len(CITIES) + 1)])[0],
                      "plan": rng.choices(list(PLANS), weights=list(PLANS.values()))[0],
                      "app_user": rng.random() < 0.3}
        if rng.random() < 0.9:
            attributes["age"] = rng.randint(18, 75)
        doc["attributes"] = attributes
    return doc


def customer_batches(count: int, behaviour: Behaviour | None = None) -> Iterator[list[dict[str, Any]]]:
    """The customers, a batch at a time; with `behaviour`, each with the activity its orders and campaign logs roll
    up to, those orders and logs left in `behaviour` for the caller to write (`flush`) or count."""
    from crm.models.common import utcnow

    now = utcnow()
    rng = random.Random(7)
    # The v2 fields from their own sequence: the v1 fields (and so the v1 rows' audiences) stay as they were.
    extra = random.Random(11)
    batch = 20_000
    for start in range(0, count, batch):
        docs = [{
            "_id": ObjectId(), "name": f"Customer {i}", "name_key": f"customer {i}", "email": f"c{i:07d}@example.com",
            "phone": None, "spend": round(min(rng.expovariate(1 / 8000), 50_000), 2), "visits": rng.randint(0, 60),
            "last_active": now - timedelta(seconds=rng.randint(0, 730 * 86400)), "updated_at": now,
            **v2_fields(extra, now),
        } for i in range(start, min(start + batch, count))]
        if behaviour:
            for doc in docs:
                doc.update(behaviour.for_customer(doc["_id"]))
        yield docs


def load_customers(collection, count: int, behaviour: Behaviour | None = None) -> None:
    """The customers; with `behaviour`, each with its orders and campaign logs (written to their collections) and the
    activity they roll up to."""
    for docs in customer_batches(count, behaviour):
        if behaviour:
            behaviour.flush()
        collection.insert_many(docs, ordered=False)


def register_attributes(database) -> None:
    """The attribute registry as ingest leaves it, so the preview route accepts rules on these keys."""
    from crm.db import ATTRIBUTE_REGISTRY, CUSTOMERS
    from crm.models.customers import CustomerIn
    from crm.services import attributes

    sample = [CustomerIn(name="Sample", email=f"sample{i}@example.com",
                         attributes={"city": city, "plan": plan, "app_user": i % 2 == 0, "age": 30 + i})
              for i, (city, plan) in enumerate(zip(CITIES, [*PLANS] * 5))]
    attributes.register(database[ATTRIBUTE_REGISTRY], database[CUSTOMERS], sample)


def indexes_for(query: dict[str, Any]) -> set[str]:
    """The customers indexes a compiled filter's fields could use."""
    fields: set[str] = set()
    pending = [query]
    while pending:
        for key, value in pending.pop().items():
            if key in ("$and", "$or", "$nor"):
                pending.extend(value)
            else:
                fields.add(key)
    return {WILDCARD if field.startswith("attributes.") else field for field in fields} & set(PRODUCT_INDEXES)


def plan_of(collection, query: dict[str, Any]) -> str:
    """The local server's winning plan for find(query), as stages and index names (planned only, not run)."""
    explained = collection.database.command("explain", {"find": collection.name, "filter": query},
                                            verbosity="queryPlanner")

    def stages(node: dict[str, Any]) -> str:
        name = node["stage"] + (f" {node['indexName']}" if "indexName" in node else "")
        children = [node["inputStage"]] if "inputStage" in node else node.get("inputStages", [])
        if len(children) == 1:
            return f"{name} > {stages(children[0])}"
        return f"{name}({', '.join(stages(child) for child in children)})" if children else name

    return stages(explained["queryPlanner"]["winningPlan"])


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
    parser.add_argument("--orders", type=int, help="orders over two years (default: 5 a customer)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--behaviour-only", action="store_true",
                        help="only the behaviour rules (v3): the v1/v2 trees and the runs without indexes skipped")
    parser.add_argument("--cache-size", default=CACHE_SIZE, help="SecantusDB's WiredTiger cache (all its storage)")
    args = parser.parse_args(argv)
    mongo = RoomyMongoServer(args.cache_size)
    try:
        db_name = f"bench_{uuid.uuid4().hex[:8]}"
        os.environ.update({"MONGO_URI": mongo.uri, "MONGO_DB": db_name, "JWT_SECRET": uuid.uuid4().hex,
                           "POWERTOOLS_LOG_LEVEL": "WARNING", "ENV": "development",
                           # The Python server counts far slower than Atlas; measure it rather than time out.
                           "AUDIENCE_COUNT_TIME_LIMIT_MS": "600000", "MONGO_SOCKET_TIMEOUT_MS": "660000",
                           # And while it scans a million documents it answers the driver's heartbeat late: past the
                           # 3 s connect timeout the driver drops the server and cancels the count in flight.
                           "MONGO_TIMEOUT_MS": "600000"})
        from crm import rules
        from crm.auth import issue_token
        from crm.config import get_settings
        from crm.db import CUSTOMERS, LAMBDA_MAX_TIMEOUT_SECONDS, ensure_indexes
        from crm.models.common import utcnow
        from offline.gateway import http_api_event
        from offline.lambda_worker import LambdaContext
        from offline.template import HttpRoute

        get_settings.cache_clear()  # an earlier benchmark of the same run may have read other settings

        # The benchmark's own reads (the raw counts) scan as long: the same patience with the server's heartbeat.
        customers = MongoClient(mongo.uri, tz_aware=True, connectTimeoutMS=int(os.environ["MONGO_TIMEOUT_MS"]),
                                serverSelectionTimeoutMS=int(os.environ["MONGO_TIMEOUT_MS"]))[db_name][CUSTOMERS]
        register_attributes(customers.database)
        started = time.perf_counter()
        behaviour = Behaviour(customers.database, utcnow(), (args.orders or 5 * args.customers) / args.customers,
                              SKUS)
        load_customers(customers, args.customers, behaviour)
        loaded = time.perf_counter() - started
        # The project's own indexes; built here with no socket timeout, as a deploy step would on a big collection.
        ensure_indexes(customers.database)
        print(f"preview: {args.customers:,} customers with {behaviour.counts['orders']:,} orders and "
              f"{behaviour.counts['logs']:,} campaign logs (loaded in {loaded:.0f} s, indexed in "
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
            # Lambda's longest timeout: the request's deadline (its remaining time) must not cut a slow count short.
            reply = handler(event, LambdaContext("SegmentsFunction", 512, "r",
                                                 time.time() + LAMBDA_MAX_TIMEOUT_SECONDS))
            assert reply["statusCode"] == 200, reply
            return json.loads(reply["body"])

        def compiled(raw: dict) -> dict:
            return rules.to_filter(rules.parse(raw), utcnow())

        print("  the local server's plan for each kind of rule (explain, queryPlanner):")
        for kind, raw in RULE_KINDS.items():
            print(f"    {kind:<34} {plan_of(customers, compiled(raw))}", flush=True)

        rows = []
        for name, raw in ({} if args.behaviour_only else TREES).items():
            preview_ms, result = timed(lambda: preview(raw), args.repeats)
            query = compiled(raw)
            count_ms, count = timed(lambda: customers.count_documents(query), args.repeats)
            assert abs(count - result["audience_size"]) <= args.customers // 10_000 + 5  # clock moves between calls
            rows.append([name, result["audience_size"], preview_ms, count_ms, plan_of(customers, query)])
            print(f"  measured {name}", flush=True)

        # Behaviour rules, with the indexes: the roll-up on the customers beside the raw orders and logs aggregated.
        behaviour_rows = []
        raw_counts = behaviour.raw_counts()
        for name, raw in behaviour.trees().items():
            preview_ms, result = timed(lambda: preview(raw), args.repeats)
            raw_ms, count = timed(raw_counts[name], args.repeats)
            assert count == result["audience_size"], (name, count, result["audience_size"])
            behaviour_rows.append([name, count, preview_ms, raw_ms, plan_of(customers, compiled(raw))])
            # As each is measured: at a million customers a row takes minutes, and a later failure loses none.
            print(f"  measured {name}: {count:,} customers, preview {preview_ms:.0f} ms, raw {raw_ms:.0f} ms",
                  flush=True)

        for index in () if args.behaviour_only else PRODUCT_INDEXES:
            try:
                customers.drop_index(index)
            except OperationFailure as exc:  # seen once on SecantusDB at 1,000,000 documents
                print(f"  could not drop the {index} index ({exc.code}: {exc.details.get('errmsg')}); "
                      f"no figures without it", flush=True)
        left = customers.index_information().keys() & set(PRODUCT_INDEXES)
        for row in rows:
            # Measured only where every index the tree's filter could use is gone.
            unindexed = not indexes_for(compiled(TREES[row[0]])) & left
            unindexed_ms, _ = timed(lambda: preview(TREES[row[0]]), 1) if unindexed else (float("nan"), None)
            row.append(unindexed_ms)

        if rows:
            print(f"  {'rules':<30} {'audience':>9} {'preview ms':>11} {'raw count ms':>13} {'ratio':>6} "
                  f"{'no-index preview ms':>20} {'slower':>7}  local plan (explain)")
        for name, audience, preview_ms, count_ms, plan, unindexed_ms in rows:
            print(f"  {name:<30} {audience:>9,} {preview_ms:>11.0f} {count_ms:>13.0f} {preview_ms / count_ms:>6.2f} "
                  f"{unindexed_ms:>20.0f} {unindexed_ms / preview_ms:>6.1f}x  {plan}")
        print(f"\n  behaviour rules (v3) over {behaviour.counts['orders']:,} orders and {behaviour.counts['logs']:,} "
              f"campaign logs: the raw count is the same question aggregated from the raw orders / logs")
        print(f"  {'rules':<32} {'audience':>9} {'preview ms':>11} {'raw count ms':>13} {'ratio':>6}  "
              f"local plan (explain)")
        for name, audience, preview_ms, raw_ms, plan in behaviour_rows:
            print(f"  {name:<32} {audience:>9,} {preview_ms:>11.0f} {raw_ms:>13.0f} {preview_ms / raw_ms:>6.2f}  "
                  f"{plan}")
        return [Row("preview", f"{name} ({audience:,} of {args.customers:,})", preview_ms, "ms", count_ms,
                    "raw count_documents") for name, audience, preview_ms, count_ms, _, _ in rows] + [
            Row("preview", f"{name} ({audience:,} of {args.customers:,})", preview_ms, "ms", raw_ms,
                "raw orders/logs aggregated") for name, audience, preview_ms, raw_ms, _ in behaviour_rows]
    finally:
        mongo.stop()


if __name__ == "__main__":
    run()
