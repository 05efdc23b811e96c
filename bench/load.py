"""A bounded load test: concurrent clients on loopback against the offline runner, p50/p99 per route and the
errors (which must be none), beside GET /openapi.json (the runner, Mangum and FastAPI with no dependency) in the
same run.

    python -m bench.load [--clients 8] [--rounds 40]
"""
from __future__ import annotations

import argparse
import itertools
import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from pymongo import MongoClient

from bench._stack import local_stack
from bench._table import Row
from crm.db import ensure_indexes
from crm.models.common import utcnow

BASELINE = "GET /openapi.json"


def seed(db, count: int) -> None:
    now = utcnow()
    db.customers.insert_many([{"name": f"Customer {i}", "name_key": f"customer {i}", "email": f"c{i:06d}@example.com",
                               "phone": None, "spend": float(i * 7 % 5000), "visits": i % 30, "last_active": now,
                               "created_at": now, "updated_at": now} for i in range(count)])
    ensure_indexes(db)


def requests_for(customers: int) -> dict[str, callable]:
    """Each route's request; bodies that create things are new each time, so no request repeats a write."""
    serial = itertools.count()

    def new_customers() -> dict:
        n = next(serial)
        return {"customers": [{"name": f"Load {n}-{i}", "email": f"load{n}-{i}@example.com"} for i in range(10)]}

    def new_order() -> dict:
        return {"order_id": f"load-{next(serial)}", "customer_email": f"c{random.randrange(customers):06d}@example.com",
                "amount": 12.5, "items": [{"sku": "TEA", "name": "Tea", "qty": 1, "price": 12.5}]}

    return {
        BASELINE: lambda: ("GET", "/openapi.json", None),
        "GET /health": lambda: ("GET", "/health", None),
        "GET /api/customers": lambda: ("GET", "/api/customers?limit=50", None),
        "GET /api/customers?min_spend": lambda: ("GET", "/api/customers?min_spend=4900&limit=20", None),
        "POST /api/customers (10)": lambda: ("POST", "/api/customers", new_customers()),
        "POST /api/orders": lambda: ("POST", "/api/orders", new_order()),
        "GET /api/segments": lambda: ("GET", "/api/segments", None),
        "POST /api/segments/preview": lambda: ("POST", "/api/segments/preview",
                                               {"rules": {"field": "spend", "op": ">", "value": 4900}}),
        "POST /api/ai/rules": lambda: ("POST", "/api/ai/rules",
                                       {"prompt": "Users inactive for 6 months and spent > ₹5K"}),
        "GET /api/campaigns": lambda: ("GET", "/api/campaigns", None),
    }


def run(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=40, help="requests per route per client")
    parser.add_argument("--customers", type=int, default=5000)
    args = parser.parse_args(argv)
    with local_stack(max_consumers=2) as stack:
        seed(MongoClient(stack["mongo_uri"], tz_aware=True)[stack["env"]["MONGO_DB"]], args.customers)
        with httpx.Client(base_url=stack["url"], timeout=60) as http:
            token = http.post("/api/auth/dev-token", json={"email": "load@example.com"}).json()["token"]
            http.headers["Authorization"] = f"Bearer {token}"
            http.post("/api/segments", json={"name": "Big spenders", "rules": {"field": "spend", "op": ">",
                                                                              "value": 4000}}).raise_for_status()
        routes = requests_for(args.customers)
        latencies: dict[str, list[float]] = {name: [] for name in routes}
        errors: dict[str, list[str]] = {name: [] for name in routes}
        lock = threading.Lock()

        def client(seed_value: int, rounds: int = args.rounds, record: bool = True) -> None:
            order = [name for name in routes for _ in range(rounds)]
            random.Random(seed_value).shuffle(order)
            with httpx.Client(base_url=stack["url"], timeout=60,
                              headers={"Authorization": f"Bearer {token}"}) as http:
                for name in order:
                    method, path, body = routes[name]()
                    started = time.perf_counter()
                    try:
                        status = http.request(method, path, json=body).status_code
                        problem = None if status < 400 else f"HTTP {status}"
                    except httpx.HTTPError as exc:
                        problem = type(exc).__name__
                    elapsed = (time.perf_counter() - started) * 1000
                    if not record:
                        continue
                    with lock:
                        latencies[name].append(elapsed)
                        if problem:
                            errors[name].append(problem)

        with ThreadPoolExecutor(args.clients) as pool:
            # Unmeasured: every function gets its warm workers (a cold start is bench.cold_init's figure).
            list(pool.map(lambda i: client(i, 1, False), range(args.clients)))
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(client, range(args.clients)))
        wall = time.perf_counter() - started
    total = sum(map(len, latencies.values()))
    print(f"load: {args.clients} clients x {args.rounds} rounds x {len(routes)} routes = {total:,} requests "
          f"in {wall:.1f} s ({total / wall:,.0f}/s), {args.customers:,} customers")
    print(f"  {'route':<30} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'p50 / baseline':>15} {'errors':>7}")
    base = statistics.median(latencies[BASELINE])
    rows = []
    for name, values in latencies.items():
        p50, p99 = statistics.median(values), statistics.quantiles(values, n=100)[98]
        print(f"  {name:<30} {len(values):>5} {p50:>8.0f} {p99:>8.0f} {p50 / base:>15.2f} {len(errors[name]):>7}"
              f"{'  ' + ', '.join(sorted(set(errors[name]))) if errors[name] else ''}")
        if name != BASELINE:
            rows.append(Row("load", f"{name} p50", p50, "ms", base, f"{BASELINE} p50"))
    failed = sum(map(len, errors.values()))
    rows.append(Row("load", f"errors in {total:,} requests", failed, "count"))
    return rows


if __name__ == "__main__":
    run()
