"""A bounded load test: concurrent clients on loopback against the offline runner, p50/p99 per route and the
errors (which must be none), beside GET /openapi.json (the runner, Mangum and FastAPI with no dependency) in the
same run; and what authentication costs (a JWT with its role check, an API key), with the per-container cache of
users and keys on and off.

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

from bench._stack import add_mongo_option, local_stack
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


# What each request carries: a person's JWT (admin or analyst), a shop's API key, or nothing.
ADMIN, ANALYST, KEY, NONE = "admin JWT", "analyst JWT", "API key", "none"
AUTH_ROUTES = [BASELINE, "GET /api/me (JWT)", "GET /api/me (API key)"]


def requests_for(customers: int) -> dict[str, callable]:
    """Each route's request (method, path, body, credential); bodies that create things are new each time, so no
    request repeats a write."""
    serial = itertools.count()

    def new_customers() -> dict:
        n = next(serial)
        return {"customers": [{"name": f"Load {n}-{i}", "email": f"load{n}-{i}@example.com"} for i in range(10)]}

    def new_order() -> dict:
        return {"order_id": f"load-{next(serial)}", "customer_email": f"c{random.randrange(customers):06d}@example.com",
                "amount": 12.5, "items": [{"sku": "TEA", "name": "Tea", "qty": 1, "price": 12.5}]}

    return {
        BASELINE: lambda: ("GET", "/openapi.json", None, NONE),
        # Authentication and the role or scope check, and nothing else: their cost beside the baseline.
        "GET /api/me (JWT)": lambda: ("GET", "/api/me", None, ADMIN),
        "GET /api/me (API key)": lambda: ("GET", "/api/me", None, KEY),
        "GET /health": lambda: ("GET", "/health", None, NONE),
        "GET /api/customers": lambda: ("GET", "/api/customers?limit=50", None, ADMIN),
        "GET /api/customers (analyst)": lambda: ("GET", "/api/customers?limit=50", None, ANALYST),
        "GET /api/customers?min_spend": lambda: ("GET", "/api/customers?min_spend=4900&limit=20", None, ADMIN),
        "POST /api/customers (10)": lambda: ("POST", "/api/customers", new_customers(), ADMIN),
        "POST /api/customers (10, API key)": lambda: ("POST", "/api/customers", new_customers(), KEY),
        "POST /api/orders": lambda: ("POST", "/api/orders", new_order(), ADMIN),
        "GET /api/segments": lambda: ("GET", "/api/segments", None, ADMIN),
        "POST /api/segments/preview": lambda: ("POST", "/api/segments/preview",
                                               {"rules": {"field": "spend", "op": ">", "value": 4900}}, ANALYST),
        "POST /api/ai/rules": lambda: ("POST", "/api/ai/rules",
                                       {"prompt": "Users inactive for 6 months and spent > ₹5K"}, ADMIN),
        "GET /api/campaigns": lambda: ("GET", "/api/campaigns", None, ADMIN),
    }


def credentials(stack: dict) -> dict[str, str]:
    """An admin's and an analyst's tokens and a shop's key with both customer scopes, as Authorization headers."""
    with httpx.Client(base_url=stack["url"], timeout=60) as http:
        def token(email: str, role: str) -> str:
            return http.post("/api/auth/dev-token", json={"email": email, "role": role}).json()["token"]

        admin = token("load@example.com", "admin")
        http.headers["Authorization"] = f"Bearer {admin}"
        key = http.post("/api/api-keys", json={"name": "load shop", "scopes": ["customers:write", "customers:read"]}
                        ).json()["key"]
        http.post("/api/segments", json={"name": "Big spenders", "rules": {"field": "spend", "op": ">",
                                                                          "value": 4000}}).raise_for_status()
        bearer = {ADMIN: admin, ANALYST: token("analyst@example.com", "analyst"), KEY: key}
    return {name: {"Authorization": f"Bearer {value}"} for name, value in bearer.items()} | {NONE: {}}


