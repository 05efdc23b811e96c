"""What the preview benchmark's customers did (Rules v3): orders over two years and campaign messages, as raw orders
and logs in their own collections and rolled up on each customer by the functions the consumers use
(crm.rules.activity); and each behaviour rule's question answered again from the raw collections (an aggregation),
which is what a preview would cost without the roll-up."""
from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from bson import ObjectId

# A fifth of the customers never ordered; the others' order counts are heavy-tailed (a log-normal: most order a few
# times, some hundreds), their orders more frequent lately (a growing shop: the time since an order is exponential,
# mean 200 days, within two years), their amounts log-normal (median 900), their SKUs Zipf-popular.
NEVER_ORDERED = 0.2
SPREAD = 1.0
MEAN_DAYS_AGO = 200
HISTORY_DAYS = 730
MEDIAN_AMOUNT = 900
MAX_ORDERS = 500
# Campaigns of the last four months, each sent to a tenth of the customers: 90 % SENT; of those 30 % opened (in the
# following days), a quarter of the openers clicked, a tenth of the clickers converted.
CAMPAIGN_DAYS_AGO = (110, 90, 60, 35, 14, 3)
REACH, SENT, OPENED, CLICKED, CONVERTED = 0.1, 0.9, 0.3, 0.25, 0.1
BATCH = 20_000


