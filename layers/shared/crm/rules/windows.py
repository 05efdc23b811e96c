"""Behaviour rules (v3) over the customer's activity (crm.rules.activity): compiled to a filter, and evaluated in
plain Python as the reference that filter must agree with.

A window of N days holds the entries whose UTC day number d has d > today - N (today, `now`'s UTC day, included).
What can use an index does: a rule that no customer without activity in the window can meet starts with a range of
the multikey day index (`activity.orders.d > today - N`), which alone decides "at least one"; a total beyond that is
an `$expr` summing the window's entries of the documents that range found. A rule a customer with no activity meets
(`< n`, `== 0`, `has_none`, `!=`) is a `$expr` (or a `$nor`) alone: it holds for customers with no activity at all.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from bson import ObjectId

from crm.rules.activity import MESSAGES, ORDERS, day_number
from crm.rules.grammar import BOUGHT, CAMPAIGN, Behaviour

# Each window rule's entries: (array, the entry's day key, the amount key summed, or None to count entries).
SERIES = {"orders": (ORDERS, "d", "n"), "order_spend": (ORDERS, "d", "s"), "messages_received": (MESSAGES, "r", None),
          "opened": (MESSAGES, "o", None), "clicked": (MESSAGES, "k", None)}
# A campaign rule's event, by the key of the message entry that holds its day.
EVENT_KEYS = {"received": "r", "opened": "o", "clicked": "k", "converted": "v"}
_EXPR_OPS = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte", "==": "$eq", "!=": "$ne"}


def compare(actual: float, op: str, value: Any) -> bool:
    if op == "between":
        return value[0] <= actual <= value[1]
    return {">": actual > value, ">=": actual >= value, "<": actual < value, "<=": actual <= value,
            "==": actual == value, "!=": actual != value}[op]


def to_filter(rule: Behaviour, now: datetime) -> dict[str, Any]:
    if rule.field == CAMPAIGN:
        received = {MESSAGES: {"$elemMatch": {"c": ObjectId(rule.campaign_id),
                                              EVENT_KEYS[rule.value]: {"$exists": True}}}}
        return received if rule.op == "==" else {"$nor": [received]}
    cut = day_number(now) - rule.days
    if rule.field == BOUGHT:
        if rule.op == "has_all":
            each = [{ORDERS: {"$elemMatch": {"d": {"$gt": cut}, "skus": sku}}} for sku in rule.value]
            return each[0] if len(each) == 1 else {"$and": each}
        bought = {ORDERS: {"$elemMatch": {"d": {"$gt": cut}, "skus": {"$in": list(rule.value)}}}}
        return bought if rule.op == "has_any" else {"$nor": [bought]}
    array, day, amount = SERIES[rule.field]
    total = _window_total(array, day, amount, cut)
    if rule.op == "between":
        holds = {"$expr": {"$let": {"vars": {"total": total}, "in": {
            "$and": [{"$gte": ["$$total", rule.value[0]]}, {"$lte": ["$$total", rule.value[1]]}]}}}}
    else:
        holds = {"$expr": {_EXPR_OPS[rule.op]: [total, rule.value]}}
    if compare(0, rule.op, rule.value):
        return holds  # customers with nothing in the window meet it too: no index range can find them
    active = {f"{array}.{day}": {"$gt": cut}}
    if amount != "s" and _at_least_one(rule.op, rule.value):
        return active  # a count of entries: "at least one" is what the index range says
    return {"$and": [active, holds]}


def _at_least_one(op: str, value: Any) -> bool:
    """The comparison holds for exactly the counts 1, 2, 3, ... (it fails for 0: the caller checked)."""
    return (op == ">" and value < 1) or (op == ">=" and value <= 1) or (op == "!=" and value == 0)


def _window_total(array: str, day: str, amount: str | None, cut: int) -> dict[str, Any]:
    inside = {"$filter": {"input": {"$ifNull": [f"${array}", []]}, "as": "entry",
                          "cond": {"$gt": [f"$$entry.{day}", cut]}}}
    if amount is None:
        return {"$size": inside}
    return {"$sum": {"$map": {"input": inside, "as": "entry", "in": f"$$entry.{amount}"}}}


def matches(rule: Behaviour, customer: Mapping[str, Any], now: datetime) -> bool:
    activity = customer.get("activity") or {}
    if rule.field == CAMPAIGN:
        campaign, key = ObjectId(rule.campaign_id), EVENT_KEYS[rule.value]
        happened = any(e.get("c") == campaign and key in e for e in activity.get("messages") or [])
        return happened == (rule.op == "==")
    cut = day_number(now) - rule.days
    if rule.field == BOUGHT:
        bought = {sku for b in activity.get("orders") or [] if b["d"] > cut for sku in b.get("skus") or []}
        wanted = set(rule.value)
        return {"has_any": bool(bought & wanted), "has_all": wanted <= bought,
                "has_none": not bought & wanted}[rule.op]
    array, day, amount = SERIES[rule.field]
    entries = activity.get(array.split(".")[1]) or []
    total = sum(e[amount] if amount else 1 for e in entries if e.get(day) is not None and e[day] > cut)
    return compare(total, rule.op, rule.value)
