"""What each behaviour rule of bench.preview costs a server that uses its indexes as MongoDB's planner does (Atlas),
counted from the benchmark's own data (the same generator and seeds, no database): the customer documents the
roll-up's index range hands over to be fetched and checked, beside the order or log documents the raw aggregation
reads and groups. The local server's own times are bench.preview's; these are the work an index plan does.

    python -m bench.plan_work [--customers 1000000] [--orders 5000000]
"""
from __future__ import annotations

import argparse
from collections import Counter

from bench._behaviour import Behaviour
from bench._table import Row
from bench.preview import SKUS, customer_batches

WINDOWS = (30, 90, 180, 365)
SKU = SKUS[0]
SPEND = 20_000


def count(customers: int, orders_per_customer: float) -> Counter:
    from crm.models.common import utcnow
    from crm.rules.activity import day_number

    behaviour = Behaviour(None, utcnow(), orders_per_customer, SKUS)
    today = day_number(behaviour.now)
    campaign = behaviour.campaigns[-2][0]
    seen: Counter = Counter()
    for docs in customer_batches(customers, behaviour):
        for doc in docs:
            activity = doc.get("activity") or {}
            buckets, messages = activity.get("orders") or [], activity.get("messages") or []
            for days in WINDOWS:
                seen[f"customers ordered in {days}"] += any(b["d"] > today - days for b in buckets)
            seen["customers bought the SKU"] += any(SKU in b["skus"] for b in buckets)
            seen["customers spent more"] += doc["spend"] > SPEND
            seen["customers opened in 30"] += any(m.get("o", today - 30) > today - 30 for m in messages)
            seen["campaign's recipients"] += any(m["c"] == campaign for m in messages)
        for order in behaviour.orders:
            for days in WINDOWS:
                seen[f"orders in {days}"] += day_number(order["date"]) > today - days
        seen["logs"] += len(behaviour.logs)
        seen["campaign's SENT logs"] += sum(log["campaign_id"] == campaign and log["status"] == "SENT"
                                            for log in behaviour.logs)
        seen["orders"] += len(behaviour.orders)
        behaviour.orders, behaviour.logs = [], []
    seen["customers"] = customers
    return seen


def run(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m bench.plan_work")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, help="orders over two years (default: 5 a customer)")
    args = parser.parse_args(argv)
    seen = count(args.customers, (args.orders or 5 * args.customers) / args.customers)
    # Each row of bench.preview's behaviour rules: (documents the roll-up's best index plan fetches, how it finds
    # them; documents the raw aggregation reads, how).
    rows = {
        "orders >= 1 in 30 days": (seen["customers ordered in 30"], "activity.orders.d range",
                                   seen["orders in 30"], "orders: date range"),
        "orders > 5 in 365 days": (seen["customers ordered in 365"], "activity.orders.d range",
                                   seen["orders in 365"], "orders: date range"),
        "order_spend > 10000 in 90 days": (seen["customers ordered in 90"], "activity.orders.d range",
                                           seen["orders in 90"], "orders: date range"),
        f"bought {SKU} in 30 days": (min(seen["customers ordered in 30"], seen["customers bought the SKU"]),
                                     "the smaller of the day and SKU ranges", seen["orders in 30"],
                                     "orders: date range"),
        "no orders in 180 days": (seen["customers"], "every customer (a $nor)",
                                  seen["orders in 180"], "orders: date range, and a count"),
        "opened >= 1 in 30 days": (seen["customers opened in 30"], "activity.messages.o range",
                                   seen["logs"], "every log (no index on opens)"),
        "got a campaign, did not open": (seen["campaign's recipients"], "activity.messages.c equality",
                                         seen["campaign's SENT logs"], "logs: campaign_status range"),
        "orders > 5 in 365d, spend > 20k": (min(seen["customers ordered in 365"], seen["customers spent more"]),
                                            "the smaller of the day and spend ranges",
                                            seen["orders in 365"], "orders: date range, then $lookup"),
    }
    print(f"plan work: {args.customers:,} customers, {seen['orders']:,} orders, {seen['logs']:,} campaign logs "
          f"(bench.preview's data); documents read by an index plan, per rule")
    print(f"  {'rules':<32} {'roll-up docs':>13}  {'found by':<40} {'raw docs':>10}  read by")
    for name, (rolled, how, raw, raw_how) in rows.items():
        print(f"  {name:<32} {rolled:>13,}  {how:<40} {raw:>10,}  {raw_how}")
    return [Row("plan work", f"{name} (documents read)", rolled, "docs", raw, "raw orders/logs read")
            for name, (rolled, _, raw, _) in rows.items()]


if __name__ == "__main__":
    run()
