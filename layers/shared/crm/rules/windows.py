"""Behaviour rules (v3) over the customer's activity (crm.rules.activity): compiled to a filter, and evaluated in
plain Python as the reference that filter must agree with.

A window of N days holds the entries whose UTC day number d has d > today - N (today, `now`'s UTC day, included).
What can use an index does:
- orders and order_spend: the window's total is the largest running total (`cn`, `cs`) of its buckets, so "total >= x"
  is one `$elemMatch` {d > today - N, cn >= x} (the day index finds the window's buckets), and every other comparison
  is made of such conditions and their `$nor`: `< x` is "no bucket in the window reaches x", which customers with no
  orders meet too;
- bought: an `$elemMatch` of a day in the window and the SKUs (`has_none`: its `$nor`);
- messages_received, opened, clicked: "at least one" is a range of the day index (`activity.messages.o > ...`);
  other counts an `$expr` counting the window's entries of the documents that range found, or of every document
  when zero is among the counts the rule accepts;
- campaign: an `$elemMatch` of the campaign and the day of its event (`!=`: its `$nor`).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from bson import ObjectId

from crm.rules.activity import MESSAGES, ORDERS, day_number
from crm.rules.grammar import BOUGHT, CAMPAIGN, Behaviour

# Order totals: the running total of each bucket that a window's total is the largest of.
RUNNING_TOTALS = {"orders": "cn", "order_spend": "cs"}
# Message counts: the entry's day of the event counted.
MESSAGE_DAYS = {"messages_received": "r", "opened": "o", "clicked": "k"}
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
    if rule.field in RUNNING_TOTALS:
        return _order_total_filter(rule, cut)
    day = MESSAGE_DAYS[rule.field]
    if _at_least_one(rule.op, rule.value):
        return {f"{MESSAGES}.{day}": {"$gt": cut}}  # "at least one" is what the index range says
    count = {"$size": {"$filter": {"input": {"$ifNull": [f"${MESSAGES}", []]}, "as": "entry",
                                   "cond": {"$gt": [f"$$entry.{day}", cut]}}}}
    if rule.op == "between":
        holds = {"$expr": {"$let": {"vars": {"count": count}, "in": {
            "$and": [{"$gte": ["$$count", rule.value[0]]}, {"$lte": ["$$count", rule.value[1]]}]}}}}
    else:
        holds = {"$expr": {_EXPR_OPS[rule.op]: [count, rule.value]}}
    if compare(0, rule.op, rule.value):
        return holds  # customers with nothing in the window meet it too: no index range can find them
    return {"$and": [{f"{MESSAGES}.{day}": {"$gt": cut}}, holds]}


def _at_least_one(op: str, value: Any) -> bool:
    """The comparison holds for exactly the counts 1, 2, 3, ..."""
    return (op == ">" and 0 <= value < 1) or (op == ">=" and 0 < value <= 1) or (op == "!=" and value == 0)


def _order_total_filter(rule: Behaviour, cut: int) -> dict[str, Any]:
    """The window's total compared, as conditions "some bucket of the window has a running total of at least x"."""
    running = RUNNING_TOTALS[rule.field]

    def reaches(low: float, strict: bool = False) -> dict[str, Any] | None:
        """Some bucket's running total reaches low; None: every total does (also of a customer with no orders)."""
        if low <= 0 and not strict:
            return None
        if running == "cn" and (low < 1 if strict else low <= 1):
            return {f"{ORDERS}.d": {"$gt": cut}}  # every bucket holds an order: any bucket of the window will do
        return {ORDERS: {"$elemMatch": {"d": {"$gt": cut}, running: {"$gt" if strict else "$gte": low}}}}

    def never(condition: dict[str, Any] | None) -> dict[str, Any]:
        return {"$nor": [condition if condition is not None else {}]}

    op, value = rule.op, rule.value
    if op in (">", ">=") or (op == "!=" and value == 0):
        return reaches(value, strict=op != ">=") or {}
    if op in ("<", "<="):
        return never(reaches(value, strict=op == "<="))
    low, high = value if op == "between" else (value, value)
    at_least, above = reaches(low), never(reaches(high, strict=True))
    within = above if at_least is None else {"$and": [at_least, above]}
    return within if op != "!=" else {"$nor": [within]}


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
    if rule.field in RUNNING_TOTALS:
        running = RUNNING_TOTALS[rule.field]
        total = max((b[running] for b in activity.get("orders") or [] if b["d"] > cut), default=0)
    else:
        day = MESSAGE_DAYS[rule.field]
        total = sum(1 for e in activity.get("messages") or [] if e.get(day) is not None and e[day] > cut)
    return compare(total, rule.op, rule.value)