def measure(stack: dict, routes: dict[str, callable], clients: int, rounds: int
            ) -> tuple[dict[str, list[float]], dict[str, list[str]], float]:
    """Latencies and errors per route from concurrent clients, and the wall time of the measured part."""
    headers = credentials(stack)
    latencies: dict[str, list[float]] = {name: [] for name in routes}
    errors: dict[str, list[str]] = {name: [] for name in routes}
    lock = threading.Lock()

    def client(seed_value: int, rounds: int = rounds, record: bool = True) -> None:
        order = [name for name in routes for _ in range(rounds)]
        random.Random(seed_value).shuffle(order)
        with httpx.Client(base_url=stack["url"], timeout=60) as http:
            for name in order:
                method, path, body, credential = routes[name]()
                started = time.perf_counter()
                try:
                    status = http.request(method, path, json=body, headers=headers[credential]).status_code
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

    with ThreadPoolExecutor(clients) as pool:
        # Unmeasured: every function gets its warm workers (a cold start is bench.cold_init's figure).
        list(pool.map(lambda i: client(i, 1, False), range(clients)))
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return latencies, errors, time.perf_counter() - started


def report(title: str, latencies: dict[str, list[float]], errors: dict[str, list[str]]) -> float:
    """Prints p50/p99 per route beside the baseline's p50, which it returns."""
    print(f"  {title:<36} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'p50 / baseline':>15} {'errors':>7}")
    base = statistics.median(latencies[BASELINE])
    for name, values in latencies.items():
        p50, p99 = statistics.median(values), statistics.quantiles(values, n=100)[98]
        print(f"  {name:<36} {len(values):>5} {p50:>8.1f} {p99:>8.1f} {p50 / base:>15.2f} {len(errors[name]):>7}"
              f"{'  ' + ', '.join(sorted(set(errors[name]))) if errors[name] else ''}")
    return base


def run(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=40, help="requests per route per client")
    parser.add_argument("--customers", type=int, default=5000)
    add_mongo_option(parser)
    args = parser.parse_args(argv)
    routes = requests_for(args.customers)
    with local_stack(max_consumers=2, mongo_uri=args.mongo_uri) as stack:
        seed(MongoClient(stack["mongo_uri"], tz_aware=True)[stack["env"]["MONGO_DB"]], args.customers)
        latencies, errors, wall = measure(stack, routes, args.clients, args.rounds)
    # The same three routes with nothing cached: every request reads its user or key from the database.
    with local_stack(max_consumers=2, parameters={"AuthCacheSeconds": "0"}, mongo_uri=args.mongo_uri) as stack:
        uncached, uncached_errors, _ = measure(stack, {name: routes[name] for name in AUTH_ROUTES}, args.clients,
                                               args.rounds)
    total = sum(map(len, latencies.values()))
    print(f"load: {args.clients} clients x {args.rounds} rounds x {len(routes)} routes = {total:,} requests "
          f"in {wall:.1f} s ({total / wall:,.0f}/s), {args.customers:,} customers")
    base = report("route (auth cache on, 10 s)", latencies, errors)
    uncached_base = report("route (auth cache off)", uncached, uncached_errors)
    print("  authentication p50 (route p50 - baseline p50, each in its own run):")
    rows = []
    for name, runs in (("JWT with role check", "GET /api/me (JWT)"), ("API key", "GET /api/me (API key)")):
        on = statistics.median(latencies[runs]) - base
        off = statistics.median(uncached[runs]) - uncached_base
        print(f"    {name:<22} cache on {on:>6.1f} ms   cache off {off:>6.1f} ms")
        rows.append(Row("load", f"auth {name} p50, cache on", statistics.median(latencies[runs]), "ms", base,
                        f"{BASELINE} p50"))
        rows.append(Row("load", f"auth {name} p50, cache off", statistics.median(uncached[runs]), "ms",
                        uncached_base, f"{BASELINE} p50 (same run)"))
    for name, values in latencies.items():
        if name not in AUTH_ROUTES:
            rows.append(Row("load", f"{name} p50", statistics.median(values), "ms", base, f"{BASELINE} p50"))
    failed = sum(map(len, errors.values())) + sum(map(len, uncached_errors.values()))
    rows.append(Row("load", f"errors in {total + sum(map(len, uncached.values())):,} requests", failed, "count"))
    return rows


if __name__ == "__main__":
    run()
