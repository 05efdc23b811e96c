"""A customer's behaviour over time, rolled up on the customer document for the behaviour rules (API.md "Rules v3")
to read, and the writers that keep it.

Layout, in the customers collection (days are UTC day numbers: whole days since 1970-01-01, `day_number`):

    activity.orders:   [{"d": <day>, "n": <orders placed that day>, "s": <their amounts' sum>,
                         "skus": [<the SKUs they held, each once>]}, ...]
        At most one bucket a day. Buckets of days MAX_DAYS or more before the day of a write are dropped by that
        write: no rule's window reaches them. Written by the order consumer inside the transaction that records the
        orders (crm.services.orders), which applies each order exactly once however often it is delivered.

    activity.messages: [{"c": <campaign ObjectId>, "r": <day sent>, "o": <day first opened>,
                         "k": <day first clicked>, "v": <day first converted>}, ...]
        One entry per campaign that messaged the customer; a key is absent until that happened. Written by
        `message_activity_writes`, which may be applied any number of times, in any order: the entry is pushed only
        while the customer has none for that campaign, and each day only ever moves to an earlier one ($min), so
        every application leaves the same entry.

Every entry is small and a customer has at most one per day (orders) or per campaign (messages), so a rule reads one
document per customer: the compiled filter (crm.rules.windows) finds the customers with something in the window
through the multikey indexes on `activity.orders.d`, `activity.orders.skus` and `activity.messages.c/r/o/k`, then
sums the window's entries of just those documents.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from bson import ObjectId
from pymongo import UpdateOne

ORDERS = "activity.orders"
MESSAGES = "activity.messages"
# The longest window a rule may name, in days: activity older than that is never read.
MAX_DAYS = 730
# A log's moments, by the key of the message entry that records its day.
MESSAGE_DAYS = {"r": "sent_at", "o": "opened", "k": "clicked", "v": "converted"}
# A control recipient's log (SKIPPED, reason control) records nothing: no message reached them, and their orders
# count for the control group, not for the campaign.
CONTROL_REASON = "control"
SENT = "SENT"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def day_number(moment: datetime) -> int:
    """The UTC calendar day of a moment, as whole days since 1970-01-01 (a naive moment is read as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH).days


def daily_buckets(orders: Iterable[tuple[datetime, float, Iterable[str]]], now: datetime) -> list[dict[str, Any]]:
    """One bucket per UTC day of these orders (date, amount, SKUs), days within MAX_DAYS of `now` only."""
    oldest = day_number(now) - MAX_DAYS
    buckets: dict[int, dict[str, Any]] = {}
    for date, amount, skus in orders:
        day = day_number(date)
        if day <= oldest:
            continue
        bucket = buckets.setdefault(day, {"d": day, "n": 0, "s": 0.0, "skus": {}})
        bucket["n"] += 1
        bucket["s"] += amount
        bucket["skus"].update(dict.fromkeys(skus))
    return [{**b, "skus": list(b["skus"])} for b in buckets.values()]


def orders_activity(orders: Iterable[tuple[datetime, float, Iterable[str]]], now: datetime) -> dict[str, Any]:
    """An update-pipeline expression for `activity.orders`: the stored buckets with these new orders (date, amount,
    SKUs) added, one bucket a day, those older than MAX_DAYS dropped. Not idempotent by itself: the caller applies
    each order once (the order consumer's transaction does)."""
    fresh = daily_buckets(orders, now)
    days = [b["d"] for b in fresh]
    kept = {"$filter": {"input": {"$ifNull": [f"${ORDERS}", []]},
                        "cond": {"$gt": ["$$this.d", day_number(now) - MAX_DAYS]}}}
    same_day = {"$arrayElemAt": [{"$filter": {"input": "$$kept", "as": "old", "cond": {"$eq": ["$$old.d", "$$new.d"]}}},
                                 0]}
    earlier_skus = {"$ifNull": ["$$same.skus", []]}
    merged = {"$let": {"vars": {"same": same_day}, "in": {
        "d": "$$new.d",
        "n": {"$add": ["$$new.n", {"$ifNull": ["$$same.n", 0]}]},
        "s": {"$add": ["$$new.s", {"$ifNull": ["$$same.s", 0]}]},
        "skus": {"$concatArrays": [earlier_skus, {"$filter": {
            "input": "$$new.skus", "as": "sku", "cond": {"$not": [{"$in": ["$$sku", earlier_skus]}]}}}]}}}}
    return {"$let": {"vars": {"kept": kept}, "in": {"$concatArrays": [
        {"$filter": {"input": "$$kept", "as": "old", "cond": {"$not": [{"$in": ["$$old.d", {"$literal": days}]}]}}},
        {"$map": {"input": {"$literal": fresh}, "as": "new", "in": merged}}]}}}


def message_days(log: Mapping[str, Any]) -> dict[str, int]:
    """The days a log's message was sent, first opened, clicked and converted, by their entry keys; none for a log
    of a control recipient, and no `r` for a log that was not SENT (when the log says its status)."""
    if log.get("reason") == CONTROL_REASON:
        return {}
    events = log.get("events") or {}
    moments = {key: log.get("sent_at") if source == "sent_at" else events.get(source)
               for key, source in MESSAGE_DAYS.items()}
    if log.get("status", SENT) != SENT:
        moments["r"] = None
    return {key: day_number(moment) for key, moment in moments.items() if isinstance(moment, datetime)}


def message_activity_writes(logs: Iterable[Mapping[str, Any]]) -> list[UpdateOne]:
    """Bulk writes for the customers collection recording what these logs (customer_id, campaign_id, sent_at,
    events {opened, clicked, converted}; optionally status and reason) say happened, in `activity.messages`.

    Idempotent and order-free: for each log, one write pushes the campaign's entry (with the log's days) only if the
    customer has none for it, the other lowers the entry's days to the log's ($min; a missing day is set). Whichever
    runs first, and however often both run, the entry ends the same; a customer who no longer exists is skipped."""
    writes = []
    for log in logs:
        days = message_days(log)
        if not days:
            continue
        customer, campaign = ObjectId(log["customer_id"]), ObjectId(log["campaign_id"])
        writes.append(UpdateOne({"_id": customer, f"{MESSAGES}.c": {"$ne": campaign}},
                                {"$push": {MESSAGES: {"c": campaign, **days}}}))
        # arrayFilters, not the positional `$`: the local server applies `$` only to an array at the top level.
        writes.append(UpdateOne({"_id": customer, f"{MESSAGES}.c": campaign},
                                {"$min": {f"{MESSAGES}.$[entry].{key}": day for key, day in days.items()}},
                                array_filters=[{"entry.c": campaign}]))
    return writes