class Behaviour:
    """Generates each customer's orders and logs, and their activity as the consumers would have left it."""

    def __init__(self, database, now: datetime, orders_per_customer: float, skus: tuple[str, ...], seed: int = 13):
        self.database, self.now, self.skus = database, now, skus
        self.rng = random.Random(seed)
        # The mean of 1 + log-normal over the customers who order is what makes orders_per_customer on average.
        ordering_mean = max(orders_per_customer / (1 - NEVER_ORDERED) - 1, 0.01)
        self.mu = math.log(ordering_mean) - SPREAD**2 / 2
        self.sku_weights = [1 / rank for rank in range(1, len(skus) + 1)]
        self.campaigns = [(ObjectId(), now - timedelta(days=days)) for days in CAMPAIGN_DAYS_AGO]
        self.orders: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.counts = {"orders": 0, "logs": 0}

    def for_customer(self, customer_id: ObjectId) -> dict[str, Any]:
        """The customer document's `activity`, the customer's raw orders and logs kept for `flush`."""
        from crm.rules.activity import daily_buckets, message_days

        orders = self._orders(customer_id)
        logs = self._logs(customer_id)
        self.orders += orders
        self.logs += logs
        activity: dict[str, Any] = {}
        buckets = daily_buckets([(o["date"], o["amount"], [i["sku"] for i in o["items"]]) for o in orders], self.now)
        if buckets:
            activity["orders"] = buckets
        messages = [{"c": log["campaign_id"], **days} for log in logs if (days := message_days(log))]
        if messages:
            activity["messages"] = messages
        return {"activity": activity} if activity else {}

    def flush(self) -> None:
        from crm.db import LOGS, ORDERS

        for name, docs in ((ORDERS, self.orders), (LOGS, self.logs)):
            if docs:
                self.database[name].insert_many(docs, ordered=False)
                self.counts["orders" if name == ORDERS else "logs"] += len(docs)
        self.orders, self.logs = [], []

    def _orders(self, customer_id: ObjectId) -> list[dict[str, Any]]:
        rng = self.rng
        if rng.random() < NEVER_ORDERED:
            return []
        count = min(1 + round(rng.lognormvariate(self.mu, SPREAD)), MAX_ORDERS)
        orders = []
        for _ in range(count):
            days_ago = HISTORY_DAYS
            while days_ago >= HISTORY_DAYS:
                days_ago = rng.expovariate(1 / MEAN_DAYS_AGO)
            date = self.now - timedelta(days=days_ago)
            amount = round(rng.lognormvariate(math.log(MEDIAN_AMOUNT), 0.8), 2)
            skus = rng.choices(self.skus, weights=self.sku_weights, k=rng.randint(1, 3))
            orders.append({"_id": ObjectId(), "order_id": f"bench-{ObjectId()}", "customer_id": customer_id,
                           "amount": amount, "date": date, "created_at": date,
                           "items": [{"sku": sku, "name": sku, "qty": 1, "price": round(amount / len(skus), 2)}
                                     for sku in skus]})
        return orders

    def _logs(self, customer_id: ObjectId) -> list[dict[str, Any]]:
        rng, logs = self.rng, []
        for campaign_id, started in self.campaigns:
            if rng.random() >= REACH:
                continue
            sent_at = started + timedelta(minutes=rng.randint(0, 600))
            log = {"_id": ObjectId(), "campaign_id": campaign_id, "customer_id": customer_id,
                   "status": "SENT" if rng.random() < SENT else "FAILED", "sent_at": sent_at, "events": {}}
            moment = sent_at
            for event, share in (("opened", OPENED), ("clicked", CLICKED), ("converted", CONVERTED)):
                if log["status"] != "SENT" or rng.random() >= share:
                    break
                moment = min(moment + timedelta(days=rng.expovariate(1)), self.now)
                log["events"][event] = moment
            logs.append(log)
        return logs

    def trees(self) -> dict[str, dict[str, Any]]:
        """The behaviour rules measured, each with the aggregation that answers it from the raw collections."""
        campaign = str(self.campaigns[-2][0])
        return {
            "orders >= 1 in 30 days": {"field": "orders", "days": 30, "op": ">=", "value": 1},
            "orders > 5 in 365 days": {"field": "orders", "days": 365, "op": ">", "value": 5},
            "order_spend > 10000 in 90 days": {"field": "order_spend", "days": 90, "op": ">", "value": 10000},
            "bought SKU-0001 in 30 days": {"field": "bought", "days": 30, "op": "has_any", "value": [self.skus[0]]},
            "no orders in 180 days": {"field": "orders", "days": 180, "op": "==", "value": 0},
            "opened >= 1 in 30 days": {"field": "opened", "days": 30, "op": ">=", "value": 1},
            "got a campaign, did not open": {"and": [
                {"field": "campaign", "campaign_id": campaign, "op": "==", "value": "received"},
                {"field": "campaign", "campaign_id": campaign, "op": "!=", "value": "opened"}]},
            "orders > 5 in 365d, spend > 20k": {"and": [
                {"field": "orders", "days": 365, "op": ">", "value": 5},
                {"field": "spend", "op": ">", "value": 20000}]},
        }

    def raw_counts(self) -> dict[str, Callable[[], int]]:
        """Each tree's audience counted from the raw orders and logs, with `now` as the preview reads it."""
        from crm.db import CUSTOMERS, LOGS, ORDERS

        orders, logs, customers = self.database[ORDERS], self.database[LOGS], self.database[CUSTOMERS]
        today = self.now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)

        def since(days: int) -> datetime:
            """The first moment of the window of the last `days` UTC days, today included."""
            return today - timedelta(days=days - 1)

        def grouped(collection, match: dict, having: dict | None = None, total: Any = 1) -> int:
            pipeline = [{"$match": match}, {"$group": {"_id": "$customer_id", "total": {"$sum": total}}},
                        *([{"$match": {"total": having}}] if having else []), {"$count": "n"}]
            return next(collection.aggregate(pipeline, allowDiskUse=True), {"n": 0})["n"]

        campaign = self.campaigns[-2][0]
        return {
            "orders >= 1 in 30 days": lambda: grouped(orders, {"date": {"$gte": since(30)}}),
            "orders > 5 in 365 days": lambda: grouped(orders, {"date": {"$gte": since(365)}}, {"$gt": 5}),
            "order_spend > 10000 in 90 days": lambda: grouped(orders, {"date": {"$gte": since(90)}}, {"$gt": 10000},
                                                              "$amount"),
            "bought SKU-0001 in 30 days": lambda: grouped(orders, {"date": {"$gte": since(30)},
                                                                   "items.sku": self.skus[0]}),
            "no orders in 180 days": lambda: customers.count_documents({}) - grouped(
                orders, {"date": {"$gte": since(180)}}),
            "opened >= 1 in 30 days": lambda: grouped(logs, {"events.opened": {"$gte": since(30)}}),
            "got a campaign, did not open": lambda: grouped(logs, {"campaign_id": campaign, "status": "SENT",
                                                                   "events.opened": {"$exists": False}}),
            # With a customer's own field: each customer the orders name looked up.
            "orders > 5 in 365d, spend > 20k": lambda: next(orders.aggregate([
                {"$match": {"date": {"$gte": since(365)}}}, {"$group": {"_id": "$customer_id", "total": {"$sum": 1}}},
                {"$match": {"total": {"$gt": 5}}},
                {"$lookup": {"from": CUSTOMERS, "localField": "_id", "foreignField": "_id", "as": "customer"}},
                {"$match": {"customer.spend": {"$gt": 20000}}}, {"$count": "n"}], allowDiskUse=True), {"n": 0})["n"],
        }
